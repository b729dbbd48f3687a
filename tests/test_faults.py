"""Fault tests: things really die, and every event is counted end to end on a real local
Kinesis (moto server). Each prints its tally: published / delivered / missing / duplicates."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest

from outpost.deps import Deps
from outpost.dev import devstack
from outpost.models import Event
from outpost.queue.connection import connect_redis
from outpost.retry import RetryPolicy
from outpost.runtime import build_worker
from tests.conftest import ADMIN_KEY, AES_SECRET, kinesis_body, make_settings
from tests.faults import KinesisProxy, tally


class Stack:
    """A private Redis (AOF) with a tenant and one Kinesis destination."""

    def __init__(self, tmp_path, endpoint, stream, fsync="everysec"):
        self.dir, self.fsync = str(tmp_path), fsync
        self.port = devstack.free_port()
        self.server = devstack.redis_server(self.port, self.dir, aof=True, fsync=fsync).start()
        self.settings = make_settings(self.server.redis_url)
        self.redis = connect_redis(self.server.redis_url)
        self.deps = Deps.build(self.settings, self.redis)
        self.endpoint, self.stream = endpoint, stream

    async def destination(self):
        dest = self.deps.registry.create("acme", kinesis_body(self.stream, self.endpoint), "d1")
        await self.deps.store.upsert_tenant("acme", None)
        await self.deps.store.create_destination(dest)
        self.dest = dest
        return dest

    async def backlog(self, n, prefix="e"):
        ids = [f"{prefix}{i:05d}" for i in range(n)]
        for eid in ids:
            ev = Event(
                id=eid, tenant_id="acme", topic="orders", time=datetime.now(UTC), data={"n": eid}
            )
            assert await self.deps.queue.publish(ev, [(self.dest.id, eid)])  # = a 202
        return ids

    async def remaining(self):
        depth = await self.deps.queue.depth()
        return depth["queued"] + depth["retrying"]

    async def wait_drained(self, limit=120.0):
        deadline = time.monotonic() + limit
        while await self.remaining():
            assert time.monotonic() < deadline, "queue did not drain"
            await asyncio.sleep(0.2)

    async def wait_until_delivered(self, total, done, limit=60.0):
        deadline = time.monotonic() + limit
        while total - await self.remaining() < done:
            assert time.monotonic() < deadline, "deliveries did not start"
            await asyncio.sleep(0.05)

    async def kill_mid_run(self, log_dir, started):
        """A worker process killed -9 once `started()` returns (nothing drained, nothing
        acked), then a second one drains what is left and exits 0 on SIGTERM."""
        first = self.worker_process(log_dir / "w1.log")
        try:
            await started()
        finally:
            first.kill()  # SIGKILL: no drain, no ack of what it held
            first.wait()
        assert await self.remaining() > 0
        second = self.worker_process(log_dir / "w2.log")
        try:
            await self.wait_drained(limit=120)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=20) == 0

    def restart_redis(self, kill=False):
        (self.server.kill if kill else self.server.stop)()
        self.server = devstack.redis_server(self.port, self.dir, aof=True, fsync=self.fsync).start()

    def worker_process(self, log_path):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REDIS_"))}
        env.update(
            {
                "API_KEY": ADMIN_KEY,
                "AES_ENCRYPTION_SECRET": AES_SECRET,
                "REDIS_URL": self.server.redis_url,
                "LOG_LEVEL": "warning",
                "DELIVERY_PARTITIONS": str(self.settings.delivery_partitions),
                "DELIVERY_RECLAIM_IDLE_SECONDS": "6",
                "DELIVERY_TIMEOUT_SECONDS": "5",
                "RETRY_INTERVAL_SECONDS": "0.2",
                "DESTINATIONS_ALLOW_PRIVATE_ENDPOINTS": "true",
            }
        )
        with open(log_path, "ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "outpost", "worker"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    async def close(self):
        await self.deps.registry.close()
        await self.redis.aclose()
        self.server.stop()


async def successful_acks(stack):
    attempts = await stack.deps.queue.attempts("acme", stack.dest.id, count=100_000)
    return {
        a["event_id"]: (a["response_data"]["shard_id"], a["response_data"]["sequence_number"])
        for a in attempts
        if a["status"] == "success"
    }


def diagnose(ids, records, acks):
    """Explain a missing event: was it acknowledged by the server, and under which record?"""
    on_stream = {(r["ShardId"], r["SequenceNumber"]): r["PartitionKey"] for r in records}
    lines = []
    for eid in sorted(set(ids) - {r["PartitionKey"] for r in records}):
        ack = acks.get(eid)
        lines.append(f"{eid}: server ack {ack}, stream has {on_stream.get(ack)!r} there")
    return "; ".join(lines)


def report(name, counts):
    print(f"\nFAULT {name}: " + " ".join(f"{k}={v}" for k, v in counts.items()))


async def read_all(endpoint, stream, expect):
    return await asyncio.to_thread(devstack.read_stream, endpoint, stream, 30.0, expect)


@pytest.fixture
async def stack(tmp_path, moto, moto_stream):
    s = Stack(tmp_path, moto.url, moto_stream)
    await s.destination()
    yield s
    await s.close()


async def test_kill_9_worker_mid_run(stack, moto, tmp_path):
    ids = await stack.backlog(2000)
    await stack.kill_mid_run(tmp_path, lambda: stack.wait_until_delivered(len(ids), 400))
    counts = tally(ids, await read_all(moto.url, stack.stream, len(ids)))
    report("kill-9 worker", counts)
    assert counts["missing"] == 0 and counts["delivered"] == len(ids)


async def test_sigterm_under_load_drains_and_exits_zero(stack, moto, tmp_path):
    ids = await stack.backlog(2000)
    worker = stack.worker_process(tmp_path / "w1.log")
    await stack.wait_until_delivered(len(ids), 400)
    sent = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    code = worker.wait(timeout=30)
    took = time.monotonic() - sent
    assert code == 0
    assert took <= stack.settings.delivery_timeout_seconds + 2
    left = await stack.remaining()
    assert left > 0  # it stopped mid-run, not after finishing
    lane = stack.deps.queue.lane_of("acme", stack.dest.id)
    pending = (await stack.redis.xpending(lane.stream, "outpost-workers"))["pending"]
    assert pending == 0  # everything it had read was finished and acked
    again = stack.worker_process(tmp_path / "w2.log")
    try:
        await stack.wait_drained()
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=20) == 0
    counts = tally(ids, await read_all(moto.url, stack.stream, len(ids)))
    report(f"SIGTERM under load (exit in {took:.2f}s, {left} left queued)", counts)
    assert counts["missing"] == 0 and counts["duplicates"] == 0


async def test_redis_killed_with_aof_loses_no_acknowledged_event(tmp_path, moto, moto_stream):
    stack = Stack(tmp_path, moto.url, moto_stream, fsync="always")
    try:
        await stack.destination()
        ids = await stack.backlog(1000)  # every publish returned: the 202s
        stack.restart_redis(kill=True)  # SIGKILL, then start on the same AOF
        worker = build_worker(stack.deps, stack.settings, policy=RetryPolicy())
        await worker.run_until_empty(limit=60)
        counts = tally(ids, await read_all(moto.url, moto_stream, len(ids)))
        report("Redis kill -9 + restart (AOF, appendfsync always)", counts)
        assert counts["missing"] == 0
    finally:
        await stack.close()


async def test_kinesis_endpoint_away_for_ten_seconds(tmp_path, moto, moto_stream):
    proxy = await KinesisProxy(moto.url).start()
    stack = Stack(tmp_path, proxy.url, moto_stream)
    await stack.destination()
    policy = RetryPolicy(schedule=(0.5, 1, 2, 4, 4, 4, 4, 4))
    worker = build_worker(stack.deps, stack.settings, policy=policy, concurrency=32)
    ids = await stack.backlog(600)  # queued before the worker starts: it cannot finish
    runner = asyncio.create_task(worker.run())  # them all while they are being published
    try:
        await stack.wait_until_delivered(len(ids), 100)
        await proxy.stop()
        await asyncio.sleep(10)
        assert await stack.remaining() > 0
        await proxy.start(proxy.port)
        await stack.wait_drained(limit=90)
        acks = await successful_acks(stack)
    finally:
        worker.stop()
        await runner
        await proxy.close()
        await stack.close()
    records = await read_all(moto.url, moto_stream, len(ids))
    counts = tally(ids, records)
    report("Kinesis endpoint away 10 s", counts)
    assert counts["missing"] == 0, diagnose(ids, records, acks)


async def test_throttling_is_retried_and_visible(tmp_path, moto, moto_stream):
    proxy = await KinesisProxy(moto.url, throttle=0.3).start()
    stack = Stack(tmp_path, proxy.url, moto_stream)
    await stack.destination()
    worker = build_worker(
        stack.deps, stack.settings, policy=RetryPolicy(max_retries=12, interval=0.05)
    )
    try:
        ids = await stack.backlog(500)
        await worker.run_until_empty(limit=90)
        attempts = await stack.deps.queue.attempts("acme", stack.dest.id, count=5000)
        throttled = [a for a in attempts if a["code"] == "throughput_exceeded"]
    finally:
        await proxy.close()
        await stack.close()
    counts = tally(ids, await read_all(moto.url, moto_stream, len(ids)))
    report(f"30% throttling ({proxy.calls['throttled']} throttled calls)", counts)
    assert counts["missing"] == 0
    assert len(throttled) == proxy.calls["throttled"] > 50
    assert all(a["status"] == "failed" for a in throttled)
