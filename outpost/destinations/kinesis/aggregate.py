"""The KPL aggregated record format, written here (the AWS Python aggregation library is
unmaintained and breaks with current protobuf). Pure.

An aggregated record's data is the 4 magic bytes F3 89 9A C2, then a protobuf
`AggregatedRecord`, then the MD5 of those protobuf bytes:

    message AggregatedRecord {
      repeated string partition_key_table     = 1;
      repeated string explicit_hash_key_table = 2;
      repeated Record records                 = 3;
    }
    message Record {
      required uint64 partition_key_index     = 1;
      optional uint64 explicit_hash_key_index = 2;
      required bytes  data                    = 3;
      repeated Tag    tags                    = 4;   (never written)
    }

The KCL and the AWS deaggregation libraries read the user records back from it. The
aggregate is put with the first user record's partition key and, as ExplicitHashKey, the
hash key of the shard its records were grouped for.
"""

from __future__ import annotations

import hashlib

from outpost.destinations.kinesis.config import MAX_RECORD_BYTES

MAGIC = b"\xf3\x89\x9a\xc2"
DIGEST = 16  # the MD5 trailer
_LEN = 2  # protobuf wire type: length-delimited
_VARINT = 0


def varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _delimited(field_number: int, payload: bytes) -> bytes:
    return bytes([field_number << 3 | _LEN]) + varint(len(payload)) + payload


def _record(key_index: int, data: bytes) -> bytes:
    return bytes([1 << 3 | _VARINT]) + varint(key_index) + _delimited(3, data)


class Aggregate:
    """User records gathered into one aggregated record, within `limit` bytes (the
    aggregated data plus its partition key, as Kinesis counts a record)."""

    def __init__(self, limit: int = MAX_RECORD_BYTES):
        self.limit = limit
        self.keys: dict[str, int] = {}
        self.parts: list[bytes] = []  # the encoded table entries and records, in order
        self.first_key: str | None = None
        self.size = len(MAGIC) + DIGEST
        self.count = 0

    def cost(self, partition_key: str, data: bytes) -> int:
        """The bytes one more user record would add."""
        added = 0
        if partition_key not in self.keys:
            added += len(_delimited(1, partition_key.encode()))
        index = self.keys.get(partition_key, len(self.keys))
        inner = len(_record(index, b"")) - 1 + len(varint(len(data))) + len(data)
        return added + 1 + len(varint(inner)) + inner

    def fits(self, partition_key: str, data: bytes) -> bool:
        outer_key = self.first_key if self.first_key is not None else partition_key
        grown = self.size + self.cost(partition_key, data)
        return grown + len(outer_key.encode()) <= self.limit

    def add(self, partition_key: str, data: bytes) -> bool:
        """Adds the record if the aggregate stays within its limit; False if it would not
        (an empty aggregate takes any record that fits alone)."""
        outer_key = self.first_key if self.first_key is not None else partition_key
        grown = self.size + self.cost(partition_key, data)
        if grown + len(outer_key.encode()) > self.limit:
            return False
        if partition_key not in self.keys:
            self.keys[partition_key] = len(self.keys)
            self.parts.append(_delimited(1, partition_key.encode()))
        self.parts.append(_delimited(3, _record(self.keys[partition_key], data)))
        self.first_key = outer_key
        self.size = grown
        self.count += 1
        return True

    def encode(self) -> bytes:
        # protobuf parsers take a repeated field's entries in any interleaving; the KPL
        # writes the key table first, and so do we
        tables = [p for p in self.parts if p[0] == (1 << 3 | _LEN)]
        records = [p for p in self.parts if p[0] != (1 << 3 | _LEN)]
        body = b"".join(tables + records)
        return MAGIC + body + hashlib.md5(body).digest()


def aggregate(records: list[tuple[str, bytes]], limit: int = MAX_RECORD_BYTES) -> bytes:
    """One aggregated record of `records` (partition key, data), which must fit."""
    agg = Aggregate(limit)
    for key, data in records:
        if not agg.add(key, data):
            raise ValueError("the records do not fit in one aggregated record")
    return agg.encode()
