"""What a deleted tenant leaves behind, removed before its record goes (so a tenant created
again with the same id starts empty): every key under its hash tag `{t:<id>}` (events,
event attempt indexes, the log indexes, dead letters, failure counters, Flow Service
resources of every sandbox, including what retention trims from the indexes but keeps
until it expires), the attempt records those indexes name, its members of the global
indexes and owner sets, its flows in the readers' index, and its destinations' delivery
lanes (tasks still queued there would only be acked: the tenant is gone).

The tenant's record and its generation counter stay for `Store.delete_tenant`'s last step:
a crash half way leaves the tenant in place, and deleting it again finishes the work."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from redis.asyncio import Redis

from outpost.queue.keys import Keys

SCAN_COUNT = 500


async def purge_tenant(redis: Redis, keys: Keys, tenant_id: str) -> None:
    keep = {keys.tenant(tenant_id), keys.tenant_generation(tenant_id)}
    async for raw in redis.scan_iter(match=keys.tenant_pattern(tenant_id), count=SCAN_COUNT):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        if key not in keep:
            await _purge_key(redis, keys, tenant_id, key)
    await _purge_flows(redis, keys, tenant_id)
    await _purge_lanes(redis, keys, tenant_id)


async def _purge_key(redis: Redis, keys: Keys, tenant_id: str, key: str) -> None:
    """One key of the tenant, with what outside the tenant's tag points back to it."""
    pipe = redis.pipeline(transaction=False)
    kind, event_id = _kind(keys, tenant_id, key)
    if kind == "attempts":
        attempt_ids: Any = await redis.zrange(key, 0, -1)
        if attempt_ids:
            pipe.delete(*[keys.attempt(_text(a)) for a in attempt_ids])
            pipe.zrem(keys.all_attempts(), *attempt_ids)
    if kind == "event":
        pipe.srem(keys.event_owners(event_id), tenant_id)
        pipe.zrem(keys.events_index(), f"{tenant_id}/{event_id}")
    pipe.delete(key)
    await pipe.execute()


def _kind(keys: Keys, tenant_id: str, key: str) -> tuple[str, str]:
    """("attempts", "") for an index of attempt ids, ("event", its id) for an event's
    record, ("", "") for the rest (encoded ids hold no `:`, so the shape tells)."""
    event_prefix = keys.event(tenant_id, "")
    if key.startswith(event_prefix):
        rest = key[len(event_prefix) :]
        if ":" not in rest:
            return "event", unquote(rest)
        return ("attempts" if rest.endswith(":attempts") else ""), ""
    if key == keys.tenant_attempts(tenant_id) or key.startswith(keys.attempts(tenant_id, "")):
        return "attempts", ""
    return "", ""


async def _purge_flows(redis: Redis, keys: Keys, tenant_id: str) -> None:
    """The tenant's flows leave the readers' index, with their reader state."""
    members: Any = await redis.smembers(keys.flow_index())
    mine = [m for m in map(_text, members) if m.split("/", 1)[0] == tenant_id]
    if not mine:
        return
    pipe = redis.pipeline(transaction=False)
    pipe.srem(keys.flow_index(), *mine)
    for member in mine:
        flow_id = member.split("/", 2)[2]
        pipe.delete(*[keys.flow_state(flow_id, w) for w in ("metrics", "checkpoints", "failed")])
    await pipe.execute()


async def _purge_lanes(redis: Redis, keys: Keys, tenant_id: str) -> None:
    """Each lane (and ordered sub-lane, with its lease and state) leaves its partition's
    index and goes, in one MULTI (one slot)."""
    for pattern in (keys.lane_pattern(tenant_id), keys.ordered_lane_pattern(tenant_id)):
        async for raw in redis.scan_iter(match=pattern, count=SCAN_COUNT):
            lane = _text(raw)
            index = keys.lanes_of(lane)
            if index is None:
                continue
            pipe = redis.pipeline(transaction=True)
            pipe.srem(index, lane)
            pipe.delete(lane)
            if keys.state_of(lane) is not None:
                pipe.delete(keys.lane_state(lane), keys.lane_lease(lane))
            await pipe.execute()


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw
