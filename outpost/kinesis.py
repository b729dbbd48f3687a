"""The AWS Kinesis destination: validate, format (pure), send (PutRecord; `sigv4` signs and
sends it without the per-call client machinery).

botocore's exceptions are translated into `RetryableError`/`PermanentError` here and
nowhere else.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from pydantic import BaseModel, ConfigDict, field_validator

from outpost import sigv4
from outpost.envelope import build_document, build_metadata, record_bytes
from outpost.errors import PermanentError, RetryableError
from outpost.models import Destination, Event
from outpost.partition import compile_template, partition_key

TYPE = "aws_kinesis"
MAX_RECORD_BYTES = 1024 * 1024
STREAM_NAME_RE = r"^[a-zA-Z0-9_.-]{1,128}$"
REGION_RE = r"^[a-z]{2,4}(-[a-z]+)+-\d{1,2}$"
CLIENT_CACHE_SIZE = 256

_RETRYABLE_CODES = {
    "ResourceNotFoundException": "stream_not_found",
    "ResourceInUseException": "stream_not_ready",
    "ProvisionedThroughputExceededException": "throughput_exceeded",
    "ThrottlingException": "throughput_exceeded",
    "LimitExceededException": "throughput_exceeded",
    "AccessDeniedException": "access_denied",
    "AccessDenied": "access_denied",
    "UnrecognizedClientException": "access_denied",
    "InvalidSignatureException": "access_denied",
    "SignatureDoesNotMatch": "access_denied",
    "ExpiredTokenException": "access_denied",
    "InvalidClientTokenId": "access_denied",
    "KMSThrottlingException": "throughput_exceeded",
    "KMSAccessDeniedException": "access_denied",
    "KMSDisabledException": "kms_error",
    "KMSNotFoundException": "kms_error",
    "KMSInvalidStateException": "kms_error",
    "KMSOptInRequired": "kms_error",
    "InternalFailure": "server_error",
    "ServiceUnavailable": "server_error",
}
_PERMANENT_CODES = {
    "ValidationException": "validation_error",
    "InvalidArgumentException": "validation_error",
    "SerializationException": "validation_error",
}


class KinesisConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stream_name: str
    region: str
    endpoint: str | None = None
    partition_key_template: str | None = None
    metadata_in_payload: bool | None = None

    @field_validator("stream_name")
    @classmethod
    def _stream(cls, v: str) -> str:
        if not re.fullmatch(STREAM_NAME_RE, v):
            raise ValueError("must be 1-128 characters of letters, digits, '_', '.' or '-'")
        return v

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        if not re.fullmatch(REGION_RE, v):
            raise ValueError("must be an AWS region such as us-east-1 or us-gov-west-1")
        return v

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        parsed = urlparse(v)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError("must be an http(s) URL such as http://localhost:4566")
        return v.rstrip("/")

    @field_validator("partition_key_template")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        compile_template(v)
        return v


class KinesisCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str
    secret: str
    session: str | None = None

    @field_validator("key", "secret")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v


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
]


@dataclass(frozen=True)
class Record:
    data: bytes
    partition_key: str


class KinesisProvider:
    type = TYPE
    label = "AWS Kinesis"
    description = "Put events on an Amazon Kinesis data stream (kinesis:PutRecord)."
    config_model = KinesisConfig
    credentials_model = KinesisCredentials
    config_fields = CONFIG_FIELDS
    credential_fields = CREDENTIAL_FIELDS
    sensitive = ("secret", "session")

    def __init__(
        self, metadata_in_payload: bool = True, timeout: float = 5.0, max_connections: int = 64
    ):
        self.metadata_in_payload = metadata_in_payload
        self.timeout = timeout
        self.max_connections = max_connections
        self._http = sigv4.KinesisHTTP(timeout, max_connections)
        self._targets: OrderedDict[str, sigv4.Target] = OrderedDict()
        self._endpoints: dict[tuple[str, str], str] = {}

    # -- pure -------------------------------------------------------------------------
    def prepare(self, destination: Destination) -> None:
        """Compile what format() needs once per destination version."""
        template = destination.config.get("partition_key_template")
        destination.compiled["template"] = compile_template(template) if template else None

    def _template(self, destination: Destination) -> Any:
        """The compiled partition-key template (None: the event id), compiled once."""
        if "template" not in destination.compiled:
            self.prepare(destination)
        return destination.compiled["template"]

    def target(self, config: dict[str, Any]) -> str:
        return str(config.get("stream_name", ""))

    def target_url(self, config: dict[str, Any]) -> str | None:
        region, stream = config.get("region"), config.get("stream_name")
        return (
            f"https://{region}.console.aws.amazon.com/kinesis/home?region={region}"
            f"#/streams/details/{stream}/details"
        )

    def document(self, event: Event, destination: Destination) -> dict[str, Any]:
        meta = build_metadata(
            event.id,
            event.topic,
            int(event.time.timestamp()),
            event.metadata,
            destination.delivery_metadata,
        )
        return build_document(meta, event.data)

    def ordering_key(self, event: Event, destination: Destination) -> str:
        """The partition key alone (publish picks the task's stream with it); the record is
        serialized once, at send time."""
        template = self._template(destination)
        if template is None:
            return event.id
        try:
            return partition_key(template, self.document(event, destination), event.id)
        except PermanentError:
            return event.id  # the send will fail permanently and say why

    def format(self, event: Event, destination: Destination) -> Record:
        doc = self.document(event, destination)
        key = partition_key(self._template(destination), doc, event.id)
        wrap = destination.config.get("metadata_in_payload")
        data = record_bytes(doc, self.metadata_in_payload if wrap is None else wrap)
        size = len(data) + len(key.encode())
        if size > MAX_RECORD_BYTES:
            raise PermanentError(
                "record_too_large",
                f"record is {size} bytes with its partition key; Kinesis allows 1 MiB",
            )
        return Record(data, key)

    # -- I/O --------------------------------------------------------------------------
    async def send(self, record: Record, destination: Destination) -> dict[str, Any]:
        """PutRecord, signed with botocore's SigV4 and sent on the shared session."""
        target = await self._target(destination)
        body = sigv4.put_record_body(
            destination.config["stream_name"], record.data, record.partition_key
        )
        try:
            resp = await self._http.call(target, "PutRecord", body)
        except Exception as exc:
            raise translate(exc) from exc
        return {
            "shard_id": resp.get("ShardId"),
            "sequence_number": resp.get("SequenceNumber"),
            "partition_key": record.partition_key,
        }

    async def _target(self, destination: Destination) -> sigv4.Target:
        """Endpoint URL and signer per (region, endpoint, credentials), LRU-cached."""
        cfg, creds = destination.config, destination.credentials
        ident = "\0".join(
            [
                cfg["region"],
                cfg.get("endpoint") or "",
                creds["key"],
                creds["secret"],
                creds.get("session") or "",
            ]
        )
        cache_key = hashlib.sha256(ident.encode()).hexdigest()
        hit = self._targets.get(cache_key)
        if hit is not None:
            self._targets.move_to_end(cache_key)
            return hit
        where = (cfg["region"], cfg.get("endpoint") or "")
        url = self._endpoints.get(where)
        if url is None:
            try:
                url = await sigv4.resolve_endpoint(cfg["region"], cfg.get("endpoint"))
            except Exception as exc:
                raise translate(exc) from exc
            self._endpoints[where] = url
        target = sigv4.target(
            url, cfg["region"], creds["key"], creds["secret"], creds.get("session") or None
        )
        self._targets[cache_key] = target
        while len(self._targets) > CLIENT_CACHE_SIZE:
            self._targets.popitem(last=False)
        return target

    async def close(self) -> None:
        self._targets.clear()
        await self._http.close()


def translate(exc: BaseException) -> RetryableError | PermanentError:
    """botocore/aiohttp/asyncio failures → what happens next."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code", "")
        message = err.get("Message", "") or str(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        response = {"error_code": code, "status": status}
        if code in _PERMANENT_CODES:
            return PermanentError(_PERMANENT_CODES[code], message, response)
        label = _RETRYABLE_CODES.get(code)
        if label is None:
            label = "server_error" if status >= 500 or status == 0 else "request_failed"
        return RetryableError(label, message, response)
    if isinstance(exc, asyncio.TimeoutError | ReadTimeoutError | ConnectTimeoutError):
        return RetryableError("timeout", "no answer within DELIVERY_TIMEOUT_SECONDS")
    if isinstance(exc, EndpointConnectionError):
        return RetryableError("request_failed", f"could not connect: {exc}")
    if isinstance(exc, BotoCoreError | OSError):
        return RetryableError("request_failed", str(exc) or type(exc).__name__)
    return RetryableError("request_failed", f"{type(exc).__name__}: {exc}")
