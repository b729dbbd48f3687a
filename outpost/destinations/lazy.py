"""Parts of a destination type built at its first use, not when the registry is built.

A broker's client library (Google's with grpc, azure-servicebus, aiokafka, aio-pika) costs
megabytes of RSS and tens of milliseconds of start-up in every process that imports it,
and most processes that build the registry (the API, the source reader, a worker whose
tenants use none of those types) never send to such a broker. A type keeps its client
part in a `Lazy`, whose `make` imports the module that imports the library; the type's
`classify` imports its error table the same way (inside the function). Only
`tests/test_lazy_imports.py` says which libraries must stay unloaded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar


class Closable(Protocol):
    def close(self) -> Awaitable[None]: ...


T = TypeVar("T", bound=Closable)


class Lazy(Generic[T]):
    """`make()` at the first `get()` (then the same object); `close()` closes it only if
    it was ever made (closing must not load the library)."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._made: T | None = None

    def get(self) -> T:
        if self._made is None:
            self._made = self._make()
        return self._made

    async def close(self) -> None:
        if self._made is not None:
            await self._made.close()
