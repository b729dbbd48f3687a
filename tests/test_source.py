"""The Kinesis source reader end to end on local Kinesis servers: records put on an input
stream become events of the flow's tenant and reach that tenant's Kinesis destination on
another stream."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from outpost.dev import devstack
from outpost.flow.source import SourceReader
from outpost.flow.specs import KINESIS, PIPELINE, STREAMING_FLOW
from tests.conftest import ADMIN_KEY, AES_SECRET, AUTH, kinesis_body
from tests.topologies import topology  # noqa: F401  (single node and cluster)

BASE = "/data/foundation/flowservice"
H = {"Authorization": f"Bearer {ADMIN_KEY}", "x-gw-ims-org-id": "acme", "x-sandbox-name": "prod"}


async def make_flow(client, endpoint, stream, reset="earliest", data_type="raw"):
    async def post(kind, body):
        r = await client.post(f"{BASE}/{kind}", json=body, headers=H)
        assert r.status == 201, await r.text()
        return (await r.json())["id"]

    conn = await post(
        "connections",
        {
            "name": "in",
            "auth": {
                "specName": "Aws Kinesis authentication credentials",
                "params": {
                    "accessKeyId": "testing",
                    "secretKey": "testing",
                    "region": "us-east-1",
                    "endpoint": endpoint,
                },
            },
            "connectionSpec": {"id": KINESIS, "version": "1.0"},
        },
    )
    src = await post(
        "sourceConnections",
        {
            "name": "src",
            "baseConnectionId": conn,
            "connectionSpec": {"id": KINESIS, "version": "1.0"},
            "data": {"format": "json"},
            "params": {"stream": stream, "dataType": data_type, "reset": reset},
        },
    )
    tgt = await post(
        "targetConnections",
        {
            "name": "orders",
            "connectionSpec": {"id": PIPELINE, "version": "1.0"},
            "params": {"topic": "orders"},
        },
    )
    return await post(
        "flows",
        {
            "name": "f",
            "flowSpec": {"id": STREAMING_FLOW, "version": "1.0"},
            "sourceConnectionIds": [src],
            "targetConnectionIds": [tgt],
        },
    )


async def flow_status(client, flow_id):
    r = await client.get(f"{BASE}/flows/{flow_id}", headers=H)
    return (await r.json())["items"][0]


async def wait_for(predicate, limit=30.0):
    deadline = time.monotonic() + limit
    while not await predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


def put(endpoint, stream, payloads):
    client = devstack.kinesis_client(endpoint)
    for i, p in enumerate(payloads):
        data = p if isinstance(p, bytes) else json.dumps(p).encode()
        client.put_record(StreamName=stream, Data=data, PartitionKey=f"pk{i}")


@pytest.fixture
async def tenant(client, moto, moto_stream):
    """Tenant acme with a Kinesis destination (topic orders) on `moto_stream`."""
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    r = await client.post(
        "/api/v1/tenants/acme/destinations", headers=AUTH, json=kinesis_body(moto_stream, moto.url)
    )
    assert r.status == 201
    return moto_stream


def reader_for(deps, **kw):
    return SourceReader(
        deps, lease_ms=kw.pop("lease_ms", 1500), poll_seconds=0.1, discover_seconds=0.2, **kw
    )


async def test_earliest_and_latest_flow_through_to_a_destination(
    client, deps, worker, moto, tenant
):
    run = uuid.uuid4().hex[:8]  # (streams of their own per run: per topology)
    early, late = f"in-early-{run}", f"in-late-{run}"
    for s in (early, late):
        devstack.create_stream(moto.url, s, shards=2)
    put(moto.url, early, [{"n": i, "s": "early"} for i in range(3)])
    put(moto.url, late, [{"n": i, "s": "before"} for i in range(3)])
    await asyncio.sleep(0.05)
    f_early = await make_flow(client, moto.url, early, reset="earliest")
    f_late = await make_flow(client, moto.url, late, reset="latest")
    await asyncio.sleep(0.05)
    put(moto.url, late, [{"n": i, "s": "after"} for i in range(2)])
    reader = reader_for(deps)
    task = asyncio.create_task(reader.run())
    try:

        async def done():
            a = (await flow_status(client, f_early))["metrics"]["eventsPublished"]
            b = (await flow_status(client, f_late))["metrics"]["eventsPublished"]
            return a == 3 and b == 2

        await wait_for(done)
    finally:
        reader.stop()
        await task
    await worker.run_until_empty()
    out = devstack.read_stream(moto.url, tenant, expect=5)
    bodies = sorted(
        (json.loads(r["Data"])["data"]["s"], json.loads(r["Data"])["data"]["n"]) for r in out
    )
    assert bodies == [("after", 0), ("after", 1), ("early", 0), ("early", 1), ("early", 2)]
    meta = json.loads(out[0]["Data"])["metadata"]
    assert meta["topic"] == "orders" and meta["source-stream"] in (early, late)
    assert {"source-shard-id", "source-sequence-number", "source-partition-key"} <= set(meta)
    status = await flow_status(client, f_late)
    assert status["metrics"] == {"recordsRead": 2, "eventsPublished": 2, "failedRecords": 0}
    assert len(status["lastRunDetails"]["checkpoints"]) >= 1


async def test_bad_records_are_kept_and_never_block_the_shard(client, deps, moto, tenant):
    stream = f"in-mixed-{uuid.uuid4().hex[:8]}"  # (a stream per run: per topology)
    devstack.create_stream(moto.url, stream, shards=1)
    put(
        moto.url,
        stream,
        [
            {"header": {"v": 1}, "body": {"ok": 1}},
            b"not json {",
            {"no": "header"},
            [1, 2],
            {"header": {}, "body": {"ok": 2}},
        ],
    )
    flow = await make_flow(client, moto.url, stream, data_type="xdm")
    reader = reader_for(deps)
    task = asyncio.create_task(reader.run())
    try:

        async def done():
            m = (await flow_status(client, flow))["metrics"]
            return m["recordsRead"] == 5

        await wait_for(done)
    finally:
        reader.stop()
        await task
    status = await flow_status(client, flow)
    assert status["metrics"] == {"recordsRead": 5, "eventsPublished": 2, "failedRecords": 3}
    reasons = {f["reason"] for f in status["lastRunDetails"]["failedRecords"]}
    assert reasons == {
        "not valid JSON",
        "not valid xdm: an object with header and body is required",
    }
    events = await (await client.get("/api/v1/events?tenant_id=acme", headers=AUTH)).json()
    assert sorted(e["data"]["ok"] for e in events["models"]) == [1, 2]  # body is the data


async def test_disabled_flow_stops_reading(client, deps, moto, tenant):
    stream = f"in-toggle-{uuid.uuid4().hex[:8]}"  # (a stream per run: per topology)
    devstack.create_stream(moto.url, stream, shards=1)
    flow = await make_flow(client, moto.url, stream)
    r = await client.post(f"{BASE}/flows/{flow}/action?op=disable", headers=H)
    assert r.status == 200
    put(moto.url, stream, [{"n": 1}])
    reader = reader_for(deps)
    task = asyncio.create_task(reader.run())
    await asyncio.sleep(1.0)
    assert (await flow_status(client, flow))["metrics"]["recordsRead"] == 0
    await client.post(f"{BASE}/flows/{flow}/action?op=enable", headers=H)
    try:

        async def done():
            return (await flow_status(client, flow))["metrics"]["eventsPublished"] == 1

        await wait_for(done)
    finally:
        reader.stop()
        await task


# a reader process of its own, on the single node (a process reaches a cluster through
# REDIS_CLUSTER_ENABLED's client, built on the i18-ops branch)
@pytest.mark.parametrize("topology", ["single"])
async def test_kill_9_reader_mid_stream_loses_nothing_and_publishes_once(
    client, deps, worker, moto, tenant, redis_server
):
    stream = f"in-crash-{uuid.uuid4().hex[:8]}"  # (a stream per run: per topology)
    devstack.create_stream(moto.url, stream, shards=2)
    put(moto.url, stream, [{"n": i} for i in range(400)])
    flow = await make_flow(client, moto.url, stream)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REDIS_"))}
    env.update(
        {
            "API_KEY": ADMIN_KEY,
            "AES_ENCRYPTION_SECRET": AES_SECRET,
            "REDIS_URL": redis_server.redis_url,
            "LOG_LEVEL": "warning",
            "DESTINATIONS_ALLOW_PRIVATE_ENDPOINTS": "true",  # moto is on 127.0.0.1
            "SOURCE_BATCH_LIMIT": "10",
            "SOURCE_LEASE_SECONDS": "1.5",
            "SOURCE_POLL_SECONDS": "0.1",
            "DELIVERY_PARTITIONS": "4",
        }
    )

    def start():
        return subprocess.Popen(
            [sys.executable, "-m", "outpost", "source"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def published():
        return (await flow_status(client, flow))["metrics"]["eventsPublished"]

    first = start()
    try:
        await wait_for(lambda: _gt(published, 60))
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert await published() < 400
    second = start()
    try:
        await wait_for(lambda: _gt(published, 399), limit=60)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=20) == 0
    events = await deps.redis.zcard(deps.keys.events_index("acme"))
    assert events == 400  # every record became exactly one event
    r = await client.get(f"{BASE}/runs", headers=H, params={"property": f"flowId=={flow}"})
    runs = [run["metrics"]["recordSummary"] for run in (await r.json())["items"]]
    assert sum(c["inputRecordCount"] for c in runs) == 400  # the re-read batch counted once
    assert sum(c["outputRecordCount"] for c in runs) == await published() == 400
    await worker.run_until_empty(limit=60)
    out = devstack.read_stream(moto.url, tenant, expect=400, timeout=30)
    numbers = sorted(json.loads(r["Data"])["data"]["n"] for r in out)
    assert numbers == list(range(400))  # none lost, none delivered twice
    print(
        f"\nSOURCE kill -9: 400 records, {await published()} events counted, {len(out)} delivered"
    )


async def _gt(fn, n):
    return await fn() > n


async def test_split_while_reading_parents_before_children(
    client, deps, kinesis_local_server, tenant
):
    """On kinesis-local (LocalStack's engine): closed parents keep their records, as on AWS.
    moto moves a parent's records into its children, so it cannot show this."""
    url = kinesis_local_server.url
    stream = f"in-split-{uuid.uuid4().hex[:8]}"  # (a stream per run: per topology)
    devstack.create_stream(url, stream, shards=2)
    kc = devstack.kinesis_client(url)
    put(url, stream, [{"n": i, "phase": "before"} for i in range(40)])
    flow = await make_flow(client, url, stream)
    order = []
    publish_many = deps.ingest.publish_many

    async def recording(events):
        order.extend((e.metadata["source-shard-id"], e.data["n"], e.data["phase"]) for e in events)
        return await publish_many(events)

    deps.ingest.publish_many = recording
    reader = reader_for(deps)
    task = asyncio.create_task(reader.run())
    try:
        await wait_for(lambda: _gt(lambda: _count(client, flow), 10))
        shards = kc.describe_stream(StreamName=stream)["StreamDescription"]["Shards"]
        first = shards[0]
        rng = first["HashKeyRange"]
        mid = (int(rng["StartingHashKey"]) + int(rng["EndingHashKey"])) // 2
        kc.split_shard(
            StreamName=stream, ShardToSplit=first["ShardId"], NewStartingHashKey=str(mid)
        )
        for _ in range(100):
            if (
                kc.describe_stream(StreamName=stream)["StreamDescription"]["StreamStatus"]
                == "ACTIVE"
            ):
                break
            await asyncio.sleep(0.1)
        put(url, stream, [{"n": i, "phase": "after"} for i in range(40, 80)])
        await wait_for(lambda: _gt(lambda: _count(client, flow), 79), limit=60)
    finally:
        reader.stop()
        await task
    assert sorted(n for _, n, _ in order) == list(range(80))  # every record, once
    desc = kc.describe_stream(StreamName=stream)["StreamDescription"]["Shards"]
    parent_of = {s["ShardId"]: s.get("ParentShardId") for s in desc}
    children = {sid for sid, p in parent_of.items() if p == first["ShardId"]}
    assert len(children) == 2
    position = {}
    for i, (sid, _, _) in enumerate(order):
        position.setdefault(sid, []).append(i)
    last_parent = max(position[first["ShardId"]])
    for child in children & set(position):
        assert min(position[child]) > last_parent  # the parent was drained first
    status = await flow_status(client, flow)
    assert status["lastRunDetails"]["checkpoints"][first["ShardId"]] == "SHARD_END"


async def _count(client, flow):
    return (await flow_status(client, flow))["metrics"]["eventsPublished"]
