"""An in-memory destination type for tests (`memory`): it keeps what it was sent, and can
be told to fail. Shipped in the package so a test can run the real worker against it,
but registered only by whoever builds the services with it (`Deps.build(extra_types=)`):
production's `GET /destination-types` never lists it."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from outpost.destinations.base import DestinationType, Failure, Kind, NonBlank, Result, Schema
from outpost.envelope import event_document, record_bytes
from outpost.models import Destination, Event

TYPE = "memory"


class MemoryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9-]{1,64}$")
    batching: bool | None = None


class MemoryCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: NonBlank


SCHEMA = Schema(
    type=TYPE,
    label="In-memory (tests)",
    description="Keeps what it is sent in the process; for tests only.",
    config_model=MemoryConfig,
    credentials_model=MemoryCredentials,
    config_fields=[
        {"key": "name", "type": "text", "label": "Name", "required": True, "sensitive": False},
        {"key": "batching", "type": "checkbox", "label": "Batch", "required": False},
    ],
    credential_fields=[
        {"key": "token", "type": "text", "label": "Token", "required": True, "sensitive": True},
    ],
)


@dataclass(frozen=True)
class Record:
    data: bytes
    key: str


@dataclass(frozen=True)
class Delivered:
    key: str
    data: bytes
    token: str  # the credentials it was sent with


class MemoryFailure(Exception):
    """What the memory destination raises when told to fail."""

    def __init__(self, kind: Kind, code: str):
        super().__init__(f"{code} (injected)")
        self.kind = kind
        self.code = code


class MemoryDestination(DestinationType):
    schema = SCHEMA

    def __init__(self) -> None:
        self.received: defaultdict[str, list[Delivered]] = defaultdict(list)
        self.calls: list[int] = []  # records per call (1 for send)
        self.tokens: set[str] | None = None  # when set, other tokens are refused (AUTH)
        self._fail_calls: list[MemoryFailure] = []
        self._fail_keys: dict[str, list[MemoryFailure]] = {}
        self._stalls: list[float] = []

    # -- what a test tells it -----------------------------------------------------------
    def fail_next(self, kind: Kind, code: str, times: int = 1) -> None:
        """The next `times` calls fail as a whole."""
        self._fail_calls.extend(MemoryFailure(kind, code) for _ in range(times))

    def stall_next(self, seconds: float, times: int = 1) -> None:
        """The next `times` sends take `seconds` to answer: a transport that does not
        hold its own timeout (the worker's deadline must end them)."""
        self._stalls.extend([seconds] * times)

    def fail_record(self, key: str, kind: Kind = Kind.RETRY, code: str = "throttled") -> None:
        """The next send of this record (by key) fails alone, even inside a batch."""
        self._fail_keys.setdefault(key, []).append(MemoryFailure(kind, code))

    # -- the interface --------------------------------------------------------------------
    def target(self, config: dict[str, Any]) -> str:
        return str(config.get("name", ""))

    def format(self, event: Event, destination: Destination) -> Record:
        doc = event_document(event, destination.delivery_metadata)
        return Record(record_bytes(doc, True), event.id)

    async def send(self, record: Record, destination: Destination) -> Result:
        self.calls.append(1)
        if self._stalls:
            await asyncio.sleep(self._stalls.pop(0))
        self._check_call(destination)
        return self._accept(record, destination, 1)

    def batching(self, destination: Destination) -> bool:
        return bool(destination.config.get("batching"))

    async def send_batch(
        self, records: Sequence[Record], destination: Destination
    ) -> list[Awaitable[Result]]:
        """One call for all the records; a record told to fail fails alone."""
        self.calls.append(len(records))
        loop = asyncio.get_running_loop()
        call_failed: MemoryFailure | None = None
        try:
            self._check_call(destination)
        except MemoryFailure as exc:
            call_failed = exc
        out: list[Awaitable[Result]] = []
        for record in records:
            done: asyncio.Future[Result] = loop.create_future()
            try:
                if call_failed is not None:
                    raise call_failed
                done.set_result(self._accept(record, destination, len(records)))
            except MemoryFailure as exc:
                done.set_exception(exc)
            out.append(done)
        return out

    def classify(self, exc: BaseException) -> Failure:
        if isinstance(exc, MemoryFailure):
            return Failure(exc.kind, exc.code, str(exc))
        return super().classify(exc)  # our DeliveryErrors; anything else is a bug

    # -- inside -------------------------------------------------------------------------
    def _check_call(self, destination: Destination) -> None:
        if self._fail_calls:
            raise self._fail_calls.pop(0)
        token = destination.credentials["token"]
        if self.tokens is not None and token not in self.tokens:
            raise MemoryFailure(Kind.AUTH, "access_denied")

    def _accept(self, record: Record, destination: Destination, batch_size: int) -> Result:
        failing = self._fail_keys.get(record.key)
        if failing:
            raise failing.pop(0)
        name = destination.config["name"]
        self.received[name].append(
            Delivered(record.key, record.data, destination.credentials["token"])
        )
        return {"name": name, "index": len(self.received[name]) - 1, "batch_size": batch_size}
