"""SQS destination config and credentials (Outpost's `aws_sqs`): the models create/update
check and the form `GET /destination-types` shows."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, field_validator

from outpost.destinations.aws import fields
from outpost.destinations.base import Schema

TYPE = "aws_sqs"
MAX_BATCH_ENTRIES = 10  # SendMessageBatch: at most 10 messages ...
MAX_BATCH_BYTES = 256 * 1024  # ... and 256 KiB in all
MAX_MESSAGE_BYTES = 1024 * 1024  # one message, body and attributes (SQS's limit since 2025)
DEFAULT_REGION = "us-east-1"
# sqs.<region>.amazonaws.com, <region>.queue.amazonaws.com (legacy), China's .com.cn and the
# dual-stack sqs.<region>.api.aws: the region comes from the host, as Outpost takes it
AWS_HOST_RE = re.compile(
    r"^(?:sqs\.(?P<r1>[a-z0-9-]+)\.(?:amazonaws\.com(?:\.cn)?|api\.aws)"
    r"|(?P<r2>[a-z0-9-]+)\.queue\.amazonaws\.com(?:\.cn)?)$"
)


def aws_region(queue_url: str) -> str | None:
    """The region an AWS queue URL names; None for any other host."""
    found = AWS_HOST_RE.match(urlparse(queue_url).hostname or "")
    return (found.group("r1") or found.group("r2")) if found else None


class SQSConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    queue_url: str
    endpoint: str | None = None
    batching: bool | None = None
    batch_linger_ms: int | None = Field(None, ge=0, le=fields.MAX_BATCH_LINGER_MS)

    @field_validator("queue_url")
    @classmethod
    def _queue_url(cls, v: str) -> str:
        parsed = urlparse(v)
        if not re.fullmatch(fields.URL_PATTERN, v) or not parsed.hostname:
            raise ValueError(
                "must be an http(s) URL such as "
                "https://sqs.us-east-1.amazonaws.com/123456789012/my-queue"
            )
        return v

    _endpoint = field_validator("endpoint")(fields.check_endpoint)


CONFIG_FIELDS: list[dict[str, Any]] = [
    {
        "key": "queue_url",
        "type": "text",
        "label": "Queue URL",
        "description": "The URL of your AWS SQS queue",
        "required": True,
        "sensitive": False,
        "pattern": fields.URL_PATTERN,
    },
    *fields.batching_fields("SendMessageBatch"),
]

SCHEMA = Schema(
    type=TYPE,
    label="AWS SQS",
    description="Send events to a Amazon SQS endpoint of your choice using a service "
    "account to authenticate.",
    config_model=SQSConfig,
    credentials_model=fields.Credentials,
    config_fields=CONFIG_FIELDS,
    credential_fields=fields.credential_fields(),
    icon=fields.packaged(__package__ or "", "icon.svg"),
    instructions=fields.packaged(__package__ or "", "instructions.md"),
)
