"""Explore's `preview=true`: the first rows of an S3 object (JSON, JSON lines, CSV or
parquet) or the latest records of a Kinesis stream, parsed, with an inferred schema.
Bounded: at most `max_bytes` of the object are fetched (a ranged GET), at most 100 rows
kept, and a Kinesis preview stops after `max_pages` GetRecords calls or `seconds`."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from outpost.destinations.endpoints import EndpointPolicy
from outpost.errors import Invalid
from outpost.flow import parquet
from outpost.flow.connectors import _client, describe_shards, guard
from outpost.flow.specs import KINESIS

MAX_ROWS = 100
FILE_TYPES = ("json", "delimited", "parquet")
_INT = re.compile(r"^-?\d{1,18}$")
_NUM = re.compile(r"^-?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$")


@dataclass(frozen=True)
class PreviewLimits:
    rows: int = 10
    max_bytes: int = 1 << 20
    max_pages: int = 50
    seconds: float = 10.0


def rows_of(
    raw: bytes, file_type: str, rows: int, truncated: bool, delimiter: str = ","
) -> list[Any]:
    """The first `rows` rows of `raw` (the object's first bytes; `truncated` when there is
    more): a partial last line is dropped, never guessed at."""
    text = raw.decode("utf-8", errors="replace")
    if truncated:
        text = text[: text.rfind("\n") + 1] if "\n" in text else ""
    if file_type == "delimited":
        reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
        return [dict(r) for _, r in zip(range(rows), reader, strict=False)]
    stripped = text.lstrip()
    if stripped.startswith("[") and not truncated:
        try:
            doc = json.loads(stripped)
        except ValueError:
            raise Invalid("the object is not valid JSON") from None
        return list(doc)[:rows] if isinstance(doc, list) else [doc]
    out: list[Any] = []
    for line in text.splitlines():  # JSON lines (or one object per line)
        if line.strip() and len(out) < rows:
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"_error": "not valid JSON", "_line": line[:200]})
    return out


def _type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    text = str(value).strip()
    if _INT.match(text):
        return "integer"
    if _NUM.match(text):
        return "number"
    return "boolean" if text.lower() in ("true", "false") else "string"


def _merge(a: str | None, b: str) -> str:
    if a is None or a == "null" or a == b:
        return b
    if b == "null":
        return a
    return "number" if {a, b} == {"integer", "number"} else "string"


def infer_schema(rows: list[Any]) -> dict[str, Any]:
    """`{"columns": [{"name", "type"}]}` in first-seen order; a column whose rows disagree
    is a string (integer and number make a number)."""
    types: dict[str, str | None] = {}
    for row in rows:
        if not isinstance(row, dict):
            row = {"value": row}
        for key, value in row.items():
            types[key] = _merge(types.get(key), _type(value))
    return {"columns": [{"name": k, "type": t or "null"} for k, t in types.items()]}


def preview_body(file_type: str, rows: list[Any], truncated: bool) -> dict[str, Any]:
    return {"format": file_type, "schema": infer_schema(rows), "data": rows, "truncated": truncated}


async def s3_preview(
    client: Any, path: str, file_type: str, limits: PreviewLimits
) -> dict[str, Any]:
    """A ranged GET of the object's first `max_bytes`; the rows in them."""
    if file_type not in FILE_TYPES:
        raise Invalid("fileType must be json, delimited or parquet")
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket or not key:
        raise Invalid("object must be bucket/key of a file")
    if file_type == "parquet":
        return await _parquet_preview(client, bucket, key, limits)
    got = await client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{limits.max_bytes - 1}")
    async with got["Body"] as body:
        raw = await body.read(limits.max_bytes)
    size = _total_size(got)
    truncated = size is not None and size > len(raw)
    rows = rows_of(raw, file_type, limits.rows, truncated)
    return preview_body(file_type, rows, truncated or len(rows) >= limits.rows)


async def _parquet_preview(
    client: Any, bucket: str, key: str, limits: PreviewLimits
) -> dict[str, Any]:
    """The footer, then the first rows' pages (ranged GETs, at most `max_bytes` in all);
    the schema is the file's own."""
    head = await client.head_object(Bucket=bucket, Key=key)
    obj = {"Bucket": bucket, "Key": key, "ETag": head.get("ETag"), "Size": head["ContentLength"]}
    try:
        rows, schema, more = await parquet.preview(client, obj, limits.rows, limits.max_bytes)
    except parquet.TooMuch:
        raise Invalid(
            f"the first {limits.rows} rows need more than FLOW_PREVIEW_MAX_BYTES "
            f"({limits.max_bytes}) of the object"
        ) from None
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    return {"format": "parquet", "schema": schema, "data": rows, "truncated": more}


def _total_size(got: dict[str, Any]) -> int | None:
    content_range = str(got.get("ContentRange") or "")
    if "/" in content_range:
        total = content_range.rsplit("/", 1)[1]
        return int(total) if total.isdigit() else None
    length = got.get("ContentLength")
    return int(length) if length is not None else None


# lookbacks tried in turn until `rows` records are found: the latest records first
_LOOKBACKS = (timedelta(minutes=1), timedelta(hours=1), None)  # None: TRIM_HORIZON


async def kinesis_preview(client: Any, stream: str, limits: PreviewLimits) -> dict[str, Any]:
    """The latest `rows` records of the stream (each as JSON if it is, else as text), read
    forward to the tip from ever longer lookbacks; at most `max_pages` GetRecords calls,
    5 per second per shard, within `seconds`."""
    deadline = time.monotonic() + limits.seconds
    shards = [s["ShardId"] for s in await describe_shards(client, stream)]
    budget = [limits.max_pages]
    latest: list[tuple[datetime, Any]] = []
    for lookback in _LOOKBACKS:
        latest = []
        for sid in shards:
            tip: deque[tuple[datetime, Any]] = deque(maxlen=limits.rows)
            await _read_tip(client, stream, sid, lookback, tip, budget, deadline)
            latest += tip
        if len(latest) >= limits.rows or budget[0] <= 0 or time.monotonic() >= deadline:
            break
    ordered = [doc for _, doc in sorted(latest, key=lambda x: x[0])][-limits.rows :]
    return preview_body("json", ordered, budget[0] <= 0 or time.monotonic() >= deadline)


async def _read_tip(
    client: Any,
    stream: str,
    sid: str,
    lookback: timedelta | None,
    out: deque[tuple[datetime, Any]],
    budget: list[int],
    deadline: float,
) -> None:
    kwargs: dict[str, Any] = {"StreamName": stream, "ShardId": sid}
    if lookback is None:
        kwargs["ShardIteratorType"] = "TRIM_HORIZON"
    else:
        kwargs.update(ShardIteratorType="AT_TIMESTAMP", Timestamp=datetime.now(UTC) - lookback)
    iterator = (await client.get_shard_iterator(**kwargs)).get("ShardIterator")
    while iterator and budget[0] > 0 and time.monotonic() < deadline:
        budget[0] -= 1
        started = time.monotonic()
        page = await client.get_records(ShardIterator=iterator, Limit=MAX_ROWS)
        for record in page.get("Records", []):
            out.append(
                (record.get("ApproximateArrivalTimestamp") or datetime.now(UTC), _doc(record))
            )
            while len(out) > MAX_ROWS:
                out.popleft()
        iterator = page.get("NextShardIterator")
        if not page.get("Records") and not page.get("MillisBehindLatest"):
            return  # at the tip
        await asyncio.sleep(max(0.0, 0.2 - (time.monotonic() - started)))  # 5 calls/s


def _doc(record: dict[str, Any]) -> Any:
    data = record.get("Data", b"")[: 64 * 1024]
    try:
        return json.loads(data)
    except ValueError:
        return data.decode("utf-8", errors="replace")


async def preview(
    spec_id: str,
    params: dict[str, Any],
    obj: str | None,
    file_type: str,
    endpoints: EndpointPolicy,
    limits: PreviewLimits,
) -> dict[str, Any]:
    """`explore?preview=true`: an S3 object's first rows or a Kinesis stream's latest."""
    if not obj:
        raise Invalid("object is required: bucket/key of a file, or a stream name")
    if not 1 <= limits.rows <= MAX_ROWS:
        raise Invalid(f"previewRows must be from 1 to {MAX_ROWS}")
    await guard(endpoints, params)
    try:
        async with _client(spec_id, params) as client:
            if spec_id == KINESIS:
                return await asyncio.wait_for(
                    kinesis_preview(client, obj, limits), limits.seconds + 5
                )
            return await asyncio.wait_for(
                s3_preview(client, obj, file_type, limits), limits.seconds
            )
    except (ClientError, BotoCoreError, OSError, TimeoutError) as exc:
        raise Invalid(f"preview failed: {exc or 'out of time'}") from None
