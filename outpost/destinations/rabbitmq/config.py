"""RabbitMQ destination config and credentials: Outpost's fields (`server_url`, `exchange`,
`tls`; `username`, `password`), the pydantic models create/update check, and the form
`GET /destination-types` shows."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from pamqp import constants
from pydantic import BaseModel, ConfigDict, field_validator
from yarl import URL

from outpost.destinations.base import NonBlank, Schema

TYPE = "rabbitmq"
EXCHANGE_NAME = constants.DOMAIN_REGEX["exchange-name"]  # pamqp's rule for basic.publish
MAX_EXCHANGE = 127  # and its length limit
TLS_VALUES = {"true": "true", "on": "true", "false": "false"}  # Outpost stores "on" as "true"


class RabbitMQConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    server_url: str
    exchange: str = ""  # "" is the default exchange; stored so the SDKs find it (required there)
    tls: str = "false"
    # beyond Outpost, opt-in: this destination's deliveries take the worker's batched path
    # (many more publishes in flight, their confirms pipelined on one channel)
    batching: bool | None = None

    @field_validator("server_url")
    @classmethod
    def _server(cls, v: str) -> str:
        check_server_url(v)
        return v

    @field_validator("exchange")
    @classmethod
    def _exchange(cls, v: str) -> str:
        # what our AMQP client (pamqp) lets basic.publish name: checked here so such a
        # destination is refused at create instead of failing every send
        if len(v) > MAX_EXCHANGE or not EXCHANGE_NAME.fullmatch(v):
            raise ValueError(
                f"must be at most {MAX_EXCHANGE} characters of letters, digits, spaces "
                "and - _ . : @ # , / +"
            )
        return v

    @field_validator("tls", mode="before")
    @classmethod
    def _tls(cls, v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str) and v in TLS_VALUES:
            return TLS_VALUES[v]
        raise ValueError('must be "true" or "false"')


class RabbitMQCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: NonBlank
    password: NonBlank


def check_server_url(value: str) -> URL:
    """`host[:port]` (optionally `/vhost`), as Outpost takes it: it becomes
    `amqp[s]://user:pass@<server_url>`. Raises ValueError saying what is wrong."""
    if not value or re.search(r"\s", value):
        raise ValueError("must be a host and port such as rabbitmq.example.com:5672")
    if "://" in value:
        raise ValueError("must be host:port without a scheme (tls chooses amqps)")
    if "@" in value.split("/", 1)[0]:
        raise ValueError("must not carry credentials (they go in credentials)")
    try:
        url = URL(f"amqp://{value}")
        port = url.port
    except ValueError:
        raise ValueError("must be a host and port such as rabbitmq.example.com:5672") from None
    if not url.host or (port is not None and not 0 < port < 65536):
        raise ValueError("must be a host and port such as rabbitmq.example.com:5672")
    return url


def scheme(config: dict[str, Any]) -> str:
    return "amqps" if config.get("tls") == "true" else "amqp"


def endpoint(config: dict[str, Any]) -> str:
    """The broker's address without credentials: what the SSRF guard checks."""
    return f"{scheme(config)}://{config['server_url']}"


def amqp_url(config: dict[str, Any], credentials: dict[str, Any]) -> str:
    """Outpost's URL (`amqp[s]://user:pass@server_url`), the user and password quoted so
    any character in them works."""
    user = quote(credentials["username"], safe="")
    password = quote(credentials["password"], safe="")
    return f"{scheme(config)}://{user}:{password}@{config['server_url']}"


CONFIG_FIELDS: list[dict[str, Any]] = [
    {
        "key": "server_url",
        "type": "text",
        "label": "Server URL",
        "description": "The RabbitMQ server URL (e.g., myrabbitmq.com:5672)",
        "required": True,
        "sensitive": False,
        "pattern": r"^[^\s]+$",
    },
    {
        "key": "exchange",
        "type": "text",
        "label": "Exchange",
        "description": "The RabbitMQ exchange to publish messages to",
        "required": False,
        "sensitive": False,
    },
    {
        "key": "tls",
        "type": "checkbox",
        "label": "TLS",
        "description": "Enable TLS for the connection",
        "required": False,
        "sensitive": False,
        "default": "on",
    },
    {
        "key": "batching",
        "type": "checkbox",
        "label": "Pipeline confirms",
        "description": "Hold many more publishes in flight at once, their publisher "
        "confirms pipelined; each event still gets its own attempt.",
        "required": False,
        "sensitive": False,
    },
]
CREDENTIAL_FIELDS: list[dict[str, Any]] = [
    {
        "key": "username",
        "type": "text",
        "label": "Username",
        "description": "RabbitMQ username",
        "required": True,
        "sensitive": False,
    },
    {
        "key": "password",
        "type": "text",
        "label": "Password",
        "description": "RabbitMQ password",
        "required": True,
        "sensitive": True,
    },
]

# Outpost's icon for the type (its provider metadata)
ICON = (
    '<svg width="20" height="20" viewBox="0 0 20 20" fill="none" '
    'xmlns="http://www.w3.org/2000/svg"><rect width="20" height="20" rx="4" fill="#FF6600" />'
    '<path d="M15.505 9.07694H11.5164C11.4203 9.0769 11.3281 9.03869 11.2601 8.97072C11.1921 '
    "8.90274 11.1539 8.81055 11.1538 8.71441V4.55753C11.1538 4.2497 10.9042 4 10.5965 4H9.1727C"
    "8.86483 4 8.61536 4.2497 8.61536 4.55753V8.68923C8.61536 8.90359 8.44206 9.07783 8.2277 "
    "9.07877L6.92059 9.085C6.70441 9.08617 6.52877 8.91077 6.52919 8.69477L6.5373 4.55847C6.538 "
    "4.25017 6.2883 4 5.98 4H4.55734C4.24942 4 4 4.2497 4 4.55753V16.1973C4 16.4708 4.22153 "
    "16.6923 4.49477 16.6923H15.505C15.7785 16.6923 16 16.4708 16 16.1973V9.57194C16 9.29847 "
    "15.7785 9.07694 15.505 9.07694ZM13.6346 13.4472C13.6346 13.8056 13.3441 14.0962 12.9857 "
    "14.0962H11.8605C11.5021 14.0962 11.2115 13.8056 11.2115 13.4472V12.322C11.2115 11.9636 "
    "11.5021 11.6731 11.8605 11.6731H12.9857C13.3441 11.6731 13.6346 11.9636 13.6346 12.322V"
    '13.4472Z" fill="white"/></svg>'
)
INSTRUCTIONS = """# RabbitMQ Configuration Instructions

RabbitMQ is a message broker that implements the Advanced Message Queuing Protocol (AMQP).
Each event is published to the exchange you name, with the event's topic as its routing
key, and is delivered once the broker confirms it (publisher confirms).

## How to configure RabbitMQ as an event destination

Provide:

- A **Server URL**: the host and port, such as `rabbitmq.example.com:5672` (append
  `/vhost` for a virtual host other than `/`)
- A **Username** and a **Password** (the user needs `write` permission on the exchange)

**Exchange** is optional. If not provided, the default exchange is used: the topic is then
the name of the queue the message goes to. Turn on **TLS** to connect with `amqps`.

The message body is the event's `data` as JSON (`content_type: application/json`); its
headers carry `event-id`, `topic`, `timestamp` and the event's metadata.
"""

SCHEMA = Schema(
    type=TYPE,
    label="RabbitMQ",
    description="Send events your RabbitMQ instance by provide a server url, exchange and "
    "credentials.",
    config_model=RabbitMQConfig,
    credentials_model=RabbitMQCredentials,
    config_fields=CONFIG_FIELDS,
    credential_fields=CREDENTIAL_FIELDS,
    icon=ICON,
    instructions=INSTRUCTIONS,
)
