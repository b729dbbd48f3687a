"""Flow Service resources in Redis: connections, sourceConnections, targetConnections and
flows, each kind a hash per (org, sandbox). Secret auth params are sealed (AES-GCM, bound
to org/sandbox/id) and kept apart from the rest; a write with a stale etag is refused."""

from __future__ import annotations

import json
import uuid
from typing import Any

from redis.asyncio import Redis

from outpost.crypto import Cipher
from outpost.keys import Keys

KINDS = ("connections", "sourceConnections", "targetConnections", "flows")

_SWAP = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return -1 end
if cjson.decode(raw)['etag'] ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""


def new_etag() -> str:
    """An etag is a string whose value includes literal double quotes (as Adobe's)."""
    return f'"{uuid.uuid4()}"'


class FlowStore:
    def __init__(self, redis: Redis, keys: Keys, cipher: Cipher):
        self.redis = redis
        self.keys = keys
        self.cipher = cipher
        self._swap = redis.register_script(_SWAP)

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
        return bool(await self.redis.hdel(self._key(org, sandbox, kind), rid))
