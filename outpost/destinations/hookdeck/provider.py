"""The Hookdeck destination type, as Outpost's: a Hookdeck source token (base64 of
`<source id>:<key>`) is the whole configuration. Each event is POSTed to the source's
URL (`DESTINATIONS_HOOKDECK_URL`/<source id>, https://hkdk.events by default) with
`X-Hookdeck-Signature: v0=<base64 HMAC-SHA256 of the body, keyed by the token>` and the
metadata as `X-Outpost-<key>` headers. Sending and failures are the webhook's HTTP
plumbing (`http.client`, `http.errors`). No batch call: `batching()` stays False."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict, field_validator

from outpost.destinations.base import DestinationType, Failure, NonBlank, Result, Schema
from outpost.destinations.endpoints import EndpointPolicy
from outpost.destinations.http import errors
from outpost.destinations.http.client import HEADER_TOKEN, HTTPStatusError, Sender
from outpost.envelope import event_document, record_bytes
from outpost.errors import PermanentError, ValidationFailed
from outpost.models import Destination, Event

TYPE = "hookdeck"
DEFAULT_URL = "https://hkdk.events"
DEFAULT_API_URL = "https://api.hookdeck.com"
VERIFY_PATH = "/2025-01-01/sources/{id}/managed/verify"
SOURCE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def source_id(token: str) -> str:
    """The source id a token names; ValueError when it is not a Hookdeck token."""
    try:
        decoded = base64.b64decode(token, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("is not a Hookdeck token (base64 of '<source id>:<key>')") from None
    ident, sep, key = decoded.partition(":")
    if not sep or not key or not SOURCE_ID.match(ident):
        raise ValueError("is not a Hookdeck token (base64 of '<source id>:<key>')")
    return ident


class HookdeckConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None  # the source's name (Outpost keeps it here, hidden)


class HookdeckCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: NonBlank

    @field_validator("token")
    @classmethod
    def _token(cls, v: str) -> str:
        source_id(v)
        return v


SCHEMA = Schema(
    type=TYPE,
    label="Hookdeck",
    description="Send events to Hookdeck Event Gateway.",
    config_model=HookdeckConfig,
    credentials_model=HookdeckCredentials,
    config_fields=[],
    credential_fields=[
        {
            "key": "token",
            "type": "text",
            "label": "Hookdeck Token",
            "description": "The Hookdeck authentication token",
            "required": True,
            "sensitive": True,
        }
    ],
    icon=Path(__file__).with_name("icon.svg").read_text().strip(),
    instructions=(
        "Generate a source token in the Hookdeck dashboard (Connect) and paste it here. "
        "Each event is sent to that source, signed with the token "
        "(`X-Hookdeck-Signature`)."
    ),
    setup_link={"href": "https://dashboard.hookdeck.com/connect", "cta": "Generate Hookdeck Token"},
)


@dataclass(frozen=True)
class Record:
    data: bytes
    key: str  # the event id
    headers: tuple[tuple[str, str], ...]


class HookdeckProvider(DestinationType):
    schema = SCHEMA

    def __init__(
        self,
        url: str = DEFAULT_URL,
        timeout: float = 5.0,
        max_connections: int = 64,
        max_response_bytes: int = 4096,
        api_url: str = DEFAULT_API_URL,
        connect_timeout: float | None = None,
    ):
        self.url = url.rstrip("/")
        self.api_url = api_url.rstrip("/")
        # the URL is the operator's (the token only names a source on it): not guarded
        policy = EndpointPolicy(allow_private=True)
        self.sender = Sender(policy, timeout, max_connections, max_response_bytes, connect_timeout)

    def target(self, config: dict[str, Any]) -> str:
        return "Hookdeck" + (f" source: {config['name']}" if config.get("name") else "")

    async def verify(self, dest: Destination, previous: Destination | None) -> Destination:
        """As Outpost at create and when the token changes: Hookdeck confirms the token
        (`GET /2025-01-01/sources/<id>/managed/verify`) and names its source, kept as
        `config.name`. A refused or unreachable verification is 422 on the token."""
        token = str(dest.credentials["token"])
        if previous is not None and previous.credentials.get("token") == token:
            return dest
        url = self.api_url + VERIFY_PATH.format(id=source_id(token))
        try:
            found = await self.sender.get_json(url, {"X-Hookdeck-Source-Token": token})
        except (HTTPStatusError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            why = errors.classify(exc).message
            raise ValidationFailed(
                [f"credentials.token: Hookdeck did not verify it ({why})"]
            ) from None
        name = found.get("name") if isinstance(found, dict) else None
        if isinstance(name, str) and name:
            dest.config = {**dest.config, "name": name}
        return dest

    def format(self, event: Event, destination: Destination) -> Record:
        doc = event_document(event, destination.delivery_metadata)
        for key, value in doc["metadata"].items():
            if any(c in value for c in "\r\n\0") or not HEADER_TOKEN.match(key):
                raise PermanentError("invalid_header", f"metadata {key!r} cannot be a header")
        headers = [("Content-Type", "application/json")]
        headers += [(f"X-Outpost-{k}", v) for k, v in doc["metadata"].items()]
        return Record(record_bytes(doc, False), event.id, tuple(headers))

    async def send(self, record: Record, destination: Destination) -> Result:
        token = str(destination.credentials["token"])
        mac = hmac.new(token.encode(), record.data, hashlib.sha256).digest()
        headers = dict(record.headers)
        headers["X-Hookdeck-Signature"] = "v0=" + base64.b64encode(mac).decode()
        url = f"{self.url}/{source_id(token)}"
        return (await self.sender.post(url, record.data, headers)).response()

    def classify(self, exc: BaseException) -> Failure:
        return errors.classify(exc)

    async def close(self) -> None:
        await self.sender.close()
