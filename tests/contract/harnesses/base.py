"""What the conformance suite (tests/contract/test_destinations.py) needs from a
destination type: how to point a destination at the real local server of that type,
read back what arrived, and make that server fail. Each type's harness lives in a module
of its own in this package and registers its factory in `HARNESSES` (see __init__)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from outpost.destinations.base import Kind
from outpost.models import Destination


class Harness:
    """What the suite needs from a type. `codes`: the attempt code each injected failure
    kind ends with."""

    type: str
    batching: dict[str, Any] = {"batching": True}  # config that turns the batched path on
    codes: dict[Kind, str]
    bad_values: list[tuple[str, Any]]  # ("config.x" | "credentials.x", a value refused)

    def body(self, **config: Any) -> dict[str, Any]:
        raise NotImplementedError

    def credentials(self, rotated: bool = False) -> dict[str, Any]:
        raise NotImplementedError

    def received(self, expect: int) -> list[tuple[str, bytes]]:
        """(ordering key, record bytes) of everything the server holds."""
        raise NotImplementedError

    def identities(self) -> list[str]:
        """Who each send authenticated as, in order."""
        raise NotImplementedError

    def identity(self, credentials: dict[str, Any]) -> str:
        raise NotImplementedError

    def fail(self, kind: Kind) -> None:
        """Every send fails with `kind` until `heal()`."""
        raise NotImplementedError

    def heal(self) -> None:
        raise NotImplementedError

    def fail_some_records(self, keys: list[str]) -> None:
        """Some records of a batch call fail alone (which is up to the type)."""
        raise NotImplementedError

    def failed_records(self) -> Counter[str]:
        raise NotImplementedError

    async def close(self) -> None:
        return None


def same_version(dest: Destination) -> Destination:
    """A second parse of the same stored destination (nothing compiled yet)."""
    return Destination(**{**dest.__dict__, "compiled": {}})
