"""EventBridge destination config and credentials (Outpost's `aws_eventbridge`): the
models create/update check and the form `GET /destination-types` shows. The entries'
Source is the deployment's (DESTINATIONS_AWS_EVENTBRIDGE_SOURCE), not a field."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from outpost.destinations.aws import fields
from outpost.destinations.base import Schema

TYPE = "aws_eventbridge"
MAX_BATCH_ENTRIES = 10  # PutEvents: at most 10 entries ...
MAX_BATCH_BYTES = 256 * 1024  # ... and 256 KiB in all (also the most one entry may be)
# a bus name (letters, digits, . _ - /) or an event bus ARN
BUS_RE = r"^(arn:aws[\w-]*:events:[a-z0-9-]+:\d{12}:event-bus/)?[\w.\-/]{1,256}$"


class EventBridgeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_bus_name: str | None = None
    region: str
    endpoint: str | None = None
    batching: bool | None = None
    batch_linger_ms: int | None = Field(None, ge=0, le=fields.MAX_BATCH_LINGER_MS)

    _region = field_validator("region")(fields.check_region)
    _endpoint = field_validator("endpoint")(fields.check_endpoint)

    @field_validator("event_bus_name")
    @classmethod
    def _bus(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None  # the account's default bus
        assert v is not None
        if not re.fullmatch(BUS_RE, v):
            raise ValueError("must be an event bus name or ARN (arn:aws:events:...:event-bus/NAME)")
        return v


CONFIG_FIELDS: list[dict[str, Any]] = [
    {
        "key": "event_bus_name",
        "type": "text",
        "label": "Event Bus Name or ARN",
        "description": "The name or ARN of your AWS EventBridge event bus. Leave empty to use "
        "the account's default event bus.",
        "required": False,
        "sensitive": False,
    },
    {
        "key": "region",
        "type": "text",
        "label": "AWS Region",
        "description": "The AWS region where your EventBridge event bus is located",
        "required": True,
        "sensitive": False,
        "pattern": fields.OUTPOST_REGION_PATTERN,
    },
    {
        "key": "endpoint",
        "type": "text",
        "label": "Endpoint",
        "description": "Custom endpoint URL for AWS EventBridge (optional, for testing or VPC "
        "endpoints)",
        "required": False,
        "sensitive": False,
        "pattern": fields.URL_PATTERN,
    },
    *fields.batching_fields("PutEvents"),
]

SCHEMA = Schema(
    type=TYPE,
    label="AWS EventBridge",
    description="Send events to an Amazon EventBridge event bus using a service account to "
    "authenticate.",
    config_model=EventBridgeConfig,
    credentials_model=fields.OptionalCredentials,
    config_fields=CONFIG_FIELDS,
    credential_fields=fields.credential_fields(
        required=False, session="optional, for temporary credentials"
    ),
    icon=fields.packaged(__package__ or "", "icon.svg"),
    instructions=fields.packaged(__package__ or "", "instructions.md"),
)
