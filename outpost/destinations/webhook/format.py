"""Webhook requests from events. Pure: the same event and destination give the same
request on every attempt (the signature is added at send time: which secrets sign
depends on the clock during a rotation)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from outpost.destinations.http.client import HEADER_TOKEN
from outpost.destinations.webhook.signature import Signed
from outpost.envelope import event_document, record_bytes
from outpost.errors import PermanentError
from outpost.models import Destination, Event


@dataclass(frozen=True)
class Record:
    data: bytes  # the body: the event's data, compact JSON, key order kept
    key: str  # the event id
    url: str
    headers: tuple[tuple[str, str], ...]
    signed: Signed


def _custom(destination: Destination) -> list[tuple[str, str]]:
    compiled = destination.compiled
    if "custom_headers" not in compiled:
        raw = destination.config.get("custom_headers")
        compiled["custom_headers"] = list(orjson.loads(raw).items()) if raw else []
    headers: list[tuple[str, str]] = compiled["custom_headers"]
    return headers


@dataclass(frozen=True)
class Style:
    """How metadata becomes headers: `<prefix><key>`, except the system keys, whose full
    names (None: not sent) the settings give; the timestamp in Unix seconds or RFC 3339."""

    prefix: str = "x-outpost-"
    names: tuple[tuple[str, str | None], ...] = ()  # event-id/signature/timestamp/topic
    rfc3339: bool = False

    def name(self, key: str) -> str | None:
        return dict(self.names).get(key, self.prefix + key)


def record(event: Event, destination: Destination, style: Style) -> Record:
    """Content-Type, the destination's custom headers, then one header per metadata entry
    (event-id, topic, timestamp, the destination's delivery_metadata, the event's
    metadata; later ones win on a name clash, as Outpost sets them). The timestamp is the
    event's time, so a retried request is the same request."""
    doc = event_document(event, destination.delivery_metadata)
    meta: dict[str, str] = dict(doc["metadata"])
    unix = int(meta["timestamp"])
    if style.rfc3339:
        meta["timestamp"] = datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    headers: dict[str, tuple[str, str]] = {"content-type": ("Content-Type", "application/json")}
    for name, value in _custom(destination):
        headers[name.lower()] = (name, value)
    for key, value in meta.items():
        header = style.name(key)
        if header is None:
            continue
        _check(header, value)
        headers[header.lower()] = (header, value)
    body = record_bytes(doc, False)
    signed = Signed(event.id, event.topic, unix, body)
    url = str(destination.config["url"])
    return Record(body, event.id, url, tuple(headers.values()), signed)


def _check(name: str, value: Any) -> None:
    if not HEADER_TOKEN.match(name):
        raise PermanentError(
            "invalid_header", f"metadata key {name!r} cannot be an HTTP header name"
        )
    if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
        raise PermanentError(
            "invalid_header", f"metadata value of {name!r} has a line break or NUL"
        )
