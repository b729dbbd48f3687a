"""A test-only KPL deaggregator, independent of outpost's codec: the AggregatedRecord
message is declared from the format's .proto (as the KPL publishes it) and parsed by the
`protobuf` runtime; the magic bytes and the MD5 trailer are checked here."""

from __future__ import annotations

import hashlib

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

MAGIC = bytes([0xF3, 0x89, 0x9A, 0xC2])


def _message_class():  # type: ignore[no-untyped-def]
    f = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="kpl_test.proto", package="kpltest")
    proto.syntax = "proto2"
    record = proto.message_type.add(name="Record")
    record.field.add(
        name="partition_key_index", number=1, type=f.TYPE_UINT64, label=f.LABEL_REQUIRED
    )
    record.field.add(
        name="explicit_hash_key_index", number=2, type=f.TYPE_UINT64, label=f.LABEL_OPTIONAL
    )
    record.field.add(name="data", number=3, type=f.TYPE_BYTES, label=f.LABEL_REQUIRED)
    agg = proto.message_type.add(name="AggregatedRecord")
    agg.field.add(name="partition_key_table", number=1, type=f.TYPE_STRING, label=f.LABEL_REPEATED)
    agg.field.add(
        name="explicit_hash_key_table", number=2, type=f.TYPE_STRING, label=f.LABEL_REPEATED
    )
    agg.field.add(
        name="records",
        number=3,
        type=f.TYPE_MESSAGE,
        label=f.LABEL_REPEATED,
        type_name=".kpltest.Record",
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("kpltest.AggregatedRecord"))


AggregatedRecord = _message_class()


def deaggregate(data: bytes) -> list[tuple[str, bytes]]:
    """The user records (partition key, data) of one Kinesis record's data; a record that
    is not aggregated (no magic, or a bad digest) is one user record, as the KCL reads it."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 16:
        raise ValueError("not an aggregated record")
    body, digest = data[len(MAGIC) : -16], data[-16:]
    if hashlib.md5(body).digest() != digest:
        raise ValueError("the MD5 trailer does not match")
    msg = AggregatedRecord()
    msg.ParseFromString(body)
    return [(msg.partition_key_table[r.partition_key_index], r.data) for r in msg.records]
