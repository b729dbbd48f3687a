"""S3 objects of each file type on the session's moto server, for the S3 source and
preview tests: JSON (an array), JSON lines and CSV, each with malformed rows, parquet
(several row groups and value types, a row with a value JSON cannot carry, and a file that
is not parquet), and a 50 MB JSON-lines object written by a multipart upload from a
generator (never whole in memory, here or in the code that reads it)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import boto3
import pytest

from outpost.dev import devstack

BUCKET = "flow-files"
BIG_KEY = "big/events.jsonl"
BIG_ROW = b'{"n": %d, "pad": "' + b"x" * 200 + b'"}\n'
BIG_BYTES = 50 * 1024 * 1024
SMALL = {
    "in/orders.json": json.dumps([{"id": 1, "total": 9.5}, {"id": 2, "total": 12}]).encode(),
    "in/events.jsonl": b'{"n": 1, "ok": true}\n{"n": 2, not json\n[1, 2]\n{"n": 3, "ok": false}\n',
    "in/table.csv": b"id,name,score\n1,ada,3.5\n2,bob\n3,cy,4\n",
}
# what an S3 source reading `in/` makes of them: (events, failed records)
SMALL_COUNTS = (2 + 2 + 2, 0 + 2 + 1)
PARQUET_KEY = "pq/rows.parquet"
PARQUET_ROWS = 25  # in row groups of 10; row 7's timestamp is past year 9999
# what an S3 source reading `pq/` makes of them: rows.parquet and broken.parquet
PARQUET_COUNTS = (PARQUET_ROWS - 1, 1 + 1)


def parquet_bytes() -> bytes:
    """PARQUET_ROWS rows of the types a parquet file holds, in row groups of 10."""
    import datetime as dt
    from decimal import Decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    n = range(PARQUET_ROWS)
    seconds = [1_700_000_000 + i if i != 7 else 10**12 for i in n]  # 10**12 s: year 33658
    table = pa.table(
        {
            "id": pa.array(list(n), pa.int64()),
            "name": pa.array([f"row {i}" for i in n]),
            "price": pa.array([Decimal(f"{i}.10") for i in n], pa.decimal128(12, 2)),
            "at_ns": pa.array(
                [s * 10**9 + 123456789 for s in seconds[:7]] + [0] * 18,
                pa.timestamp("ns", tz="UTC"),
            ),
            "at_s": pa.array(seconds, pa.timestamp("s")),
            "day": pa.array([dt.date(2024, 1, 1 + i % 28) for i in n]),
            "raw": pa.array([bytes([i, 255]) for i in n], pa.binary()),
            "tags": pa.array([{"k": str(i)} for i in n], pa.map_(pa.string(), pa.string())),
            "score": pa.array([float("nan") if i == 3 else i / 4 for i in n]),
            "ok": pa.array([i % 2 == 0 for i in n]),
        }
    )
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=10)
    return out.getvalue()


class RowStream(io.RawIOBase):
    """A readable file of `total` bytes of JSON lines, produced as it is read."""

    def __init__(self, total: int):
        self.left, self.n, self.buf = total, 0, bytearray()

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        want = min(len(b), self.left)
        while len(self.buf) < want:
            self.buf += BIG_ROW % self.n  # bytearray: amortised appends
            self.n += 1
        b[:want] = self.buf[:want]
        del self.buf[:want]
        self.left -= want
        return want


def rows_in_big() -> int:
    """How many whole rows the 50 MB object holds (its last one may be cut)."""
    size, n = 0, 0
    while size + len(BIG_ROW % n) <= BIG_BYTES:
        size += len(BIG_ROW % n)
        n += 1
    return n


def s3_client(url: str):
    return boto3.client("s3", endpoint_url=url, **devstack.FAKE_AWS)


@pytest.fixture(scope="session")
def s3_files(moto: devstack.Server) -> Iterator[str]:
    s3 = s3_client(moto.url)
    s3.create_bucket(Bucket=BUCKET)
    for key, body in SMALL.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    s3.put_object(Bucket=BUCKET, Key=PARQUET_KEY, Body=parquet_bytes())
    s3.put_object(Bucket=BUCKET, Key="pq/broken.parquet", Body=b"PAR1 not really parquet PAR1")
    s3.upload_fileobj(io.BufferedReader(RowStream(BIG_BYTES)), BUCKET, BIG_KEY)
    yield BUCKET
