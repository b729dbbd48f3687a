"""Publish: match a tenant's destinations (topic, filter, enabled) and queue the event in
one atomic step. The publish routes and the Kinesis source reader both come here."""

from __future__ import annotations

from outpost import filters
from outpost.destinations.registry import DestinationCache, Registry
from outpost.errors import DomainError, NotFound
from outpost.models import Event, iso
from outpost.queue.coalesce import Coalescer
from outpost.queue.streams import Queue
from outpost.store.tenants import Store


class Ingest:
    """Publishes arriving together share their round trips (group commit); each is still
    its own step and returns once its event is in Redis."""

    def __init__(
        self, store: Store, queue: Queue, destinations: DestinationCache, registry: Registry
    ):
        self.store = store
        self.queue = queue
        self.destinations = destinations
        self.registry = registry
        self._publishes: Coalescer[Event] = Coalescer(self.publish_many)

    async def publish(self, event: Event) -> tuple[bool, list[str]]:
        """Match the tenant's destinations and queue the event in one atomic step (the publish
        route and the Kinesis source reader both come here). Returns (fresh, matched ids).
        Publishes arriving together share their round trips (group commit); each is still
        its own script, and returns once its event is in Redis."""
        result: tuple[bool, list[str]] = await self._publishes.submit(event)
        return result

    async def publish_many(self, events: list[Event]) -> list[tuple[bool, list[str]] | DomainError]:
        """Many events: one round trip for every tenant's destinations, one for the
        publish scripts."""
        targets = await self.store.publish_targets_many(list({e.tenant_id for e in events}))
        plans: list[tuple[list[tuple[str, str]], list[str], list[str]] | DomainError] = []
        for event in events:
            try:
                plans.append(self.route(event, *targets[event.tenant_id]))
            except DomainError as exc:
                plans.append(exc)
        ok = [(e, p) for e, p in zip(events, plans, strict=True) if not isinstance(p, DomainError)]
        stored = iter(await self.queue.publish_many([(e, p[0], p[1]) for e, p in ok]))
        out: list[tuple[bool, list[str]] | DomainError] = []
        for p in plans:
            if isinstance(p, DomainError):
                out.append(p)
                continue
            fresh = next(stored)
            out.append(fresh if isinstance(fresh, DomainError) else (fresh, p[2]))
        return out

    def route(
        self, event: Event, exists: bool, raws: list[bytes]
    ) -> tuple[list[tuple[str, str]], list[str], list[str]]:
        """(tasks to queue as (destination, ordering key), disabled destinations to keep as
        dead letters, matched destination ids) for one event."""
        if not exists:
            raise NotFound("tenant")
        dests = [self.destinations.parse(r) for r in raws]
        if event.destination_id is not None:
            dests = [d for d in dests if d.id == event.destination_id]
            if not dests:
                raise NotFound("destination")
        doc = {
            "id": event.id,
            "topic": event.topic,
            "time": iso(event.time),
            "metadata": event.metadata,
            "data": event.data,
        }
        hits = sorted(
            (d for d in dests if d.matches(event.topic or None) and filters.matches(d.filter, doc)),
            key=lambda d: d.id,
        )
        enabled = [d for d in hits if d.enabled]
        held = [d.id for d in hits if not d.enabled]  # kept as dead letters, not lost
        routes = [(d.id, self.registry.get(d.type).ordering_key(event, d)) for d in enabled]
        return routes, held, [d.id for d in enabled]
