"""Partition keys: the template is evaluated on {metadata, data} in both payload modes."""

import json
from datetime import UTC, datetime

import pytest

from outpost.destinations.kinesis.partition_key import compile_template, partition_key
from outpost.destinations.kinesis.provider import KinesisProvider
from outpost.errors import PermanentError
from outpost.models import Destination, Event

DOC = {
    "metadata": {"event-id": "evt_1", "topic": "orders", "timestamp": "1704067200"},
    "data": {
        "user_id": "u-42",
        "customer": {"id": "c-7", "tier": "gold"},
        "count": 3,
        "ratio": 0.5,
        "vip": True,
        "empty": "",
        "tags": ["a", "b"],
        "obj": {"b": 1, "a": 2},
        "nothing": None,
    },
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (None, "evt_1"),
        ("metadata.topic", "orders"),
        ('metadata."event-id"', "evt_1"),
        ("data.user_id", "u-42"),
        ('data."user_id"', "u-42"),
        ("data.customer.id", "c-7"),
        ("join('-', [data.customer.tier, data.user_id])", "gold-u-42"),
        ("data.count", "3"),
        ("data.ratio", "0.5"),
        ("data.vip", "true"),
        ("data.missing", "evt_1"),
        ("data.nothing", "evt_1"),
        ("data.empty", "evt_1"),
        ("data.obj", '{"b":1,"a":2}'),
        ("data.tags", '["a","b"]'),
        ("data.tags[0]", "a"),
    ],
)
def test_partition_key_table(template, expected):
    expr = compile_template(template) if template else None
    assert partition_key(expr, DOC, "evt_1") == expected


def test_key_over_256_chars_is_permanent():
    doc = {"metadata": {}, "data": {"k": "x" * 257}}
    with pytest.raises(PermanentError) as info:
        partition_key(compile_template("data.k"), doc, "evt_1")
    assert info.value.code == "partition_key_too_long"
    assert partition_key(compile_template("data.k"), {"data": {"k": "x" * 256}}, "e") == "x" * 256


def test_runtime_type_error_is_permanent_not_a_crash():
    with pytest.raises(PermanentError):
        partition_key(compile_template("join('-', data.user_id)"), DOC, "evt_1")


@pytest.mark.parametrize("bad", ["data.", "data[", "join(", "   ", "&&"])
def test_bad_syntax_is_refused_at_compile(bad):
    with pytest.raises(ValueError):
        compile_template(bad)


@pytest.mark.parametrize("wrapped", [True, False])
def test_template_sees_metadata_and_data_in_both_modes(wrapped):
    ev = Event(
        id="evt_9",
        tenant_id="t",
        topic="orders",
        time=datetime(2024, 1, 1, tzinfo=UTC),
        data={"customer_id": "c-1"},
    )
    d = Destination(
        id="d",
        tenant_id="t",
        type="aws_kinesis",
        topics="*",
        config={
            "stream_name": "s",
            "region": "us-east-1",
            "partition_key_template": "join(':', [metadata.topic, data.customer_id])",
            "metadata_in_payload": wrapped,
        },
        credentials={},
        created_at="",
        updated_at="",
    )
    rec = KinesisProvider().format(ev, d)
    assert rec.partition_key == "orders:c-1"
    assert ("metadata" in json.loads(rec.data)) is wrapped


def test_ordering_key_matches_the_records_key_without_formatting():
    ev = Event(
        id="evt_o",
        tenant_id="t",
        topic="orders",
        time=datetime(2024, 1, 1, tzinfo=UTC),
        data={"c": "c-9", "big": "x" * (11 * 1024 * 1024)},  # past any stream's 10 MiB
    )
    d = Destination(
        id="d",
        tenant_id="t",
        type="aws_kinesis",
        topics="*",
        config={"stream_name": "s", "region": "us-east-1", "partition_key_template": "data.c"},
        credentials={},
        created_at="",
        updated_at="",
    )
    p = KinesisProvider()
    assert p.ordering_key(ev, d) == "c-9"  # a record that could never be sent still routes
    with pytest.raises(PermanentError):
        p.format(ev, d)
    d.config.pop("partition_key_template")
    d.compiled.clear()
    assert p.ordering_key(ev, d) == "evt_o"
