"""REDIS_WAIT_REPLICAS: a write acknowledged only once replicas have it.

Redis's `WAIT n timeout` counts the replicas that have every write *of the connection it
runs on*; so the script and its WAIT go in one pipeline (one connection, one round trip
plus the replicas' ack). On a cluster the WAIT is sent to the node that owns the script's
slot (every key of one call shares one hash tag), in the same per-node pipeline: redis-py's
ClusterPipeline sends one node's commands on one of its connections. One WAIT per batched
script call, never per event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from outpost.errors import Unavailable


@dataclass(frozen=True)
class ReplicaWait:
    replicas: int = 0  # 0: no WAIT (the default)
    timeout_ms: int = 1000

    async def run(
        self, redis: Redis, script: AsyncScript, keys: Sequence[str], args: list[Any]
    ) -> Any:
        """The script's result, once `replicas` replicas have its write (Unavailable if
        fewer confirm within the timeout: Unavailable, saying the write is on the master)."""
        if self.replicas <= 0 or not keys:
            return await script(keys=keys, args=args)
        result, acked = await self._once(redis, script, keys, args)
        if isinstance(result, NoScriptError):  # not loaded on this node yet (a restart)
            await redis.script_load(script.script)
            result, acked = await self._once(redis, script, keys, args)
        if isinstance(result, BaseException):
            raise result
        if isinstance(acked, BaseException):
            raise acked
        if int(acked) < self.replicas:
            raise Unavailable(
                f"stored on the Redis master, but {acked} of {self.replicas} replica(s) "
                f"confirmed it within {self.timeout_ms} ms (REDIS_WAIT_REPLICAS): not "
                "acknowledged; retry with the same id (it will not be stored twice)"
            )
        return result

    async def _once(
        self, redis: Redis, script: AsyncScript, keys: Sequence[str], args: list[Any]
    ) -> list[Any]:
        pipe = redis.pipeline(transaction=False)
        pipe.evalsha(script.sha, len(keys), *keys, *args)
        if isinstance(redis, RedisCluster):
            node = redis.get_node_from_key(keys[0])
            pipe.execute_command("WAIT", self.replicas, self.timeout_ms, target_nodes=node)
        else:
            pipe.execute_command("WAIT", self.replicas, self.timeout_ms)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies


NO_WAIT = ReplicaWait()
