"""`make bench`'s own parts (the figures are printed by `make bench`, not asserted here)."""

import base64
import json
import time

from outpost.dev import devstack
from outpost.dev.bench import service_env
from outpost.dev.bench_fair import fairness
from outpost.dev.bench_parts import endpoint_app, pct


def test_percentiles():
    data = [i / 1000 for i in range(1, 101)]
    assert pct(data, 50) == 51.0 and pct(data, 99) == 100.0 and pct([], 99) is None


async def test_endpoint_answers_putrecord_and_putrecords_and_measures(aiohttp_client):
    c = await aiohttp_client(endpoint_app())
    sent = base64.b64encode(
        json.dumps({"metadata": {}, "data": {"sent_at": time.time() - 0.01}}).encode()
    ).decode()
    h = {"X-Amz-Target": "Kinesis_20131202.PutRecord"}
    r = await c.post(
        "/", data=json.dumps({"Data": sent, "PartitionKey": "k", "StreamName": "s"}), headers=h
    )
    assert (await r.json(content_type=None))["SequenceNumber"] == "1"
    h = {"X-Amz-Target": "Kinesis_20131202.PutRecords"}
    r = await c.post(
        "/",
        data=json.dumps({"Records": [{"Data": sent, "PartitionKey": "k"}] * 3, "StreamName": "s"}),
        headers=h,
    )
    body = await r.json(content_type=None)
    assert body["FailedRecordCount"] == 0 and len(body["Records"]) == 3
    stats = await (await c.get("/stats")).json()
    assert stats["n"] == 1 and 10 <= stats["p50"] < 1000  # PutRecord alone is timed


async def test_the_endpoint_keeps_each_streams_latencies_apart(aiohttp_client):
    c = await aiohttp_client(endpoint_app())
    h = {"X-Amz-Target": "Kinesis_20131202.PutRecord"}
    for stream, ago in (("a", 0.01), ("b", 0.5), ("b", 0.5)):
        data = base64.b64encode(json.dumps({"sent_at": time.time() - ago}).encode()).decode()
        body = json.dumps({"Data": data, "PartitionKey": "k", "StreamName": stream})
        assert (await c.post("/", data=body, headers=h)).status == 200
    b = await (await c.get("/stats", params={"stream": "b"})).json()
    assert b["n"] == 2 and b["p99"] >= 500
    rest = await (await c.get("/stats")).json()
    assert rest["n"] == 1 and rest["p99"] < 500  # b's were taken by the first call


async def test_the_fairness_run_prints_its_figures(redis_server, aiohttp_server):
    """`make bench`'s fairness run, scaled down (its figures are not asserted: the
    machine is shared): both tenants' figures come out and A's backlog lasted."""
    servers = [await aiohttp_server(endpoint_app(), host="127.0.0.1") for _ in range(2)]
    a, b = (str(s.make_url("")).rstrip("/") for s in servers)
    env = service_env(redis_server.redis_url, devstack.free_port(), 64)
    args = {"fair_backlog": 20_000, "fair_seconds": 1.5, "fair_rate": 20.0}
    out = await fairness(redis_server.redis_url, (a, b), env, args)
    assert out["fair_b_arrived_idle"] > 0 and out["fair_b_arrived_with_backlog"] > 0
    assert out["fair_a_drain_alone_per_s"] > 0 and out["fair_a_drain_shared_per_s"] > 0
    assert out["fair_a_backlog_left"] > 0
