"""Azure Service Bus destination config and credentials: Outpost's fields (`name`, the
queue or topic; `connection_string`), the pydantic models create/update check, and the
form `GET /destination-types` shows."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from outpost.destinations.base import NonBlank

TYPE = "azure_servicebus"
NAME_RE = r"^[a-zA-Z0-9]([a-zA-Z0-9._-]*[a-zA-Z0-9])?$"  # Outpost's pattern
MAX_BATCH_MESSAGES = 100
DEFAULT_BATCH_LINGER_MS = 20


class ServiceBusConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    # beyond Outpost, opt-in: gather this destination's messages into batch sends (one
    # ServiceBusMessageBatch per call, all or nothing); each event keeps its own attempt
    batching: bool | None = None
    batch_max_messages: int | None = Field(None, ge=1, le=MAX_BATCH_MESSAGES)
    batch_linger_ms: int | None = Field(None, ge=0, le=10_000)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if len(v) > 260 or not re.fullmatch(NAME_RE, v):
            raise ValueError(
                "must be a queue or topic name: letters, digits, '.', '_' and '-', "
                "starting and ending with a letter or digit"
            )
        return v


class ServiceBusCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid")
    connection_string: NonBlank

    @field_validator("connection_string")
    @classmethod
    def _connection_string(cls, v: str) -> str:
        try:
            _parse(v)
        except ValueError as exc:  # the SDK's own parser, its own words
            raise ValueError(
                f"is not a Service Bus connection string ({exc}); expected "
                "Endpoint=sb://<namespace>.servicebus.windows.net/;SharedAccessKeyName=...;"
                "SharedAccessKey=..."
            ) from None
        return v


def namespace_endpoint(connection_string: str) -> str:
    """`sb://<namespace host>/`: where the client connects (what the SSRF guard checks)."""
    return str(_parse(connection_string).endpoint)


def _parse(connection_string: str) -> Any:
    """The SDK's own parser: azure-servicebus loads at the type's first use (its first
    create, update or send), not in every process that builds the registry."""
    from azure.servicebus import parse_connection_string

    return parse_connection_string(connection_string)


CONFIG_FIELDS: list[dict[str, Any]] = [
    {
        "key": "name",
        "type": "text",
        "label": "Queue or Topic Name",
        "description": "The name of the Azure Service Bus queue or topic to publish to",
        "required": True,
        "sensitive": False,
        "pattern": NAME_RE,
    },
    {
        "key": "batching",
        "type": "checkbox",
        "label": "Batch sends",
        "description": "Gather messages into batch sends (all or nothing per call); each "
        "event keeps its own attempt.",
        "required": False,
        "sensitive": False,
    },
]
CREDENTIAL_FIELDS: list[dict[str, Any]] = [
    {
        "key": "connection_string",
        "type": "text",
        "label": "Connection String",
        "description": "Azure Service Bus connection string with Send permissions",
        "required": True,
        "sensitive": True,
    },
]
