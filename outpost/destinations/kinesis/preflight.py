"""Kinesis's preflight (`POST .../destinations/{id}/test`): assume the role (if any), the
stream's summary (status ACTIVE, mode, open shards, its maximum record size), ListShards
(a permission the role needs) and a dry write: a sample event formatted as a delivery
would, checked against the stream's record size. Every failing check names its cause."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from outpost.destinations.kinesis.writer import Writer, stream_id
from outpost.errors import DeliveryError
from outpost.models import Destination, Event

DEFAULT_MAX_RECORD_KIB = 1024
ERRORS = (ClientError, BotoCoreError, DeliveryError, OSError, TimeoutError)
# AWS error code -> what it means for this stream, in words
CAUSES = {
    "ResourceNotFoundException": "stream not found in {where}",
    "AccessDeniedException": "the credentials may not call kinesis:{op} on the stream",
    "AccessDenied": "the credentials may not call kinesis:{op} on the stream",
    "UnrecognizedClientException": "the credentials are not valid",
    "InvalidSignatureException": "the credentials are not valid",
    "ExpiredTokenException": "the credentials have expired",
}


def where(destination: Destination) -> str:
    cfg = destination.config
    arn = str(cfg.get("stream_arn") or "")
    account = arn.split(":")[4] if arn else "the credentials' account"
    return f"{cfg['region']}/{account}"


def failed(name: str, op: str, exc: BaseException, destination: Destination) -> dict[str, Any]:
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        cause = CAUSES.get(code, "{op} failed").format(op=op, where=where(destination))
        detail = exc.response.get("Error", {}).get("Message", "")
        return {"name": name, "ok": False, "message": f"{cause} ({code}: {detail})", "code": code}
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return {"name": name, "ok": False, "message": f"{op}: {message}"}


async def call(
    writer: Writer, destination: Destination, op: str, body: dict[str, Any]
) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    target = await writer.target(destination)
    stream = stream_id(destination)
    key = "StreamARN" if stream.startswith("arn:") else "StreamName"
    answer = await writer.http.call(target, op, json.dumps({key: stream, **body}).encode())
    return answer, round((time.perf_counter() - started) * 1000, 1)


async def stream_checks(
    writer: Writer, destination: Destination, sample: Any
) -> list[dict[str, Any]]:
    """DescribeStreamSummary, ListShards, the dry write; `sample(destination)` formats
    the sample event as a delivery would (its bytes)."""
    errors = ERRORS
    try:
        answer, ms = await call(writer, destination, "DescribeStreamSummary", {})
    except errors as exc:
        return [failed("stream", "DescribeStreamSummary", exc, destination)]
    summary = answer.get("StreamDescriptionSummary", {})
    status = summary.get("StreamStatus")
    max_kib = int(summary.get("MaxRecordSizeInKiB") or DEFAULT_MAX_RECORD_KIB)
    checks = [
        {
            "name": "stream",
            "ok": status == "ACTIVE",
            "message": f"stream is {status}"
            + ("" if status == "ACTIVE" else ": records are refused until it is ACTIVE"),
            "status": status,
            "stream_mode": summary.get("StreamModeDetails", {}).get("StreamMode"),
            "open_shard_count": summary.get("OpenShardCount"),
            "max_record_bytes": max_kib * 1024,
            "stream_arn": summary.get("StreamARN"),
            "ms": ms,
        }
    ]
    try:
        shards, ms = await call(writer, destination, "ListShards", {})
        count = len(shards.get("Shards") or [])
        checks.append({"name": "list_shards", "ok": True, "message": f"{count} shards", "ms": ms})
    except errors as exc:
        checks.append(failed("list_shards", "ListShards", exc, destination))
    checks.append(dry_write(destination, sample, max_kib * 1024))
    return checks


def dry_write(destination: Destination, sample: Any, limit: int) -> dict[str, Any]:
    """A sample event formatted for this destination (partition key template included),
    its size held to the stream's maximum: what PutRecord would be given, not sent."""
    event = Event(
        id="evt_preflight",
        tenant_id=destination.tenant_id,
        topic=(
            destination.topics[0]
            if destination.topics and destination.topics[0] != "*"
            else "preflight"
        ),
        time=datetime.now(UTC),
        data={"preflight": True},
        destination_id=destination.id,
    )
    try:
        record = sample(event, destination)
    except DeliveryError as exc:
        return {
            "name": "write",
            "ok": False,
            "message": f"a record could not be made: {exc.message}",
        }
    size = len(record.data) + len(record.partition_key.encode())
    ok = size <= limit
    return {
        "name": "write",
        "ok": ok,
        "message": (
            f"a sample record ({size} bytes, partition key {record.partition_key!r}) fits the "
            f"stream's {limit} bytes; not sent"
            if ok
            else f"a sample record of {size} bytes is over the stream's {limit} bytes"
        ),
        "record_bytes": size,
    }
