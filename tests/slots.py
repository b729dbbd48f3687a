"""The slot rule, checked on every script call the tests make: all KEYS of one call hash
to one Redis Cluster slot (redis-py's own key_slot), as a cluster requires. Installed for
the whole session by tests/conftest.py; a call that breaks it fails with CrossSlot, and is
recorded too (so code that catches errors cannot hide it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from redis.commands.core import AsyncScript
from redis.crc import key_slot


class CrossSlot(AssertionError):
    pass


BROKEN: list[list[str]] = []  # every call that broke the rule, this session


def slots_of(keys: list[Any]) -> set[int]:
    return {key_slot(k.encode() if isinstance(k, str) else k) for k in keys}


@contextmanager
def one_slot_per_call() -> Iterator[list[list[str]]]:
    """While open, every AsyncScript call checks its KEYS first."""
    original = AsyncScript.__call__

    async def checked(self: AsyncScript, keys: Any = (), args: Any = (), client: Any = None) -> Any:
        keys = list(keys)
        if len(slots_of(keys)) > 1:
            BROKEN.append([str(k) for k in keys])
            raise CrossSlot(f"one script call spans {len(slots_of(keys))} slots: {keys[:6]}")
        return await original(self, keys, args, client)

    AsyncScript.__call__ = checked  # type: ignore[method-assign]
    try:
        yield BROKEN
    finally:
        AsyncScript.__call__ = original  # type: ignore[method-assign]
