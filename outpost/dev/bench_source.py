"""`make bench`'s source figure: how many records/s one Kinesis source reader turns into
events (published through ingest, matched to a destination, queued), from a minimal
Kinesis server that answers DescribeStream, GetShardIterator and GetRecords with as many
records as asked (its own process, so the reader has the client side to itself).

`python -m outpost.dev.bench_source [records=60000] [shards=8] [batch=1000]` prints one
JSON object. With the 5 GetRecords/s per shard the reader keeps, one shard gives at most
5 x batch records/s: the shards are many enough that the reader, not that limit, is what
is measured."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
from typing import Any

from aiohttp import web

STREAM = "bench-in"


# -- the minimal Kinesis source ---------------------------------------------------------------
def _describe(shards: int, now: float) -> dict[str, Any]:
    top = 2**128 - 1
    step = top // shards
    return {
        "StreamDescription": {
            "StreamName": STREAM,
            "StreamARN": f"arn:aws:kinesis:us-east-1:000000000000:stream/{STREAM}",
            "StreamStatus": "ACTIVE",
            "HasMoreShards": False,
            "RetentionPeriodHours": 24,
            "StreamCreationTimestamp": now,
            "EnhancedMonitoring": [],
            "Shards": [
                {
                    "ShardId": f"shardId-{i:012d}",
                    "HashKeyRange": {
                        "StartingHashKey": str(i * step),
                        "EndingHashKey": str(top if i == shards - 1 else (i + 1) * step - 1),
                    },
                    "SequenceNumberRange": {"StartingSequenceNumber": "1"},
                }
                for i in range(shards)
            ],
        }
    }


def _records(body: dict[str, Any], total: int, data: str, now: float) -> dict[str, Any]:
    """Up to Limit records after the iterator's position, at most `total` per shard."""
    shard, _, pos = body["ShardIterator"].rpartition("/")
    first = int(pos) + 1
    last = min(total, first + int(body.get("Limit", 10_000)) - 1)
    got = [
        {
            "SequenceNumber": str(n),
            "ApproximateArrivalTimestamp": now,
            "Data": data,
            "PartitionKey": str(n),
        }
        for n in range(first, last + 1)
    ]
    return {
        "Records": got,
        "NextShardIterator": f"{shard}/{max(last, first - 1)}",
        "MillisBehindLatest": 0,
    }


def source_app(
    total_per_shard: int, shards: int, calls: list[tuple[float, str, dict[str, Any]]] | None = None
) -> web.Application:
    """`calls`, if given, gets (monotonic time, operation, body) of each call."""
    data = base64.b64encode(json.dumps({"pad": "x" * 200}).encode()).decode()
    now = time.time()

    def iterator(body: dict[str, Any]) -> dict[str, Any]:
        start = int(body.get("StartingSequenceNumber") or 0)
        return {"ShardIterator": f"{body['ShardId']}/{start}"}

    ops = {
        "DescribeStream": lambda _: _describe(shards, now),
        "GetShardIterator": iterator,
        "GetRecords": lambda body: _records(body, total_per_shard, data, now),
    }

    async def kinesis(request: web.Request) -> web.Response:
        op = request.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
        if op not in ops:
            return web.json_response({"__type": "UnknownOperationException"}, status=400)
        body = json.loads(await request.read())
        if calls is not None:
            calls.append((time.monotonic(), op, body))
        out = ops[op](body)
        return web.json_response(out, content_type="application/x-amz-json-1.1")

    app = web.Application()
    app.router.add_post("/{tail:.*}", kinesis)
    return app


# -- the run ----------------------------------------------------------------------------------
async def setup(redis_url: str, endpoint: str, dest_endpoint: str) -> Any:
    """A tenant with a Kinesis destination and an enabled streaming flow from the bench
    source: the Flow Service's resources written to the store as its routes would."""
    from outpost.deps import Deps
    from outpost.dev.bench import KEY, SECRET, _destination_body
    from outpost.flow.specs import KINESIS, PIPELINE, STREAMING_FLOW
    from outpost.queue.connection import connect_redis
    from outpost.settings import Settings

    settings = Settings(
        api_key=KEY,
        aes_encryption_secret=SECRET,
        redis_url=redis_url,
        destinations_allow_private_endpoints=True,
    )
    deps = Deps.build(settings, connect_redis(redis_url))
    await deps.redis.flushdb()
    await deps.store.upsert_tenant("bench", None)
    await deps.store.create_destination(
        deps.registry.create("bench", _destination_body(dest_endpoint, False), "d1")
    )
    auth = {"accessKeyId": "bench", "secretKey": "bench", "region": "us-east-1"}
    records: dict[str, dict[str, Any]] = {
        "connections": {"auth": {"params": {**auth, "endpoint": endpoint}}},
        "sourceConnections": {"baseConnectionId": "c1", "params": {"stream": STREAM}},
        "targetConnections": {"params": {"topic": "orders"}},
        "flows": {"sourceConnectionIds": ["s1"], "targetConnectionIds": ["t1"]},
    }
    specs = {"connections": KINESIS, "sourceConnections": KINESIS, "targetConnections": PIPELINE}
    for (kind, body), rid in zip(records.items(), ("c1", "s1", "t1", "f1"), strict=True):
        common: dict[str, Any] = {"id": rid, "imsOrgId": "bench", "sandboxName": "prod"}
        common.update(state="enabled", createdAt=int(time.time() * 1000), etag='"1"')
        spec = {"flowSpec": {"id": STREAMING_FLOW}} if kind == "flows" else {}
        spec = spec or {"connectionSpec": {"id": specs[kind]}}
        await deps.flows.create(kind, {**common, **spec, **body}, {"secretKey"})
    return deps


def record_by_record(deps: Any, batch: int) -> Any:
    """The reader as it was before it published in batches, the rate the issue's 5x is
    held to: each record published alone (ingest.publish; the coalescer still shares a
    round trip between shards publishing at once), the checkpoint moved per GetRecords
    page. It reads GetRecords answers the fast way too, so the ratio errs low."""
    from outpost.flow.source import SourceReader, event_for
    from outpost.models import Event

    class RecordByRecord(SourceReader):
        async def _deliver(self, plan: Any, sid: str, records: list[dict[str, Any]]) -> None:
            failed = 0
            for record in records:
                made = event_for(plan, sid, record)
                if isinstance(made, Event):
                    await self.deps.ingest.publish(made)
                else:
                    failed += 1
            counts = (len(records), len(records) - failed, failed)
            await self.mark(plan, sid, records[-1]["SequenceNumber"], counts)

    return RecordByRecord(deps, poll_seconds=0.2, discover_seconds=0.5, batch=batch)


async def measure(
    deps: Any, total: int, batch: int, limit: float = 300.0, single: bool = False
) -> dict[str, Any]:
    """Run a reader (`single`: the record-by-record one) until `total` events are
    published: (records/s, seconds)."""
    from outpost.dev.bench_ceilings import cpu_seconds
    from outpost.flow.source import SourceReader

    reader = SourceReader(deps, poll_seconds=0.2, discover_seconds=0.5, batch=batch)
    if single:
        reader = record_by_record(deps, batch)
    cpu = cpu_seconds(os.getpid())
    task = asyncio.create_task(reader.run())
    metrics = deps.keys.flow_state("f1", "metrics")
    started = first = None
    try:
        started = time.monotonic()
        deadline = started + limit
        while time.monotonic() < deadline:
            done = int(await deps.redis.hget(metrics, "events_published") or 0)
            if first is None and done:
                first = (time.monotonic(), done)
            if done >= total:
                break
            await asyncio.sleep(0.02)
    finally:
        reader.stop()
        await task
    end = time.monotonic()
    t0, n0 = first or (started, 0)
    per_s = (done - n0) / (end - t0) if end > t0 else 0.0
    cpu_us = (cpu_seconds(os.getpid()) - cpu) / max(done, 1) * 1e6  # the reader's process
    return {
        "source_records_per_s": per_s,
        "source_records": done,
        "source_seconds": end - t0,
        "source_cpu_us_per_record": cpu_us,
    }


async def run(args: dict[str, int]) -> dict[str, Any]:
    from outpost.dev import devstack
    from outpost.runtime import settle_heap

    await settle_heap()  # as `outpost source` does before it starts its reader

    port = devstack.free_port()
    per_shard = args["records"] // args["shards"]
    cmd = [sys.executable, "-m", "outpost.dev.bench_source", "endpoint", str(port)]
    src = devstack.Server([*cmd, str(per_shard), str(args["shards"])], port).start()
    redis = devstack.redis_server()
    redis.start()
    try:
        out: dict[str, Any] = {}
        for single in (True, False) if args.get("baseline", 1) else (False,):
            deps = await setup(redis.redis_url, src.url, "http://127.0.0.1:9")  # not sent
            got = await measure(deps, per_shard * args["shards"], args["batch"], single=single)
            await deps.redis.aclose()
            if single:
                out["source_record_by_record_per_s"] = got["source_records_per_s"]
                out["source_record_by_record_cpu_us"] = got["source_cpu_us_per_record"]
            else:
                out.update(got)
        if "source_record_by_record_cpu_us" in out:  # what each record costs, over the old's
            old = out["source_record_by_record_cpu_us"]
            out["source_cpu_ratio"] = old / (out["source_cpu_us_per_record"] or 1.0)
    finally:
        src.stop()
        redis.stop()
    return out


def main(argv: list[str]) -> None:
    if argv and argv[0] == "endpoint":
        port, per_shard, shards = (int(a) for a in argv[1:4])
        web.run_app(
            source_app(per_shard, shards),
            host="127.0.0.1",
            port=port,
            print=None,
            access_log=None,
        )
        return
    args = {"records": 60_000, "shards": 8, "batch": 1000, "baseline": 1}
    for item in argv:
        key, _, value = item.partition("=")
        args[key] = int(value)
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main(sys.argv[1:])
