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
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from pydantic import BaseModel, ConfigDict, Field, field_validator

from outpost.destinations.aws import sigv4
from outpost.destinations.kinesis.partition_key import compile_template, partition_key
from outpost.envelope import build_document, build_metadata, record_bytes
from outpost.errors import PermanentError, RetryableError
from outpost.models import Destination, Event

TYPE = "aws_kinesis"
MAX_RECORD_BYTES = 1024 * 1024
MAX_BATCH_RECORDS = 500  # PutRecords: at most 500 records ...
MAX_BATCH_BYTES = 5 * 1024 * 1024  # ... and 5 MiB, partition keys included
DEFAULT_BATCH_LINGER_MS = 50
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
    # opt-in: gather this destination's records into PutRecords calls (needs the
    # kinesis:PutRecords permission); each event still gets its own attempt
    batching: bool | None = None
    batch_max_records: int | None = Field(None, ge=1, le=MAX_BATCH_RECORDS)
    batch_linger_ms: int | None = Field(None, ge=0, le=10_000)

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
        "description": "How long a batch waits for more records before it is sent "
        f"(default {DEFAULT_BATCH_LINGER_MS}).",
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
        self._batches = Batcher(self._http)
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
    def batching(self, destination: Destination) -> bool:
        return bool(destination.config.get("batching"))

    async def send(self, record: Record, destination: Destination) -> dict[str, Any]:
        """PutRecord, signed with botocore's SigV4 and sent on the shared session; with
        `config.batching`, the record joins its stream's next PutRecords call."""
        if destination.config.get("batching"):
            return await (await self.submit(record, destination))
        return await self._put_record(record, destination)

    async def submit(self, record: Record, destination: Destination) -> Awaitable[dict[str, Any]]:
        """With `config.batching` the record joins its batch now (a future); otherwise the
        PutRecord call, to be awaited."""
        cfg = destination.config
        if not cfg.get("batching"):
            return self.send(record, destination)
        target = await self._target(destination)
        linger_ms = cfg.get("batch_linger_ms")
        if linger_ms is None:
            linger_ms = DEFAULT_BATCH_LINGER_MS
        max_records = cfg.get("batch_max_records") or MAX_BATCH_RECORDS
        return self._batches.add(target, cfg["stream_name"], record, max_records, linger_ms / 1000)

    async def _put_record(self, record: Record, destination: Destination) -> dict[str, Any]:
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
        await self._batches.close()
        await self._http.close()


@dataclass
class _Batch:
    target: sigv4.Target
    stream: str
    linger: float
    records: list[Record] = field(default_factory=list)
    waiters: list[asyncio.Future[dict[str, Any]]] = field(default_factory=list)
    size: int = 0
    timer: asyncio.TimerHandle | None = None


class Batcher:
    """Gathers records bound for one stream (same endpoint and credentials) into PutRecords
    calls: a batch is sent when it has `max_records`, when the next record would take it
    past 5 MiB, or `linger` seconds after its first record. Every record's sender waits
    for its own result: shard and sequence number, or the error of its record alone."""

    def __init__(self, http: sigv4.KinesisHTTP):
        self._http = http
        self._open: dict[tuple[int, str], _Batch] = {}
        self._sending: set[asyncio.Task[None]] = set()

    def add(
        self, target: sigv4.Target, stream: str, record: Record, max_records: int, linger: float
    ) -> asyncio.Future[dict[str, Any]]:
        key = (id(target), stream)
        size = len(record.data) + len(record.partition_key.encode())
        batch = self._open.get(key)
        if batch is not None and batch.size + size > MAX_BATCH_BYTES:
            self._flush(key)
            batch = None
        if batch is None:
            batch = self._open[key] = _Batch(target, stream, linger)
            loop = asyncio.get_running_loop()
            batch.timer = loop.call_later(linger, self._flush, key)
        done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        batch.records.append(record)
        batch.waiters.append(done)
        batch.size += size
        if len(batch.records) >= max_records:
            self._flush(key)
        return done

    def _flush(self, key: tuple[int, str]) -> None:
        batch = self._open.pop(key, None)
        if batch is None:
            return
        if batch.timer is not None:
            batch.timer.cancel()
        task = asyncio.create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: _Batch) -> None:
        body = sigv4.put_records_body(
            batch.stream, [(r.data, r.partition_key) for r in batch.records]
        )
        try:
            resp = await self._http.call(batch.target, "PutRecords", body)
            results = resp.get("Records")
            if not isinstance(results, list) or len(results) != len(batch.records):
                raise RetryableError(
                    "server_error",
                    f"PutRecords answered {len(results or [])} results "
                    f"for {len(batch.records)} records",
                )
        except Exception as exc:
            failure = exc if isinstance(exc, RetryableError) else translate(exc)
            for waiter in batch.waiters:
                if not waiter.done():
                    waiter.set_exception(failure)
            return
        n = len(batch.records)
        for record, waiter, result in zip(batch.records, batch.waiters, results, strict=True):
            if waiter.done():
                continue
            if result.get("ErrorCode"):
                waiter.set_exception(record_error(result))
            else:
                waiter.set_result(
                    {
                        "shard_id": result.get("ShardId"),
                        "sequence_number": result.get("SequenceNumber"),
                        "partition_key": record.partition_key,
                        "batch_size": n,
                    }
                )

    async def close(self) -> None:
        for key in list(self._open):
            self._flush(key)
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)


def record_error(result: dict[str, Any]) -> RetryableError:
    """One record of a PutRecords call failed (throttled, internal or KMS failure): only
    it is retried."""
    code = str(result.get("ErrorCode"))
    label = _RETRYABLE_CODES.get(code, "request_failed")
    message = str(result.get("ErrorMessage") or code)
    return RetryableError(label, message, {"error_code": code, "status": 200})


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
