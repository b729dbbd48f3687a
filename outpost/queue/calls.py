"""Many commands of many slots in one round trip, on a single Redis or a Redis Cluster.

A step that touches several hash tags (a publish batch: its tenants, then its partitions)
makes one call per tag: a script call or a plain command, each on one slot. On a single
node they go in one pipeline (one round trip, in order); on a cluster redis-py's pipeline
cannot carry scripts, so each call is sent at once, concurrently (one round trip per node,
in parallel). Either way each call's answer or its own exception comes back in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, TypeAlias

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

Client: TypeAlias = "Redis | RedisCluster"
# calls of one round trip in flight at once on a cluster (its client keeps a bounded pool
# of connections per node: more at once would be refused, not queued)
CLUSTER_IN_FLIGHT = 32


def is_cluster(redis: Any) -> bool:
    return isinstance(redis, RedisCluster)


class Calls:
    """Calls of one round trip, in order: `script` a Lua call, `command` a plain one."""

    def __init__(self) -> None:
        self.items: list[tuple[AsyncScript | None, list[Any], list[Any]]] = []

    def script(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Calls:
        self.items.append((script, keys, args))
        return self

    def command(self, *args: Any) -> Calls:
        self.items.append((None, list(args), []))
        return self

    def __len__(self) -> int:
        return len(self.items)

    async def run(self, redis: Client) -> list[Any]:
        """One answer (or exception instance) per call."""
        if not self.items:
            return []
        if isinstance(redis, RedisCluster):
            # (first: concurrent calls on a client not yet initialized race its setup,
            # which closes connections under them: redis-py 8.1)
            return await self._on_cluster(redis)
        scripts = {script for script, _, _ in self.items if script is not None}
        await _load(redis, scripts - _LOADED.setdefault(id(redis), set()))
        answers = await self._pipelined(redis, range(len(self.items)))
        lost = [i for i, a in enumerate(answers) if isinstance(a, NoScriptError)]
        if lost:  # Redis restarted and forgot the scripts: every script call failed, alone
            _LOADED[id(redis)].clear()
            await _load(redis, {self.items[i][0] for i in lost})  # type: ignore[misc]
            for i, answer in zip(lost, await self._pipelined(redis, lost), strict=True):
                answers[i] = answer
        return answers

    async def _pipelined(self, redis: Redis, which: Sequence[int]) -> list[Any]:
        """The calls `which` in one pipeline, scripts by EVALSHA alone (redis-py's own
        pipeline would ask SCRIPT EXISTS first: one more round trip every time)."""
        pipe = redis.pipeline(transaction=False)
        for i in which:
            script, keys, args = self.items[i]
            if script is None:
                pipe.execute_command(*keys)
            else:
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))

    async def _on_cluster(self, redis: RedisCluster) -> list[Any]:
        """The plain commands in one cluster pipeline (one round trip per node), the
        scripts beside it, at most CLUSTER_IN_FLIGHT at once."""
        await redis.initialize()
        room = asyncio.Semaphore(CLUSTER_IN_FLIGHT)
        plain = [i for i, (script, _, _) in enumerate(self.items) if script is None]
        runs = [_one(redis, room, *item) for item in self.items if item[0] is not None]
        if plain:
            pipe = redis.pipeline(transaction=False)
            for i in plain:
                pipe.execute_command(*self.items[i][1])
            runs.append(pipe.execute(raise_on_error=False))
        answers = await asyncio.gather(*runs, return_exceptions=True)
        of_plain = answers.pop() if plain else []
        if isinstance(of_plain, BaseException):
            of_plain = [of_plain] * len(plain)
        out: list[Any] = []
        scripts, commands = iter(answers), iter(of_plain)
        for script, _, _ in self.items:
            out.append(next(scripts) if script is not None else next(commands))
        return out


# per client (by id: a process has a few, for its life), the scripts it has loaded
_LOADED: dict[int, set[AsyncScript]] = {}


async def _load(redis: Redis, scripts: set[AsyncScript]) -> None:
    """SCRIPT LOAD each script not yet loaded through this client (once per process, and
    again after Redis lost them)."""
    for script in scripts:
        script.sha = await redis.script_load(script.script)
        _LOADED.setdefault(id(redis), set()).add(script)


async def _one(
    redis: Client,
    room: asyncio.Semaphore,
    script: AsyncScript | None,
    keys: list[Any],
    args: list[Any],
) -> Any:
    async with room:
        if script is None:
            return await redis.execute_command(*keys)
        return await script(keys=keys, args=args)


async def mget(redis: Client, keys: list[str]) -> list[Any]:
    """MGET of keys of any slots (a cluster splits it per slot: not atomic, as none of
    our reads needs it to be)."""
    if not keys:
        return []
    if isinstance(redis, RedisCluster):
        return list(await redis.mget_nonatomic(keys))
    return list(await redis.mget(keys))


def raise_first(results: Sequence[Any]) -> list[Any]:
    """The answers, or the first exception among them raised."""
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return list(results)
