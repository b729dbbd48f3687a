"""REDIS_WAIT_REPLICAS: a write acknowledged only once replicas have it.

Redis's `WAIT n timeout` counts the replicas that have every write *of the connection it
runs on*; so a script call and its WAIT go on one connection, in one round trip: a
pipeline on a single node; on a cluster, the two commands on one connection of the node
owning the call's slot (every key of one call shares one hash tag; redis-py's cluster
pipeline refuses scripts). One WAIT per script call (a publish batch's tenant step),
never per event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import RedisCluster
from redis.asyncio.cluster import PipelineCommand
from redis.commands.core import AsyncScript
from redis.exceptions import AskError, MovedError, NoScriptError

from outpost.errors import Unavailable
from outpost.queue.calls import Calls, Client
from outpost.queue.connection import REDIS_DOWN

CLUSTER_ATTEMPTS = 3  # a moved slot or a failed-over node: map again, call again


@dataclass(frozen=True)
class ReplicaWait:
    replicas: int = 0  # 0: no WAIT (the default)
    timeout_ms: int = 1000

    async def run(
        self, redis: Client, script: AsyncScript, keys: Sequence[str], args: list[Any]
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

    async def run_all(self, redis: Client, calls: Calls) -> list[Any]:
        """Each script call of `calls` (one per tag: a publish batch's tenant steps) with its
        own WAIT on the node that ran it, concurrently: one answer or exception per call."""
        if isinstance(redis, RedisCluster):
            await redis.initialize()  # before concurrent calls (they would race its setup)
        runs = []
        for script, keys, args in calls.items:
            assert script is not None  # plain commands are not waited for
            runs.append(self.run(redis, script, keys, args))
        return list(await asyncio.gather(*runs, return_exceptions=True))

    async def _once(
        self, redis: Client, script: AsyncScript, keys: Sequence[str], args: list[Any]
    ) -> list[Any]:
        if isinstance(redis, RedisCluster):
            return await self._on_node(redis, script, keys, args)
        pipe = redis.pipeline(transaction=False)
        pipe.evalsha(script.sha, len(keys), *keys, *args)
        pipe.execute_command("WAIT", self.replicas, self.timeout_ms)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies

    async def _on_node(
        self, cluster: RedisCluster, script: AsyncScript, keys: Sequence[str], args: list[Any]
    ) -> list[Any]:
        """The two commands on one connection of the node owning the slot (redis-py's
        cluster pipeline refuses scripts). A slot that moved (failover, resharding): the
        map is read again and the call made again (the publish script is idempotent)."""
        await cluster.initialize()  # the slot map, once per client
        for attempt in range(CLUSTER_ATTEMPTS):
            node = cluster.get_node_from_key(keys[0])
            assert node is not None  # or SlotNotCoveredError was raised
            commands = [
                PipelineCommand(0, "EVALSHA", script.sha, len(keys), *keys, *args),
                PipelineCommand(1, "WAIT", self.replicas, self.timeout_ms),
            ]
            try:
                await node.execute_pipeline(commands)
            except REDIS_DOWN:
                if attempt + 1 == CLUSTER_ATTEMPTS:
                    raise
            else:
                if not isinstance(commands[0].result, MovedError | AskError):
                    return [c.result for c in commands]
            await asyncio.sleep(0.25 * (attempt + 1))
            await cluster.nodes_manager.initialize()
        return [c.result for c in commands]


NO_WAIT = ReplicaWait()
