"""S3 destination config and credentials (Outpost's `aws_s3`): the models create/update
check and the form `GET /destination-types` shows."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from outpost.destinations.aws import fields
from outpost.destinations.base import Schema
from outpost.destinations.s3.key import DEFAULT_KEY_TEMPLATE, compile_key_template

TYPE = "aws_s3"
# the S3 API's StorageClass values (Outpost matches them ignoring case; empty: STANDARD)
STORAGE_CLASSES = (
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "OUTPOSTS",
    "GLACIER_IR",
    "SNOW",
    "EXPRESS_ONEZONE",
    "FSX_OPENZFS",
    "FSX_ONTAP",
)
BUCKET_RE = r"^[a-zA-Z0-9._-]{1,255}$"  # today's rules are stricter; older buckets are not


def storage_class(value: str | None) -> str:
    """The canonical StorageClass of a configured one (validated at create)."""
    if not value:
        return "STANDARD"
    return next(c for c in STORAGE_CLASSES if c == value.upper())


class S3Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bucket: str
    region: str
    key_template: str | None = None
    storage_class: str | None = None
    endpoint: str | None = None  # accepted as Outpost's provider does, not in its form

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: str) -> str:
        if not re.fullmatch(BUCKET_RE, v):
            raise ValueError("must be an S3 bucket name (letters, digits, '.', '_', '-')")
        return v

    _region = field_validator("region")(fields.check_region)
    _endpoint = field_validator("endpoint")(fields.check_endpoint)

    @field_validator("key_template")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        assert v is not None
        compile_key_template(v)
        return v

    @field_validator("storage_class")
    @classmethod
    def _storage_class(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        assert v is not None
        if v.upper() not in STORAGE_CLASSES:
            raise ValueError(f"must be one of {', '.join(STORAGE_CLASSES)}")
        return v


CONFIG_FIELDS: list[dict[str, Any]] = [
    {
        "key": "bucket",
        "type": "text",
        "label": "Bucket Name",
        "description": "The name of your AWS S3 bucket",
        "required": True,
        "sensitive": False,
    },
    {
        "key": "region",
        "type": "text",
        "label": "AWS Region",
        "description": "The AWS region where your bucket is located",
        "required": True,
        "sensitive": False,
        "pattern": fields.OUTPOST_REGION_PATTERN,
    },
    {
        "key": "key_template",
        "type": "text",
        "label": "Object Key Template",
        "description": "JMESPath expression for generating S3 object keys. Default: "
        + DEFAULT_KEY_TEMPLATE,
        "required": False,
        "sensitive": False,
        "placeholder": "join('/', [time.year, time.month, time.day, metadata.\"event-id\", "
        "'.json'])",
    },
    {
        "key": "storage_class",
        "type": "text",
        "label": "S3 Storage Class",
        "description": "The storage class for the S3 objects (e.g., STANDARD, "
        "INTELLIGENT_TIERING, GLACIER, etc.)",
        "required": False,
        "sensitive": False,
        "default": "STANDARD",
    },
]

SCHEMA = Schema(
    type=TYPE,
    label="AWS S3",
    description="Store events in an Amazon S3 bucket",
    config_model=S3Config,
    credentials_model=fields.Credentials,
    config_fields=CONFIG_FIELDS,
    credential_fields=fields.credential_fields(),
    icon=fields.packaged(__package__ or "", "icon.svg"),
    instructions=fields.packaged(__package__ or "", "instructions.md"),
)
