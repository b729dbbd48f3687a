"""Opt-in PutRecords batching (`config.batching`), on real servers: moto and kinesis-local
behind them, a fault proxy where a share of a batch's records must fail alone."""

from __future__ import annotations

import asyncio
import json

import structlog

from outpost.dev import devstack
from outpost.retry import RetryPolicy
from outpost.runtime import build_worker
from tests.conftest import AUTH
from tests.faults import KinesisProxy, tally
from tests.test_delivery import publish, setup_destination


async def publish_batch(client, ids: list[str]) -> list[str]:
    r = await client.post(
        "/api/v1/publish/batch",
        json=[{"tenant_id": "acme", "topic": "orders", "id": i, "data": {}} for i in ids],
        headers=AUTH,
    )
    assert r.status == 202, await r.text()
    return ids


async def test_batched_records_land_once_each_with_their_own_attempt(client, deps, kinesis, stream):
    dest = await setup_destination(
        client,
        stream,
        kinesis.url,
        config={"batching": True, "batch_max_records": 10, "batch_linger_ms": 20},
    )
    ids = [f"evt_{i:02d}" for i in range(25)]
    for eid in ids:
        await publish(client, id=eid, data={"n": eid})
    worker = build_worker(deps, deps.settings)
    await worker.run_until_empty(limit=60)
    records = devstack.read_stream(kinesis.url, stream, expect=25)
    assert tally(ids, records)["missing"] == 0
    assert tally(ids, records)["duplicates"] == 0
    doc = json.loads(next(r["Data"] for r in records if r["PartitionKey"] == "evt_07"))
    assert doc["data"] == {"n": "evt_07"} and doc["metadata"]["event-id"] == "evt_07"
    attempts = await deps.queue.attempts("acme", dest["id"], count=100)
    assert sorted(a["event_id"] for a in attempts) == ids  # one attempt per event
    sizes = [a["response_data"]["batch_size"] for a in attempts]
    assert max(sizes) <= 10 and max(sizes) > 1  # gathered, within the limit
    assert all(a["status"] == "success" and a["response_data"]["sequence_number"] for a in attempts)


async def test_partial_failures_retry_only_the_failed_records(deps, client, moto, moto_stream):
    proxy = await KinesisProxy(moto.url, record_throttle=0.3, seed=3).start()
    try:
        dest = await setup_destination(
            client, moto_stream, proxy.url, config={"batching": True, "batch_linger_ms": 10}
        )
        ids = await publish_batch(client, [f"evt_{i:03d}" for i in range(200)])
        worker = build_worker(
            deps, deps.settings, policy=RetryPolicy(max_retries=20, interval=0.02)
        )
        await worker.run_until_empty(limit=60)
        records = devstack.read_stream(moto.url, moto_stream, expect=200)
    finally:
        await proxy.close()
    counts = tally(ids, records)
    assert counts["missing"] == 0 and counts["duplicates"] == 0  # nothing sent twice
    assert sum(proxy.throttled_keys.values()) > 30
    attempts = await deps.queue.attempts("acme", dest["id"], count=1000)
    per_event: dict[str, list[dict]] = {}
    for a in attempts:
        per_event.setdefault(a["event_id"], []).append(a)
    for eid in ids:
        failed = [a for a in per_event[eid] if a["status"] == "failed"]
        # exactly the records the proxy failed were attempted again, once per failure
        assert len(failed) == proxy.throttled_keys[eid]
        assert {a["code"] for a in failed} <= {"throughput_exceeded"}
        assert sum(a["status"] == "success" for a in per_event[eid]) == 1
    assert proxy.calls["PutRecord"] == 0 and proxy.calls["PutRecords"] >= 2


async def test_batches_stay_within_5_mib(deps, client, moto, moto_stream):
    proxy = await KinesisProxy(moto.url).start()
    try:
        dest = await setup_destination(
            client,
            moto_stream,
            proxy.url,
            config={"batching": True, "batch_linger_ms": 200, "metadata_in_payload": False},
        )
        ids = [f"big_{i}" for i in range(12)]
        for eid in ids:  # ~900 KB each: 12 of them cannot go in one call
            await publish(client, id=eid, data={"pad": "x" * 900_000})
        worker = build_worker(deps, deps.settings)
        await worker.run_until_empty(limit=60)
    finally:
        await proxy.close()
    attempts = await deps.queue.attempts("acme", dest["id"])
    assert {a["event_id"] for a in attempts if a["status"] == "success"} == set(ids)
    # at least once: a call that timed out on a starved machine is sent again
    assert sum(n for n, _ in proxy.batches) >= 12
    assert len(proxy.batches) >= 3
    assert all(size <= 5 * 1024 * 1024 for _, size in proxy.batches)
    assert max(n for n, _ in proxy.batches) > 1


async def test_a_failed_call_fails_every_record_in_it(deps, client, moto):
    dest = await setup_destination(
        client, "no-such-stream", moto.url, config={"batching": True, "batch_linger_ms": 10}
    )
    for i in range(3):
        await publish(client, id=f"e{i}", data={})
    worker = build_worker(deps, deps.settings, policy=RetryPolicy(max_retries=0))
    await worker.run_until_empty(limit=30)
    attempts = await deps.queue.attempts("acme", dest["id"])
    assert len(attempts) == 3
    assert {a["code"] for a in attempts} == {"stream_not_found"}
    assert len(await deps.queue.dead_letters("acme")) == 3


async def test_batching_settings_are_validated(client):
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    for bad, field in (
        ({"batch_max_records": 501}, "config.batch_max_records"),
        ({"batch_max_records": 0}, "config.batch_max_records"),
        ({"batch_linger_ms": -1}, "config.batch_linger_ms"),
        ({"batching": "sometimes"}, "config.batching"),
    ):
        body = {
            "type": "aws_kinesis",
            "topics": "*",
            "config": {"stream_name": "s", "region": "us-east-1", "batching": True, **bad},
            "credentials": {"key": "k", "secret": "s"},
        }
        r = await client.post("/api/v1/tenants/acme/destinations", json=body, headers=AUTH)
        assert r.status == 422, await r.text()
        assert field in await r.text()


def test_the_form_patterns_accept_exactly_the_valid_numbers():
    """The destination-type schema's HTML patterns say what the API accepts."""
    import re

    from outpost.destinations.kinesis.config import CONFIG_FIELDS

    fields = {f["key"]: f for f in CONFIG_FIELDS}
    records = re.compile(f"^(?:{fields['batch_max_records']['pattern']})$")
    linger = re.compile(f"^(?:{fields['batch_linger_ms']['pattern']})$")
    assert [n for n in range(0, 1000) if records.match(str(n))] == list(range(1, 501))
    assert [n for n in range(0, 20000) if linger.match(str(n))] == list(range(0, 10001))


async def test_a_read_larger_than_the_batched_allowance_still_drains(
    deps, client, moto, moto_stream
):
    """A read can bring more batched tasks than DELIVERY_BATCH_MAX_INFLIGHT: the tasks
    gathered so far must start before the worker waits for their slots."""
    await setup_destination(
        client, moto_stream, moto.url, config={"batching": True, "batch_linger_ms": 5}
    )
    ids = await publish_batch(client, [f"e{i:02d}" for i in range(30)])
    worker = build_worker(deps, deps.settings, batch_inflight=4)
    await asyncio.wait_for(worker.run_until_empty(limit=20), 30)  # a deadlock fails here
    records = devstack.read_stream(moto.url, moto_stream, expect=30)
    assert tally(ids, records)["missing"] == 0


async def test_aggregation_puts_kpl_records_whose_user_records_are_the_events(
    client, deps, moto, moto_stream
):
    from tests.kpl_decoder import deaggregate

    dest = await setup_destination(client, moto_stream, moto.url, config={"aggregation": True})
    ids = await publish_batch(client, [f"evt_{i:03d}" for i in range(60)])
    worker = build_worker(deps, deps.settings)
    await worker.run_until_empty(limit=60)
    records = devstack.read_stream(moto.url, moto_stream, expect=1)
    users = [u for r in records for u in deaggregate(r["Data"])]
    assert sorted(key for key, _ in users) == ids  # each event once, keyed by its id
    assert len(records) < len(ids)  # fewer Kinesis records than events
    doc = json.loads(dict(users)["evt_007"])
    assert doc["metadata"]["event-id"] == "evt_007"
    attempts = await deps.queue.attempts("acme", dest["id"], count=100)
    assert sorted(a["event_id"] for a in attempts) == ids
    assert all(a["status"] == "success" for a in attempts)


def test_a_batch_logs_its_successes_in_one_line_and_each_failure_in_its_own(monkeypatch):
    """At info, a batched group's successes are one `deliveries` line per destination;
    at debug each delivery has its own line, as a failure always has."""
    from outpost.delivery import deliverer, group
    from outpost.models import Task
    from outpost.queue.items import Entry, Outcome

    def done(n_ok: int, n_failed: int) -> list[tuple[Entry, Outcome]]:
        out = []
        for i in range(n_ok + n_failed):
            entry = Entry("lane", f"{i}-0", Task("acme", f"e{i}", "d1", 0))
            ok = i < n_ok
            out.append((entry, Outcome("success") if ok else Outcome("failed", "throttled")))
        return out

    for level, expected in ((20, ["deliveries", "delivery"]), (10, ["delivery"] * 4)):
        lines: list[dict] = []

        def keep(_logger, method, event_dict, lines=lines):
            lines.append({**event_dict, "level": method})
            raise structlog.DropEvent

        wrapper = structlog.make_filtering_bound_logger(level)
        logger = structlog.wrap_logger(None, processors=[keep], wrapper_class=wrapper)
        monkeypatch.setattr(group, "log", logger)
        monkeypatch.setattr(deliverer, "log", logger)
        group.log_group(done(3, 1), 0.0)
        assert sorted(line["event"] for line in lines) == sorted(expected)
        if level == 20:
            [summary] = [line for line in lines if line["event"] == "deliveries"]
            assert summary["count"] == 3 and summary["destination_id"] == "d1"
            [failure] = [line for line in lines if line["event"] == "delivery"]
            assert failure["status"] == "failed" and failure["level"] == "warning"
