"""Prometheus /metrics (API and probe port), the queue gauges, Redis errors counted, the
access log line; values scraped before and after real deliveries (the memory type through
the real worker against the real Redis)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from outpost.delivery import gauges
from outpost.delivery.alerts import Alerts
from outpost.deps import Deps
from outpost.destinations.base import Kind
from outpost.destinations.memory.provider import MemoryDestination
from outpost.health import RedisWatch, probe_app
from outpost.queue.connection import connect_redis
from outpost.queue.sizes import entry_age
from outpost.runtime import build_worker, create_app
from outpost.settings import Settings
from outpost.telemetry import MAX_CODES, Telemetry, code_class, observe_many
from tests.conftest import AUTH

DASHBOARD = Path(__file__).parent.parent / "deploy" / "grafana" / "outpost-dashboard.json"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """(sample name, labels) -> value of a scrape."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(scrape: dict, name: str, **labels: str) -> float:
    return scrape.get((name, frozenset(labels.items())), 0.0)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("timeout", "timeout"),
        ("http_503", "http_5xx"),
        ("throughput_exceeded", "throughput_exceeded"),
        ("Not A Code", "other"),
        ("x" * 80, "other"),
        ("", "other"),
    ],
)
def test_code_class_is_a_bounded_label(code, expected):
    assert code_class(code) == expected


def test_distinct_code_classes_are_capped():
    known: set[str] = set()
    classes = {code_class(f"code_{chr(97 + i // 26)}{chr(97 + i % 26)}", known) for i in range(200)}
    assert len(classes) == MAX_CODES + 1 and "other" in classes


def test_entry_age_reads_the_stream_id():
    assert entry_age(b"1000500-3", 1001.5) == pytest.approx(1.0)  # ms in the id
    assert entry_age("5000-0", 1.0) == 0.0  # a clock behind the id's: never negative


def test_no_tenant_label_unless_asked():
    bounded, per_tenant = Telemetry(), Telemetry(per_tenant=True)
    for t in (bounded, per_tenant):
        t.on_publish("acme", ["memory"])
        t.on_outcome("memory", "acme", "success", "", retry=False, dead=False)
    assert "acme" not in bounded.render().decode()
    assert 'tenant="acme"' in per_tenant.render().decode()


def test_counts_and_observations_taken_together_equal_one_by_one():
    """A batch's like outcomes are counted, and its shared attempt time observed, in one
    step each: the exposition is what as many single steps give."""
    apart, together = Telemetry(), Telemetry()
    for amount in (0.0004, 0.03, 0.25, 7.0, 1e9):  # in the first bucket, inside, past all
        for _ in range(3):
            apart.of(apart.attempt, "memory").observe(amount)
            apart.on_outcome("memory", "acme", "failed", "throttled", retry=True, dead=False)
        observe_many(together.of(together.attempt, "memory"), amount, 3)
        together.on_outcome(
            "memory", "acme", "failed", "throttled", retry=True, dead=False, count=3
        )
    scrape = samples(together.render().decode())
    kept = {k: v for k, v in scrape.items() if not k[0].endswith("_created")}
    assert kept == {
        k: v for k, v in samples(apart.render().decode()).items() if not k[0].endswith("_created")
    }
    assert value(scrape, "outpost_attempt_duration_seconds_count", destination_type="memory") == 15


@pytest.fixture
async def memory_deps(settings: Settings, redis: Redis) -> AsyncIterator[Deps]:
    d = Deps.build(settings, redis, extra_types=[MemoryDestination()])
    yield d
    await d.registry.close()


@pytest.fixture
async def api(aiohttp_client, settings, memory_deps):
    return await aiohttp_client(create_app(settings, memory_deps, run_promoter=False))


async def memory_destination(api, tenant: str = "acme") -> dict:
    await api.put(f"/api/v1/tenants/{tenant}", headers=AUTH)
    body = {"type": "memory", "topics": ["orders"], "config": {"name": "m"}}
    r = await api.post(
        f"/api/v1/tenants/{tenant}/destinations",
        json={**body, "credentials": {"token": "t-secret-0001"}},
        headers=AUTH,
    )
    assert r.status == 201, await r.text()
    return await r.json()


async def publish(api, event_id: str, tenant: str = "acme") -> None:
    body = {"tenant_id": tenant, "topic": "orders", "id": event_id, "data": {}}
    r = await api.post("/api/v1/publish", json=body, headers=AUTH)
    assert r.status == 202, await r.text()


async def scrape(api) -> dict:
    r = await api.get("/metrics")  # no credentials: scraped like the probes
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    return samples(await r.text())


async def test_metrics_move_as_events_flow(api, settings, memory_deps):
    await memory_destination(api)
    memory = memory_deps.registry.get("memory")
    assert isinstance(memory, MemoryDestination)
    before = await scrape(api)
    memory.fail_next(Kind.RETRY, "throughput_exceeded")  # the first send: throttled
    for i in range(3):
        await publish(api, f"evt_{i}")
    await publish(api, "evt_0")  # a duplicate: stored once, counted once
    await gauges.refresh(memory_deps)
    queued = await scrape(api)
    worker = build_worker(memory_deps, settings, name="obs")
    entries = await memory_deps.queue.read(worker.name, count=10, block_ms=100)
    outcomes = [await worker.process(e) for e in entries]
    assert sorted(o.status for o in outcomes) == ["failed", "success", "success"]
    await gauges.refresh(memory_deps)
    after = await scrape(api)
    typed = {"destination_type": "memory"}

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("outpost_events_published_total") == 3
    assert moved("outpost_tasks_published_total", **typed) == 3
    assert moved("outpost_deliveries_delivered_total", **typed) == 2
    failed = {**typed, "code_class": "throughput_exceeded"}
    assert moved("outpost_deliveries_failed_total", **failed) == 1
    assert moved("outpost_deliveries_retried_total", **typed) == 1
    assert moved("outpost_aws_throttles_total", **typed) == 1
    assert moved("outpost_delivery_latency_seconds_count", **typed) == 2
    assert moved("outpost_attempt_duration_seconds_count", **typed) == 3
    assert value(after, "outpost_deliveries_in_flight") == 0
    depth = "outpost_queue_depth"
    assert sum(v for (n, _), v in queued.items() if n == depth) == 3
    assert sum(v for (n, _), v in after.items() if n == depth) == 0
    assert value(after, "outpost_retry_scheduled") == 1
    publishes = {"method": "POST", "route": "/api/v1/publish", "status_class": "2xx"}
    assert moved("outpost_http_request_duration_seconds_count", **publishes) == 4


async def test_dead_letters_and_alerts_are_counted(api, settings, memory_deps):
    await memory_destination(api)
    memory = memory_deps.registry.get("memory")
    assert isinstance(memory, MemoryDestination)
    memory.fail_next(Kind.PERMANENT, "http_404")
    before = await scrape(api)
    await publish(api, "evt_dead")
    alerts = Alerts(limit=1)  # the first failure is 100 %: an alert (no URL: none sent)
    worker = build_worker(memory_deps, settings, alerts=alerts, name="obs-dead")
    [entry] = await memory_deps.queue.read(worker.name, count=10, block_ms=100)
    outcome = await worker.process(entry)
    assert outcome.dead
    await gauges.refresh(memory_deps)
    after = await scrape(api)
    typed = {"destination_type": "memory"}
    dead = value(after, "outpost_deliveries_dead_lettered_total", **typed)
    assert dead - value(before, "outpost_deliveries_dead_lettered_total", **typed) == 1
    failed = {**typed, "code_class": "http_4xx"}
    assert value(after, "outpost_deliveries_failed_total", **failed) >= 1
    assert value(after, "outpost_dead_letters") >= 1
    alerted = {"alert": "consecutive_failure"}
    assert value(after, "outpost_alerts_total", **alerted) == 1 + value(
        before, "outpost_alerts_total", **alerted
    )


async def test_the_probe_port_serves_the_same_metrics(aiohttp_client, redis, settings):
    telemetry = Telemetry()
    telemetry.on_publish("acme", ["aws_kinesis"])
    watch = RedisWatch(redis, settings.redis_dsn())
    probes = await aiohttp_client(probe_app(watch, lambda: {"worker": True}, telemetry))
    r = await probes.get("/metrics")
    assert r.status == 200
    scraped = samples(await r.text())
    assert value(scraped, "outpost_tasks_published_total", destination_type="aws_kinesis") == 1


async def test_failed_redis_commands_are_counted(redis_server):
    telemetry = Telemetry()
    client = connect_redis(redis_server.redis_url, on_error=lambda: telemetry.redis_errors.inc())
    try:
        await client.ping()
        with pytest.raises(ResponseError):
            await client.execute_command("NO_SUCH_COMMAND")
        script = client.register_script("return 1")  # loaded on first use: not an error
        assert await script() == 1
    finally:
        await client.aclose()
    assert value(samples(telemetry.render().decode()), "outpost_redis_errors_total") == 1


async def test_one_access_log_line_per_request(api, memory_deps):
    await memory_destination(api)
    with structlog.testing.capture_logs() as logs:
        r = await api.get("/api/v1/tenants/acme/destinations", headers=AUTH)
        assert r.status == 200
        r = await api.get("/api/v1/tenants/nobody/destinations", headers=AUTH)
        assert r.status == 404
        await api.get("/no/such/route", headers=AUTH)
        await publish(api, "evt_logged")
        await api.get("/data/foundation/flowservice/connectionSpecs")  # the mounted surface
    lines = [e for e in logs if e["event"] == "request"]
    assert len(lines) == 5
    first, missing, unmatched, published, flow = lines
    assert flow["route"] == "/data/foundation/flowservice/connectionSpecs"
    assert (published["route"], published["tenant_id"]) == ("/api/v1/publish", "acme")
    assert first["route"] == "/api/v1/tenants/{tenant_id}/destinations"
    assert (first["method"], first["status"], first["tenant_id"]) == ("GET", 200, "acme")
    assert first["duration_ms"] >= 0 and first["log_level"] == "info"
    assert (missing["status"], missing["tenant_id"]) == (404, "nobody")
    assert (unmatched["route"], unmatched["status"]) == ("unmatched", 404)
    assert all("Bearer" not in json.dumps(e) for e in lines)  # never the credentials


def test_every_dashboard_expression_names_an_exported_metric():
    exported = Telemetry(per_tenant=True).names()
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 15
    used = {name for e in exprs for name in re.findall(r"\boutpost_[a-z_]+", e)}
    assert used and used <= exported, sorted(used - exported)
    families = {n for n in exported if not n.endswith(("_bucket", "_sum"))}
    shown = {re.sub(r"_(bucket|count|sum)$", "", n) for n in used}
    missing = {f for f in families if re.sub(r"_(count)$", "", f) not in shown and f not in used}
    assert not missing, f"exported but on no panel: {sorted(missing)}"
