"""Webhook destination config and credentials: the models create/update check, and the
form `GET /destination-types` shows (Outpost's metadata: `url` and `custom_headers`, no
credential fields: the signing secret is generated, never typed into the form)."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import orjson
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from outpost.destinations.base import Schema

TYPE = "webhook"
# Outpost's form pattern for the URL
URL_PATTERN = (
    r"^https?:\/\/[\w\-]+(?:\.[\w\-]+)*(?::\d{1,5})?(?:\/[\w\-\/\.~:%:?#\[\]@!$&'\(\)*+,;=]*)?$"
)
HEADER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$")  # custom headers, as Outpost
RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "connection", "user-agent"})
MAX_URL = 2048
SECRET_KEYS = ("secret", "previous_secret", "previous_secret_invalid_at")


def custom_headers(value: Any) -> dict[str, str]:
    """The headers of `config.custom_headers`: a JSON string of an object (Outpost's
    form) or the object itself. Raises ValueError naming each bad header."""
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise ValueError("must be a JSON object of header names to values") from None
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object of header names to values")
    bad = []
    for name, v in value.items():
        if not HEADER_NAME.match(name):
            bad.append(f"{name!r} is not a valid header name (letters, digits, '-', '_')")
        elif name.lower() in RESERVED_HEADERS:
            bad.append(f"{name!r} is reserved and cannot be set")
        elif not isinstance(v, str) or not v:
            bad.append(f"{name!r} needs a non-empty string value")
        elif any(c in v for c in "\r\n\0"):
            bad.append(f"{name!r} has a line break or NUL in its value")
    if bad:
        raise ValueError("; ".join(bad))
    return value


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str
    custom_headers: str | dict[str, Any] | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parsed = urlparse(v)
        if parsed.scheme not in ("http", "https") or not parsed.hostname or len(v) > MAX_URL:
            raise ValueError("must be an http(s) URL such as https://example.com/webhooks")
        if parsed.username or parsed.password:
            raise ValueError("must not carry a user name or password")
        return v

    @field_validator("custom_headers")
    @classmethod
    def _headers(cls, v: str | dict[str, Any] | None) -> str | None:
        if v is None or v == "":
            return None
        headers = custom_headers(v)
        return orjson.dumps(headers).decode() if headers else None  # stored as Outpost's string


class WebhookCredentials(BaseModel):
    """What `prepare_credentials` leaves: the signing secret, and during a rotation the
    previous one with the time it stops signing."""

    model_config = ConfigDict(extra="forbid")
    secret: str | None = None
    previous_secret: str | None = None
    previous_secret_invalid_at: str | None = None

    @field_validator("previous_secret_invalid_at")
    @classmethod
    def _time(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            parsed = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("must be an RFC 3339 time such as 2024-01-02T00:00:00Z") from None
        if parsed.tzinfo is None:
            raise ValueError("must carry a time zone (e.g. 2024-01-02T00:00:00Z)")
        return v

    @model_validator(mode="after")
    def _together(self) -> WebhookCredentials:
        if (self.previous_secret or self.previous_secret_invalid_at) and not self.secret:
            raise ValueError("secret is required with a previous secret")
        if self.previous_secret and not self.previous_secret_invalid_at:
            raise ValueError("previous_secret_invalid_at is required with previous_secret")
        if self.previous_secret_invalid_at and not self.previous_secret:
            raise ValueError("previous_secret is required with previous_secret_invalid_at")
        return self


CONFIG_FIELDS: list[dict[str, Any]] = [
    {
        "key": "url",
        "type": "text",
        "label": "Webhook URL",
        "description": "The URL to send webhook events to via HTTP POST",
        "required": True,
        "sensitive": False,
        "pattern": URL_PATTERN,
    },
    {
        "key": "custom_headers",
        "type": "key_value_map",
        "label": "Custom Headers",
        "description": "Additional HTTP headers to include with every webhook request",
        "required": False,
        "sensitive": False,
        "key_placeholder": "Header name",
        "value_placeholder": "Header value",
    },
]

SCHEMA = Schema(
    type=TYPE,
    label="Webhook",
    description="Send events as webhooks (HTTP POST).",
    config_model=WebhookConfig,
    credentials_model=WebhookCredentials,
    config_fields=CONFIG_FIELDS,
    credential_fields=[],
    icon=Path(__file__).with_name("icon.svg").read_text().strip(),
    revealed=frozenset(SECRET_KEYS),
)
