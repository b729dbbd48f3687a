"""The event and attempt log: what happened, kept `EVENT_RETENTION_SECONDS` and bounded.

Records are JSON strings with a TTL; sorted-set indexes (score = time in ms) list them per
tenant, per destination, per event and globally (admin). Indexes are capped at write time
and members whose record expired are skipped at read time. A page walks the narrowest
index from a `(score, member)` cursor and applies filters in batches, scanning at most
`MAX_SCAN` index entries per request so that no query is unbounded.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from outpost import exactjson
from outpost.errors import Invalid, ValidationFailed
from outpost.queue.calls import Client, mget
from outpost.queue.keys import Keys
from outpost.store.merge import walk_all

MAX_SCAN = 20_000
BATCH = 200


@dataclass(frozen=True)
class PageRequest:
    limit: int = 100
    next: str | None = None
    prev: str | None = None
    descending: bool = True
    since_ms: float = float("-inf")  # inclusive bounds on the index score
    until_ms: float = float("inf")


@dataclass
class Page:
    models: list[dict[str, Any]]
    next: str | None
    prev: str | None


def encode_cursor(score: float, member: str) -> str:
    return base64.urlsafe_b64encode(f"{score:.0f}|{member}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        score, member = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return float(score), member
    except (ValueError, UnicodeDecodeError):
        raise Invalid("invalid cursor") from None


def time_bounds(query: Any) -> tuple[float, float]:
    """`time[gte]`, `time[gt]`, `time[lte]`, `time[lt]` (RFC 3339 or YYYY-MM-DD) → ms."""
    lo, hi = float("-inf"), float("inf")
    for op in ("gte", "gt", "lte", "lt"):
        raw = query.get(f"time[{op}]")
        if not raw:  # absent or empty: no bound (as Outpost)
            continue
        try:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            if moment.tzinfo is None:  # YYYY-MM-DD (or no offset) is UTC, never local time
                moment = moment.replace(tzinfo=UTC)
            ms = moment.timestamp() * 1000
        except ValueError:
            raise ValidationFailed(
                [f"time[{op}] must be an RFC 3339 date-time or YYYY-MM-DD"]
            ) from None
        if op == "gte":
            lo = max(lo, ms)
        elif op == "gt":
            lo = max(lo, ms + 1)
        elif op == "lte":
            hi = min(hi, ms)
        else:
            hi = min(hi, ms - 1)
    return lo, hi


async def walk(
    redis: Client, key: str, descending: bool, after: tuple[float, str] | None, lo: float, hi: float
) -> AsyncIterator[tuple[float, str]]:
    """Index entries in order, strictly after the cursor, within [lo, hi]."""
    offset = 0
    while True:
        rows: Any
        if descending:
            top = after[0] if after else hi
            rows = await redis.zrevrangebyscore(
                key, top, lo, start=offset, num=BATCH, withscores=True
            )
        else:
            bottom = after[0] if after else lo
            rows = await redis.zrangebyscore(
                key, bottom, hi, start=offset, num=BATCH, withscores=True
            )
        if not rows:
            return
        for raw, score in rows:
            member = raw.decode()
            if (
                after
                and score == after[0]
                and (member >= after[1] if descending else member <= after[1])
            ):
                continue
            yield score, member
        offset += len(rows)


async def page(
    redis: Client,
    index: str | list[str],
    req: PageRequest,
    load: Callable[[list[str]], Any],
    keep: Callable[[dict[str, Any]], bool],
) -> Page:
    """A page of records from `index` (several: merged in order, scatter-gather). `load`
    fetches records for members (None where
    expired); `keep` is the filter."""
    backwards = req.prev is not None
    raw_cursor = req.prev or req.next
    cursor = decode_cursor(raw_cursor) if raw_cursor else None
    order = req.descending != backwards
    found: list[tuple[float, str, dict[str, Any]]] = []
    scanned, batch = 0, []
    more = False
    indexes = [index] if isinstance(index, str) else index
    async for score, member in walk_all(
        [walk(redis, i, order, cursor, req.since_ms, req.until_ms) for i in indexes], order
    ):
        batch.append((score, member))
        scanned += 1
        if len(batch) >= BATCH or scanned >= MAX_SCAN:
            found += await _keep(batch, load, keep)
            batch = []
        if len(found) > req.limit or scanned >= MAX_SCAN:
            more = True
            break
    if batch:
        found += await _keep(batch, load, keep)
    more = more or len(found) > req.limit
    items = found[: req.limit]
    if backwards:
        items.reverse()
    models = [r for _, _, r in items]
    first = encode_cursor(items[0][0], items[0][1]) if items else None
    last = encode_cursor(items[-1][0], items[-1][1]) if items else None
    if backwards:
        return Page(models, next=last, prev=first if more else None)
    return Page(models, next=last if more else None, prev=first if cursor else None)


async def _keep(
    batch: list[tuple[float, str]],
    load: Callable[[list[str]], Any],
    keep: Callable[[dict[str, Any]], bool],
) -> list[tuple[float, str, dict[str, Any]]]:
    records = await load([m for _, m in batch])
    return [
        (s, m, r) for (s, m), r in zip(batch, records, strict=True) if r is not None and keep(r)
    ]


Keep = Callable[[dict[str, Any]], bool]
Load = Callable[[list[str]], Awaitable[list[dict[str, Any] | None]]]


class History:
    """Reads of the log. Writes happen inside the publish and complete steps (queue)."""

    def __init__(self, redis: Client, keys: Keys, partitions: int = 16):
        self.redis = redis
        self.keys = keys
        self.partitions = partitions

    async def _load(self, keys: list[str]) -> list[dict[str, Any] | None]:
        raws = await mget(self.redis, keys)
        return [None if r is None else exactjson.loads_stored(r) for r in raws]

    async def load_events(
        self, members: list[str], tenant_id: str | None
    ) -> list[dict[str, Any] | None]:
        """Members are event ids (tenant index) or `tenant/event` (global index)."""
        keys = [self.keys.event(*_split(m, tenant_id)) for m in members]
        return await self._load(keys)

    async def load_attempts(self, members: list[str]) -> list[dict[str, Any] | None]:
        """Attempt ids are global; the record carries its tenant."""
        return await self._load([self.keys.attempt(m) for m in members])

    async def attempt(self, attempt_id: str) -> dict[str, Any] | None:
        return (await self.load_attempts([attempt_id]))[0]

    async def event(self, tenant_id: str, event_id: str) -> dict[str, Any] | None:
        return (await self._load([self.keys.event(tenant_id, event_id)]))[0]

    async def events(self, ids: list[tuple[str, str]]) -> list[dict[str, Any] | None]:
        """Events by (tenant id, event id), None where expired: one MGET."""
        return await self._load([self.keys.event(t, e) for t, e in ids])

    def _attempts_index(
        self, tenant_id: str | None, event_id: str | None, destination_id: str | None
    ) -> str | list[str]:
        """The narrowest attempt index that holds every attempt asked for (the admin's
        listing: every partition's share)."""
        if tenant_id and event_id:
            return self.keys.event_attempts(tenant_id, event_id)
        if tenant_id and destination_id:
            return self.keys.attempts(tenant_id, destination_id)
        if tenant_id:
            return self.keys.tenant_attempts(tenant_id)
        return [self.keys.admin_attempts(n) for n in range(self.partitions)]

    def _events_index(self, tenant_id: str | None) -> str | list[str]:
        """A tenant's event index, or every partition's share of the admin's listing."""
        if tenant_id is not None:
            return self.keys.events_index(tenant_id)
        return [self.keys.admin_events(n) for n in range(self.partitions)]

    async def events_page(self, tenant_id: str | None, req: PageRequest, keep: Keep) -> Page:
        """A page of one tenant's events (every tenant's when None), `keep` filtering."""
        index = self._events_index(tenant_id)
        return await page(self.redis, index, req, self._events_of(tenant_id), keep)

    async def attempts_page(
        self,
        req: PageRequest,
        keep: Keep,
        tenant_id: str | None = None,
        event_id: str | None = None,
        destination_id: str | None = None,
    ) -> Page:
        """A page of attempts from the narrowest index the given ids allow."""
        index = self._attempts_index(tenant_id, event_id, destination_id)
        return await page(self.redis, index, req, self.load_attempts, keep)

    async def event_rows(
        self, tenant_id: str | None, start_ms: float, end_ms: float, limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """Events in [start, end), at most `limit`; True when more were there."""
        index = self._events_index(tenant_id)
        return await self._rows(index, start_ms, end_ms, limit, self._events_of(tenant_id))

    async def attempt_rows(
        self, tenant_id: str | None, start_ms: float, end_ms: float, limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """Attempts in [start, end), at most `limit`; True when more were there."""
        index = self._attempts_index(tenant_id, None, None)
        return await self._rows(index, start_ms, end_ms, limit, self.load_attempts)

    async def last_outcomes(
        self, tenant_id: str, destination_id: str, lo: float, hi: float, most: int = MAX_SCAN
    ) -> tuple[list[tuple[dict[str, Any], dict[str, Any] | None]], bool]:
        """Events of the tenant in [lo, hi] (event time, ms) that were queued for the
        destination, oldest first, each with its outcome there (`outcomes`); at
        most `most` index entries are read (True when more were there)."""
        members: Any = await self.redis.zrangebyscore(
            self.keys.events_index(tenant_id), lo, hi, start=0, num=most + 1
        )
        names = [m.decode() for m in members[:most]]
        out: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
        for i in range(0, len(names), BATCH):
            events = [
                e
                for e in await self.load_events(names[i : i + BATCH], tenant_id)
                if e is not None and destination_id in (e.get("matched_destination_ids") or [])
            ]
            ids = [e["id"] for e in events]
            out += zip(events, await self.outcomes(tenant_id, destination_id, ids), strict=True)
        return out, len(members) > most

    async def outcomes(
        self, tenant_id: str, destination_id: str, event_ids: list[str]
    ) -> list[dict[str, Any] | None]:
        """Each event's outcome at the destination: a successful attempt if there was one
        (it was delivered), else its latest attempt (None: none yet). One pipelined read
        of the events' attempt indexes, one MGET of their attempts."""
        pipe = self.redis.pipeline(transaction=False)
        for event_id in event_ids:
            pipe.zrange(self.keys.event_attempts(tenant_id, event_id), 0, -1)
        ids = [[m.decode() for m in found] for found in await pipe.execute()]
        records = iter(await self.load_attempts([a for found in ids for a in found]))
        out: list[dict[str, Any] | None] = []
        for found in ids:
            mine = [
                r
                for r in (next(records) for _ in found)
                if r and r["destination_id"] == destination_id
            ]
            out.append(max(mine, key=_outcome_order) if mine else None)
        return out

    def _events_of(self, tenant_id: str | None) -> Load:
        return lambda members: self.load_events(members, tenant_id)

    async def _rows(
        self, index: str | list[str], start_ms: float, end_ms: float, limit: int, load: Load
    ) -> tuple[list[dict[str, Any]], bool]:
        indexes = [index] if isinstance(index, str) else index
        pipe = self.redis.pipeline(transaction=False)
        for one in indexes:
            pipe.zrangebyscore(one, start_ms, f"({end_ms}", start=0, num=limit + 1, withscores=True)
        found = sorted((s, m) for rows in await pipe.execute() for m, s in rows)
        members = [m for _, m in found[: limit + 1]]
        names = [m.decode() for m in members[:limit]]
        records = []
        for i in range(0, len(names), 500):
            records += [r for r in await load(names[i : i + 500]) if r is not None]
        return records, len(members) > limit


def _outcome_order(attempt: dict[str, Any]) -> tuple[bool, str, int]:
    """A success first (delivered), then the latest."""
    return attempt["status"] == "success", attempt["time"], attempt["attempt_number"]


def _split(member: str, tenant_id: str | None) -> tuple[str, str]:
    if tenant_id is not None:
        return tenant_id, member
    tenant, _, item = member.partition("/")
    return tenant, item
