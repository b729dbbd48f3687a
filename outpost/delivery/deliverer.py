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
        begun = await self._begin(entry, event, raw_dest)
        outcome = await self._settle(entry, event, raw_dest, begun)
        self._describe(outcome, event, raw_dest)
        _, failures = await self.queue.complete(entry, outcome, started)
        await self._after(entry, outcome, failures, started)
        return outcome

    async def process_group(
        self, items: list[tuple[Entry, Event | None, bytes | None]]
    ) -> list[Outcome]:
        """Deliver many loaded tasks from one coroutine: every record is handed over
        (batching destinations gather them into PutRecords) before any result is awaited,
        and the completions are queued together. For batching destinations, where a task
        per event would cost more than its share of the call."""
        started = time.time()
        begun = [await self._begin(e, ev, raw) for e, ev, raw in items]
        outcomes = []
        for (entry, event, raw), b in zip(items, begun, strict=True):
            outcome = await self._settle(entry, event, raw, b)
            self._describe(outcome, event, raw)
            outcomes.append(outcome)
        done = [
            self.queue.complete_soon(e, o, started)
            for (e, _, _), o in zip(items, outcomes, strict=True)
        ]
        for (entry, _, _), outcome, completion in zip(items, outcomes, done, strict=True):
            _, failures = await completion
            await self._after(entry, outcome, failures, started)
        return outcomes

    def _describe(self, outcome: Outcome, event: Event | None, raw_dest: bytes | None) -> None:
        outcome.topic = event.topic if event is not None else ""
        if raw_dest is not None:
            outcome.destination_type = self.destinations.parse(raw_dest).type

    async def _after(
        self, entry: Entry, outcome: Outcome, failures: int | None, started: float
    ) -> None:
        """Alerts, and the delivery's log line."""
        task = entry.task
        if self.alerts is not None and outcome.status == "failed":
            await self._alert(entry, outcome, failures)
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
            self.alerts.alert(
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
            self.alerts.alert("alert.retries_exhausted", task, {"last_error": error})
        if outcome.broken and level != 100:  # not already alerted (and disabled) above
            disabled = self.alerts.auto_disable and await self._disable(task)
            self.alerts.alert(
                "alert.destination_broken",
                task,
                {"destination_disabled": disabled, "last_error": error},
            )

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
            deadline = self._clock() + self.timeout + provider.patience(dest) + DEADLINE_MARGIN
            if provider.batching(dest):
                return Sending(key, (await provider.send_batch([record], dest))[0], deadline)
            return Sending(key, provider.send(record, dest), deadline)  # awaited in _settle
        except Exception as exc:
            if probe:  # nothing went out: the probe's turn is given back
                self.breakers.settle(key, None)
            return self._failure(entry, event, provider.classify(exc))

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
        try:
            async with asyncio.timeout_at(begun.deadline) as scope:
                response = await begun.result
        except Exception as exc:
            if scope.expired():
                failure = self._overdue(entry)
            else:
                provider = self.registry.get(self.destinations.parse(raw_dest).type)
                failure = provider.classify(exc)
            self.breakers.settle(begun.key, not failure.unanswered)
            return self._failure(entry, event, failure)
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

    def _failure(self, entry: Entry, event: Event, failure: Failure) -> Outcome:
        """Every failed attempt counts toward the consecutive-failure alerts (queue.complete);
        a PERMANENT one is dead-lettered at once, RETRY and AUTH go on the schedule."""
        code, message = failure.code, failure.message
        response = {"error": code, "message": message[:500], **failure.response}
        # a manual retry is one attempt: on failure it is kept (dead letter), not rescheduled
        if not failure.retryable or not event.eligible_for_retry or entry.task.manual:
            return Outcome("failed", code, message, response, dead=True, broken=failure.broken)
        delay = self.policy.delay(entry.task.attempt)
        if delay is None:
            return Outcome("failed", code, message, response, dead=True, exhausted=True)
        return Outcome("failed", code, message, response, retry_in=delay)

    async def _load_one(self, entry: Entry) -> tuple[Event | None, bytes | None]:
        return (await self._load([entry]))[0]

    async def _load(self, entries: list[Entry]) -> list[tuple[Event | None, bytes | None]]:
        return await self.queue.load_work(entries)
