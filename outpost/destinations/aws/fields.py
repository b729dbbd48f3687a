"""What the AWS destination types (SQS, S3, EventBridge) accept alike: region, endpoint,
credentials (Outpost's keys, labels and `sensitive` marks), and the opt-in batching knobs
of the types whose service has a batch call."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict

from outpost.destinations.aws.auth import ROLE_FIELDS
from outpost.destinations.base import NonBlank

# Outpost's form pattern; we also accept the partitions it leaves out (us-gov-west-1,
# cn-north-1 is covered), as the Kinesis type does
OUTPOST_REGION_PATTERN = "^[a-z]{2}-[a-z]+-[0-9]+$"
REGION_RE = r"^[a-z]{2,4}(-[a-z]+)+-\d{1,2}$"
URL_PATTERN = r"^https?:\/\/[^\s]+$"
MAX_BATCH_LINGER_MS = 10_000
DEFAULT_BATCH_LINGER_MS = 20


def check_region(value: str) -> str:
    if not re.fullmatch(REGION_RE, value):
        raise ValueError("must be an AWS region such as us-east-1 or us-gov-west-1")
    return value


def check_endpoint(value: str | None) -> str | None:
    """An optional http(s) URL (LocalStack, a VPC endpoint); blank means none."""
    if value in (None, ""):
        return None
    assert value is not None
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError("must be an http(s) URL such as http://localhost:4566")
    return value.rstrip("/")


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: NonBlank
    secret: NonBlank
    session: str | None = None


class OptionalCredentials(BaseModel):
    """EventBridge's: Outpost lets them be empty, and then signs with the empty key (the
    call fails as unauthenticated) rather than falling back to the process's own role."""

    model_config = ConfigDict(extra="forbid")
    key: str | None = None
    secret: str | None = None
    session: str | None = None


def credential_fields(required: bool = True, session: str = "optional") -> list[dict[str, Any]]:
    return [
        {
            "key": "key",
            "type": "text",
            "label": "Access Key ID",
            "description": "AWS Access Key ID",
            "required": required,
            "sensitive": True,
        },
        {
            "key": "secret",
            "type": "text",
            "label": "Secret Access Key",
            "description": "AWS Secret Access Key",
            "required": required,
            "sensitive": True,
        },
        {
            "key": "session",
            "type": "text",
            "label": "Session Token",
            "description": f"AWS Session Token ({session})",
            "required": False,
            "sensitive": True,
        },
        *ROLE_FIELDS,
    ]


def batching_fields(call: str) -> list[dict[str, Any]]:
    """Ours, beyond Outpost: the opt-in batched path (same IAM permission as one send)."""
    return [
        {
            "key": "batching",
            "type": "checkbox",
            "label": f"Batch with {call}",
            "required": False,
            "sensitive": False,
            "description": f"Gather events into {call} calls (up to 10 per call, 256 KiB). "
            "Failed entries are retried alone; each event keeps its own attempt.",
        },
        {
            "key": "batch_linger_ms",
            "type": "text",
            "label": "Batch linger (ms)",
            "required": False,
            "sensitive": False,
            "default": str(DEFAULT_BATCH_LINGER_MS),
            "pattern": "[0-9]{1,4}|10000",
            "description": "How long a batch waits for more events before it is sent "
            f"(default {DEFAULT_BATCH_LINGER_MS}).",
        },
    ]


def credentials_of(creds: dict[str, Any]) -> tuple[str, str, str | None]:
    return str(creds.get("key") or ""), str(creds.get("secret") or ""), creds.get("session")


def packaged(package: str, name: str) -> str:
    """A type's icon.svg or instructions.md, shipped beside its code (package data)."""
    return resources.files(package).joinpath(name).read_text(encoding="utf-8").strip()
