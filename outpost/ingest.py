"""Publish: match a tenant's destinations (topic, filter, enabled) and queue the event in
one atomic step. The publish routes and the Kinesis source reader both come here."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import structlog

from outpost import filters
from outpost.destinations.registry import DestinationCache, Registry
from outpost.errors import DomainError, NotFound
from outpost.models import Destination, Event, OrderedBy, iso
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
        never its neighbours' (they may be other tenants'). A tenant's destinations are
        parsed and matched once per batch for each (destination id, topic) its events
        name; only a filter is matched event by event."""
        targets = await self.store.publish_targets_many(list({e.tenant_id for e in events}))
        routes = _Routes(self, targets)
        plans = [self._plan(event, routes) for event in events]
        ok = [(e, p) for e, p in zip(events, plans, strict=True) if not isinstance(p, Exception)]
        stored = iter(await self.queue.publish_many([(e, p[0], p[1]) for e, p in ok]))
        out: list[Outcome] = []
        counted: Counter[tuple[str, tuple[str, ...]]] = Counter()
        for event, p in zip(events, plans, strict=True):
            if isinstance(p, Exception):
                out.append(p)
                continue
            fresh = next(stored)
            out.append(fresh if isinstance(fresh, DomainError) else (fresh, p[2]))
            if fresh is True:  # stored now (not a duplicate): counted once
                counted[event.tenant_id, tuple(p[3])] += 1
        for (tenant_id, types), n in counted.items():
            self.telemetry.on_publish(tenant_id, list(types), n)
        return out

    def _plan(self, event: Event, routes: _Routes) -> Plan | Exception:
        try:
            return routes.plan(event)
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
        return _Routes(self, {event.tenant_id: (exists, raws)}).plan(event)


class _Routes:
    """One batch's routing: each tenant's destinations parsed once, and the destinations
    an event's (tenant, destination id, topic) selects found once; a destination with a
    filter is still matched against each event."""

    def __init__(self, ingest: Ingest, targets: dict[str, tuple[bool, list[bytes]]]):
        self.ingest = ingest
        self.targets = targets
        self._parsed: dict[str, list[Destination]] = {}
        self._selected: dict[tuple[str, str | None, str], list[Destination]] = {}

    def plan(self, event: Event) -> Plan:
        hits = self._select(event)
        if any(d.filter for d in hits):
            doc = _filter_doc(event)
            hits = [d for d in hits if not d.filter or filters.matches(d.filter, doc)]
        enabled = [d for d in hits if d.enabled]
        held = [d.id for d in hits if not d.enabled]  # kept as dead letters, not lost
        get = self.ingest.registry.get
        routes = [(d.id, get(d.type).lane_key(event, d)) for d in enabled]
        return routes, held, [d.id for d in enabled], [d.type for d in enabled]

    def _select(self, event: Event) -> list[Destination]:
        """The tenant's destinations the event's destination id and topic select, by id."""
        key = (event.tenant_id, event.destination_id, event.topic)
        hits = self._selected.get(key)
        if hits is None:
            dests = self._destinations(event.tenant_id)
            if event.destination_id is not None:
                dests = [d for d in dests if d.id == event.destination_id]
                if not dests:
                    raise NotFound("destination")
            hits = sorted((d for d in dests if d.matches(event.topic or None)), key=_by_id)
            self._selected[key] = hits
        return hits

    def _destinations(self, tenant_id: str) -> list[Destination]:
        dests = self._parsed.get(tenant_id)
        if dests is None:
            exists, raws = self.targets[tenant_id]
            if not exists:
                raise NotFound("tenant")
            parse = self.ingest.destinations.parse
            dests = self._parsed[tenant_id] = [parse(r) for r in raws]
        return dests


def _by_id(destination: Destination) -> str:
    return destination.id


def _filter_doc(event: Event) -> dict[str, Any]:
    """What a destination's filter is matched against."""
    return {
        "id": event.id,
        "topic": event.topic,
        "time": iso(event.time),
        "metadata": event.metadata,
        "data": event.data,
    }
