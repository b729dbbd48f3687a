"""The Lua scripts: one `.lua` file each, in a `scripts/` folder beside the module that runs
it (package data, so they ship in the wheel).

The rule every script keeps: each key it touches arrives in KEYS, never inside ARGV or a
JSON argument (Redis Cluster routes a call by its declared keys). A batched script takes
the keys of all its items in KEYS, once each (`KeyTable`), and each item names its keys by
their index there. Items travel as JSON objects with named fields (`e.event_key`), read
with cjson on the Lua side.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from redis.commands.core import AsyncScript

from outpost.queue.calls import Client


@cache
def source(package: str, name: str) -> str:
    """The text of `<package>/scripts/<name>.lua`, read once per process."""
    return files(package).joinpath("scripts", f"{name}.lua").read_text(encoding="utf-8")


def register(redis: Client, package: str, name: str) -> AsyncScript:
    """The script bound to this client (EVALSHA, loaded into Redis on first use). The
    component owning the script registers it once, when it is built."""
    return redis.register_script(source(package, name))


class KeyTable:
    """The KEYS of one batched call: each key once, in first-seen order; `index(key)` is
    its 1-based position, as the script reads `KEYS[i]`."""

    __slots__ = ("_at", "keys")

    def __init__(self, *fixed: str):
        self.keys: list[str] = []
        self._at: dict[str, int] = {}
        for key in fixed:
            self.index(key)

    def index(self, key: str) -> int:
        at = self._at.get(key)
        if at is None:
            self.keys.append(key)
            at = self._at[key] = len(self.keys)
        return at
