"""Flow Service resources in Redis: connections, sourceConnections, targetConnections and
flows, each kind a hash per (org, sandbox). Secret auth params are sealed (AES-GCM, bound
to org/sandbox/id) and kept apart from the rest; a write with a stale etag is refused."""

from __future__ import annotations

import json
import uuid
from typing import Any

from outpost.crypto import Cipher
from outpost.queue.calls import Client
from outpost.queue.keys import Keys
from outpost.queue.lua import register

KINDS = ("connections", "sourceConnections", "targetConnections", "flows")


def new_etag() -> str:
    """An etag is a string whose value includes literal double quotes (as Adobe's)."""
    return f'"{uuid.uuid4()}"'


class FlowStore:
    def __init__(self, redis: Client, keys: Keys, cipher: Cipher):
        self.redis = redis
        self.keys = keys
        self.cipher = cipher
        self._swap = register(redis, "outpost.store", "swap_flow_resource")

    def _key(self, org: str, sandbox: str, kind: str) -> str:
        return self.keys.flow_resources(org, sandbox, kind)

    def _seal(self, record: dict[str, Any], secrets: set[str]) -> str:
        stored = json.loads(json.dumps(record))
        params = stored.get("auth", {}).get("params", {})
        hidden = {k: params.pop(k) for k in list(params) if k in secrets}
        if hidden:
            bound = f"{record['imsOrgId']}/{record['sandboxName']}/{record['id']}"
            stored["_sealed"] = self.cipher.encrypt(hidden, bound)
        return json.dumps(stored)

    def _open(self, raw: bytes | str) -> dict[str, Any]:
        record: dict[str, Any] = json.loads(raw)
        sealed = record.pop("_sealed", None)
        if sealed:
            bound = f"{record['imsOrgId']}/{record['sandboxName']}/{record['id']}"
            record["auth"]["params"].update(self.cipher.decrypt(sealed, bound))
        return record

    async def create(self, kind: str, record: dict[str, Any], secrets: set[str]) -> None:
        key = self._key(record["imsOrgId"], record["sandboxName"], kind)
        # the readers' index is a slot of its own: a flow joins it first (a reader skips
        # a member whose flow is not stored), then is stored
        if kind == "flows":
            await self.redis.sadd(self.keys.flow_index(), _member(record))
        await self.redis.hset(key, record["id"], self._seal(record, secrets))

    async def get(self, kind: str, org: str, sandbox: str, rid: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(self._key(org, sandbox, kind), rid)
        return None if raw is None else self._open(raw)

    async def all(self, kind: str, org: str, sandbox: str) -> list[dict[str, Any]]:
        raws: Any = await self.redis.hvals(self._key(org, sandbox, kind))
        return [self._open(r) for r in raws]

    async def replace(
        self, kind: str, record: dict[str, Any], expected_etag: str, secrets: set[str]
    ) -> int:
        """1 written, 0 stale etag, -1 gone."""
        key = self._key(record["imsOrgId"], record["sandboxName"], kind)
        return int(
            await self._swap(
                keys=[key], args=[record["id"], expected_etag, self._seal(record, secrets)]
            )
        )

    async def delete(self, kind: str, org: str, sandbox: str, rid: str) -> bool:
        removed = await self.redis.hdel(self._key(org, sandbox, kind), rid)
        if kind == "flows":  # (the index after the flow: as in `create`)
            await self.redis.srem(self.keys.flow_index(), f"{org}/{sandbox}/{rid}")
        return bool(removed)

    async def flow_status(self, flow_id: str) -> dict[str, Any]:
        """What the source readers report: counts, last run, checkpoint per shard, the
        latest failed records."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.flow_state(flow_id, "metrics"))
        pipe.hgetall(self.keys.flow_state(flow_id, "checkpoints"))
        pipe.xrevrange(self.keys.flow_state(flow_id, "failed"), count=20)
        metrics, checkpoints, failed = await pipe.execute()
        m = {k.decode(): int(v) for k, v in metrics.items()}
        return {
            "metrics": {
                "recordsRead": m.get("records_read", 0),
                "eventsPublished": m.get("events_published", 0),
                "failedRecords": m.get("failed_records", 0),
            },
            "lastRunDetails": {
                "lastRunAt": m.get("last_run_ms"),
                "checkpoints": {k.decode(): v.decode() for k, v in checkpoints.items()},
                "failedRecords": [
                    {k.decode(): v.decode() for k, v in f.items()} for _, f in failed
                ],
            },
        }

    async def flow_ids(self) -> list[tuple[str, str, str]]:
        """(org, sandbox, flow id) of every flow."""
        members: Any = await self.redis.smembers(self.keys.flow_index())
        out = []
        for m in members:
            org, sandbox, fid = (m.decode() if isinstance(m, bytes) else m).split("/", 2)
            out.append((org, sandbox, fid))
        return sorted(out)


def _member(record: dict[str, Any]) -> str:
    return f"{record['imsOrgId']}/{record['sandboxName']}/{record['id']}"
