"""The slot rule, checked on every script call the tests make: all KEYS of one call hash
to one Redis Cluster slot (redis-py's own key_slot), as a cluster requires. Installed for
the whole session by tests/conftest.py; a call that breaks it fails with CrossSlot, and is
recorded too (so code that catches errors cannot hide it). Script calls reach Redis two
ways: a script object's call (AsyncScript) and a pipelined EVALSHA (queue/calls.py: a
pipeline of a single node, or of one cluster node): all are checked, and `SEEN`, while a
test holds it, gathers the KEYS of each call."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterNode
from redis.commands.core import AsyncScript
from redis.crc import key_slot


class CrossSlot(AssertionError):
    pass


BROKEN: list[list[str]] = []  # every call that broke the rule, this session
SEEN: list[list[list[str]]] = []  # lists a test put here gather every call's KEYS


def slots_of(keys: list[Any]) -> set[int]:
    return {key_slot(k.encode() if isinstance(k, str) else k) for k in keys}


def check(keys: list[Any]) -> None:
    names = [k if isinstance(k, str) else k.decode() for k in keys]
    for seen in SEEN:
        seen.append(names)
    if len(slots_of(keys)) > 1:
        BROKEN.append(names)
        raise CrossSlot(f"one script call spans {len(slots_of(keys))} slots: {names[:6]}")


@contextmanager
def one_slot_per_call() -> Iterator[list[list[str]]]:
    """While open, every AsyncScript call and pipelined EVALSHA checks its KEYS first."""
    original = AsyncScript.__call__
    queued = Pipeline.execute_command

    async def checked(self: AsyncScript, keys: Any = (), args: Any = (), client: Any = None) -> Any:
        check(list(keys))
        return await original(self, keys, args, client)

    def pipelined(self: Pipeline, *args: Any, **options: Any) -> Any:
        if args and args[0] == "EVALSHA" and not self.scripts:  # (not AsyncScript's own)
            check(list(args[3 : 3 + int(args[2])]))
        return queued(self, *args, **options)

    async def on_node(self: ClusterNode, commands: Any) -> Any:
        for command in commands:
            if command.args[0] == "EVALSHA":
                check(list(command.args[3 : 3 + int(command.args[2])]))
        return await node_pipeline(self, commands)

    node_pipeline = ClusterNode.execute_pipeline
    AsyncScript.__call__ = checked  # type: ignore[method-assign]
    Pipeline.execute_command = pipelined  # type: ignore[method-assign]
    ClusterNode.execute_pipeline = on_node  # type: ignore[method-assign]
    try:
        yield BROKEN
    finally:
        AsyncScript.__call__ = original  # type: ignore[method-assign]
        Pipeline.execute_command = queued  # type: ignore[method-assign]
        ClusterNode.execute_pipeline = node_pipeline  # type: ignore[method-assign]
