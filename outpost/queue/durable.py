"""REDIS_WAIT_REPLICAS: a write acknowledged only once replicas have it.

Redis's `WAIT n timeout` counts the replicas that have every write *of the connection it
runs on*; so script calls and their WAIT go on one connection, in one round trip: a
publish batch's tenant steps in one pipeline then one WAIT on a single node; on a cluster
each node's share of them in one pipeline then one WAIT, on a connection of that node
(calls.py). One WAIT per connection, never per event. A retry of a stored event writes
too (publish.lua), so its WAIT covers the first write: a 202 for a retry never comes
before the event is replicated.
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
        confirmed = self._confirmed(acked, result)
        if isinstance(confirmed, Unavailable):
            raise confirmed
        return confirmed

    async def run_all(self, redis: Client, calls: Calls) -> list[Any]:
        """The script calls of `calls` (one per tag: a publish batch's tenant steps), each
        answered once `replicas` replicas have its write: one round trip, one WAIT per
        connection that ran some (per node on a cluster), after them. One answer or
        exception per call. A call a cluster node did not run, made again alone (a moved
        slot, a failover), is made once more with its own WAIT: the publish script is
        idempotent, and a duplicate writes (publish.lua), so that WAIT covers the first."""
        answers = await calls.run(redis, then=("WAIT", self.replicas, self.timeout_ms))
        out: list[Any] = []
        for (script, keys, args), answer, acked in zip(
            calls.items, answers, calls.after, strict=True
        ):
            assert script is not None  # plain commands are not waited for
            if isinstance(answer, BaseException):
                out.append(answer)
            elif acked is None:
                try:
                    await self.run(redis, script, keys, args)
                    out.append(answer)
                except Exception as exc:
                    out.append(exc)
            else:
                failed = isinstance(acked, BaseException)
                out.append(acked if failed else self._confirmed(acked, answer))
        return out

    def _confirmed(self, acked: Any, answer: Any) -> Any:
        """The call's answer if its WAIT saw enough replicas; else Unavailable."""
        if int(acked) >= self.replicas:
            return answer
        return Unavailable(
            f"stored on the Redis master, but {acked} of {self.replicas} replica(s) "
            f"confirmed it within {self.timeout_ms} ms (REDIS_WAIT_REPLICAS): not "
            "acknowledged; retry with the same id (it will not be stored twice)"
        )

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
