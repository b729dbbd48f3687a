"""S3 objects from events, as Outpost's aws_s3 provider writes them: the content is the
event's data as published, the metadata the object's user metadata, the key from the
destination's key template. Pure: the same object on every attempt."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from email.header import Header
from typing import Any

from jmespath.parser import ParsedResult

from outpost.destinations.s3.config import storage_class
from outpost.destinations.s3.key import (
    DEFAULT_KEY_TEMPLATE,
    compile_key_template,
    object_key,
    time_fields,
)
from outpost.envelope import event_document, record_bytes
from outpost.errors import PermanentError
from outpost.models import Destination, Event

CONTENT_TYPE = "application/json"
TOKEN_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # what an HTTP header name may be


@dataclass(frozen=True)
class S3Object:
    data: bytes
    key: str
    metadata: dict[str, str]
    storage_class: str
    checksum_sha256: str  # base64, as S3's x-amz-checksum-sha256
    event_id: str


def template(destination: Destination) -> ParsedResult:
    """Compiled once per destination version (the destination cache keeps it)."""
    compiled = destination.compiled
    if "key_template" not in compiled:
        source = destination.config.get("key_template") or DEFAULT_KEY_TEMPLATE
        compiled["key_template"] = compile_key_template(source)
    return compiled["key_template"]


def s3_object(event: Event, destination: Destination) -> S3Object:
    doc = event_document(event, destination.delivery_metadata)
    scope = {**doc, "time": time_fields(event.time)}
    data = record_bytes(doc, False)
    return S3Object(
        data=data,
        key=object_key(template(destination), scope),
        metadata=user_metadata(doc["metadata"]),
        storage_class=storage_class(destination.config.get("storage_class")),
        checksum_sha256=base64.b64encode(hashlib.sha256(data).digest()).decode(),
        event_id=event.id,
    )


def user_metadata(metadata: dict[str, Any]) -> dict[str, str]:
    """x-amz-meta-* headers: a name must be an HTTP token; a value outside ASCII is
    RFC 2047-encoded (`=?utf-8?q?...?=`), which is how S3 itself stores such values."""
    out = {}
    for name, value in metadata.items():
        if not TOKEN_RE.match(name):
            raise PermanentError(
                "invalid_metadata", f"metadata key {name[:64]!r} cannot be an S3 metadata name"
            )
        text = str(value)
        if not (text.isascii() and text.isprintable()):
            text = Header(text, "utf-8").encode()
        out[name] = text
    return out
