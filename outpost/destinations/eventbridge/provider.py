"""The AWS EventBridge destination type (Outpost's `aws_eventbridge`): PutEvents with one
entry per event, or, for destinations with `config.batching`, up to 10 entries (256 KiB)
per call, each entry failing alone. Its parts: `config`, `format` (entries, pure),
`aws.clients` (aiobotocore clients per credentials), `destinations.batcher`, `aws.errors`."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any
from urllib.parse import quote_plus

from outpost.destinations.aws import errors
from outpost.destinations.aws.auth import resource_arn
from outpost.destinations.aws.client_type import AwsClientType
from outpost.destinations.aws.clients import Identity
from outpost.destinations.aws.fields import DEFAULT_BATCH_LINGER_MS
from outpost.destinations.aws.roles import Roles
from outpost.destinations.base import Result
from outpost.destinations.batcher import Answer, Batcher
from outpost.destinations.eventbridge import format as fmt
from outpost.destinations.eventbridge.config import MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, SCHEMA
from outpost.destinations.eventbridge.format import Entry
from outpost.errors import RetryableError
from outpost.models import Destination, Event

OPERATION = "PutEvents"
DEFAULT_SOURCE = "outpost"


def identity(config: dict[str, Any], keys: tuple[str, str, str | None]) -> Identity:
    return Identity("events", config["region"], config.get("endpoint"), *keys)


class EventBridgeProvider(AwsClientType):
    schema = SCHEMA

    def __init__(
        self,
        source: str = DEFAULT_SOURCE,
        timeout: float = 5.0,
        max_connections: int = 64,
        connect_timeout: float | None = None,
        roles: Roles | None = None,
    ):
        super().__init__(timeout, max_connections, connect_timeout, roles)
        self.source = source or DEFAULT_SOURCE
        self.batches: Batcher[Entry] = Batcher(self._put, MAX_BATCH_ENTRIES, MAX_BATCH_BYTES)

    def target(self, config: dict[str, Any]) -> str:
        return f"{config.get('event_bus_name') or ''} in {config.get('region', '')}"

    def target_url(self, config: dict[str, Any]) -> str | None:
        """The bus in the console; none for an ARN (it may be another account's)."""
        bus, region = config.get("event_bus_name"), config.get("region")
        if not bus or not region or bus.startswith("arn:"):
            return None
        return (
            f"https://{region}.console.aws.amazon.com/events/home?region={region}"
            f"#/eventbus/{quote_plus(bus, safe='')}"
        )

    def format(self, event: Event, destination: Destination) -> Entry:
        return fmt.entry(event, destination, self.source)

    async def send(self, record: Entry, destination: Destination) -> Result:
        if self.batching(destination):
            [result] = await self.send_batch([record], destination)
            return await result
        client = await self.clients.get(
            identity(destination.config, await self.roles.keys(destination))
        )
        [answer] = await self._put(client, [record])
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def batching(self, destination: Destination) -> bool:
        return bool(destination.config.get("batching"))

    async def send_batch(
        self, records: Sequence[Entry], destination: Destination
    ) -> list[Awaitable[Result]]:
        """The entries join their bus's open PutEvents call (other callers' entries for
        the same bus and credentials included); one future per entry."""
        cfg = destination.config
        who = identity(cfg, await self.roles.keys(destination))
        client = await self.clients.get(who)
        linger = cfg.get("batch_linger_ms")
        linger = (DEFAULT_BATCH_LINGER_MS if linger is None else linger) / 1000
        key = (who.cache_key(), cfg.get("event_bus_name") or "")
        return [self.batches.add(key, client, e, e.size, linger) for e in records]

    async def _put(self, client: Any, entries: Sequence[Entry]) -> list[Answer]:
        resp = await client.put_events(Entries=[e.request() for e in entries])
        results = resp.get("Entries")
        if not isinstance(results, list) or len(results) != len(entries):
            raise RetryableError("server_error", f"{OPERATION} answered malformed Entries")
        return [_answer(e, r) for e, r in zip(entries, results, strict=True)]

    def role_permissions(self, destination: Destination) -> tuple[list[str], str]:
        cfg = destination.config
        bus = str(cfg.get("event_bus_name") or "default")
        arn = (
            bus
            if bus.startswith("arn:")
            else resource_arn("events", cfg["region"], destination, f"event-bus/{bus}")
        )
        return ["events:PutEvents"], arn


def _answer(entry: Entry, result: Any) -> Answer:
    if not isinstance(result, dict):
        return RetryableError("server_error", f"{OPERATION} answered a malformed entry")
    if result.get("ErrorCode") or not result.get("EventId"):
        code = str(result.get("ErrorCode") or "")
        return errors.entry_error(OPERATION, code, str(result.get("ErrorMessage") or ""))
    out = {"source": entry.source, "detail_type": entry.detail_type, "event_id": result["EventId"]}
    if entry.event_bus_name:
        out["event_bus_name"] = entry.event_bus_name
    return out
