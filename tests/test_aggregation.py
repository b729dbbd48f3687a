"""The KPL aggregation codec (kinesis/aggregate.py), checked against an independent
decoder (tests/kpl_decoder.py: the format's .proto parsed by the protobuf runtime)."""

from __future__ import annotations

import hashlib
import random

import pytest

from outpost.destinations.kinesis import aggregate as agg
from outpost.destinations.kinesis.config import MAX_RECORD_BYTES
from tests.kpl_decoder import deaggregate


def test_round_trip_with_shared_and_distinct_partition_keys():
    records = [("a", b"1"), ("b", b""), ("a", b"\x00\xff" * 100), ("ключ", "ü".encode())]
    data = agg.aggregate(records)
    assert data[:4] == bytes([0xF3, 0x89, 0x9A, 0xC2])
    assert hashlib.md5(data[4:-16]).digest() == data[-16:]
    assert deaggregate(data) == records
    # the partition key table holds each key once
    assert data.count(b"\x0a\x01a") == 1


@pytest.mark.parametrize("n", [1, 2, 127, 128, 300, 16_384])
def test_round_trip_at_varint_boundaries(n):
    rng = random.Random(n)
    records = [
        (f"k{rng.randrange(n)}", rng.randbytes(rng.choice([0, 1, 127, 128, 200]))) for _ in range(n)
    ]
    assert deaggregate(agg.aggregate(records, limit=8 * MAX_RECORD_BYTES)) == records


@pytest.mark.parametrize("size", [127, 128, 16_383, 16_384, 2**20 - 100])
def test_size_is_exact_and_the_limit_is_kept(size):
    a = agg.Aggregate()
    assert a.add("pk", b"x" * size)
    encoded = a.encode()
    assert len(encoded) == a.size  # the running size is the encoded size
    assert len(encoded) + len(b"pk") <= MAX_RECORD_BYTES
    assert deaggregate(encoded) == [("pk", b"x" * size)]


def test_an_aggregate_fills_to_exactly_its_limit_and_refuses_the_next_record():
    limit = 10_000
    a = agg.Aggregate(limit)
    while a.add(f"key-{a.count % 7}", b"y" * 97):
        pass
    encoded = a.encode()
    assert len(encoded) + len(b"key-0") <= limit  # the outer partition key counts
    assert len(encoded) + len(b"key-0") + a.cost("key-0", b"y" * 97) > limit
    assert len(deaggregate(encoded)) == a.count
    assert not agg.Aggregate(100).add("k", b"z" * 100)  # too big for an empty one


def test_varint():
    assert [agg.varint(n) for n in (0, 1, 127, 128, 300, 2**64 - 1)] == [
        b"\x00",
        b"\x01",
        b"\x7f",
        b"\x80\x01",
        b"\xac\x02",
        b"\xff" * 9 + b"\x01",
    ]
