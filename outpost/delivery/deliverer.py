"""One task, one outcome: load what the task names, format and send through its
destination type, classify a failure (retry, dead letter, alert), and complete it in the
queue. `Deliverer.process()` handles one task end to end so tests can call it; the worker
(worker.py) runs many of these at once.

Every send has a hard deadline (DELIVERY_TIMEOUT_SECONDS, a batch's linger and a margin),
whatever its transport does; and a destination whose sends go unanswered is paused by its
circuit breaker (breaker.py): its tasks are held, back on the retry schedule unsent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import structlog

from outpost.delivery import group
from outpost.delivery.alerts import Alerts
from outpost.delivery.breaker import Breakers, Key
from outpost.deps import Deps
from outpost.destinations.base import Failure, Kind
from outpost.destinations.endpoints import EndpointPolicy, ForbiddenEndpoint
from outpost.destinations.registry import DestinationCache
from outpost.errors import PermanentError
from outpost.models import Destination, Event, Task, iso, utcnow
from outpost.queue.items import Entry, Outcome
from outpost.retry import RetryPolicy
from outpost.telemetry import Telemetry

log = structlog.get_logger("outpost.delivery")
# what a send may take beyond DELIVERY_TIMEOUT_SECONDS (and its batch's linger) before the
# deadline ends it: a queued connection slot, the loop being busy
DEADLINE_MARGIN = 0.5


_LEVELS = {"success": 20, "held": 10}  # a held task is not news: the breaker logs


def _held(wait: float) -> Outcome:
    """A task of a destination whose circuit is open goes back on the retry schedule
    unsent, for `wait` seconds: no attempt recorded, no retry spent."""
    return Outcome(
        "held",
        "circuit_open",
        "the destination's endpoint is not answering: paused",
        retry_in=wait,
        record_attempt=False,
        held=True,
    )


def observe(
    telemetry: Telemetry, task: Task, outcome: Outcome, event: Event | None, started: float
) -> None:
    """One settled outcome into the metrics: counted once, timed if it was an attempt."""
    dtype = outcome.destination_type or "unknown"
    retry, held = outcome.retry_in is not None, outcome.held
    telemetry.on_outcome(
        dtype, task.tenant_id, outcome.status, outcome.code, retry=retry, dead=outcome.dead
    )
    if held or not outcome.record_attempt:
        return
    now = time.time()
    telemetry.of(telemetry.attempt, dtype).observe(now - started)
    if outcome.status == "success" and event is not None and event.published_at:
        telemetry.of(telemetry.latency, dtype).observe(max(0.0, now - event.published_at))


def span_attributes(task: Task, outcome: Outcome) -> dict[str, Any]:
    """An attempt span's attributes: ids, the type, the outcome (never config or payload)."""
    return {
        "outpost.destination_type": outcome.destination_type,
        "outpost.tenant_id": task.tenant_id,
        "outpost.destination_id": task.destination_id,
        "outpost.event_id": task.event_id,
        "outpost.attempt": task.attempt,
        "outpost.outcome": outcome.status,
        "outpost.code": outcome.code,
    }


def log_delivery(entry: Entry, outcome: Outcome, started: float) -> None:
    """The delivery's log line."""
    task = entry.task
    log.log(
        _LEVELS.get(outcome.status, 30),
        "delivery",
        event_id=task.event_id,
        tenant_id=task.tenant_id,
        destination_id=task.destination_id,
        attempt=task.attempt,
        status=outcome.status,
        code=outcome.code or None,
        retry_in=None if outcome.retry_in is None else round(outcome.retry_in, 1),
        dead=outcome.dead or None,
        duration_ms=round((time.time() - started) * 1000, 1),
    )


@dataclass(frozen=True)
class Sending:
    """A send under way: its result to await by `deadline` (the loop's clock)."""

    key: Key
    result: Awaitable[dict[str, Any]]
    deadline: float


class Deliverer:
    def __init__(
        self,
        deps: Deps,
        policy: RetryPolicy,
        *,
        endpoints: EndpointPolicy,
        alerts: Alerts | None = None,
    ):
        self.endpoints = endpoints
        self.alerts = alerts
        self.store = deps.store
        self.queue = deps.queue
        self.registry = deps.registry
        self.cipher = deps.cipher
        self.policy = policy
        self.destinations = DestinationCache(deps.registry, deps.cipher)
        self.timeout = deps.settings.delivery_timeout_seconds
        self.breakers = Breakers.of(deps.settings, self.timeout + DEADLINE_MARGIN)
        self.telemetry = deps.telemetry
        self.tracing = deps.tracing

    async def process(
        self,
        entry: Entry,
        event: Event | None = None,
        raw_dest: bytes | None = None,
        loaded: bool = False,
    ) -> Outcome:
        """Deliver one task and record its outcome. Loads what it is not given."""
        if not loaded:
            event, raw_dest = await self._load_one(entry)
        started = time.time()
        self.telemetry.inflight.inc()
        try:
            begun = await self._begin(entry, event, raw_dest)
            outcome = await self._settle(entry, event, raw_dest, begun)
        finally:
            self.telemetry.inflight.dec()
        self._annotate(entry, outcome, event, raw_dest, started)
        observe(self.telemetry, entry.task, outcome, event, started)
        _, failures = await self.queue.complete(entry, outcome, started)
        await self._after(entry, outcome, failures, started)
        return outcome

    async def process_group(
        self, items: list[tuple[Entry, Event | None, bytes | None]]
    ) -> list[Outcome]:
        """Deliver many loaded tasks from one coroutine: every record is handed over
        (batching destinations gather them into PutRecords) before any result is awaited,
        and what the tasks of a destination share is done once (delivery/group.py). For
        batching destinations, where a task per event would cost more than its share of
        the call."""
        return await group.process_group(self, items)

    def _annotate(
        self,
        entry: Entry,
        outcome: Outcome,
        event: Event | None,
        raw_dest: bytes | None,
        started: float,
    ) -> None:
        """The outcome's topic and type for its attempt record, and its span (an attempt's:
        one that kept no attempt, held ones included, has none)."""
        outcome.topic = event.topic if event is not None else ""
        if raw_dest is not None:
            outcome.destination_type = self.destinations.parse(raw_dest).type
        if self.tracing.enabled and outcome.record_attempt and event is not None:
            attributes = span_attributes(entry.task, outcome)
            error = "" if outcome.status == "success" else outcome.code
            self.tracing.attempt(event.traceparent, attributes, int(started * 1e9), error)

    async def _after(
        self, entry: Entry, outcome: Outcome, failures: int | None, started: float
    ) -> None:
        """Alerts, and the delivery's log line."""
        if self.alerts is not None and outcome.status == "failed":
            await self._alert(entry, outcome, failures)
        log_delivery(entry, outcome, started)

    async def _endpoint_allowed(self, dest: Destination) -> None:
        """The SSRF guard again at send time, on every URL the type takes from its config
        (an endpoint's DNS may have changed since create)."""
        urls = self.registry.get(dest.type).endpoints(dest.config)
        try:
            for _, url in urls:
                await self.endpoints.check(url, at_send=True)
        except ForbiddenEndpoint as exc:
            raise PermanentError("endpoint_forbidden", str(exc)) from None

    async def _alert(self, entry: Entry, outcome: Outcome, failures: int | None) -> None:
        """Alerts at 50/70/90/100 % of the consecutive-failure limit and on exhausted
        retries; at 100 % the destination is disabled when ALERT_AUTO_DISABLE_DESTINATION."""
        assert self.alerts is not None
        task, error = entry.task, {"code": outcome.code, "message": outcome.message[:500]}
        level = self.alerts.level(failures)
        if level is not None:
            disabled = level == 100 and self.alerts.auto_disable and await self._disable(task)
            self._send_alert(
                "alert.consecutive_failure",
                task,
                {
                    "consecutive_failures": failures,
                    "limit": self.alerts.limit,
                    "percent": level,
                    "destination_disabled": disabled,
                    "last_error": error,
                },
            )
        if outcome.dead and outcome.exhausted:
            self._send_alert("alert.retries_exhausted", task, {"last_error": error})
        if outcome.broken and level != 100:  # not already alerted (and disabled) above
            disabled = self.alerts.auto_disable and await self._disable(task)
            self._send_alert(
                "alert.destination_broken",
                task,
                {"destination_disabled": disabled, "last_error": error},
            )

    def _send_alert(self, kind: str, task: Task, data: dict[str, Any]) -> None:
        """An operator alert, counted (outpost_alerts_total{alert})."""
        assert self.alerts is not None
        self.telemetry.of(self.telemetry.alerts, kind.removeprefix("alert.")).inc()
        self.alerts.alert(kind, task, data)

    async def _disable(self, task: Task) -> bool:
        dest = await self.store.get_destination(task.tenant_id, task.destination_id)
        if dest is None or not dest.enabled:
            return False
        dest.disabled_at = dest.updated_at = iso(utcnow())
        await self.store.replace_destination(dest)
        log.warning(
            "destination_auto_disabled",
            tenant_id=task.tenant_id,
            destination_id=task.destination_id,
        )
        return True

    async def _begin(
        self, entry: Entry, event: Event | None, raw_dest: bytes | None
    ) -> Outcome | Sending:
        """Checks, format and hand-over: an Outcome when it ends here, else the send under
        way (a batching destination's record is already in its batch)."""
        if event is None:
            return Outcome("failed", "event_expired", record_attempt=False)
        if raw_dest is None:
            return Outcome("failed", "destination_deleted", record_attempt=False)
        dest = self.destinations.parse(raw_dest)
        if not dest.enabled:
            return Outcome(
                "failed",
                "destination_disabled",
                "destination is disabled",
                dead=True,
                record_attempt=False,
            )
        key = (dest.tenant_id, dest.id)
        wait = None if entry.task.manual else self.breakers.admit(key)  # manual: always sent
        if wait is not None:
            return _held(wait)
        probe = not entry.task.manual and self.breakers.probing(key)  # this task is the probe
        provider = self.registry.get(dest.type)
        try:
            record = provider.format(event, dest)
            await self._endpoint_allowed(dest)
            timeout = (dest.overrides or {}).get("timeout_seconds", self.timeout)
            deadline = self._clock() + timeout + provider.patience(dest) + DEADLINE_MARGIN
            if provider.batching(dest):
                return Sending(key, (await provider.send_batch([record], dest))[0], deadline)
            return Sending(key, provider.send(record, dest), deadline)  # awaited in _settle
        except Exception as exc:
            if probe:  # nothing went out: the probe's turn is given back
                self.breakers.settle(key, None)
            return self._failure(entry, event, provider.classify(exc), dest.overrides)

    async def _settle(
        self,
        entry: Entry,
        event: Event | None,
        raw_dest: bytes | None,
        begun: Outcome | Sending,
    ) -> Outcome:
        if isinstance(begun, Outcome):
            return begun
        assert event is not None and raw_dest is not None
        result, scope = begun.result, None
        try:
            if isinstance(result, asyncio.Future) and result.done():
                response = result.result()  # (a batch's results land together: no timer)
            else:
                async with asyncio.timeout_at(begun.deadline) as scope:
                    response = await result
        except Exception as exc:
            if scope is not None and scope.expired():
                failure = self._overdue(entry)
            else:
                provider = self.registry.get(self.destinations.parse(raw_dest).type)
                failure = provider.classify(exc)
            self.breakers.settle(begun.key, not failure.unanswered)
            overrides = self.destinations.parse(raw_dest).overrides
            return self._failure(entry, event, failure, overrides)
        self.breakers.settle(begun.key, True)
        return Outcome("success", response=response)

    def _overdue(self, entry: Entry) -> Failure:
        """The deadline ended a send its transport did not end in time."""
        task = entry.task
        log.warning(
            "delivery_deadline_exceeded",
            event_id=task.event_id,
            tenant_id=task.tenant_id,
            destination_id=task.destination_id,
        )
        message = "no answer within the attempt's deadline (DELIVERY_TIMEOUT_SECONDS)"
        return Failure(Kind.RETRY, "timeout", message, unanswered=True)

    @staticmethod
    def _clock() -> float:
        return asyncio.get_running_loop().time()

    def _failure(
        self,
        entry: Entry,
        event: Event,
        failure: Failure,
        overrides: dict[str, Any] | None = None,
    ) -> Outcome:
        """Every failed attempt counts toward the consecutive-failure alerts (queue.complete);
        a PERMANENT one is dead-lettered at once, RETRY and AUTH go on the schedule."""
        code, message = failure.code, failure.message
        response = {"error": code, "message": message[:500], **failure.response}
        # a manual retry is one attempt: on failure it is kept (dead letter), not rescheduled
        if not failure.retryable or not event.eligible_for_retry or entry.task.manual:
            return Outcome("failed", code, message, response, dead=True, broken=failure.broken)
        delay = self.policy.overridden(overrides).delay(entry.task.attempt)
        if delay is None:
            return Outcome("failed", code, message, response, dead=True, exhausted=True)
        return Outcome("failed", code, message, response, retry_in=delay)

    async def _load_one(self, entry: Entry) -> tuple[Event | None, bytes | None]:
        return (await self._load([entry]))[0]

    async def _load(self, entries: list[Entry]) -> list[tuple[Event | None, bytes | None]]:
        return await self.queue.load_work(entries)
