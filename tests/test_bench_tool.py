"""`make bench`'s own parts (the figures are printed by `make bench`, not asserted here)."""

import base64
import json
import subprocess
import sys
import time

from aiohttp import web

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


def test_verdicts_report_ratios_and_every_missed_target():
    from outpost.dev.bench_ceilings import TARGETS, missed, verdicts

    out = {
        "pipeline_batched_per_s": 30_000.0,
        "ceiling_batched_per_s": 50_000.0,
        "publish_p99_ms": 40.0,
        "latency_p50_ms": 4.0,
    }
    report = verdicts(out)
    assert set(report) == {t[0] for t in TARGETS}  # every target is in the report
    assert report["ratio_batched"] == {"value": 0.6, "target": ">= 0.5", "met": True}
    assert report["publish_p99_ms"]["met"] is False  # 40 ms is over 25 ms
    assert report["latency_p50_ms"]["met"] is True
    # a figure the run did not measure is missed, with no value: never hidden
    assert report["ratio_shard_limit"] == {"value": None, "target": ">= 0.9", "met": False}
    assert "publish_p99_ms" in missed(report) and "ratio_batched" not in missed(report)


async def test_http_ceiling_answers_202_after_storing(aiohttp_client, redis, redis_server):
    from outpost.dev.bench_ceilings import http_ceiling_app

    c = await aiohttp_client(http_ceiling_app(redis_server.redis_url))
    r = await c.post("/api/v1/publish", json={"tenant_id": "bench"})
    assert r.status == 202
    assert await redis.get("bench:http:1") == b'{"tenant_id": "bench"}'


async def test_naive_batcher_drains_the_list_in_putrecords_calls(aiohttp_server, redis_server):
    from outpost.dev.bench_ceilings import NAIVE_LIST, naive_batcher, naive_fill

    calls: list[int] = []
    app = endpoint_app()

    @web.middleware
    async def counting(request, handler):
        if request.headers.get("X-Amz-Target", "").endswith("PutRecords"):
            calls.append(len(json.loads(await request.read())["Records"]))
        return await handler(request)

    app.middlewares.append(counting)
    server = await aiohttp_server(app)
    await naive_fill(redis_server.redis_url, 1200)
    result = await naive_batcher(redis_server.redis_url, str(server.make_url("")), 2)
    assert result["n"] == 1200 and sorted(calls) == [200, 500, 500]
    assert result["per_s"] > 0 and result["cpu_us_per_event"] > 0
    from redis.asyncio import Redis

    r = Redis.from_url(redis_server.redis_url)
    assert await r.llen(NAIVE_LIST) == 0
    await r.aclose()


async def test_endpoint_lists_shards_that_cover_the_hash_key_space(aiohttp_client):
    from outpost.destinations.kinesis.shards import ShardMap

    c = await aiohttp_client(endpoint_app())
    h = {"X-Amz-Target": "Kinesis_20131202.ListShards"}
    r = await c.post("/", data=json.dumps({"StreamName": "bench"}), headers=h)
    shard_map = ShardMap.from_list_shards((await r.json(content_type=None))["Shards"])
    assert len(shard_map.shards) == 100
    assert shard_map.shard_for(0) == "shardId-000000000000"
    assert shard_map.shard_for(2**128 - 1) == "shardId-000000000099"
    ends = [s.end + 1 for s in shard_map.shards[:-1]]
    assert ends == [s.start for s in shard_map.shards[1:]]  # no gaps, no overlaps


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
    # the machine was busy (a worker draining) and no core more than all the time
    assert all(0 < out[f"fair_machine_busy_{p}"] <= 1.0 for p in ("alone", "shared"))
    # publish -> send start comes before publish -> receive (times to the millisecond)
    for phase in ("idle", "with_backlog"):
        start, receive = out[f"fair_b_send_start_p99_{phase}_ms"], out[f"fair_b_p99_{phase}_ms"]
        assert start is not None and 0 < start <= receive + 1.0, (phase, start, receive)


def test_the_report_prints_a_table_the_missed_targets_and_last_the_json(capsys):
    from outpost.dev.bench_report import report

    report({"fair_a_backlog_left": 3, "fair_b_p99_ms": 1.25}, with_targets=False)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["figure", "value"] and "fair_b_p99_ms" in lines[3]
    assert json.loads(lines[-1]) == {"fair_a_backlog_left": 3, "fair_b_p99_ms": 1.25}
    out = {"ceiling_putrecord_per_s": 100.0}
    report(out, with_targets=True)  # every other figure is missing: all those targets missed
    printed = capsys.readouterr().out.splitlines()
    assert printed[-2].startswith("missed targets: ") and printed[-2] != "missed targets: none"
    assert json.loads(printed[-1])["missed"] == out["missed"] != []


def test_bench_help_says_what_it_runs_and_runs_nothing():
    run = subprocess.run(
        [sys.executable, "-m", "outpost.dev.bench", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "`make bench`" in run.stdout and "name=value" in run.stdout
