"""Batched deliveries: many loaded tasks from one coroutine (`Deliverer.process_group`).

What the tasks of one destination share is done once per group, not once per task: the
destination parsed and its endpoint checked, its records handed to its batcher in one
call, its like outcomes counted into the metrics in one step, its successes logged in one
`deliveries` line (each task's own `delivery` line at debug; a failure's at warning, as
ever), and the group's completions queued as one submission. Per task there remain its
circuit-breaker turn, its record, its result and its completion item.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from outpost.delivery.breaker import Key
from outpost.destinations.base import Failure
from outpost.models import Destination, Event
from outpost.queue.items import Entry, Outcome
from outpost.telemetry import observe_many

if TYPE_CHECKING:
    from outpost.delivery.deliverer import Deliverer, Sending

log = structlog.get_logger("outpost.delivery")
DEBUG = 10

Item = tuple[Entry, Event | None, bytes | None]


@dataclass
class _Shared:
    """One destination's part of a group: what its tasks share."""

    dest: Destination
    provider: Any
    key: Key
    failure: Failure | None  # its endpoint refused: every task of it fails alike


async def process_group(d: Deliverer, items: list[Item]) -> list[Outcome]:
    started = time.time()
    d.telemetry.inflight.inc(len(items))
    try:
        begun = await _begin_all(d, items)
        outcomes = [await d._settle(*item, b) for item, b in zip(items, begun, strict=True)]
    finally:
        d.telemetry.inflight.dec(len(items))
    describe(d, items, outcomes, started)
    done = [(entry, outcome) for (entry, _, _), outcome in zip(items, outcomes, strict=True)]
    completed = await d.queue.complete_many(done, started)
    for (entry, outcome), answer in zip(done, completed, strict=True):
        if isinstance(answer, BaseException):
            raise answer  # left unacked from here on: reclaimed later, as a crash's
        if d.alerts is not None and outcome.status == "failed":
            await d._alert(entry, outcome, answer[1])
    log_group(done, started)
    return outcomes


async def _begin_all(d: Deliverer, items: list[Item]) -> list[Outcome | Sending]:
    """Each task's Outcome or send under way; a batching destination's records handed
    over together."""
    begun: list[Any] = [None] * len(items)
    by_dest: dict[bytes, list[int]] = {}
    for i, (entry, event, raw) in enumerate(items):
        if event is None or raw is None:
            begun[i] = await d._begin(entry, event, raw)
        else:
            by_dest.setdefault(raw, []).append(i)
    for raw, at in by_dest.items():
        dest = d.destinations.parse(raw)
        provider = d.registry.get(dest.type) if dest.type in d.registry else None
        if not dest.enabled or provider is None or not provider.batching(dest):
            for i in at:
                begun[i] = await d._begin(*items[i])
            continue
        shared = _Shared(dest, provider, (dest.tenant_id, dest.id), None)
        try:
            await d._endpoint_allowed(dest)
        except Exception as exc:
            shared.failure = provider.classify(exc)
        await _begin_destination(d, shared, [(i, items[i]) for i in at], begun)
    return begun


async def _begin_destination(
    d: Deliverer, shared: _Shared, items: list[tuple[int, Item]], begun: list[Any]
) -> None:
    """One destination's tasks of the group: breaker turns, records, one hand-over."""
    from outpost.delivery.deliverer import DEADLINE_MARGIN, Sending, _held

    dest, provider, key = shared.dest, shared.provider, shared.key
    going: list[tuple[int, bool, Item]] = []  # (index, is the probe, the task)
    records = []
    for i, item in items:
        entry, event, _ = item
        assert event is not None
        wait = None if entry.task.manual else d.breakers.admit(key)  # manual: always sent
        if wait is not None:
            begun[i] = _held(wait)
            continue
        probe = not entry.task.manual and d.breakers.probing(key)  # this task is the probe
        failure = shared.failure
        if failure is None:
            try:
                records.append(provider.format(event, dest))
                going.append((i, probe, item))
                continue
            except Exception as exc:
                failure = provider.classify(exc)
        begun[i] = _failed(d, key, probe, item, failure, dest)
    if not records:
        return
    timeout = (dest.overrides or {}).get("timeout_seconds", d.timeout)
    deadline = d._clock() + timeout + provider.patience(dest) + DEADLINE_MARGIN
    try:
        results = await provider.send_batch(records, dest)
    except Exception as exc:
        for i, probe, item in going:
            begun[i] = _failed(d, key, probe, item, provider.classify(exc), dest)
        return
    for (i, _, _), result in zip(going, results, strict=True):
        begun[i] = Sending(key, result, deadline)


def _failed(
    d: Deliverer, key: Key, probe: bool, item: Item, failure: Failure, dest: Destination
) -> Outcome:
    """A task that sent nothing: the probe's turn given back, its failure classified."""
    entry, event, _ = item
    assert event is not None
    if probe:
        d.breakers.settle(key, None)
    return d._failure(entry, event, failure, dest.overrides)


def describe(d: Deliverer, items: Sequence[Item], outcomes: list[Outcome], started: float) -> None:
    """The outcomes' topics and types for their attempt records and their spans (as one
    delivery's, `Deliverer._annotate`); their metrics (like outcomes counted together; the
    attempts' shared duration observed at once)."""
    telemetry, now = d.telemetry, time.time()
    counts: Counter[tuple[str, str, str, str, bool, bool]] = Counter()
    attempts: Counter[str] = Counter()
    for (entry, event, raw), outcome in zip(items, outcomes, strict=True):
        d._annotate(entry, outcome, event, raw, started)
        dtype = outcome.destination_type or "unknown"
        retry = outcome.retry_in is not None
        counts[
            (dtype, entry.task.tenant_id, outcome.status, outcome.code, retry, outcome.dead)
        ] += 1
        if outcome.held or not outcome.record_attempt:
            continue
        attempts[dtype] += 1
        if outcome.status == "success" and event is not None and event.published_at:
            telemetry.of(telemetry.latency, dtype).observe(max(0.0, now - event.published_at))
    for (dtype, tenant, status, code, retry, dead), n in counts.items():
        telemetry.on_outcome(dtype, tenant, status, code, retry=retry, dead=dead, count=n)
    for dtype, n in attempts.items():
        observe_many(telemetry.of(telemetry.attempt, dtype), now - started, n)


def log_group(done: list[tuple[Entry, Outcome]], started: float) -> None:
    """A failure's own line (as `Deliverer._after`); the successes of each destination in
    one `deliveries` line, each its own `delivery` line only at debug."""
    from outpost.delivery.deliverer import log_delivery

    debug = log.is_enabled_for(DEBUG)
    succeeded: Counter[tuple[str, str]] = Counter()
    for entry, outcome in done:
        if outcome.status == "success" and not debug:
            succeeded[(entry.task.tenant_id, entry.task.destination_id)] += 1
        else:
            log_delivery(entry, outcome, started)
    duration_ms = round((time.time() - started) * 1000, 1)
    for (tenant_id, destination_id), n in succeeded.items():
        log.info(
            "deliveries",
            tenant_id=tenant_id,
            destination_id=destination_id,
            status="success",
            count=n,
            duration_ms=duration_ms,
        )
