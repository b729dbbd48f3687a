"""Delivery end to end on a real Kinesis endpoint: API → Redis → worker → PutRecord →
GetRecords. Tests taking `kinesis` run against moto server and kinesis-local."""

import asyncio
import json
import uuid
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError

from outpost.destinations.aws.errors import classify
from outpost.dev import devstack
from outpost.models import Event
from outpost.retry import RetryPolicy
from outpost.runtime import build_worker
from tests.conftest import AUTH, kinesis_body
from tests.faults import KinesisProxy
from tests.topologies import topology  # noqa: F401  (single node and cluster)


async def setup_destination(client, stream, endpoint, tenant="acme", config=(), **body_extra):
    """Seed 002's body on a local endpoint; `config` adds to its config."""
    await client.put(f"/api/v1/tenants/{tenant}", headers=AUTH)
    body = {**kinesis_body(stream, endpoint, **dict(config)), **body_extra}
    r = await client.post(f"/api/v1/tenants/{tenant}/destinations", json=body, headers=AUTH)
    assert r.status == 201, await r.text()
    return await r.json()


async def publish(client, **body):
    r = await client.post(
        "/api/v1/publish", json={"tenant_id": "acme", "topic": "orders", **body}, headers=AUTH
    )
    assert r.status == 202, await r.text()
    return await r.json()


async def test_seed_002_flow(client, worker, deps, kinesis, stream):
    dest = await setup_destination(client, stream, kinesis.url)
    pub = await publish(
        client,
        id="evt_123",
        time="2024-01-01T00:00:00Z",
        metadata={"source": "checkout-service"},
        data={"order_id": "123", "status": "created"},
    )
    assert pub == {"id": "evt_123", "duplicate": False, "destination_ids": [dest["id"]]}
    await worker.run_until_empty()
    records = devstack.read_stream(kinesis.url, stream, expect=1)
    assert len(records) == 1
    assert records[0]["Data"] == (
        b'{"metadata":{"event-id":"evt_123","topic":"orders","timestamp":"1704067200",'
        b'"source":"checkout-service"},"data":{"order_id":"123","status":"created"}}'
    )
    assert records[0]["PartitionKey"] == "evt_123"
    [attempt] = await deps.queue.attempts("acme", dest["id"])
    assert attempt["status"] == "success" and attempt["attempt_number"] == 1
    assert attempt["response_data"] == {
        "shard_id": records[0]["ShardId"],
        "sequence_number": records[0]["SequenceNumber"],
        "partition_key": "evt_123",
    }


async def test_template_key_and_bare_data(client, worker, kinesis, stream):
    await setup_destination(
        client,
        stream,
        kinesis.url,
        config={
            "partition_key_template": "data.customer_id",
            "metadata_in_payload": False,
        },
    )
    await publish(client, data={"customer_id": "c-42", "total": 9.5, "items": [1, 2]})
    await publish(client, data={"customer_id": 7})
    await worker.run_until_empty()
    records = devstack.read_stream(kinesis.url, stream, expect=2)
    by_key = {r["PartitionKey"]: r["Data"] for r in records}
    assert by_key == {
        "c-42": b'{"customer_id":"c-42","total":9.5,"items":[1,2]}',
        "7": b'{"customer_id":7}',
    }


async def test_missing_stream_fails_fast(client, worker, deps, kinesis):
    """Issue 16: a missing stream is the destination's fault, not this event's: the attempt
    fails at once (dead-lettered, no retry schedule burnt), `broken` so the operator is
    alerted at once."""
    name = f"later-{id(worker)}"
    await setup_destination(client, name, kinesis.url)
    await publish(client, id="evt_late", data={"n": 1})
    [entry] = await deps.queue.read(worker.name, count=10, block_ms=100)
    outcome = await worker.process(entry)
    assert (outcome.status, outcome.code, outcome.dead) == ("failed", "stream_not_found", True)
    assert outcome.retry_in is None and outcome.broken


async def test_key_too_long_goes_to_dead_letters_at_once(client, worker, deps, kinesis, stream):
    dest = await setup_destination(
        client,
        stream,
        kinesis.url,
        config={
            "partition_key_template": "data.k",
        },
    )
    await publish(client, id="evt_long", data={"k": "x" * 300})
    await publish(client, id="evt_ok", data={"k": "short"})
    await worker.run_until_empty()
    assert [r["PartitionKey"] for r in devstack.read_stream(kinesis.url, stream, expect=1)] == [
        "short"
    ]
    [dead] = await deps.queue.dead_letters("acme")
    assert (dead["e"], dead["code"]) == ("evt_long", "partition_key_too_long")
    failed = [a for a in await deps.queue.attempts("acme", dest["id"]) if a["status"] == "failed"]
    assert len(failed) == 1  # not retried
    assert (await deps.queue.depth())["retrying"] == 0


async def test_oversized_record_is_permanent(client, worker, deps, moto, moto_stream):
    dest = await setup_destination(client, moto_stream, moto.url)
    big = Event(
        id="evt_big",
        tenant_id="acme",
        topic="orders",
        time=datetime.now(UTC),
        data={"blob": "x" * (1024 * 1024)},
    )
    await deps.queue.publish(big, [(dest["id"], big.id)])
    await worker.run_until_empty()
    [dead] = await deps.queue.dead_letters("acme")
    assert dead["code"] == "record_too_large"
    assert devstack.read_stream(moto.url, moto_stream) == []


async def test_not_eligible_for_retry_gets_one_attempt(client, worker, deps, moto):
    dest = await setup_destination(client, "never-created", moto.url)
    await publish(client, eligible_for_retry=False, data={})
    await worker.run_until_empty()
    attempts = await deps.queue.attempts("acme", dest["id"])
    assert [a["status"] for a in attempts] == ["failed"]
    assert len(await deps.queue.dead_letters("acme")) == 1


async def test_retries_exhausted_then_dead_letter(client, deps, settings, moto):
    dead_port = devstack.free_port()  # nothing listens there
    dest = await setup_destination(client, "s", f"http://127.0.0.1:{dead_port}")
    w = build_worker(deps, deps.settings, policy=RetryPolicy(max_retries=2, interval=0.02))
    await publish(client, data={})
    await w.run_until_empty()
    attempts = await deps.queue.attempts("acme", dest["id"])
    assert sorted(a["attempt_number"] for a in attempts) == [1, 2, 3]
    assert {a["code"] for a in attempts} == {"request_failed"}
    [dead] = await deps.queue.dead_letters("acme")
    assert dead["a"] == "3"


async def test_patch_takes_effect_on_the_next_send(client, worker, deps, moto, moto_stream):
    dead_port = devstack.free_port()
    dest = await setup_destination(client, moto_stream, f"http://127.0.0.1:{dead_port}")
    await publish(client, id="evt_a", data={})
    [entry] = await deps.queue.read(worker.name, count=10, block_ms=100)
    assert (await worker.process(entry)).code == "request_failed"
    r = await client.patch(
        f"/api/v1/tenants/acme/destinations/{dest['id']}",
        headers=AUTH,
        json={"config": {"endpoint": moto.url}, "credentials": {"secret": "rotated-secret-0001"}},
    )
    assert r.status == 200
    await worker.run_until_empty()
    assert len(devstack.read_stream(moto.url, moto_stream, expect=1)) == 1
    targets = list(worker.registry.get("aws_kinesis").writer.targets.values())
    assert len(targets) == 2  # the rotated credentials built a new signer
    assert targets[-1].signer.credentials.secret_key == "rotated-secret-0001"
    assert targets[-1].url == moto.url + "/"


async def test_aws_endpoint_url_env_is_honoured(client, worker, moto, moto_stream, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", moto.url)
    body = kinesis_body(moto_stream, moto.url)
    del body["config"]["endpoint"]
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    r = await client.post("/api/v1/tenants/acme/destinations", json=body, headers=AUTH)
    assert r.status == 201
    await publish(client, data={"via": "env"})
    await worker.run_until_empty()
    [rec] = devstack.read_stream(moto.url, moto_stream, expect=1)
    assert json.loads(rec["Data"])["data"] == {"via": "env"}


async def test_disabled_destination_keeps_the_task_as_dead_letter(
    client, worker, deps, moto, moto_stream
):
    dest = await setup_destination(client, moto_stream, moto.url)
    await publish(client, id="evt_d", data={})
    await client.put(f"/api/v1/tenants/acme/destinations/{dest['id']}/disable", headers=AUTH)
    await worker.run_until_empty()
    assert devstack.read_stream(moto.url, moto_stream) == []
    [dead] = await deps.queue.dead_letters("acme")
    assert (dead["e"], dead["code"]) == ("evt_d", "destination_disabled")


async def test_crashed_consumers_tasks_are_reclaimed(client, deps, moto, moto_stream):
    await setup_destination(client, moto_stream, moto.url)
    for i in range(3):
        await publish(client, id=f"evt_{i}", data={"i": i})
    taken = await deps.queue.read("crashed-worker", count=10, block_ms=100)
    assert len(taken) == 3  # read, never acked: that worker died
    w = build_worker(deps, deps.settings, policy=RetryPolicy(), reclaim_idle_seconds=0.3)
    runner = asyncio.create_task(w.run())
    try:
        records = await asyncio.to_thread(devstack.read_stream, moto.url, moto_stream, 15.0, 3)
    finally:
        w.stop()
        await runner
    assert sorted(r["PartitionKey"] for r in records) == ["evt_0", "evt_1", "evt_2"]
    assert (await deps.queue.depth())["queued"] == 0


async def test_worker_loop_delivers_a_burst_and_stops(client, deps, settings, moto, moto_stream):
    await setup_destination(client, moto_stream, moto.url)

    w = build_worker(deps, settings)
    runner = asyncio.create_task(w.run())
    ids = {(await publish(client, data={"n": n}))["id"] for n in range(60)}
    records = await asyncio.to_thread(devstack.read_stream, moto.url, moto_stream, 20.0, 60)
    w.stop()
    await asyncio.wait_for(runner, 10)
    assert {r["PartitionKey"] for r in records} == ids


def client_error(code, status=400):
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutRecord",
    )


@pytest.mark.parametrize(
    ("exc", "label", "retryable"),
    [
        (client_error("ProvisionedThroughputExceededException"), "throughput_exceeded", True),
        (client_error("ResourceNotFoundException"), "stream_not_found", False),
        (client_error("AccessDeniedException"), "access_denied", False),
        (client_error("UnrecognizedClientException"), "access_denied", True),
        (client_error("ValidationException"), "validation_error", False),
        (client_error("InvalidArgumentException"), "validation_error", False),
        (client_error("InternalFailure", 500), "server_error", True),
        (client_error("SomethingNew", 503), "server_error", True),
        (TimeoutError(), "timeout", True),
        (ConnectionResetError(), "request_failed", True),
    ],
)
def test_error_classification(exc, label, retryable):
    err = classify(exc)
    assert (err.code, err.retryable) == (label, retryable)


async def test_rotated_credentials_are_used_on_the_next_send(
    client, worker, deps, kinesis_local_server
):
    """kinesis-local scopes streams by the account in a 12-digit access key, so a wrong key
    really fails and the rotated one really succeeds."""
    import boto3

    url = kinesis_local_server.url
    name = f"rotation-{uuid.uuid4().hex[:8]}"  # (one stream per run: per topology)
    owner = boto3.client(
        "kinesis",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="111111111111",
        aws_secret_access_key="x",
    )
    owner.create_stream(StreamName=name, ShardCount=1)
    owner.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50}
    )
    dest = await setup_destination(
        client,
        name,
        url,
        credentials={"key": "222222222222", "secret": "wrong-account-secret"},
    )
    await publish(client, id="evt_rot", data={})
    [entry] = await deps.queue.read(worker.name, count=10, block_ms=100)
    assert (await worker.process(entry)).code == "stream_not_found"
    r = await client.patch(
        f"/api/v1/tenants/acme/destinations/{dest['id']}",
        headers=AUTH,
        json={"credentials": {"key": "111111111111", "secret": "right"}},
    )
    assert r.status == 200
    # a missing stream fails fast (issue 16): the fixed destination gets its dead letter back
    r = await client.post(
        "/api/v1/tenants/acme/dead-letters/redrive",
        headers=AUTH,
        json={"destination_id": dest["id"]},
    )
    assert r.status == 202 and (await r.json())["redriven"] == 1
    await worker.run_until_empty()
    it = owner.get_shard_iterator(
        StreamName=name, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    assert [r["PartitionKey"] for r in owner.get_records(ShardIterator=it)["Records"]] == [
        "evt_rot"
    ]


async def test_worker_survives_a_redis_restart(moto, moto_stream, tmp_path):
    """Redis goes away under a running worker and comes back (AOF on): the worker waits,
    then delivers what was queued before and after; nothing acknowledged is lost."""
    from redis.asyncio import Redis

    from outpost.deps import Deps
    from tests.conftest import make_settings

    port = devstack.free_port()
    server = devstack.redis_server(port=port, data_dir=str(tmp_path), aof=True).start()
    settings = make_settings(server.redis_url)
    redis = Redis.from_url(server.redis_url)
    deps = Deps.build(settings, redis)
    dest = deps.registry.create("acme", kinesis_body(moto_stream, moto.url), new_id="d1")
    await deps.store.upsert_tenant("acme", None)
    await deps.store.create_destination(dest)

    async def put(eid):
        ev = Event(id=eid, tenant_id="acme", topic="orders", time=datetime.now(UTC), data={})
        assert await deps.queue.publish(ev, [(dest.id, eid)])

    worker = build_worker(deps, settings)
    runner = asyncio.create_task(worker.run())
    try:
        await put("before")
        await asyncio.to_thread(devstack.read_stream, moto.url, moto_stream, 10.0, 1)
        await redis.execute_command("BGREWRITEAOF")
        await asyncio.sleep(0.3)
        server.stop()
        await asyncio.sleep(1.5)  # the worker meets a dead Redis for a while
        assert not runner.done()
        server = devstack.redis_server(port=port, data_dir=str(tmp_path), aof=True).start()
        await put("after")
        records = await asyncio.to_thread(devstack.read_stream, moto.url, moto_stream, 15.0, 2)
        assert sorted(r["PartitionKey"] for r in records) == ["after", "before"]
    finally:
        worker.stop()
        await asyncio.wait_for(runner, 10)
        await deps.registry.close()
        await redis.aclose()
        server.stop()


async def test_a_worker_never_reclaims_its_own_slow_sends(client, deps, moto, moto_stream):
    """Sends slower than the reclaim idle time must not be claimed and sent again by the
    same worker (found under CI load)."""
    await setup_destination(client, moto_stream, moto.url)
    provider = deps.registry.get("aws_kinesis")
    real_send = provider.send

    async def slow_send(record, dest):  # a real send, made slow
        await asyncio.sleep(1.2)
        return await real_send(record, dest)

    provider.send = slow_send
    w = build_worker(deps, deps.settings, policy=RetryPolicy(), reclaim_idle_seconds=0.3)
    runner = asyncio.create_task(w.run())
    try:
        for i in range(3):
            await publish(client, id=f"slow_{i}", data={})
        records = await asyncio.to_thread(devstack.read_stream, moto.url, moto_stream, 15.0, 3)
        await asyncio.sleep(1.5)  # time for any second copy to land
        records = devstack.read_stream(moto.url, moto_stream)
    finally:
        w.stop()
        await runner
        provider.send = real_send
    assert sorted(r["PartitionKey"] for r in records) == ["slow_0", "slow_1", "slow_2"]


async def test_record_size_follows_the_stream(client, worker, deps, moto, moto_stream):
    """A 2 MiB record lands on a stream that allows 10 MiB (MaxRecordSizeInKiB from
    DescribeStreamSummary; batched, it goes alone by PutRecord, as PutRecords cannot
    carry it within its 5 MiB / 1 MiB limits everywhere) and is dead-lettered at once,
    naming the limit, for a stream at the default 1 MiB."""
    small = f"s-{uuid.uuid4().hex[:12]}"
    devstack.create_stream(moto.url, small, shards=1)
    proxy = await KinesisProxy(moto.url, record_kib={moto_stream: 10240, small: 1024}).start()
    try:
        big_dest = await setup_destination(
            client, moto_stream, proxy.url, config={"batching": True}
        )
        small_dest = await setup_destination(client, small, proxy.url)
        small_batched = await setup_destination(client, small, proxy.url, config={"batching": True})
        ids = [big_dest["id"], small_dest["id"], small_batched["id"]]
        big = Event(
            id="evt_2mib",
            tenant_id="acme",
            topic="orders",
            time=datetime.now(UTC),
            data={"blob": "x" * (2 * 1024 * 1024)},
        )
        await deps.queue.publish(big, [(d, big.id) for d in ids])
        await worker.run_until_empty()
    finally:
        await proxy.close()
    [record] = devstack.read_stream(moto.url, moto_stream, expect=1)
    assert len(record["Data"]) > 2 * 1024 * 1024 and record["PartitionKey"] == "evt_2mib"
    assert proxy.calls["PutRecord"] == 1 and proxy.batches == []  # alone, not in PutRecords
    assert devstack.read_stream(moto.url, small) == []
    dead = await deps.queue.dead_letters("acme")
    assert sorted((d["d"], d["code"]) for d in dead) == sorted(
        (d, "record_too_large") for d in ids[1:]
    )
    assert all("the stream allows 1048576 bytes" in d["message"] for d in dead)
    # DescribeStreamSummary once per stream (cached), not once per send
    assert proxy.calls["DescribeStreamSummary"] == 2
