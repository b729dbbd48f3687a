"""An S3 flow: on its schedule (`scheduleParams`: startTime, frequency, interval), every
object under the source's path that is new since the last run (by key and ETag) is read,
streamed in chunks (never whole in memory), and each row becomes one event of the flow's
tenant and topic. One reader per flow across processes (a lease); the checkpoint per
object (`<etag>|<rows done>`, then `<etag>|done`) moves only after a batch's events are
in Redis, with the run counts, in one script: a restart resumes at the first row not
acknowledged, so an object is never skipped and only the last unacknowledged batch is
read twice (and deduplicated: event ids derive from flow, object, ETag and row). Bad rows
are failed records with their reason, never fatal to the run."""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from outpost import exactjson
from outpost.errors import DomainError, Unavailable
from outpost.flow import parquet
from outpost.flow.connectors import _client, guard
from outpost.flow.parquet import Row
from outpost.flow.runs import BAD_ROW, ERROR_CODES, NOT_JSON, NOT_OBJECT, PUBLISH_REFUSED, TOO_BIG
from outpost.flow.specs import FREQUENCIES, S3
from outpost.models import Event, utcnow

if TYPE_CHECKING:
    from outpost.flow.source import Plan, SourceReader

log = structlog.get_logger("outpost.source.s3")
CHUNK = 64 * 1024
MAX_LINE = 1 << 20
MAX_ARRAY = 16 << 20


class LeaseLost(Exception):
    """Another reader holds the shard (or S3 flow) now: stop without moving a checkpoint."""


def due(schedule: dict[str, Any], last_due: int | None, now_s: float) -> int | None:
    """The latest scheduled time at or before `now_s` not run yet (after `last_due`)."""
    start = int(schedule["startTime"])
    period = FREQUENCIES[schedule["frequency"]] * int(schedule.get("interval", 1))
    if now_s < start:
        return None
    at = start if period == 0 else start + int((now_s - start) // period) * period
    return at if last_due is None or at > last_due else None


def format_of(key: str, default: str) -> str:
    """An object's extension decides (.csv, .tsv: delimited; .json, .jsonl, .ndjson: json;
    .parquet: parquet), so a folder may mix them; otherwise the source connection's
    `data.format`."""
    ext = key.rsplit(".", 1)[-1].lower() if "." in key.rsplit("/", 1)[-1] else ""
    if ext in ("csv", "tsv"):
        return "delimited"
    if ext == "parquet":
        return "parquet"
    return "json" if ext in ("json", "jsonl", "ndjson") else default


async def lines(body: Any) -> AsyncIterator[bytes]:
    """The body's lines, read CHUNK at a time; a line over MAX_LINE is cut (and fails)."""
    buf = b""
    while chunk := await body.read(CHUNK):
        buf += chunk
        *complete, buf = buf.split(b"\n")
        for line in complete:
            yield line
        if len(buf) > MAX_LINE:
            yield buf[:MAX_LINE] + b"\0"  # marked too long; the rest of it is dropped
            buf = b""
    if buf.strip():
        yield buf


def parse_line(line: bytes, header: list[str] | None) -> Row:
    if len(line) > MAX_LINE:
        return TOO_BIG, ERROR_CODES[TOO_BIG], line
    if header is not None:
        values = next(csv.reader([line.decode("utf-8", errors="replace")]), [])
        if len(values) != len(header):
            reason = f"{len(values)} fields where the header has {len(header)}"
            return BAD_ROW, reason, line
        return dict(zip(header, values, strict=True))
    try:
        doc = exactjson.loads(line)
    except (ValueError, RecursionError):
        return NOT_JSON, ERROR_CODES[NOT_JSON], line
    return doc if isinstance(doc, dict) else (NOT_OBJECT, ERROR_CODES[NOT_OBJECT], line)


async def rows(body: Any, fmt: str, size: int) -> AsyncIterator[Row]:
    """Delimited: a header row, then one row per line. JSON: a JSON array (at most
    MAX_ARRAY bytes), or JSON lines."""
    header: list[str] | None = None
    first = True
    stream = lines(body)
    async for line in stream:
        if first and fmt == "delimited":
            header = next(csv.reader([line.decode("utf-8", errors="replace").strip()]), [])
            first = False
            continue
        if first and line.lstrip().startswith(b"["):
            async for row in _array(stream, line, size):
                yield row
            return
        first = False
        if line.strip():
            yield parse_line(line.rstrip(b"\r"), header)


async def _array(stream: AsyncIterator[bytes], head: bytes, size: int) -> AsyncIterator[Row]:
    """The rest of the lines (the same stream: nothing it has buffered is lost) as one
    JSON array, its elements the rows."""
    if size > MAX_ARRAY:
        yield TOO_BIG, ERROR_CODES[TOO_BIG], head[:1024]
        return
    raw = b"\n".join([head, *[line async for line in stream]])
    try:
        doc = json.loads(raw)
    except ValueError:
        yield NOT_JSON, ERROR_CODES[NOT_JSON], raw[:1024]
        return
    for item in doc if isinstance(doc, list) else [doc]:
        yield item if isinstance(item, dict) else (NOT_OBJECT, ERROR_CODES[NOT_OBJECT], b"")


class S3Source:
    def __init__(self, reader: SourceReader):
        self.reader = reader

    async def run(self, plan: Plan) -> None:
        """Wait for the flow's next scheduled time, then run it (one reader at a time)."""
        state, r = self.reader.state, self.reader
        while not r.stopping():
            try:
                at = due(plan.schedule or {}, await state.last_due(plan.flow_id), time.time())
                if at is not None and await state.lease(plan.flow_id, "s3", r.owner, r.lease_ms):
                    try:
                        await guard(r.deps.endpoints, plan.auth)  # the policy may have changed
                        await self.run_once(plan)
                        await state.set_last_due(plan.flow_id, at)
                    finally:
                        await state.release(plan.flow_id, "s3", r.owner)
            except (ClientError, BotoCoreError, OSError, DomainError, LeaseLost) as exc:
                log.warning("s3_run_failed", flow_id=plan.flow_id, error=str(exc))
            await r.sleep(r.poll)

    async def run_once(self, plan: Plan) -> None:
        bucket, _, prefix = plan.path.lstrip("/").partition("/")
        done = await self.reader.state.checkpoints(plan.flow_id)
        async with _client(S3, plan.auth) as client:
            async for obj in _objects(client, bucket, prefix):
                key, etag = obj["Key"], obj["ETag"]
                mark = done.get(key, "")
                if not _under(key, prefix) or mark == f"{etag}|done":
                    continue
                skip = int(mark.rpartition("|")[2]) if mark.startswith(f"{etag}|") else 0
                await self._ingest(plan, client, obj, skip)

    async def _ingest(self, plan: Plan, client: Any, obj: dict[str, Any], skip: int) -> None:
        batch: list[tuple[int, Row]] = []
        async for index, row in self._rows(plan, client, obj, skip):
            if index >= skip:
                batch.append((index, row))
            if len(batch) >= self.reader.batch:
                await self._flush(plan, obj, batch, f"{obj['ETag']}|{index + 1}")
                batch = []
        await self._flush(plan, obj, batch, f"{obj['ETag']}|done")

    async def _rows(
        self, plan: Plan, client: Any, obj: dict[str, Any], skip: int
    ) -> AsyncIterator[tuple[int, Row]]:
        """(row index, row) of the object: a parquet object from the row group holding
        row `skip` on (ranged GETs), any other read from its start in one streamed GET."""
        bucket = plan.path.lstrip("/").partition("/")[0]
        fmt = format_of(obj["Key"], plan.fmt)
        if fmt == "parquet":
            found = {**obj, "Bucket": bucket}
            async for pair in parquet.indexed_rows(client, found, self.reader.batch, skip):
                yield pair
            return
        got = await client.get_object(Bucket=bucket, Key=obj["Key"], IfMatch=obj["ETag"])
        async with got["Body"] as body:
            index = 0
            async for row in rows(body, fmt, int(obj.get("Size", 0))):
                yield index, row
                index += 1

    async def _flush(
        self, plan: Plan, obj: dict[str, Any], batch: list[tuple[int, Row]], position: str
    ) -> None:
        """Publish the batch, keep its bad rows, then move the object's checkpoint."""
        r, key = self.reader, obj["Key"]
        if not await r.state.lease(plan.flow_id, "s3", r.owner, r.lease_ms):
            raise LeaseLost(key)
        events = [(i, _event(plan, obj, i, row)) for i, row in batch if isinstance(row, dict)]
        failed = [(i, row) for i, row in batch if not isinstance(row, dict)]
        outcomes = await r.deps.ingest.publish_many([e for _, e in events]) if events else []
        for (i, _), outcome in zip(events, outcomes, strict=True):
            if isinstance(outcome, Unavailable):
                raise outcome
            if isinstance(outcome, Exception):  # the tenant is gone, or its routing failed
                failed.append((i, (PUBLISH_REFUSED, str(outcome), b"")))
        await r.state.keep_failed(plan.flow_id, [_failed(key, i, f) for i, f in failed])
        errors = Counter(f[0] for _, f in failed)
        counts = (len(batch), len(batch) - len(failed), len(failed))
        if not await r.state.checkpoint(
            plan.flow_id, key, r.owner, position, counts, errors, lease="s3"
        ):
            raise LeaseLost(key)


def _under(key: str, prefix: str) -> bool:
    """`bucket/folder/` takes every object under it; `bucket/key`, that object (or, if it
    names a folder without its slash, the objects under it)."""
    if key.endswith("/"):
        return False  # a folder marker
    return not prefix or prefix.endswith("/") or key == prefix or key.startswith(prefix + "/")


async def _objects(client: Any, bucket: str, prefix: str) -> AsyncIterator[dict[str, Any]]:
    """Every object under the prefix, page by page (ListObjectsV2: in key order)."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    while True:
        page = await client.list_objects_v2(**kwargs)
        for obj in page.get("Contents", []):
            yield obj
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return
        kwargs["ContinuationToken"] = token


def _event(plan: Plan, obj: dict[str, Any], index: int, row: dict[str, Any]) -> Event:
    key, etag = obj["Key"], obj["ETag"]
    digest = hashlib.sha256(f"{plan.flow_id}\0{key}\0{etag}\0{index}".encode()).hexdigest()
    modified = obj.get("LastModified") or utcnow()
    return Event(
        id=f"s3_{digest[:40]}",
        tenant_id=plan.org,
        topic=plan.topic,
        time=modified,
        data=row,
        metadata={
            "source-path": plan.path,
            "source-key": key,
            "source-etag": etag.strip('"'),
            "source-row": str(index),
        },
    )


def _failed(key: str, index: int, failure: Any) -> dict[str, str]:
    code, reason, raw = failure
    data = raw[:1024].decode("utf-8", errors="replace")
    return {"object": key, "row": str(index), "code": code, "reason": reason, "data": data}
