"""The Azure Service Bus destination type: the thin class the registry and the worker
use. Its parts: `config` and `schema` (what it accepts), `format` (messages, pure),
`sender` (the official client, and batch sends), `errors` (what a failure means)."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from outpost.destinations.azure_servicebus import format as fmt
from outpost.destinations.azure_servicebus.config import (
    DEFAULT_BATCH_LINGER_MS,
    MAX_BATCH_MESSAGES,
    namespace_endpoint,
)
from outpost.destinations.azure_servicebus.format import Record
from outpost.destinations.azure_servicebus.schema import SCHEMA
from outpost.destinations.base import DestinationType, Failure, Result
from outpost.destinations.batcher import Answer, Batcher
from outpost.destinations.endpoints import EndpointPolicy, ForbiddenEndpoint, forbidden
from outpost.destinations.lazy import Lazy
from outpost.errors import PermanentError, ValidationFailed
from outpost.models import Destination, Event

if TYPE_CHECKING:
    from outpost.destinations.azure_servicebus.sender import Handle, Opener, Senders


class ServiceBusProvider(DestinationType):
    schema = SCHEMA

    def __init__(
        self,
        timeout: float = 5.0,
        policy: EndpointPolicy | None = None,
        opener: Opener | None = None,
    ):
        """`policy`: the SSRF guard for the namespace host (by default private addresses
        are refused); `opener`: builds a sender (the SDK's by default)."""
        self.timeout = timeout
        self.policy = policy or EndpointPolicy()
        self._senders = Lazy(lambda: _senders(timeout, opener))
        self.batcher: Batcher[Record] = Batcher(self._send_batch, MAX_BATCH_MESSAGES)

    @property
    def senders(self) -> Senders:
        """azure-servicebus loads at the first send (`destinations.lazy`)."""
        return self._senders.get()

    def target(self, config: dict[str, Any]) -> str:
        return str(config.get("name", ""))

    def validate(
        self, config: dict[str, Any], credentials: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The namespace lives in a credential, which the guard of create and update
        (`endpoints`, config only) does not see: a literal private address is refused
        here, any host at each send (after DNS)."""
        config, credentials = super().validate(config, credentials)
        endpoint = namespace_endpoint(credentials["connection_string"])
        if not self.policy.allow_private and literal_private(endpoint):
            raise ValidationFailed(
                [
                    f"credentials.connection_string: {urlparse(endpoint).hostname!r} is a "
                    "non-public address; private, loopback and link-local endpoints are not "
                    "allowed"
                ]
            )
        return config, credentials

    def format(self, event: Event, destination: Destination) -> Record:
        return fmt.record(event, destination)

    async def send(self, record: Record, destination: Destination) -> Result:
        """One message, sent alone (`SendMessage`, as Outpost)."""
        _, handle = await self._handle(destination)
        await self.senders.send(handle, record)
        return {"entity": destination.config["name"]}

    def batching(self, destination: Destination) -> bool:
        return bool(destination.config.get("batching"))

    async def send_batch(
        self, records: Sequence[Record], destination: Destination
    ) -> list[Awaitable[Result]]:
        cfg = destination.config
        key, handle = await self._handle(destination)
        linger = cfg.get("batch_linger_ms")
        linger = (DEFAULT_BATCH_LINGER_MS if linger is None else linger) / 1000
        limit = cfg.get("batch_max_messages")
        context = (handle, cfg["name"])
        return [self.batcher.add(key, context, r, 0, linger, limit) for r in records]

    async def _send_batch(
        self, context: tuple[Handle, str], records: Sequence[Record]
    ) -> list[Answer]:
        return await self.senders.send_batch(context, records)

    async def _handle(self, destination: Destination) -> tuple[str, Handle]:
        connection_string = destination.credentials["connection_string"]
        try:
            await self.policy.check(namespace_endpoint(connection_string), at_send=True)
        except ForbiddenEndpoint as exc:
            raise PermanentError("endpoint_forbidden", str(exc)) from None
        return self.senders.get(connection_string, destination.config["name"])

    def classify(self, exc: BaseException) -> Failure:
        from outpost.destinations.azure_servicebus import errors  # the SDK's exception types

        return errors.classify(exc)

    async def close(self) -> None:
        await self.batcher.close()
        await self._senders.close()


def _senders(timeout: float, opener: Opener | None) -> Senders:
    from outpost.destinations.azure_servicebus.sender import Senders  # azure-servicebus

    return Senders(timeout, opener)


def literal_private(url: str) -> bool:
    host = (urlparse(url).hostname or "").strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False  # a name: resolved and checked at send
    return forbidden(host)
