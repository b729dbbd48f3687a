"""Published numbers keep their digits end to end (issue 14, item 6): integers past 64 bits,
decimals past a float's precision, exponents, -0, 1.0 against 1, 1e400. The record a
destination receives, the event log, the API and every redelivery carry the publisher's
digits; NaN and Infinity are still not JSON."""

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outpost import exactjson
from outpost.destinations.kinesis.partition_key import compile_template, partition_key
from outpost.dev import devstack
from outpost.flow.source import Plan, event_for
from tests.conftest import AUTH, kinesis_body

BASE = "/api/v1/tenants/acme"
BIG = b"123456789012345678901234567890"
# compact, as orjson writes it, so that the record's bytes must equal it exactly
DATA = (
    b'{"account":' + BIG + b',"negative":-98765432109876543210987654321,'
    b'"u64":18446744073709551615,"past_u64":18446744073709551616,'
    b'"precise":0.1000000000000000055511151231257827,"huge":1e400,"tiny":-2.5E-400,'
    b'"exponents":[1e5,1E+5,2.5e-7,6.02214076e23],"zeros":[-0,-0.0,0,0.0],'
    b'"one":[1.0,1,1.00,10.50],"nested":{"deep":[{"x":[12345678901234567890.000001]}]},'
    b'"plain":[1.5,-3,0.25],"text":"caf\xc3\xa9 1.10"}'
)
NUMBER = r"-?(0|[1-9][0-9]{0,40})(\.[0-9]{1,40})?([eE][-+]?[0-9]{1,4})?"


@pytest.mark.parametrize(
    "text",
    [
        DATA,
        BIG,
        b"-0",
        b"[1e400,-1e400,1e-400]",
        b'{"a":[[[[1.10]]]],"b":"10:30:00.123Z","c":"550e8400-e29b"}',
        b"[0.1,0.5,100000.0,1e+16,1e-7,0.00001]",
    ],
)
def test_loads_then_dumps_gives_the_same_text(text):
    value = exactjson.loads(text)
    assert exactjson.dumps(value) == text
    assert exactjson.dumps(exactjson.loads_stored(exactjson.dumps_stored(value))) == text


@settings(max_examples=300, deadline=None)
@given(st.lists(st.from_regex(NUMBER, fullmatch=True), min_size=1, max_size=8))
def test_any_json_number_keeps_its_text(numbers):
    text = ("[" + ",".join(numbers) + "]").encode()
    value = exactjson.loads(text)
    assert exactjson.dumps(value) == text
    stored = exactjson.dumps_stored(value)
    assert exactjson.dumps(exactjson.loads_stored(stored)) == text
    assert json.loads(stored) is not None  # the stored text stays JSON for any reader


def test_plain_numbers_take_orjsons_path_and_stay_unmarked():
    value = exactjson.loads(b'{"n":1.5,"i":42,"t":"2024-01-01T00:00:00.123Z"}')
    assert type(value["n"]) is float and type(value["i"]) is int
    assert exactjson.dumps_stored(value) == orjson.dumps(value)  # no mark: orjson reads it
    kept = exactjson.loads(b'{"n":1.50,"i":' + BIG + b',"u":18446744073709551615}')
    assert isinstance(kept["n"], exactjson.ExactFloat) and kept["n"] == 1.5
    assert isinstance(kept["i"], exactjson.ExactInt) and kept["i"] == int(BIG)
    assert type(kept["u"]) is int  # orjson writes it
    assert exactjson.dumps_stored(kept).startswith(b" ")
    assert exactjson.dumps_stored({"i": 2**70}).startswith(b" ")  # a plain int made elsewhere


def test_past_orjsons_depth_and_with_big_integers():
    text = b"[" * 300 + b"1.10," + BIG + b"]" * 300
    assert exactjson.dumps(exactjson.loads(text)) == text
    with pytest.raises(TypeError):
        exactjson.dumps({"a": [2**70, object()]})  # the iterative writer refuses it too


def test_a_partition_key_path_gives_the_published_digits():
    doc = {"metadata": {}, "data": exactjson.loads(DATA)}
    for template, key in [
        ("data.account", BIG.decode()),
        ("data.precise", "0.1000000000000000055511151231257827"),
        ("data.one[2]", "1.00"),
        ("to_string(data.exponents[0])", "1e5"),
        ("max(data.one)", "10.50"),
        ("max([data.account, `1`])", BIG.decode()),
        ("to_string(data.past_u64)", "18446744073709551616"),
        ("data.one", "[1.0,1,1.00,10.50]"),
    ]:
        assert partition_key(compile_template(template), doc, "evt") == key, template


def test_a_source_record_keeps_its_digits():
    plan = Plan("org", "prod", "flow", "s", "raw", "latest", "t", 0, {})
    record = {"Data": DATA, "SequenceNumber": "1", "PartitionKey": "k"}
    event = event_for(plan, "shard-0", record)
    assert not isinstance(event, str)
    assert exactjson.dumps(event.data) == DATA
    record = {**record, "Data": b'{"n":NaN}'}
    assert event_for(plan, "shard-0", record) == "not valid JSON"


async def make_dest(client, stream, endpoint, filter=None, **config):
    body = {**kinesis_body(stream, endpoint, **config), "filter": filter}
    r = await client.post(f"{BASE}/destinations", headers=AUTH, json=body)
    assert r.status == 201, await r.text()
    return (await r.json())["id"]


async def raw_get(client, path):
    r = await client.get(path, headers=AUTH)
    assert r.status == 200, await r.text()
    return await r.read()


async def test_records_log_api_retry_and_redrive_keep_the_digits(client, worker, moto, moto_stream):
    await client.put(BASE, headers=AUTH)
    config = {"partition_key_template": "data.account", "metadata_in_payload": False}
    # filters compare the exact numbers: the first matches only this very integer
    exact = {"data": {"account": int(BIG), "u64": {"$gt": 2**64 - 2}}}
    live = await make_dest(client, moto_stream, moto.url, filter=exact, **config)
    other = {"data": {"account": int(BIG) + 1}}
    await make_dest(client, moto_stream, moto.url, filter=other, **config)
    ordered = {"data": {"precise": {"$gte": 0.1}, "huge": {"$gt": 1e308}, "tiny": {"$lte": 0}}}
    broken = await make_dest(client, "missing-stream", moto.url, filter=ordered, **config)
    body = b'{"tenant_id":"acme","topic":"orders","id":"evt_n","eligible_for_retry":false,"data":'
    r = await client.post("/api/v1/publish", headers=AUTH, data=body + DATA + b"}")
    assert r.status == 202, await r.text()
    await worker.run_until_empty()
    # a manual retry of the delivered one, a redrive of the dead letter after the fix
    r = await client.post(
        "/api/v1/retry", headers=AUTH, json={"event_id": "evt_n", "destination_id": live}
    )
    assert r.status == 202
    patch = {"config": {"stream_name": moto_stream}}
    r = await client.patch(f"{BASE}/destinations/{broken}", headers=AUTH, json=patch)
    assert r.status == 200
    r = await client.post(f"{BASE}/dead-letters/redrive", headers=AUTH)
    assert (await r.json())["redriven"] == 1
    await worker.run_until_empty()
    records = devstack.read_stream(moto.url, moto_stream, expect=3)
    assert [r["Data"] for r in records] == [DATA] * 3
    assert {r["PartitionKey"] for r in records} == {BIG.decode()}
    shown = b'"data":' + DATA
    assert shown in await raw_get(client, "/api/v1/events/evt_n")
    assert shown in await raw_get(client, "/api/v1/events?tenant_id=acme")
    assert shown in await raw_get(client, "/api/v1/attempts?include=event.data")
    path = f"{BASE}/destinations/{live}/attempts?include=event.data"
    assert shown in await raw_get(client, path)


async def test_a_batch_publish_keeps_the_digits(client, worker, moto, moto_stream):
    await client.put(BASE, headers=AUTH)
    await make_dest(client, moto_stream, moto.url, metadata_in_payload=False)
    item = b'{"tenant_id":"acme","topic":"orders","data":' + DATA + b"}"
    r = await client.post("/api/v1/publish/batch", headers=AUTH, data=b"[" + item + b"]")
    assert (await r.json())["accepted"] == 1
    await worker.run_until_empty()
    [record] = devstack.read_stream(moto.url, moto_stream, expect=1)
    assert record["Data"] == DATA


async def test_the_envelope_keeps_them_too(client, worker, moto, moto_stream):
    await client.put(BASE, headers=AUTH)
    await make_dest(client, moto_stream, moto.url)
    body = b'{"tenant_id":"acme","topic":"orders","id":"e1","time":"2024-01-01T00:00:00Z","data":'
    r = await client.post("/api/v1/publish", headers=AUTH, data=body + DATA + b"}")
    assert r.status == 202
    await worker.run_until_empty()
    [record] = devstack.read_stream(moto.url, moto_stream, expect=1)
    assert record["Data"] == (
        b'{"metadata":{"event-id":"e1","topic":"orders","timestamp":"1704067200"},"data":'
        + DATA
        + b"}"
    )


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
async def test_nan_and_infinity_are_still_400(client, literal):
    await client.put(BASE, headers=AUTH)
    r = await client.post(
        "/api/v1/publish",
        headers=AUTH,
        data=b'{"tenant_id":"acme","data":{"n":[1.10,' + literal + b"]}}",
    )
    assert r.status == 400 and "is not JSON" in (await r.json())["message"]


async def test_other_bodies_still_refuse_a_number_past_the_float_range(client, moto):
    """Only published data keeps exact numbers; a destination's filter is matched as floats,
    where 1e999 would be Infinity."""
    await client.put(BASE, headers=AUTH)
    body = kinesis_body("s", moto.url)
    raw = json.dumps(body)[:-1].encode() + b',"filter":{"data":{"n":{"$lt":1e999}}}}'
    r = await client.post(f"{BASE}/destinations", headers=AUTH, data=raw)
    assert r.status == 400 and "must be finite" in (await r.json())["message"]
