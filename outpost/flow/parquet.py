"""Parquet objects of S3 sources and previews, read streamed: Apache Arrow's reader
(pyarrow) over a seekable file whose reads are ranged GETs of the object (IfMatch its
ETag, so a changed object fails rather than mixes), column chunks read BUFFER bytes at a
time, a batch of rows at a time. The reader runs in a worker thread; its GETs go through
the flow's own client (endpoint guard, no redirects) on the event loop; a GET that fails
fails the run (retried from the checkpoint), never the file. pyarrow (about
55 MiB of RSS) is imported when the first parquet object is read, never before.

Each row is one JSON object of column -> value: timestamps as ISO 8601 strings (to the
column's unit, `Z` when the column is UTC-adjusted), dates and times ISO 8601, decimals
exact, bytes base64, maps as objects, NaN and infinities null. A file that is not
parquet, or a part of one that cannot be read, is one failed record with the reason; a
row one of whose values cannot be converted is a failed record of its own."""

from __future__ import annotations

import asyncio
import base64
import io
import math
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from outpost.exactjson import ExactFloat
from outpost.flow.runs import BAD_PARQUET

BUFFER = 1 << 20  # bytes per ranged GET while a column chunk is read
GET_SECONDS = 60.0
_FRACTION = {"s": 0, "ms": 3, "us": 6, "ns": 9}
Row = dict[str, Any] | tuple[str, str, bytes]  # a row, or (code, reason, raw) of a bad one


class TooMuch(OSError):
    """A preview would read more of the object than it may."""


class FetchFailed(Exception):
    """A ranged GET failed (the network, S3, the object changed since it was listed): not
    the file's fault, so the run fails and is retried rather than the file counted bad.
    Not an OSError, which pyarrow's own read errors are."""

    def __init__(self, cause: BaseException):
        super().__init__(str(cause))
        self.cause = cause


class RangedObject(io.RawIOBase):
    """A read-only, seekable file of an S3 object, each read a ranged GET. Used from a
    worker thread: a GET runs on `loop` and the thread waits for it."""

    def __init__(self, client: Any, obj: dict[str, Any], loop: Any, budget: int | None = None):
        super().__init__()
        self.client, self.obj, self.loop = client, obj, loop
        self.size = int(obj["Size"])
        self.pos = 0
        self.budget = budget  # bytes it may fetch in all (None: no limit)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def read(self, size: int = -1) -> bytes:
        end = self.size if size is None or size < 0 else min(self.size, self.pos + size)
        if end <= self.pos:
            return b""
        if self.budget is not None:
            self.budget -= end - self.pos
            if self.budget < 0:
                raise TooMuch("the rows asked for are past the preview's byte limit")
        data = asyncio.run_coroutine_threadsafe(self._get(self.pos, end - 1), self.loop)
        try:
            got: bytes = data.result(GET_SECONDS)
        except Exception as exc:  # pyarrow hands it back as it is: see indexed_rows
            data.cancel()
            raise FetchFailed(exc) from exc
        self.pos += len(got)
        return got

    def readinto(self, buffer: Any) -> int:
        got = self.read(len(buffer))
        buffer[: len(got)] = got
        return len(got)

    async def _get(self, first: int, last: int) -> bytes:
        bucket, key = self.obj["Bucket"], self.obj["Key"]
        kwargs = {"Bucket": bucket, "Key": key, "Range": f"bytes={first}-{last}"}
        if self.obj.get("ETag"):
            kwargs["IfMatch"] = self.obj["ETag"]
        got = await self.client.get_object(**kwargs)
        async with got["Body"] as body:
            data: bytes = await body.read()
        return data


def _errors() -> tuple[type[BaseException], ...]:
    import pyarrow

    return (pyarrow.ArrowException, ValueError, OSError, EOFError, IndexError)


def open_file(file: RangedObject) -> Any:
    import pyarrow.parquet as pq

    return pq.ParquetFile(file, buffer_size=BUFFER, pre_buffer=False)


async def indexed_rows(
    client: Any, obj: dict[str, Any], batch: int, skip: int = 0
) -> AsyncIterator[tuple[int, Row]]:
    """(row index, row) from the first row group that holds row `skip` (the ones before
    it are not fetched) to the end; an unreadable file or part ends it with one failed
    record."""
    file = RangedObject(client, obj, asyncio.get_running_loop())
    index = 0
    try:
        parquet = await asyncio.to_thread(open_file, file)
        index, batches = _batches(parquet, batch, skip)
        while (got := await asyncio.to_thread(_next_rows, batches)) is not None:
            for row in got:
                yield index, row
                index += 1
    except FetchFailed as exc:
        raise exc.cause from None  # the run is retried from the checkpoint
    except _errors() as exc:
        reason = f"not a readable parquet file from row {index} on: {exc}"[:500]
        yield index, (BAD_PARQUET, reason, b"")


def _batches(parquet: Any, batch: int, skip: int) -> tuple[int, Iterator[Any]]:
    """The row groups from the one holding row `skip` on, and that group's first row."""
    groups: list[int] = []
    first = 0
    for n in range(parquet.metadata.num_row_groups):
        rows = parquet.metadata.row_group(n).num_rows
        if first + rows > skip or groups:
            groups.append(n)
        else:
            first += rows
    it = parquet.iter_batches(batch_size=batch, row_groups=groups, use_threads=False)
    return first, iter(it)


def _next_rows(batches: Iterator[Any]) -> list[Row] | None:
    record_batch = next(batches, None)
    return None if record_batch is None else rows_of(record_batch)


def rows_of(record_batch: Any) -> list[Row]:
    """A record batch's rows as JSON-safe objects; a row with a value that cannot be
    converted is a failed record."""
    names = record_batch.schema.names
    columns = [_column(name, col) for name, col in zip(names, record_batch.columns, strict=True)]
    out: list[Row] = []
    for values in zip(*columns, strict=True):
        bad = next((v for v in values if isinstance(v, _Bad)), None)
        if bad is not None:
            out.append((BAD_PARQUET, bad.reason, b""))
        else:
            out.append(dict(zip(names, values, strict=True)))
    return out


class _Bad:
    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason


def _column(name: str, array: Any) -> list[Any]:
    import pyarrow

    if pyarrow.types.is_timestamp(array.type):
        return _timestamps(array)
    try:
        return [json_safe(v) for v in array.to_pylist()]
    except (ValueError, OverflowError, pyarrow.ArrowException):
        pass  # find the rows at fault
    out: list[Any] = []
    for i in range(len(array)):
        try:
            out.append(json_safe(array[i].as_py()))
        except (ValueError, OverflowError, pyarrow.ArrowException) as exc:
            out.append(_Bad(f"column {name}: {exc}"[:500]))
    return out


def _timestamps(array: Any) -> list[Any]:
    """ISO 8601 to the column's unit (nanoseconds too, which datetime cannot hold)."""
    import pyarrow

    unit, utc = array.type.unit, array.type.tz is not None
    digits = _FRACTION[unit]
    out: list[Any] = []
    for value in array.cast(pyarrow.int64()).to_pylist():
        try:
            out.append(None if value is None else iso_instant(value, digits, utc))
        except OverflowError:
            out.append(_Bad(f"a timestamp past year 9999: {value} {unit}"))
    return out


def iso_instant(value: int, digits: int, utc: bool) -> str:
    seconds, fraction = divmod(value, 10**digits)
    text = (datetime(1970, 1, 1) + timedelta(seconds=seconds)).isoformat()
    if digits:
        text += f".{fraction:0{digits}d}"
    return text + ("Z" if utc else "")


def json_safe(value: Any) -> Any:
    """A pyarrow value (as_py) as what JSON holds, exactly."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return ExactFloat(str(value)) if value.is_finite() else None
    if isinstance(value, datetime):
        stamp = value.astimezone(UTC) if value.tzinfo else value
        return stamp.isoformat().replace("+00:00", "Z")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list) and value and all(isinstance(x, tuple) for x in value):
        return {str(k): json_safe(v) for k, v in value}  # a map
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return str(value)


def schema_of(parquet: Any) -> dict[str, Any]:
    """The preview's schema from the file's own (not guessed from rows)."""
    return {
        "columns": [
            {"name": field.name, "type": _json_type(field.type), "parquetType": str(field.type)}
            for field in parquet.schema_arrow
        ]
    }


def _json_type(arrow_type: Any) -> str:
    import pyarrow.types as t

    checks = (
        (t.is_boolean, "boolean"),
        (t.is_integer, "integer"),
        (lambda x: t.is_floating(x) or t.is_decimal(x) or t.is_duration(x), "number"),
        (lambda x: t.is_struct(x) or t.is_map(x), "object"),
        (lambda x: t.is_list(x) or t.is_large_list(x) or t.is_fixed_size_list(x), "array"),
        (t.is_null, "null"),
    )
    return next((name for check, name in checks if check(arrow_type)), "string")


async def preview(
    client: Any, obj: dict[str, Any], rows: int, max_bytes: int
) -> tuple[list[Any], dict[str, Any], bool]:
    """The first `rows` rows, the file's schema, and whether there are more rows; at
    most `max_bytes` of the object are fetched."""
    file = RangedObject(client, obj, asyncio.get_running_loop(), budget=max_bytes)
    try:
        parquet = await asyncio.to_thread(open_file, file)
        _, batches = _batches(parquet, rows, 0)
        got = await asyncio.to_thread(_next_rows, batches) or []
    except TooMuch:
        raise
    except FetchFailed as exc:
        raise exc.cause from None
    except _errors() as exc:
        raise ValueError(f"not a readable parquet file: {exc}"[:500]) from None
    data = [r if isinstance(r, dict) else {"_error": r[1]} for r in got[:rows]]
    return data, schema_of(parquet), parquet.metadata.num_rows > len(data)
