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

import zlib
from typing import Any
from urllib.parse import unquote

from outpost.queue.calls import Calls, Client, raise_first
from outpost.queue.keys import Keys

SCAN_COUNT = 500


async def purge_tenant(redis: Client, keys: Keys, tenant_id: str, partitions: int) -> None:
    keep = {keys.tenant(tenant_id), keys.tenant_generation(tenant_id)}
    async for raw in redis.scan_iter(match=keys.tenant_pattern(tenant_id), count=SCAN_COUNT):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        if key not in keep:
            await _purge_key(redis, keys, tenant_id, key, partitions)
    await _purge_flows(redis, keys, tenant_id)
    await _purge_lanes(redis, keys, tenant_id)
    # (its member of the outboxes set stays: a publisher that marked it once does not
    # mark it again should the id be created anew; the sweep finds its outbox empty)


async def _purge_key(redis: Client, keys: Keys, tenant_id: str, key: str, partitions: int) -> None:
    """One key of the tenant, with what outside the tenant's tag points back to it (each
    a command of one slot: the admin listings' shares are per partition)."""
    calls = Calls()
    kind, event_id = _kind(keys, tenant_id, key)
    if kind == "attempts":
        attempt_ids: Any = await redis.zrange(key, 0, -1)
        for a in attempt_ids:
            calls.command("DEL", keys.attempt(_text(a)))
        for n in range(partitions if attempt_ids else 0):
            calls.command("ZREM", keys.admin_attempts(n), *attempt_ids)
    if kind == "event":
        calls.command("SREM", keys.event_owners(event_id), tenant_id)  # (the key of before)
        owners_n = zlib.crc32(event_id.encode()) % partitions  # (Lanes.owners_partition)
        calls.command("SREM", keys.event_owners(event_id, owners_n), tenant_id)
        home = zlib.crc32(tenant_id.encode()) % partitions
        calls.command("ZREM", keys.admin_events(home), f"{tenant_id}/{event_id}")
    calls.command("DEL", key)
    raise_first(await calls.run(redis))


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


async def _purge_flows(redis: Client, keys: Keys, tenant_id: str) -> None:
    """The tenant's flows leave the readers' index, with their reader state."""
    members: Any = await redis.smembers(keys.flow_index())
    mine = [m for m in map(_text, members) if m.split("/", 1)[0] == tenant_id]
    if not mine:
        return
    calls = Calls().command("SREM", keys.flow_index(), *mine)
    for member in mine:
        flow_id = member.split("/", 2)[2]
        calls.command(
            "DEL", *[keys.flow_state(flow_id, w) for w in ("metrics", "checkpoints", "failed")]
        )
    raise_first(await calls.run(redis))


async def _purge_lanes(redis: Client, keys: Keys, tenant_id: str) -> None:
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
