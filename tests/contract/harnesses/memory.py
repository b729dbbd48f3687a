"""The in-memory type's harness: its "server" is the provider's own record of sends."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from outpost.destinations.base import Kind
from outpost.destinations.memory.provider import MemoryDestination
from tests.contract.harnesses.base import Harness


class MemoryHarness(Harness):
    type = "memory"
    codes = {Kind.RETRY: "throughput_exceeded", Kind.PERMANENT: "validation_error"}
    bad_values = [("config.name", "Not A Name!"), ("credentials.token", " ")]

    def __init__(self, provider: MemoryDestination):
        self.provider = provider
        self.name = f"bin-{uuid.uuid4().hex[:8]}"
        self._failed: Counter[str] = Counter()

    def body(self, **config: Any) -> dict[str, Any]:
        return {
            "type": "memory",
            "topics": ["orders"],
            "config": {"name": self.name, **config},
            "credentials": self.credentials(),
        }

    def credentials(self, rotated: bool = False) -> dict[str, Any]:
        return {"token": "rotated-token-0002" if rotated else "first-token-0001"}

    def received(self, expect: int) -> list[tuple[str, bytes]]:
        return [(d.key, d.data) for d in self.provider.received[self.name]]

    def identities(self) -> list[str]:
        return [d.token for d in self.provider.received[self.name]]

    def identity(self, credentials: dict[str, Any]) -> str:
        return str(credentials["token"])

    def fail(self, kind: Kind) -> None:
        self.provider.fail_next(kind, self.codes[kind], times=1000)

    def heal(self) -> None:
        self.provider._fail_calls.clear()

    def fail_some_records(self, keys: list[str]) -> None:
        for key in keys[::3]:
            self.provider.fail_record(key, Kind.RETRY, self.codes[Kind.RETRY])
            self._failed[key] += 1

    def failed_records(self) -> Counter[str]:
        return self._failed
