"""The webhook destination type: the thin class the registry and the worker use. Its
parts: `config` (what it accepts), `credentials` (signing secrets: generated, guarded,
rotated), `format` (requests, pure), `signature` (Outpost's scheme), and the HTTP
plumbing shared with hookdeck (`http.client` sends, `http.errors` classifies).

There is no batch call in HTTP: `batching()` stays False and each event is one POST."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from outpost.destinations.base import DestinationType, Failure, Result
from outpost.destinations.endpoints import EndpointPolicy
from outpost.destinations.http import errors
from outpost.destinations.http.client import Sender
from outpost.destinations.webhook import credentials
from outpost.destinations.webhook import format as fmt
from outpost.destinations.webhook.config import SCHEMA
from outpost.destinations.webhook.format import Record, Style
from outpost.destinations.webhook.signature import Scheme
from outpost.models import Destination, Event


class WebhookProvider(DestinationType):
    schema = SCHEMA

    def __init__(
        self,
        policy: EndpointPolicy,
        scheme: Scheme | None = None,
        style: Style | None = None,
        timeout: float = 5.0,
        max_connections: int = 64,
        max_response_bytes: int = 4096,
        connect_timeout: float | None = None,
    ):
        self.scheme = scheme or Scheme()
        self.style = style or Style()
        self.sender = Sender(policy, timeout, max_connections, max_response_bytes, connect_timeout)

    def target(self, config: dict[str, Any]) -> str:
        return str(config.get("url", ""))

    def endpoints(self, config: dict[str, Any]) -> list[tuple[str, str]]:
        url = config.get("url")
        return [("url", url)] if isinstance(url, str) and url else []

    def prepare_credentials(
        self,
        merged: dict[str, Any],
        sent: dict[str, Any],
        current: dict[str, Any] | None,
        admin: bool,
    ) -> dict[str, Any]:
        return credentials.prepare(merged, sent, current, admin, self.scheme.new_secret)

    def shown_credentials(self, creds: dict[str, Any]) -> dict[str, Any]:
        return credentials.shown(creds, datetime.now(UTC))

    def format(self, event: Event, destination: Destination) -> Record:
        return fmt.record(event, destination, self.style)

    async def send(self, record: Record, destination: Destination) -> Result:
        headers = dict(record.headers)
        name = self.style.name("signature")
        keys = credentials.signing_keys(destination.credentials, datetime.now(UTC))
        if name and keys:  # the signature header wins over a custom header of its name
            headers = {k: v for k, v in record.headers if k.lower() != name.lower()}
            headers[name] = self.scheme.sign(keys, record.signed)
        answer = await self.sender.post(record.url, record.data, headers)
        return answer.response()

    def classify(self, exc: BaseException) -> Failure:
        return errors.classify(exc)

    async def close(self) -> None:
        await self.sender.close()
