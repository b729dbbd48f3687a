"""GCP Pub/Sub destination config and credentials: Outpost's field names and form
(`project_id`, `topic`, `endpoint`; `service_account_json`), plus our opt-in batching."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, field_validator

from outpost.destinations.base import NonBlank, Schema

TYPE = "gcp_pubsub"
PROJECT_RE = r"^[a-z0-9.:-]{1,100}$"  # ids, and domain-scoped ones (example.com:project)
TOPIC_RE = r"^[A-Za-z][A-Za-z0-9_.~+%-]{2,254}$"  # Pub/Sub's rule for topic ids
MAX_BATCH_RECORDS = 1000  # Pub/Sub: at most 1,000 messages ...
MAX_BATCH_BYTES = 10 * 1000 * 1000  # ... and 10 MB per Publish call
DEFAULT_BATCH_RECORDS = 100
DEFAULT_BATCH_LINGER_MS = 10


class PubSubConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project_id: str
    topic: str
    endpoint: str | None = None
    # beyond Outpost, opt-in: gather this destination's messages into Publish calls
    batching: bool | None = None
    batch_max_records: int | None = Field(None, ge=1, le=MAX_BATCH_RECORDS)
    batch_linger_ms: int | None = Field(None, ge=0, le=10_000)

    @field_validator("project_id")
    @classmethod
    def _project(cls, v: str) -> str:
        if not re.fullmatch(PROJECT_RE, v):
            raise ValueError("must be a GCP project id (lowercase letters, digits, '-')")
        return v

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        if not re.fullmatch(TOPIC_RE, v) or v.lower().startswith("goog"):
            raise ValueError(
                "must be 3-255 characters, start with a letter, of letters, digits and "
                "-_.~+%, and not start with 'goog'"
            )
        return v

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if not endpoint_address(v):
            raise ValueError("must be host:port (an emulator) or an https:// URL")
        return v.rstrip("/")


class PubSubCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service_account_json: NonBlank


def endpoint_address(endpoint: str) -> tuple[str, int, bool] | None:
    """(host, port, tls) of an endpoint: `host:port` is an emulator as in Outpost (plain
    text), `https://host[:port]` a TLS endpoint (a regional or private one)."""
    tls = endpoint.startswith("https://")
    url = urlparse(endpoint if "://" in endpoint else f"grpc://{endpoint}")
    if url.scheme not in ("grpc", "http", "https") or not url.hostname or url.path.strip("/"):
        return None
    try:
        port = url.port or (443 if tls else None)
    except ValueError:
        return None
    if port is None:
        return None
    return url.hostname, port, tls


def service_account_problem(raw: str) -> str | None:
    """Outpost's check, for destinations that reach Google (no endpoint): JSON with a type."""
    try:
        key = json.loads(raw)
    except ValueError:
        return "credentials.service_account_json: must be the service account key's JSON"
    if not isinstance(key, dict) or "type" not in key:
        return 'credentials.service_account_json: must be a key JSON with a "type"'
    return None


CONFIG_FIELDS: list[dict[str, Any]] = [
    {
        "key": "project_id",
        "type": "text",
        "label": "Project ID",
        "description": "The GCP project ID",
        "required": True,
        "sensitive": False,
    },
    {
        "key": "topic",
        "type": "text",
        "label": "Topic",
        "description": "The Pub/Sub topic",
        "required": True,
        "sensitive": False,
    },
    {
        "key": "endpoint",
        "type": "text",
        "label": "Endpoint",
        "description": "Custom endpoint URL (e.g., localhost:8085 for emulator)",
        "required": False,
        "sensitive": False,
    },
    {
        "key": "batching",
        "type": "checkbox",
        "label": "Batch",
        "description": "Gather messages into Publish calls; each event keeps its own attempt.",
        "required": False,
        "sensitive": False,
    },
    {
        "key": "batch_max_records",
        "type": "text",
        "label": "Messages per batch",
        "description": f"At most this many messages per Publish call (1-{MAX_BATCH_RECORDS}, "
        f"default {DEFAULT_BATCH_RECORDS}).",
        "default": str(DEFAULT_BATCH_RECORDS),
        "pattern": "[1-9][0-9]{0,2}|1000",
        "required": False,
        "sensitive": False,
    },
    {
        "key": "batch_linger_ms",
        "type": "text",
        "label": "Batch linger (ms)",
        "description": "How long a batch waits for more messages before it is sent "
        f"(default {DEFAULT_BATCH_LINGER_MS}).",
        "default": str(DEFAULT_BATCH_LINGER_MS),
        "pattern": "[0-9]{1,4}|10000",
        "required": False,
        "sensitive": False,
    },
]
CREDENTIAL_FIELDS: list[dict[str, Any]] = [
    {
        "key": "service_account_json",
        "type": "text",
        "label": "Service Account JSON",
        "description": "Service account key JSON",
        "required": True,
        "sensitive": True,
    },
]

ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
    'width="24px" height="24px" viewBox="0 0 24 24"><defs><style>.cls-1{filter:url(#lumin'
    "osity-noclip);}.cls-2{fill:#669df6;}.cls-3{mask:url(#mask);}.cls-4{fill:#4285f4;}.cls-5"
    '{fill:#aecbfa;}</style><filter id="luminosity-noclip" x="4.64" y="4.19" width="14.73" '
    'height="12.76" filterUnits="userSpaceOnUse" color-interpolation-filters="sRGB"><feFlood '
    'flood-color="#fff" result="bg"/><feBlend in="SourceGraphic" in2="bg"/></filter><mask '
    'id="mask" x="4.64" y="4.19" width="14.73" height="12.76" maskUnits="userSpaceOnUse">'
    '<circle class="cls-1" cx="12" cy="12.23" r="3.58"/></mask></defs><title>Icon_24px_Pub-'
    'Sub_Color</title><g data-name="Product Icons"><circle class="cls-2" cx="18.97" '
    'cy="8.21" r="1.72"/><circle class="cls-2" cx="5.03" cy="8.21" r="1.72"/><circle '
    'class="cls-2" cx="12" cy="20.28" r="1.72"/><g class="cls-3"><rect class="cls-4" '
    'x="14.69" y="10.22" width="1.59" height="8.04" transform="matrix(0.5, -0.87, 0.87, 0.5, '
    '-4.59, 20.53)"/><rect class="cls-4" x="4.49" y="13.45" width="8.04" height="1.59" '
    'transform="translate(-5.98 6.17) rotate(-30)"/><rect class="cls-4" x="11.2" y="4.19" '
    'width="1.59" height="8.04"/></g><circle class="cls-5" cx="12" cy="12.23" r="2.78"/>'
    '<circle class="cls-5" cx="5.03" cy="16.25" r="2.19"/><circle class="cls-5" cx="18.97" '
    'cy="16.25" r="2.19"/><circle class="cls-5" cx="12" cy="4.19" r="2.19"/></g></svg>'
)

INSTRUCTIONS = """# GCP Pub/Sub Configuration Instructions

[Google Cloud Pub/Sub](https://cloud.google.com/pubsub) is a fully managed messaging \
service for sending events between independent applications.

## How to configure GCP Pub/Sub as an event destination using the gcloud CLI

To follow these steps you will need a Google Cloud project and the \
[gcloud CLI](https://cloud.google.com/sdk/docs/install) installed and authenticated.

1. Enable the Pub/Sub API

    ```sh
    gcloud services enable pubsub.googleapis.com --project=PROJECT_ID
    ```

2. Create a topic if one doesn't exist (optional)

    ```sh
    gcloud pubsub topics create TOPIC --project=PROJECT_ID
    ```

3. Give Outpost access to the topic as shown below, then configure your GCP Pub/Sub \
event destination with the Project ID and Topic.

### Service account key

1. Create a service account

    ```sh
    gcloud iam service-accounts create SERVICE_ACCOUNT --project=PROJECT_ID
    ```

2. Allow it to publish to the topic

    ```sh
    gcloud pubsub topics add-iam-policy-binding TOPIC --project=PROJECT_ID \\
      --member="serviceAccount:SERVICE_ACCOUNT@PROJECT_ID.iam.gserviceaccount.com" \\
      --role="roles/pubsub.publisher"
    ```

3. Create a key

    ```sh
    gcloud iam service-accounts keys create key.json \\
      --iam-account="SERVICE_ACCOUNT@PROJECT_ID.iam.gserviceaccount.com"
    ```

4. Paste the contents of `key.json` into Service Account JSON.

Each event is one message: its data is the event's data (JSON), its attributes the \
event's metadata (`event-id`, `topic`, `timestamp`, ...).
"""

SCHEMA = Schema(
    type=TYPE,
    label="GCP Pub/Sub",
    description="Send events to Google Cloud Pub/Sub topics using service account authentication.",
    config_model=PubSubConfig,
    credentials_model=PubSubCredentials,
    config_fields=CONFIG_FIELDS,
    credential_fields=CREDENTIAL_FIELDS,
    icon=ICON,
    instructions=INSTRUCTIONS,
)
