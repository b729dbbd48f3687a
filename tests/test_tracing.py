"""OpenTelemetry: off unless OTEL_* asks; when on, a publish span and one span per
delivery attempt reach a real (in-process) OTLP/HTTP collector, every attempt (the retry
too) a child of its event's publish span, carried through the queue with the stored event;
no credential in any span."""

from __future__ import annotations

import os

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto

from outpost.deps import Deps
from outpost.destinations.base import Kind
from outpost.destinations.memory.provider import MemoryDestination
from outpost.runtime import build_worker, create_app
from outpost.tracing import Tracing, configured
from tests.conftest import AUTH

ENDPOINT = "http://127.0.0.1:4318"


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{ENDPOINT}/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_SERVICE_NAME": "outpost"}, False),  # a name alone exports nowhere
    ],
)
def test_traces_are_off_unless_configured(environ, on):
    assert configured(environ) is on
    tracing = Tracing.from_env(environ)
    assert tracing.enabled is on
    tracing.shutdown()


def test_the_default_deps_trace_nothing(settings, redis):
    assert not configured(os.environ)
    assert not Deps.build(settings, redis).tracing.enabled


async def test_publish_and_attempt_spans_are_linked_through_the_queue(
    aiohttp_client, settings, redis, otlp_collector, monkeypatch
):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_collector.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "outpost-test")
    tracing = Tracing.from_env(os.environ)
    assert tracing.enabled
    deps = Deps.build(settings, redis, extra_types=[MemoryDestination()], tracing=tracing)
    try:
        api = await aiohttp_client(create_app(settings, deps, run_promoter=False))
        await api.put("/api/v1/tenants/acme", headers=AUTH)
        body = {"type": "memory", "topics": ["orders"], "config": {"name": "traced"}}
        creds = {"token": "t-very-secret-token"}
        r = await api.post(
            "/api/v1/tenants/acme/destinations", json={**body, "credentials": creds}, headers=AUTH
        )
        assert r.status == 201, await r.text()
        memory = deps.registry.get("memory")
        assert isinstance(memory, MemoryDestination)
        memory.fail_next(Kind.RETRY, "server_error")  # the first attempt fails, retried
        event = {"tenant_id": "acme", "topic": "orders", "id": "evt_traced", "data": {"n": 1}}
        r = await api.post("/api/v1/publish", json=event, headers=AUTH)
        assert r.status == 202, await r.text()
        shown = await (await api.get("/api/v1/events/evt_traced", headers=AUTH)).json()
        assert shown["id"] == "evt_traced" and not {"_tp", "_pt"} & set(shown)  # never shown
        worker = build_worker(deps, settings, name="tracer")
        await worker.run_until_empty(limit=20)
        batch = [{**event, "id": f"evt_batch_{i}"} for i in range(2)]
        r = await api.post("/api/v1/publish/batch", json=batch, headers=AUTH)
        assert r.status == 202, await r.text()
        await worker.run_until_empty(limit=20)
        tracing.provider.force_flush()  # type: ignore[union-attr]
    finally:
        await deps.registry.close()
        tracing.shutdown()

    def ours(spans):
        return [s for s in spans if s.attributes.get("outpost.event_id") == "evt_traced"]

    spans = ours(otlp_collector.wait_for(lambda s: len(ours(s)) >= 3))
    [publish] = [s for s in spans if s.name == "outpost.publish"]
    attempts = sorted(
        (s for s in spans if s.name == "outpost.attempt"),
        key=lambda s: s.attributes["outpost.attempt"],
    )
    assert [a.attributes["outpost.outcome"] for a in attempts] == ["failed", "success"]
    assert publish.kind == SpanProto.SPAN_KIND_PRODUCER
    assert publish.service == "outpost-test"
    for attempt in attempts:
        assert attempt.trace_id == publish.trace_id
        assert attempt.parent_span_id == publish.span_id
        assert attempt.kind == SpanProto.SPAN_KIND_CONSUMER
        assert attempt.attributes["outpost.destination_type"] == "memory"
    assert attempts[0].attributes["outpost.code"] == "server_error"
    assert "t-very-secret-token" not in repr(spans)

    def batched(spans):
        return [s for s in spans if s.attributes.get("outpost.event_id", "").startswith("evt_b")]

    spans = otlp_collector.wait_for(lambda s: len(batched(s)) >= 2)
    [whole] = [s for s in spans if s.attributes.get("outpost.events") == 2]
    assert [(a.trace_id, a.parent_span_id) for a in batched(spans)] == [
        (whole.trace_id, whole.span_id)
    ] * 2
