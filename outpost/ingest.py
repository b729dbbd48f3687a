"""Publish: match a tenant's destinations (topic, filter, enabled) and queue the event in
one atomic step. The publish routes and the Kinesis source reader both come here."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import structlog

from outpost import filters
from outpost.destinations.registry import DestinationCache, Registry
from outpost.errors import DomainError, NotFound
from outpost.models import Event, OrderedBy, iso
from outpost.queue.coalesce import Coalescer
from outpost.queue.streams import Queue
from outpost.store.tenants import Store
from outpost.telemetry import Telemetry
from outpost.tracing import Tracing

log = structlog.get_logger("outpost.ingest")
# (tasks as (destination, ordering key), disabled destinations, matched ids, their types)
Plan = tuple[list[tuple[str, str | OrderedBy]], list[str], list[str], list[str]]
Outcome = tuple[bool, list[str]] | DomainError | Exception


class RouteFailed(Exception):
    """One event could not be routed for a reason that is not its publisher's (a bug, a
    stored destination its matching chokes on): that event is answered 500 alone. A fresh
    exception, so whoever logs it does not render the original's (maybe huge) traceback."""


class Ingest:
    """Publishes arriving together share their round trips (group commit); each is still
    its own step and returns once its event is in Redis."""

    def __init__(
        self,
        store: Store,
        queue: Queue,
        destinations: DestinationCache,
        registry: Registry,
        telemetry: Telemetry | None = None,
        tracing: Tracing | None = None,
    ):
        self.store = store
        self.queue = queue
        self.destinations = destinations
        self.registry = registry
        self.telemetry = telemetry or Telemetry()
        self.tracing = tracing or Tracing()
        self._publishes: Coalescer[Event] = Coalescer(self.publish_many)

    async def publish(self, event: Event) -> tuple[bool, list[str]]:
        """Match the tenant's destinations and queue the event in one atomic step (the publish
        route and the Kinesis source reader both come here). Returns (fresh, matched ids).
        Publishes arriving together share their round trips (group commit); each is still
        its own script, and returns once its event is in Redis."""
        if self.tracing.enabled:  # the publish span; its context is stored with the event
            attributes = {"outpost.tenant_id": event.tenant_id, "outpost.event_id": event.id}
            if event.topic:
                attributes["outpost.topic"] = event.topic
            with self.tracing.publish(attributes) as traceparent:
                traced = replace(event, traceparent=traceparent)
                result: tuple[bool, list[str]] = await self._publishes.submit(traced)
                return result
        result = await self._publishes.submit(event)
        return result

    async def publish_batch(self, events: list[Event]) -> list[Outcome]:
        """A batch publish (publish_many): traced as one span, every event's attempts its
        children."""
        if not self.tracing.enabled or not events:
            return await self.publish_many(events)
        with self.tracing.publish({"outpost.events": len(events)}) as traceparent:
            return await self.publish_many([replace(e, traceparent=traceparent) for e in events])

    async def publish_many(self, events: list[Event]) -> list[Outcome]:
        """Many events: one round trip for every tenant's destinations, one for the
        publish scripts. Each event fails alone: an error while routing one (a domain
        error, or a bug such as a stored filter too deep to match) is that event's answer,
        never its neighbours' (they may be other tenants')."""
        targets = await self.store.publish_targets_many(list({e.tenant_id for e in events}))
        plans = [self._plan(event, *targets[event.tenant_id]) for event in events]
        ok = [(e, p) for e, p in zip(events, plans, strict=True) if not isinstance(p, Exception)]
        stored = iter(await self.queue.publish_many([(e, p[0], p[1]) for e, p in ok]))
        out: list[Outcome] = []
        for event, p in zip(events, plans, strict=True):
            if isinstance(p, Exception):
                out.append(p)
                continue
            fresh = next(stored)
            out.append(fresh if isinstance(fresh, DomainError) else (fresh, p[2]))
            if fresh is True:  # stored now (not a duplicate): counted once
                self.telemetry.on_publish(event.tenant_id, p[3])
        return out

    def _plan(self, event: Event, exists: bool, raws: list[bytes]) -> Plan | Exception:
        try:
            return self.route(event, exists, raws)
        except DomainError as exc:
            return exc
        except Exception as exc:  # a bug or a poisoned destination: this event only
            log.error(
                "publish_route_failed",
                tenant_id=event.tenant_id,
                event_id=event.id,
                error=type(exc).__name__,
            )
            return RouteFailed(f"routing event {event.id} failed: {type(exc).__name__}")

    def route(self, event: Event, exists: bool, raws: list[bytes]) -> Plan:
        """(tasks to queue as (destination, ordering key), disabled destinations to keep as
        dead letters, matched destination ids, their types) for one event."""
        if not exists:
            raise NotFound("tenant")
        dests = [self.destinations.parse(r) for r in raws]
        if event.destination_id is not None:
            dests = [d for d in dests if d.id == event.destination_id]
            if not dests:
                raise NotFound("destination")
        doc: dict[str, Any] | None = None  # built only for a destination with a filter
        hits = []
        for d in dests:
            if not d.matches(event.topic or None):
                continue
            if d.filter:
                doc = doc or _filter_doc(event)
                if not filters.matches(d.filter, doc):
                    continue
            hits.append(d)
        hits.sort(key=lambda d: d.id)
        enabled = [d for d in hits if d.enabled]
        held = [d.id for d in hits if not d.enabled]  # kept as dead letters, not lost
        routes = [(d.id, self.registry.get(d.type).lane_key(event, d)) for d in enabled]
        return routes, held, [d.id for d in enabled], [d.type for d in enabled]


def _filter_doc(event: Event) -> dict[str, Any]:
    """What a destination's filter is matched against."""
    return {
        "id": event.id,
        "topic": event.topic,
        "time": iso(event.time),
        "metadata": event.metadata,
        "data": event.data,
    }
