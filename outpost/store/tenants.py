"""Tenants and destinations in Redis. Each write is one atomic step."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from outpost.codec import seal, unseal
from outpost.crypto import Cipher
from outpost.errors import AlreadyExists, Conflict, Invalid, LimitReached, NotFound
from outpost.models import Destination, iso, utcnow
from outpost.queue.calls import Client
from outpost.queue.keys import Keys
from outpost.queue.lua import register
from outpost.store.purge import purge_tenant


class Store:
    def __init__(
        self,
        redis: Client,
        keys: Keys,
        cipher: Cipher,
        max_destinations: int = 20,
        partitions: int = 16,
    ):
        self.partitions = partitions
        self.redis = redis
        self.keys = keys
        self.cipher = cipher
        self.max_destinations = max_destinations
        self._upsert_tenant = register(redis, "outpost.store", "upsert_tenant")
        self._create_dest = register(redis, "outpost.store", "create_destination")
        self._replace_dest = register(redis, "outpost.store", "replace_destination")
        self._swap_dest = register(redis, "outpost.store", "swap_destination")

    # -- tenants ----------------------------------------------------------------------
    async def upsert_tenant(
        self, tenant_id: str, metadata: dict[str, str] | None, retention: int | None = -1
    ) -> bool:
        """Create or update; True when created. `retention`: the tenant's own event
        retention in seconds (None: the deployment's; -1: unchanged)."""
        now = utcnow()
        index = f"{int(now.timestamp() * 1000):015d}:{tenant_id}"
        created, member = await self._upsert_tenant(
            keys=[self.keys.tenant(tenant_id), self.keys.tenant_generation(tenant_id)],
            args=[tenant_id, json.dumps(metadata), iso(now), index, retention or 0],
        )
        if created == -1:
            raise Conflict(
                "the tenant is being deleted (a delete stopped half way): DELETE it to finish"
            )
        # the tenants index is a slot of its own: listed after the tenant is stored (every
        # upsert lists it again, so one that stopped between the two is listed by the next)
        await self.redis.zadd(self.keys.tenants(), {member: 0})
        return bool(created)

    async def tenant_exists(self, tenant_id: str) -> bool:
        return bool(await self.redis.exists(self.keys.tenant(tenant_id)))

    async def tenant_generation(self, tenant_id: str) -> int | None:
        """The live tenant's generation (1 for a tenant stored before generations), or
        None when there is no such tenant or it is being deleted."""
        key = self.keys.tenant(tenant_id)
        tid, generation, deleting = await self.redis.hmget(key, ["id", "generation", "deleting"])
        if tid is None or deleting is not None:
            return None
        return int(generation) if generation is not None else 1

    async def get_tenant(self, tenant_id: str) -> dict[str, Any] | None:
        [tenant] = await self.get_tenants([tenant_id])
        return tenant

    async def get_tenants(self, tenant_ids: list[str]) -> list[dict[str, Any] | None]:
        """Tenants (None where gone) with their destination counts and topics: one
        pipelined round trip for all of them."""
        pipe = self.redis.pipeline(transaction=False)
        for tenant_id in tenant_ids:
            pipe.hgetall(self.keys.tenant(tenant_id))
            pipe.hvals(self.keys.destinations(tenant_id))
        raw = await pipe.execute() if tenant_ids else []
        return [_tenant(raw[2 * i], raw[2 * i + 1]) for i in range(len(tenant_ids))]

    async def delete_tenant(self, tenant_id: str) -> bool:
        """Everything of the tenant goes (store/purge.py), its record last; its generation
        counter stays, so the id created again is a new generation (older tokens: 401).
        The record is marked `deleting` first: from then on the publish and completion
        scripts write nothing for the tenant (items.tenant_fence), nor once it is gone."""
        key = self.keys.tenant(tenant_id)
        index, generation = await self.redis.hmget(key, ["index", "generation"])
        if index is None:
            return False
        await self.redis.hset(key, "deleting", "1")
        await purge_tenant(self.redis, self.keys, tenant_id, self.partitions)
        await self.redis.zrem(self.keys.tenants(), index)  # (its own slot: before the record)
        async with self.redis.pipeline(transaction=True) as pipe:  # one slot: the tenant's
            pipe.delete(key)
            pipe.set(self.keys.tenant_generation(tenant_id), int(generation or 1))
            await pipe.execute()
        return True

    async def list_tenants(
        self, limit: int, next_cursor: str | None, prev_cursor: str | None, descending: bool
    ) -> tuple[list[dict[str, Any]], str | None, str | None, int]:
        """A page of tenants ordered by creation, with next/prev cursors (index members)."""
        key = self.keys.tenants()
        backwards = prev_cursor is not None
        after = _decode_cursor(prev_cursor if backwards else next_cursor)
        members: list[Any]
        if descending != backwards:
            top = f"({after}" if after else "+"
            members = await self.redis.zrevrangebylex(key, top, "-", start=0, num=limit + 1)
        else:
            bottom = f"({after}" if after else "-"
            members = await self.redis.zrangebylex(key, bottom, "+", start=0, num=limit + 1)
        more = len(members) > limit
        page = [m.decode() if isinstance(m, bytes) else str(m) for m in members[:limit]]
        if backwards:
            page.reverse()
        tenants = [t for t in await self.get_tenants([m.split(":", 1)[1] for m in page]) if t]
        first = _encode_cursor(page[0]) if page else None
        last = _encode_cursor(page[-1]) if page else None
        if backwards:
            return tenants, last, (first if more else None), await self.redis.zcard(key)
        return (
            tenants,
            (last if more else None),
            (first if after else None),
            await self.redis.zcard(key),
        )

    # -- destinations -----------------------------------------------------------------
    async def list_destinations(self, tenant_id: str) -> list[Destination]:
        raws = await self.redis.hvals(self.keys.destinations(tenant_id))
        dests = [unseal(r, self.cipher) for r in raws]
        return sorted(dests, key=lambda d: (d.created_at, d.id))

    async def publish_targets_many(
        self, tenant_ids: list[str]
    ) -> dict[str, tuple[bool, list[bytes]]]:
        """Whether each tenant exists, and its stored destinations: one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for tenant_id in tenant_ids:
            pipe.exists(self.keys.tenant(tenant_id))
            pipe.hvals(self.keys.destinations(tenant_id))
        raw = await pipe.execute()
        return {t: (bool(raw[2 * i]), raw[2 * i + 1]) for i, t in enumerate(tenant_ids)}

    async def reencrypt_all(self) -> tuple[int, int]:
        """Re-seal every destination's credentials with the current key (rotation).
        Returns (re-encrypted, changed meanwhile and left for the next run)."""
        done = raced = 0
        async for member in self.redis.zscan_iter(self.keys.tenants()):
            tenant_id = (member[0] if isinstance(member, tuple) else member).decode()
            tenant_id = tenant_id.split(":", 1)[1]
            key = self.keys.destinations(tenant_id)
            stored: Any = await self.redis.hgetall(key)
            for dest_id, raw in stored.items():
                fresh = seal(unseal(raw, self.cipher), self.cipher)
                if await self._swap_dest(keys=[key], args=[dest_id, raw, fresh]):
                    done += 1
                else:
                    raced += 1
        return done, raced

    async def take_publish_slot(self, tenant_id: str, per_second: int, count: int = 1) -> bool:
        """A fixed one-second window per tenant, shared by every API process."""
        key = self.keys.publish_rate(tenant_id, int(time.time()))
        pipe = self.redis.pipeline(transaction=False)
        pipe.incrby(key, count)
        pipe.expire(key, 2)
        count, _ = await pipe.execute()
        return int(count) <= per_second

    async def get_destination(self, tenant_id: str, dest_id: str) -> Destination | None:
        [dest] = await self.get_destinations([(tenant_id, dest_id)])
        return dest

    async def get_destinations(self, ids: list[tuple[str, str]]) -> list[Destination | None]:
        """Destinations by (tenant id, destination id), None where gone: one pipelined
        round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for tenant_id, dest_id in ids:
            pipe.hget(self.keys.destinations(tenant_id), dest_id)
        raws = await pipe.execute() if ids else []
        return [None if r is None else unseal(r, self.cipher) for r in raws]

    async def create_destination(self, dest: Destination) -> None:
        result = await self._create_dest(
            keys=[self.keys.tenant(dest.tenant_id), self.keys.destinations(dest.tenant_id)],
            args=[dest.id, seal(dest, self.cipher), self.max_destinations],
        )
        if result == -1:
            raise NotFound("tenant")
        if result == -2:
            raise AlreadyExists(f"destination {dest.id} already exists")
        if result == -3:
            raise LimitReached(
                f"tenant has reached MAX_DESTINATIONS_PER_TENANT ({self.max_destinations})"
            )

    async def replace_destination(self, dest: Destination) -> bool:
        return bool(
            await self._replace_dest(
                keys=[self.keys.destinations(dest.tenant_id)],
                args=[dest.id, seal(dest, self.cipher)],
            )
        )

    async def delete_destination(self, tenant_id: str, dest_id: str) -> bool:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self.keys.destinations(tenant_id), dest_id)
            pipe.delete(self.keys.attempts(tenant_id, dest_id))
            removed, _ = await pipe.execute()
        return bool(removed)


def _tenant(raw: dict[bytes, bytes], dests: list[bytes]) -> dict[str, Any] | None:
    """A tenant as the API shows it, from its hash and its stored destinations."""
    if not raw:
        return None
    topics: set[str] = set()
    for d in dests:
        t = json.loads(d)["topics"]
        topics.update(["*"] if t == "*" else t)
    return {
        "id": raw[b"id"].decode(),
        "destinations_count": len(dests),
        "topics": sorted(topics),
        "metadata": json.loads(raw[b"metadata"]),
        "created_at": raw[b"created_at"].decode(),
        "updated_at": raw[b"updated_at"].decode(),
        **({"event_retention_seconds": int(raw[b"retention"])} if b"retention" in raw else {}),
    }


def _encode_cursor(member: str) -> str:
    return base64.urlsafe_b64encode(member.encode()).decode()


def _decode_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        return base64.urlsafe_b64decode(cursor.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise Invalid("invalid cursor") from None
