"""Kinesis destination config and credentials: the pydantic models create/update check,
and the form `GET /destination-types` shows."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from outpost.destinations.aws import fields
from outpost.destinations.aws.auth import ROLE_FIELDS
from outpost.destinations.base import Schema
from outpost.destinations.kinesis.partition_key import check_template

TYPE = "aws_kinesis"
MAX_RECORD_BYTES = 1024 * 1024  # a stream's default record limit (MaxRecordSizeInKiB 1024)
# a stream may allow up to 10 MiB (UpdateMaxRecordSize); the limit we hold a record to is
# its stream's, learned from DescribeStreamSummary (`writer.Writer.record_limit`)
ABSOLUTE_MAX_RECORD_BYTES = 10 * 1024 * 1024
MAX_BATCH_RECORDS = 500  # PutRecords: at most 500 records ...
MAX_BATCH_BYTES = 5 * 1024 * 1024  # ... and 5 MiB, partition keys included
DEFAULT_BATCH_LINGER_MS = 50
STREAM_NAME_RE = r"^[a-zA-Z0-9_.-]{1,128}$"
STREAM_ARN_RE = (
    r"^arn:aws[a-z-]*:kinesis:(?P<region>[a-z]{2,4}(-[a-z]+)+-\d{1,2}):(?P<account>\d{12})"
    r":stream/(?P<name>[a-zA-Z0-9_.-]{1,128})$"
)


class KinesisConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stream_name: str
    region: str
    endpoint: str | None = None
    partition_key_template: str | None = None
    metadata_in_payload: bool | None = None
    # opt-in: gather this destination's records into PutRecords calls (needs the
    # kinesis:PutRecords permission); each event still gets its own attempt
    batching: bool | None = None
    batch_max_records: int | None = Field(None, ge=1, le=MAX_BATCH_RECORDS)
    batch_linger_ms: int | None = Field(None, ge=0, le=10_000)
    # opt-in: batched records of a shard put as KPL aggregated records (consumers read them
    # with the KCL or the AWS deaggregation libraries); implies batching
    aggregation: bool | None = None
    # opt-in: records of one partition key arrive in publish order, across retries and
    # worker crashes (delivery/ordered.py); "none" or absent: no order kept
    ordering: Literal["partition_key", "none"] | None = None

    @field_validator("stream_name")
    @classmethod
    def _stream(cls, v: str) -> str:
        if not re.fullmatch(STREAM_NAME_RE, v):
            raise ValueError("must be 1-128 characters of letters, digits, '_', '.' or '-'")
        return v

    _region = field_validator("region")(fields.check_region)
    _endpoint = field_validator("endpoint")(fields.check_endpoint)
    _template = field_validator("partition_key_template")(check_template)


class KinesisArnConfig(KinesisConfig):
    """The stream by ARN (its region and name taken from it; given as well, they must
    agree): calls then name it by StreamARN, so cross-account resource policies work."""

    stream_name: str | None = None  # type: ignore[assignment]
    region: str | None = None  # type: ignore[assignment]
    stream_arn: str

    @field_validator("stream_arn")
    @classmethod
    def _arn(cls, v: str, info: ValidationInfo) -> str:
        found = re.fullmatch(STREAM_ARN_RE, v)
        if not found:
            raise ValueError("must be a stream ARN: arn:aws:kinesis:REGION:ACCOUNT:stream/NAME")
        for key, part in (("region", "region"), ("stream_name", "name")):
            given = info.data.get(key)
            if given is not None and given != found.group(part):
                raise ValueError(
                    f"names {part} {found.group(part)!r} but config.{key} is {given!r}"
                )
        return v

    @model_validator(mode="after")
    def _from_arn(self) -> KinesisArnConfig:
        found = re.fullmatch(STREAM_ARN_RE, self.stream_arn)
        assert found is not None
        self.region, self.stream_name = found.group("region"), found.group("name")
        return self


CONFIG_FIELDS: list[dict[str, Any]] = [
    {
        "key": "stream_name",
        "type": "text",
        "label": "Stream name",
        "required": True,
        "sensitive": False,
        "pattern": STREAM_NAME_RE[1:-1],
        "minlength": 1,
        "maxlength": 128,
        "description": "The Kinesis data stream to put records on.",
    },
    {
        "key": "region",
        "type": "text",
        "label": "Region",
        "required": True,
        "sensitive": False,
        "description": "AWS region of the stream, e.g. us-east-1.",
    },
    {
        "key": "stream_arn",
        "type": "text",
        "label": "Stream ARN",
        "required": False,
        "sensitive": False,
        "pattern": STREAM_ARN_RE[1:-1]
        .replace("?P<region>", "")
        .replace("?P<account>", "")
        .replace("?P<name>", ""),
        "description": "Instead of stream name and region: arn:aws:kinesis:REGION:ACCOUNT:"
        "stream/NAME (needed for a stream in another account than the credentials').",
    },
    {
        "key": "endpoint",
        "type": "text",
        "label": "Endpoint",
        "required": False,
        "sensitive": False,
        "description": "Custom endpoint URL (LocalStack, VPC endpoint).",
    },
    {
        "key": "partition_key_template",
        "type": "text",
        "label": "Partition key template",
        "required": False,
        "sensitive": False,
        "description": "JMESPath over {metadata, data}, e.g. data.customer_id. "
        "Defaults to the event id.",
    },
    {
        "key": "batching",
        "type": "checkbox",
        "label": "Batch with PutRecords",
        "required": False,
        "sensitive": False,
        "description": "Gather records into PutRecords calls (needs kinesis:PutRecords). "
        "Failed records are retried alone; each event keeps its own attempt.",
    },
    {
        "key": "batch_max_records",
        "type": "text",
        "label": "Records per batch",
        "required": False,
        "sensitive": False,
        "default": str(MAX_BATCH_RECORDS),
        "pattern": "[1-9][0-9]{0,1}|[1-4][0-9]{2}|500",
        "description": "At most this many records per PutRecords call (1-500, default 500).",
    },
    {
        "key": "batch_linger_ms",
        "type": "text",
        "label": "Batch linger (ms)",
        "required": False,
        "sensitive": False,
        "default": str(DEFAULT_BATCH_LINGER_MS),
        "pattern": "[0-9]{1,4}|10000",
        "description": "Extra time a batched record may wait for its shard's capacity "
        "or a free call, beside the delivery timeout (default "
        f"{DEFAULT_BATCH_LINGER_MS}). Batches are sent as soon as a call is free.",
    },
    {
        "key": "aggregation",
        "type": "checkbox",
        "label": "KPL aggregation",
        "required": False,
        "sensitive": False,
        "description": "Put a shard's batched records as KPL aggregated records (read "
        "them with the KCL or the AWS deaggregation libraries). Implies batching.",
    },
    {
        "key": "ordering",
        "type": "select",
        "label": "Ordering",
        "required": False,
        "sensitive": False,
        "default": "none",
        "options": [
            {"label": "None", "value": "none"},
            {"label": "Per partition key", "value": "partition_key"},
        ],
        "description": "partition_key: the records of one partition key arrive in "
        "publish order, across retries and worker crashes; a failing record holds only "
        "its key's lane (and the keys sharing it).",
    },
    {
        "key": "metadata_in_payload",
        "type": "checkbox",
        "label": "Metadata in payload",
        "required": False,
        "sensitive": False,
        "description": "Wrap records as {metadata, data}; overrides "
        "DESTINATIONS_AWS_KINESIS_METADATA_IN_PAYLOAD for this destination.",
    },
]
CREDENTIAL_FIELDS: list[dict[str, Any]] = [
    {"key": "key", "type": "text", "label": "Access key ID", "required": True, "sensitive": False},
    {
        "key": "secret",
        "type": "text",
        "label": "Secret access key",
        "required": True,
        "sensitive": True,
    },
    {
        "key": "session",
        "type": "text",
        "label": "Session token",
        "required": False,
        "sensitive": True,
    },
    *ROLE_FIELDS,
]


SCHEMA = Schema(
    type=TYPE,
    label="AWS Kinesis",
    description="Put events on an Amazon Kinesis data stream (kinesis:PutRecord).",
    config_model=KinesisConfig,
    credentials_model=fields.Credentials,
    config_fields=CONFIG_FIELDS,
    credential_fields=CREDENTIAL_FIELDS,
)
