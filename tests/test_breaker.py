"""Issue 14 item 2: a slow or hanging endpoint of one destination must not stall others.

Every send ends within its timeout whatever the endpoint does (accepts and never answers,
trickles its body, never accepts), with the worker's deadline as the backstop for a
transport that does not hold its own; after DELIVERY_CIRCUIT_BREAKER_FAILURES unanswered
sends in a row a destination's breaker opens: its tasks go back on the retry schedule
unsent (no attempt recorded, no retry spent), one probe goes out after the cooldown and
closes it once the endpoint answers; a healthy destination keeps its latency meanwhile.
The sick endpoint is tests/servers/stalling.py; the healthy one is moto."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiobotocore.config import AioConfig
from botocore.exceptions import ClientError, ReadTimeoutError
from redis.asyncio import Redis

from outpost.delivery.breaker import BreakerConfig, Breakers
from outpost.delivery.worker import Worker
from outpost.deps import Deps
from outpost.destinations.aws import errors as aws_errors
from outpost.destinations.aws.redirects import NoRedirectSession
from outpost.destinations.memory.provider import MemoryDestination
from outpost.dev import devstack
from outpost.errors import PermanentError
from outpost.flow.connectors import kinesis_client
from outpost.runtime import build_worker, create_app
from outpost.settings import Settings
from tests.conftest import AUTH, make_settings
from tests.test_delivery import publish, setup_destination

TIMEOUT = 1.0  # DELIVERY_TIMEOUT_SECONDS in these tests
SLACK = 1.5  # what a loaded CI machine may add to a bound


@pytest.fixture
def settings(request: pytest.FixtureRequest, redis_server: devstack.RedisServer) -> Settings:
    """The suite's settings with a short send timeout; a test adds its own through
    `@pytest.mark.parametrize("settings", [{...}], indirect=True)`."""
    overrides = {
        "delivery_timeout_seconds": TIMEOUT,
        "delivery_connect_timeout_seconds": 0.5,
        **getattr(request, "param", {}),
    }
    return make_settings(redis_server.redis_url, **overrides)


def tuned(**overrides: Any) -> Any:
    return pytest.mark.parametrize("settings", [overrides], indirect=True, ids=["tuned"])


# -- the breaker alone (pure) -------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breakers(clock: Clock, **config: Any) -> Breakers:
    cfg = {"threshold": 3, "cooldown": 10.0, "max_cooldown": 25.0, "probe_limit": 6.0}
    return Breakers(BreakerConfig(**{**cfg, **config}), clock=clock, rand=lambda: 0.0)


def test_breaker_opens_after_unanswered_sends_and_a_probe_closes_it():
    clock, key = Clock(), ("t1", "d1")
    b = breakers(clock)
    for _ in range(2):
        assert b.admit(key) is None
        b.settle(key, False)
    assert not b.is_open(*key)
    b.settle(key, False)  # the third in a row
    assert b.is_open(*key)
    assert b.admit(key) == pytest.approx(10.0)
    clock.now += 4
    assert b.admit(key) == pytest.approx(6.0)
    clock.now += 6  # cooldown over: half-open, one probe
    assert not b.is_open(*key)
    assert b.admit(key) is None
    assert b.is_open(*key)  # the probe is out: the others are held
    assert b.admit(key) == pytest.approx(6.0)
    b.settle(key, True)
    assert not b.is_open(*key)
    assert b.admit(key) is None


def test_answers_reset_the_count_and_only_unanswered_sends_open_it():
    clock, key = Clock(), ("t1", "d1")
    b = breakers(clock)
    for _ in range(10):  # a 4xx, a validation error: answered, however bad
        b.settle(key, False)
        b.settle(key, False)
        b.settle(key, True)
    assert not b.is_open(*key)
    b.settle(key, None)  # nothing was sent: no news
    assert not b.is_open(*key)


def test_a_failed_probe_doubles_the_cooldown_up_to_its_cap():
    clock, key = Clock(), ("t1", "d1")
    b = breakers(clock)
    for _ in range(3):
        b.settle(key, False)
    cooldowns = []
    for _ in range(3):
        wait = b.admit(key)
        assert wait is not None
        cooldowns.append(wait)
        clock.now += wait
        assert b.admit(key) is None  # the probe
        b.settle(key, False)
    assert cooldowns == [pytest.approx(10.0), pytest.approx(20.0), pytest.approx(25.0)]


def test_a_lost_probe_is_replaced_and_a_probe_not_sent_is_given_back():
    clock, key = Clock(), ("t1", "d1")
    b = breakers(clock)
    for _ in range(3):
        b.settle(key, False)
    clock.now += 10
    assert b.admit(key) is None
    assert b.probing(key)
    b.settle(key, None)  # the probe's task ended before sending (a format error)
    assert not b.probing(key)
    assert b.admit(key) is None  # another probe at once
    clock.now += 6.5  # that one never came back
    assert b.admit(key) is None


def test_breakers_are_per_tenant_and_destination():
    clock = Clock()
    b = breakers(clock, threshold=1)
    b.settle(("t1", "d1"), False)
    assert b.is_open("t1", "d1")
    assert not b.is_open("t2", "d1")  # the same destination id under another tenant
    assert not b.is_open("t1", "d2")
    assert b.admit(("t2", "d1")) is None


def test_threshold_zero_turns_breakers_off():
    b = breakers(Clock(), threshold=0)
    for _ in range(100):
        b.settle(("t1", "d1"), False)
    assert not b.is_open("t1", "d1")


# -- timeouts that hold -------------------------------------------------------------------
async def _one_attempt(client: Any, deps: Deps, worker: Worker, url: str) -> tuple[Any, float]:
    await setup_destination(client, "never-read", url)
    await publish(client, id=f"evt_{uuid.uuid4().hex[:8]}", data={})
    [entry] = await deps.queue.read(worker.name, count=10, block_ms=100)
    began = time.monotonic()
    outcome = await worker.process(entry)
    return outcome, time.monotonic() - began


@pytest.mark.parametrize("mode", ["hang", "trickle"])
async def test_an_endpoint_that_never_finishes_answering_times_out(
    client, deps, worker, stalling, mode
):
    stalling.mode = mode
    outcome, took = await _one_attempt(client, deps, worker, stalling.url)
    assert (outcome.status, outcome.code, outcome.dead) == ("failed", "timeout", False)
    assert TIMEOUT * 0.9 <= took < TIMEOUT + SLACK
    assert stalling.connections == 1


@tuned(delivery_timeout_seconds=4, delivery_connect_timeout_seconds=0.5)
async def test_an_endpoint_that_never_accepts_fails_at_the_connect_timeout(
    client, deps, worker, unaccepting
):
    outcome, took = await _one_attempt(client, deps, worker, unaccepting.url)
    assert (outcome.status, outcome.code) == ("failed", "timeout")
    assert "DELIVERY_CONNECT_TIMEOUT_SECONDS" in outcome.message
    assert took < 0.5 + SLACK  # the connect timeout, not the whole send's 4 s


@pytest.mark.parametrize("mode", ["hang", "trickle"])
async def test_a_tenant_connection_client_ends_within_connect_plus_read_timeout(stalling, mode):
    """The aiobotocore clients of the Flow Service and the source reader: aiobotocore
    bounds each socket read, so a trickling server held a call for ever; each request now
    also ends within connect + read timeout (here 2 attempts of at most 1.5 s)."""
    stalling.mode = mode
    auth = {"region": "us-east-1", "endpoint": stalling.url, "accessKeyId": "k", "secretKey": "s"}
    config = AioConfig(
        connect_timeout=0.5,
        read_timeout=1,
        retries={"total_max_attempts": 2},
        http_session_cls=NoRedirectSession,
    )
    began = time.monotonic()
    async with kinesis_client(auth, config) as kinesis:
        with pytest.raises(ReadTimeoutError):
            await asyncio.wait_for(kinesis.list_streams(), 20)
    assert time.monotonic() - began < 2 * 1.5 + 1 + SLACK  # + botocore's retry backoff
    assert stalling.connections == 2


@pytest.fixture
async def memory_deps(settings: Settings, redis: Redis) -> AsyncIterator[Deps]:
    d = Deps.build(settings, redis, extra_types=[MemoryDestination()])
    yield d
    await d.registry.close()


async def test_the_deadline_ends_a_send_whose_transport_ignores_its_timeout(
    aiohttp_client, settings, memory_deps
):
    api = await aiohttp_client(create_app(settings, memory_deps, run_promoter=False))
    await api.put("/api/v1/tenants/acme", headers=AUTH)
    body = {"type": "memory", "topics": ["orders"], "config": {"name": "slow"}}
    r = await api.post(
        "/api/v1/tenants/acme/destinations",
        json={**body, "credentials": {"token": "t-0001"}},
        headers=AUTH,
    )
    assert r.status == 201, await r.text()
    memory = memory_deps.registry.get("memory")
    assert isinstance(memory, MemoryDestination)
    memory.stall_next(60)
    await publish(api, id="evt_slow", data={})
    worker = build_worker(memory_deps, settings)
    [entry] = await memory_deps.queue.read(worker.name, count=10, block_ms=100)
    began = time.monotonic()
    outcome = await worker.process(entry)
    assert time.monotonic() - began < TIMEOUT + SLACK
    assert (outcome.status, outcome.code, outcome.dead) == ("failed", "timeout", False)
    assert outcome.retry_in is not None
    [attempt] = await memory_deps.queue.attempts("acme", (await r.json())["id"])
    assert (attempt["status"], attempt["code"]) == ("failed", "timeout")


# -- the breaker in the worker ------------------------------------------------------------
async def _retry_members(redis: Redis, deps: Deps) -> list[dict[str, str]]:
    return [json.loads(m) for m, _ in await deps.queue.retry_schedule()]


@tuned(delivery_circuit_breaker_failures=2, delivery_circuit_breaker_cooldown_seconds=60)
@pytest.mark.parametrize(
    ("config", "calls"), [({}, 2), ({"batching": True, "batch_linger_ms": 20}, 2)]
)
async def test_an_open_breaker_holds_tasks_unsent_and_spends_no_retry(
    client, deps, worker, redis, stalling, config, calls
):
    dest = await setup_destination(client, "never-read", stalling.url, config=config)
    for i in range(2):
        await publish(client, id=f"evt_{i}", data={})
    entries = await deps.queue.read(worker.name, count=10, block_ms=100)
    outcomes = await asyncio.gather(*(worker.process(e) for e in entries))
    assert [o.code for o in outcomes] == ["timeout", "timeout"]
    assert worker.breakers.is_open("acme", dest["id"])
    for i in range(2, 7):
        await publish(client, id=f"evt_{i}", data={})
    entries = await deps.queue.read(worker.name, count=10, block_ms=100)
    began = time.monotonic()
    held = [await worker.process(e) for e in entries]
    assert time.monotonic() - began < 1.0  # nothing waited on the endpoint
    assert {(o.status, o.code) for o in held} == {("held", "circuit_open")}
    assert all(55 <= (o.retry_in or 0) <= 60 * 1.25 for o in held)
    # none for a held task (batched: one ListShards for the shard map, one PutRecords)
    assert stalling.connections == calls
    attempts = await deps.queue.attempts("acme", dest["id"])
    assert sorted(a["event_id"] for a in attempts) == ["evt_0", "evt_1"]
    members = {m["e"]: m["a"] for m in await _retry_members(redis, deps)}
    assert members == {"evt_0": "2", "evt_1": "2", **{f"evt_{i}": "1" for i in range(2, 7)}}
    assert (await deps.queue.depth())["queued"] == 0  # acked: held tasks are not left pending


@tuned(
    delivery_circuit_breaker_failures=2,
    delivery_circuit_breaker_cooldown_seconds=0.5,
    max_retry_limit=3,
)
async def test_a_probe_closes_the_breaker_once_the_endpoint_heals(
    client, deps, worker, moto, stalling
):
    stream = f"heal-{uuid.uuid4().hex[:8]}"
    devstack.create_stream(moto.url, stream)
    dest = await setup_destination(client, stream, stalling.url)
    for i in range(6):
        await publish(client, id=f"evt_{i}", data={"i": i})
    run = asyncio.create_task(worker.run())
    try:
        # hanging for longer than 4 attempts take (1 s each, 0.05 s apart): without the
        # breaker every event would have spent its retries and be a dead letter by now
        await asyncio.sleep(5 * TIMEOUT)
        assert worker.breakers.is_open("acme", dest["id"])
        hung = stalling.connections
        stalling.mode = "forward"
        deadline = time.monotonic() + 30
        while len(await _delivered(deps, dest["id"])) < 6:
            assert time.monotonic() < deadline, "not delivered after the endpoint healed"
            await asyncio.sleep(0.1)
    finally:
        worker.stop()
        await asyncio.wait_for(run, 10)
    assert not worker.breakers.is_open("acme", dest["id"])
    assert await deps.queue.dead_letters("acme") == []
    assert hung <= 6 + 4  # the first sends, then one probe per cooldown (0.5, 1, 2 s)
    assert await _delivered(deps, dest["id"]) == {f"evt_{i}" for i in range(6)}
    assert len(devstack.read_stream(moto.url, stream, expect=6)) == 6


async def _delivered(deps: Deps, dest_id: str) -> set[str]:
    attempts = await deps.queue.attempts("acme", dest_id, count=100)
    return {a["event_id"] for a in attempts if a["status"] == "success"}


async def _latencies(client: Any, deps: Deps, dest_id: str, n: int) -> list[float]:
    """Publish to the healthy destination one event at a time; seconds until each one's
    attempt is in the log."""
    out = []
    for _ in range(n):
        event_id = f"b_{uuid.uuid4().hex[:10]}"
        began = time.monotonic()
        await publish(client, id=event_id, data={}, topic="b")
        while not any(
            a["event_id"] == event_id for a in await deps.queue.attempts("acme", dest_id, 5)
        ):
            assert time.monotonic() - began < 60
            await asyncio.sleep(0.005)
        out.append(time.monotonic() - began)
        await asyncio.sleep(0.02)
    return out


@tuned(
    delivery_max_concurrency=16,
    delivery_timeout_seconds=2.0,
    delivery_reclaim_idle_seconds=10,
    retry_schedule=[0.2] * 50,
)
async def test_a_healthy_destination_keeps_its_latency_while_another_hangs(
    client, deps, worker, moto, moto_stream, stalling
):
    healthy = await setup_destination(client, moto_stream, moto.url, topics=["b"])
    await setup_destination(client, "never-read", stalling.url, topics=["orders"])
    run = asyncio.create_task(worker.run())
    try:
        idle = await _latencies(client, deps, healthy["id"], 20)
        for i in range(64):  # 4 times the worker's slots, retried every 0.2 s
            await publish(client, id=f"a_{i}", data={})
        await asyncio.sleep(2.5 * 2.0)  # the first sends have timed out by now
        hanging = await _latencies(client, deps, healthy["id"], 20)
    finally:
        worker.stop()
        await asyncio.wait_for(run, 15)
    idle_p90 = statistics.quantiles(idle, n=10)[-1]
    hang_p90 = statistics.quantiles(hanging, n=10)[-1]
    print(f"healthy destination p90: idle {idle_p90:.3f}s, while another hangs {hang_p90:.3f}s")
    assert hang_p90 <= 4 * idle_p90 + 0.3, (idle, hanging)


@tuned(delivery_circuit_breaker_failures=2)
async def test_error_answers_never_open_the_breaker(client, deps, worker, moto):
    dest = await setup_destination(client, f"missing-{uuid.uuid4().hex[:8]}", moto.url)
    for i in range(4):
        await publish(client, id=f"evt_{i}", data={})
    entries = await deps.queue.read(worker.name, count=10, block_ms=100)
    outcomes = [await worker.process(e) for e in entries]
    assert {o.code for o in outcomes} == {"stream_not_found"}  # a 400 from a live endpoint
    assert not worker.breakers.is_open("acme", dest["id"])


def test_only_unanswered_failures_are_marked_so():
    answered = [
        ClientError({"Error": {"Code": "ValidationException"}}, "PutRecord"),
        ClientError({"Error": {"Code": "AccessDeniedException"}}, "PutRecord"),
        ClientError(
            {"Error": {"Code": "InternalFailure"}, "ResponseMetadata": {"HTTPStatusCode": 500}},
            "PutRecord",
        ),
        PermanentError("redirect_refused", "a redirect"),
    ]
    unanswered = [
        TimeoutError(),
        aiohttp.ConnectionTimeoutError(),
        aiohttp.ServerDisconnectedError(),
        ConnectionRefusedError(),
        aiohttp.ClientPayloadError("cut short"),
    ]
    assert [aws_errors.classify(e).unanswered for e in answered] == [False] * len(answered)
    assert [aws_errors.classify(e).unanswered for e in unanswered] == [True] * len(unanswered)
