"""Hookdeck's official Python SDK (`outpost-sdk`, pinned) against a live `outpost all`:
every shared route, as the admin and with a tenant token. The SDK validates each response
against Outpost's contract; a response it rejects fails the test."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from outpost_sdk import Outpost
from outpost_sdk.errors import OutpostError

from outpost.dev import devstack
from tests.conftest import ADMIN_KEY
from tests.servers.service import outpost_all

RANGE = {"start": "2020-01-01T00:00:00Z", "end": "2035-01-01T00:00:00Z"}


@pytest.fixture(scope="module")
def live(moto):
    devstack.create_stream(moto.url, "sdk-stream")
    with outpost_all(TOPICS="orders,users") as url:
        yield url, moto.url


def wait_for(fn, limit=20.0):
    deadline = time.monotonic() + limit
    while True:
        result = fn()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def test_every_shared_route_as_admin(live):
    base, kinesis = live
    sdk = Outpost(api_key=ADMIN_KEY, server_url=base)
    assert sdk.health.check() is not None
    tenant = sdk.tenants.upsert(tenant_id="sdk-acme", body={"metadata": {"plan": "pro"}})
    assert tenant.id == "sdk-acme" and tenant.metadata == {"plan": "pro"}
    assert sdk.tenants.get(tenant_id="sdk-acme").destinations_count == 0
    assert "sdk-acme" in [t.id for t in sdk.tenants.list(request={"limit": 100}).models]
    assert sdk.tenants.get_token(tenant_id="sdk-acme").token
    assert "token=" in sdk.tenants.get_portal_url(tenant_id="sdk-acme").redirect_url
    dest = sdk.destinations.create(
        tenant_id="sdk-acme",
        body={
            "type": "aws_kinesis",
            "topics": ["orders"],
            "config": {"stream_name": "sdk-stream", "region": "us-east-1", "endpoint": kinesis},
            "credentials": {"key": "AKIASDK", "secret": "sdk-secret-value-1"},
            "delivery_metadata": {"app": "sdk"},
            "metadata": {"team": "x"},
        },
    )
    assert dest.credentials.secret == "sdk-******"
    assert [d.id for d in sdk.destinations.list(tenant_id="sdk-acme")] == [dest.id]
    assert sdk.destinations.get(tenant_id="sdk-acme", destination_id=dest.id).id == dest.id
    updated = sdk.destinations.update(
        tenant_id="sdk-acme",
        destination_id=dest.id,
        body={"type": "aws_kinesis", "topics": "*", "filter": {"data": {"n": {"$gte": 0}}}},
    )
    assert updated.topics == "*"
    assert sdk.destinations.disable(tenant_id="sdk-acme", destination_id=dest.id).disabled_at
    assert sdk.destinations.enable(tenant_id="sdk-acme", destination_id=dest.id).disabled_at is None
    pub = sdk.publish(
        request={
            "tenant_id": "sdk-acme",
            "topic": "orders",
            "id": "sdk-evt-1",
            "data": {"n": 1},
            "metadata": {"source": "sdk"},
        }
    )
    assert pub.id == "sdk-evt-1" and pub.destination_ids == [dest.id] and not pub.duplicate
    attempts = wait_for(lambda: sdk.attempts.list(request={"tenant_id": "sdk-acme"}).models)
    assert attempts and attempts[0].status == "success"
    assert sdk.attempts.get(attempt_id=attempts[0].id).event_id == "sdk-evt-1"
    listed = sdk.destinations.list_attempts(
        request={"tenant_id": "sdk-acme", "destination_id": dest.id}
    )
    assert [a.id for a in listed.models] == [attempts[0].id]
    one = sdk.destinations.get_attempt(
        tenant_id="sdk-acme", destination_id=dest.id, attempt_id=attempts[0].id
    )
    assert one.attempt_number == 1
    events = sdk.events.list(request={"tenant_id": "sdk-acme"})
    assert [e.id for e in events.models] == ["sdk-evt-1"]
    assert sdk.events.get(event_id="sdk-evt-1").data == {"n": 1}
    sdk.retry(request={"event_id": "sdk-evt-1", "destination_id": dest.id})
    assert wait_for(
        lambda: any(a.manual for a in sdk.attempts.list(request={"tenant_id": "sdk-acme"}).models)
    )
    types = sdk.schemas.list_destination_types()
    assert "aws_kinesis" in [t.type for t in types]
    assert sdk.schemas.get_destination_type(type_="aws_kinesis").type == "aws_kinesis"
    assert sdk.topics.list() == ["orders", "users"]
    em = sdk.metrics.get_event_metrics(
        request={"time": RANGE, "measures": ["count"], "dimensions": ["tenant_id"]}
    )
    assert any(p.metrics["count"] >= 1 for p in em.data)
    am = sdk.metrics.get_attempt_metrics(
        request={"time": RANGE, "measures": ["count", "error_rate"]}
    )
    assert am.data and am.data[0].metrics["count"] >= 2
    sdk.destinations.delete(tenant_id="sdk-acme", destination_id=dest.id)
    sdk.tenants.delete(tenant_id="sdk-acme")


def test_shared_routes_with_a_tenant_token(live):
    base, kinesis = live
    admin = Outpost(api_key=ADMIN_KEY, server_url=base)
    for t in ("sdk-t1", "sdk-t2"):
        admin.tenants.upsert(tenant_id=t)
    token = admin.tenants.get_token(tenant_id="sdk-t1").token
    me = Outpost(api_key=token, server_url=base)
    assert me.tenants.get(tenant_id="sdk-t1").id == "sdk-t1"
    assert [t.id for t in me.tenants.list(request={}).models] == ["sdk-t1"]
    dest = me.destinations.create(
        tenant_id="sdk-t1",
        body={
            "type": "aws_kinesis",
            "topics": ["orders"],
            "config": {"stream_name": "sdk-stream", "region": "us-east-1", "endpoint": kinesis},
            "credentials": {"key": "AKIAT1", "secret": "tenant-one-secret"},
        },
    )
    assert [d.id for d in me.destinations.list(tenant_id="sdk-t1")] == [dest.id]
    me.destinations.update(
        tenant_id="sdk-t1",
        destination_id=dest.id,
        body={"type": "aws_kinesis", "metadata": {"k": "v"}},
    )
    admin.publish(
        request={"tenant_id": "sdk-t1", "topic": "orders", "id": "t1-evt", "data": {"x": 1}}
    )
    admin.publish(
        request={"tenant_id": "sdk-t2", "topic": "orders", "id": "t2-evt", "data": {"x": 2}}
    )
    assert [e.id for e in me.events.list(request={}).models] == ["t1-evt"]
    assert wait_for(lambda: me.attempts.list(request={}).models)
    assert {a.tenant_id for a in me.attempts.list(request={}).models} == {"sdk-t1"}
    assert me.topics.list() == ["orders", "users"]
    assert me.schemas.list_destination_types()
    em = me.metrics.get_event_metrics(request={"time": RANGE, "measures": ["count"]})
    assert [p.metrics["count"] for p in em.data] == [1]
    am = me.metrics.get_attempt_metrics(request={"time": RANGE, "measures": ["count"]})
    assert am.data and am.data[0].metrics["count"] >= 1
    assert me.tenants.upsert(tenant_id="sdk-t1", body={"metadata": {"a": "b"}}).metadata
    assert me.destinations.get(tenant_id="sdk-t1", destination_id=dest.id).id == dest.id
    assert me.destinations.disable(tenant_id="sdk-t1", destination_id=dest.id).disabled_at
    assert me.destinations.enable(tenant_id="sdk-t1", destination_id=dest.id).disabled_at is None
    attempt = me.attempts.list(request={}).models[0]
    assert me.attempts.get(attempt_id=attempt.id).tenant_id == "sdk-t1"
    listed = me.destinations.list_attempts(
        request={"tenant_id": "sdk-t1", "destination_id": dest.id}
    )
    assert [a.id for a in listed.models] == [attempt.id]
    assert (
        me.destinations.get_attempt(
            tenant_id="sdk-t1", destination_id=dest.id, attempt_id=attempt.id
        ).id
        == attempt.id
    )
    assert me.events.get(event_id="t1-evt").data == {"x": 1}
    me.retry(request={"event_id": "t1-evt", "destination_id": dest.id})
    assert me.schemas.get_destination_type(type_="aws_kinesis").type == "aws_kinesis"
    assert me.health.check() is not None
    with pytest.raises(OutpostError) as info:  # another tenant's event: not found
        me.events.get(event_id="t2-evt")
    assert info.value.status_code == 404
    with pytest.raises(OutpostError) as info:  # another tenant's resources
        me.destinations.list(tenant_id="sdk-t2")
    assert info.value.status_code == 403
    with pytest.raises(OutpostError) as info:  # admin-only
        me.publish(request={"tenant_id": "sdk-t1", "topic": "orders", "data": {}})
    assert info.value.status_code == 403
    me.destinations.delete(tenant_id="sdk-t1", destination_id=dest.id)
    me.tenants.delete(tenant_id="sdk-t1")
    with pytest.raises(OutpostError) as info:  # the token died with its tenant
        me.tenants.get(tenant_id="sdk-t1")
    assert info.value.status_code == 401


NODE_CACHE = Path(os.environ.get("OUTPOST_NODE_CACHE", Path.home() / ".cache" / "outpost-node"))


def test_typescript_sdk_flows(live, tmp_path):
    """Tenant, destination (aws_kinesis) and publish flows through @hookdeck/outpost-sdk."""
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed: the TypeScript SDK runs where node is (CI has it)")
    devstack.npm_install(NODE_CACHE, "@hookdeck/outpost-sdk", "@hookdeck/outpost-sdk@1.6.0")
    script = NODE_CACHE / "ts_sdk_flow.mjs"  # beside node_modules, so the import resolves
    shutil.copy(Path(__file__).with_name("ts_sdk_flow.mjs"), script)
    base, kinesis = live
    env = {
        **os.environ,
        "OUTPOST_URL": base,
        "OUTPOST_KEY": ADMIN_KEY,
        "KINESIS_URL": kinesis,
        "STREAM": "sdk-stream",
    }
    run = subprocess.run([node, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "TS SDK OK" in run.stdout
