"""Kafka destination config and credentials: Outpost's field names, values and form
(`brokers`, `topic`, `sasl_mechanism`, `tls`, `partition_key_template`; `username`,
`password`), plus our opt-in batching."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from outpost.destinations.base import NonBlank, Schema
from outpost.destinations.kinesis.partition_key import check_template

TYPE = "kafka"
MECHANISMS = ("plain", "scram-sha-256", "scram-sha-512")
TOPIC_RE = r"^[a-zA-Z0-9._-]{1,249}$"  # Kafka's own rule for topic names
HOST_PORT_RE = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$")
DEFAULT_BATCH_LINGER_MS = 5
MAX_BATCH_LINGER_MS = 10_000


def parse_brokers(value: str) -> list[str]:
    """`a:9092, b:9092` -> ["a:9092", "b:9092"] (Outpost trims each, drops empties)."""
    return [b.strip() for b in value.split(",") if b.strip()]


def broker_host(broker: str) -> str:
    return broker.rsplit(":", 1)[0].strip("[]")


class KafkaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    brokers: NonBlank
    topic: str
    sasl_mechanism: Literal["plain", "scram-sha-256", "scram-sha-512"]
    tls: Literal["true", "false"] = "false"
    partition_key_template: str | None = None
    # beyond Outpost, opt-in: the worker hands this destination's records over together
    # and the producer lingers this long to fill a batch (one Produce request per broker)
    batching: bool | None = None
    batch_linger_ms: int | None = Field(None, ge=0, le=MAX_BATCH_LINGER_MS)

    @field_validator("brokers")
    @classmethod
    def _brokers(cls, v: str) -> str:
        brokers = parse_brokers(v)
        for broker in brokers:
            found = HOST_PORT_RE.fullmatch(broker)
            if not found or not 0 < int(found.group(2)) < 65536:
                raise ValueError(f"{broker!r} is not host:port (e.g. broker1:9092)")
        return ",".join(brokers)

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        if not re.fullmatch(TOPIC_RE, v) or v in (".", ".."):
            raise ValueError("must be 1-249 characters of letters, digits, '.', '_' or '-'")
        return v

    @field_validator("tls", mode="before")
    @classmethod
    def _tls(cls, v: Any) -> Any:
        """Outpost stores "on" as "true" and an empty value as "false"."""
        if v is True or v == "on":
            return "true"
        if v is False or v in ("", None):
            return "false"
        return v

    _template = field_validator("partition_key_template")(check_template)


class KafkaCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: NonBlank
    password: NonBlank


CONFIG_FIELDS: list[dict[str, Any]] = [
    {
        "key": "brokers",
        "type": "text",
        "label": "Brokers",
        "description": "Comma-separated list of Kafka broker addresses "
        "(e.g., broker1:9092,broker2:9092)",
        "required": True,
        "sensitive": False,
    },
    {
        "key": "topic",
        "type": "text",
        "label": "Topic",
        "description": "The Kafka topic to publish messages to",
        "required": True,
        "sensitive": False,
    },
    {
        "key": "tls",
        "type": "checkbox",
        "label": "TLS",
        "description": "Enable TLS for the connection",
        "default": "true",
        "required": False,
        "sensitive": False,
    },
    {
        "key": "partition_key_template",
        "type": "text",
        "label": "Partition Key Template",
        "description": "JMESPath template to extract the partition key from the event payload "
        '(e.g., metadata."event-id"). Default is event ID, which is also used as fallback if '
        "template evaluation fails or returns empty.",
        "required": False,
        "sensitive": False,
    },
    {
        "key": "sasl_mechanism",
        "type": "select",
        "label": "SASL Mechanism",
        "description": "SASL authentication mechanism",
        "required": True,
        "sensitive": False,
        "options": [
            {"label": "PLAIN", "value": "plain"},
            {"label": "SCRAM-SHA-256", "value": "scram-sha-256"},
            {"label": "SCRAM-SHA-512", "value": "scram-sha-512"},
        ],
    },
    {
        "key": "batching",
        "type": "checkbox",
        "label": "Batch",
        "description": "Hand records to the producer together; it lingers up to "
        "batch_linger_ms to fill one Produce request. Each event keeps its own attempt.",
        "required": False,
        "sensitive": False,
    },
    {
        "key": "batch_linger_ms",
        "type": "text",
        "label": "Batch linger (ms)",
        "description": "How long the producer waits to fill a batch "
        f"(0-{MAX_BATCH_LINGER_MS}, default {DEFAULT_BATCH_LINGER_MS}).",
        "default": str(DEFAULT_BATCH_LINGER_MS),
        "pattern": "[0-9]{1,4}|10000",
        "required": False,
        "sensitive": False,
    },
]
CREDENTIAL_FIELDS: list[dict[str, Any]] = [
    {
        "key": "username",
        "type": "text",
        "label": "Username",
        "description": "SASL username for authentication",
        "required": True,
        "sensitive": False,
    },
    {
        "key": "password",
        "type": "text",
        "label": "Password",
        "description": "SASL password for authentication",
        "required": True,
        "sensitive": True,
    },
]

ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 128 128"><path d="M86.758 70.89c-4.992 '
    "0-9.465 2.208-12.528 5.68l-7.851-5.547a21.275 21.275 0 001.312-7.32c0-2.531-.46-4.95-1.27-7."
    "203l7.837-5.488c3.062 3.457 7.523 5.652 12.5 5.652 9.207 0 16.703-7.48 16.703-16.672 0-9.195"
    "-7.496-16.672-16.703-16.672-9.211 0-16.707 7.477-16.707 16.672 0 1.645.25 3.23.699 4.735l-7."
    "84 5.488a21.578 21.578 0 00-13.36-7.746v-9.43c7.567-1.586 13.27-8.293 13.27-16.312C62.82 7.5"
    "3 55.324.055 46.117.055c-9.21 0-16.707 7.476-16.707 16.672 0 7.91 5.555 14.539 12.969 16.238"
    "v9.547c-10.117 1.773-17.84 10.59-17.84 21.191 0 10.652 7.797 19.5 17.992 21.211V95c-7.492 1."
    "64-13.12 8.309-13.12 16.273 0 9.196 7.495 16.672 16.706 16.672 9.207 0 16.703-7.476 16.703-1"
    "6.672 0-7.964-5.629-14.632-13.117-16.273V84.914a21.592 21.592 0 0013.133-7.625l7.902 5.586a1"
    "6.45 16.45 0 00-.687 4.688c0 9.195 7.496 16.671 16.707 16.671 9.207 0 16.703-7.476 16.703-16"
    ".671 0-9.196-7.496-16.672-16.703-16.672zm0-38.984c4.465 0 8.097 3.63 8.097 8.086 0 4.453-3.6"
    "32 8.082-8.097 8.082-4.469 0-8.102-3.629-8.102-8.082 0-4.457 3.633-8.086 8.102-8.086zm-48.74"
    "2-15.18c0-4.456 3.632-8.081 8.101-8.081 4.465 0 8.098 3.625 8.098 8.082 0 4.457-3.633 8.082-"
    "8.098 8.082-4.469 0-8.101-3.625-8.101-8.082zm16.199 94.547c0 4.457-3.633 8.082-8.098 8.082-4"
    ".469 0-8.101-3.625-8.101-8.082 0-4.457 3.632-8.082 8.101-8.082 4.465 0 8.098 3.625 8.098 8.0"
    "82zm-8.102-36.296c-6.226 0-11.293-5.059-11.293-11.274 0-6.219 5.067-11.277 11.293-11.277 6.2"
    "3 0 11.297 5.058 11.297 11.277 0 6.215-5.066 11.274-11.297 11.274zm40.645 20.668c-4.469 0-8."
    "102-3.625-8.102-8.082 0-4.458 3.633-8.083 8.102-8.083 4.465 0 8.097 3.625 8.097 8.082 0 4.45"
    '8-3.632 8.083-8.097 8.083zm0 0" fill="currentColor"/></svg>'
)

INSTRUCTIONS = """# Apache Kafka Configuration Instructions

Apache Kafka is a distributed event streaming platform used for building real-time data \
pipelines and streaming applications. It provides:

- High-throughput, low-latency message delivery
- Durable message storage with configurable retention
- Horizontal scalability through partitioning
- Built-in support for SASL authentication and TLS encryption

## How to configure Kafka as an event destination

To configure Kafka as a destination you must provide:

- **Brokers** — A comma-separated list of Kafka broker addresses \
(e.g., `broker1:9092,broker2:9092`)
- **Topic** — The Kafka topic to publish messages to
- **SASL Mechanism** — Authentication mechanism: `plain`, `scram-sha-256`, or \
`scram-sha-512`, with the **Username** and **Password** to authenticate as

### Optional settings

- **TLS** — Enable TLS encryption for the connection.
- **Partition Key Template** — A JMESPath expression to extract the message key from the \
event payload. If not set, the event ID is used as the message key.

Each event is one message: its value is the event's data (JSON), its key the partition \
key, and its headers `content-type: application/json` followed by the event's metadata \
(`event-id`, `topic`, `timestamp`, ...). The producer is idempotent and waits for every \
in-sync replica (`acks=all`).
"""

SCHEMA = Schema(
    type=TYPE,
    label="Apache Kafka",
    description="Send events to Apache Kafka topics for real-time event streaming",
    config_model=KafkaConfig,
    credentials_model=KafkaCredentials,
    config_fields=CONFIG_FIELDS,
    credential_fields=CREDENTIAL_FIELDS,
    icon=ICON,
    instructions=INSTRUCTIONS,
)
