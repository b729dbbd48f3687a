"""Many commands of many slots in one round trip, on a single Redis or a Redis Cluster.

A step that touches several hash tags (a publish batch: its tenants, then its partitions)
makes one call per tag: a script call or a plain command, each on one slot. On a single
node they go in one pipeline (one round trip, in order). On a cluster they are grouped by
the node owning their slot and each node's group goes as one pipeline on one of its
connections, all nodes at once (one round trip in all, each node's calls in order):
scripts by EVALSHA, as on one node (redis-py's cluster pipeline sends EVALSHA too, but
resolves a routing policy per command and cannot load a script; ours is a thin grouping
over the client's slot map and its nodes' connections). Either way each call's answer or
its own exception comes back in order.

A cluster call that a node did not run is made again, alone, through the cluster client
(which maps the slots again and follows MOVED/ASK), after the others of its pipeline: a
redirect (MOVED, ASK, TRYAGAIN, CLUSTERDOWN), NOSCRIPT (a failed-over or restarted node
that never loaded it), or a node that could not be reached to send it (a failover). A
call sent whose answer was lost (the connection broke after the send) is answered with
that error, never sent again here: it may have run, and our steps are not all safe to
repeat (complete.lua counts a failure and may keep a dead letter; an outbox drain queues
its tasks: a repeat would do it twice)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, TypeAlias

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    NoScriptError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

Client: TypeAlias = "Redis | RedisCluster"
# calls made again alone at once on a cluster (its client keeps a bounded pool of
# connections per node: more at once would be refused, not queued)
CLUSTER_IN_FLIGHT = 32
# answers saying a cluster node did not run the call: made again through the client
_NOT_RUN = (MovedError, AskError, TryAgainError, ClusterDownError, NoScriptError)


def is_cluster(redis: Any) -> bool:
    return isinstance(redis, RedisCluster)


class Calls:
    """Calls of one round trip, in order: `script` a Lua call, `command` a plain one."""

    def __init__(self) -> None:
        self.items: list[tuple[AsyncScript | None, list[Any], list[Any]]] = []
        self._routed: dict[int, Any] = {}  # a plain command's key whose slot routes it
        self.after: list[Any] = []  # per call, the answer of run's `then` on its connection

    def script(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Calls:
        self.items.append((script, keys, args))
        return self

    def command(self, *args: Any, key: Any = None) -> Calls:
        """A plain command; on a cluster it goes to the node of `key` (by default its
        first argument: true of every command but those naming keys later, XREADGROUP)."""
        if key is not None:
            self._routed[len(self.items)] = key
        self.items.append((None, list(args), []))
        return self

    def __len__(self) -> int:
        return len(self.items)

    async def run(self, redis: Client, then: Sequence[Any] = ()) -> list[Any]:
        """One answer (or exception instance) per call. `then`: a command sent after the
        calls on the connection that ran them (on a cluster, each node's: a WAIT covering
        their writes); its answer for each call lands in `after` (None for a call made
        again alone, without it)."""
        self.after = [None] * len(self.items)
        if not self.items:
            return []
        scripts = {script for script, _, _ in self.items if script is not None}
        await _load(redis, scripts - _LOADED.setdefault(id(redis), set()))
        if isinstance(redis, RedisCluster):
            return await self._on_cluster(redis, then)
        answers = await self._pipelined(redis, range(len(self.items)), then)
        lost = [i for i, a in enumerate(answers) if isinstance(a, NoScriptError)]
        if lost:  # Redis restarted and forgot the scripts: every script call failed, alone
            _LOADED[id(redis)].clear()
            await _load(redis, {self.items[i][0] for i in lost})  # type: ignore[misc]
            for i, answer in zip(lost, await self._pipelined(redis, lost, then), strict=True):
                answers[i] = answer
        return answers

    def _args(self, i: int) -> list[Any]:
        """Call `i` as one command: scripts by EVALSHA alone (redis-py's own pipeline would
        ask SCRIPT EXISTS first: one more round trip every time)."""
        script, keys, args = self.items[i]
        if script is None:
            return keys
        return ["EVALSHA", script.sha, len(keys), *keys, *args]

    async def _pipelined(
        self, redis: Redis, which: Sequence[int], then: Sequence[Any]
    ) -> list[Any]:
        """The calls `which` in one pipeline (and `then` after them)."""
        pipe = redis.pipeline(transaction=False)
        for i in which:
            pipe.execute_command(*self._args(i))
        if then:
            pipe.execute_command(*then)
        answers = list(await pipe.execute(raise_on_error=False))
        if then:
            after = answers.pop()
            for i in which:
                self.after[i] = after
        return answers

    async def _on_cluster(self, redis: RedisCluster, then: Sequence[Any]) -> list[Any]:
        """Per node one pipeline of the calls of its slots (and `then`), every node at
        once; the calls a node did not run, again alone through the cluster client."""
        by_node: dict[str, tuple[ClusterNode, list[PipelineCommand]]] = {}
        for i, (script, keys, _) in enumerate(self.items):
            node = redis.get_node_from_key(self._routed.get(i, keys[0] if script else keys[1]))
            assert node is not None  # (or SlotNotCoveredError was raised)
            by_node.setdefault(node.name, (node, []))[1].append(PipelineCommand(i, *self._args(i)))
        if then:
            for _, commands in by_node.values():
                commands.append(PipelineCommand(-1, *then))
        sent = await asyncio.gather(
            *(node.execute_pipeline(commands) for node, commands in by_node.values()),
            return_exceptions=True,
        )
        answers: list[Any] = [None] * len(self.items)
        again: list[int] = []
        for (_, commands), failed in zip(by_node.values(), sent, strict=True):
            after = failed if isinstance(failed, BaseException) else commands[-1].result
            for c in commands[:-1] if then else commands:
                answer = failed if isinstance(failed, BaseException) else c.result
                if isinstance(answer, _NOT_RUN) or isinstance(failed, RedisConnectionError):
                    again.append(c.position)
                elif then:
                    self.after[c.position] = after
                answers[c.position] = answer
        if again:
            await self._again(redis, again, answers)
        return answers

    async def _again(self, redis: RedisCluster, which: list[int], answers: list[Any]) -> None:
        """The calls `which` again, each alone through the cluster client."""
        if any(isinstance(answers[i], NoScriptError) for i in which):
            _LOADED[id(redis)].clear()  # (AsyncScript loads it where it is missing)
        room = asyncio.Semaphore(CLUSTER_IN_FLIGHT)
        runs = [_one(redis, room, *self.items[i]) for i in which]
        for i, answer in zip(
            which, await asyncio.gather(*runs, return_exceptions=True), strict=True
        ):
            answers[i] = answer


# per client (by id: a process has a few, for its life), the scripts it has loaded
_LOADED: dict[int, set[AsyncScript]] = {}


async def _load(redis: Client, scripts: set[AsyncScript]) -> None:
    """SCRIPT LOAD each script not yet loaded through this client (once per process, and
    again after Redis lost them; on a cluster into every master)."""
    if isinstance(redis, RedisCluster):
        await redis.initialize()  # (before concurrent calls: they would race its setup)
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
