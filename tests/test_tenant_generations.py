"""A tenant deleted and created again with the same id is a new tenant: the old one's
tokens get 401 and none of its destinations, events, attempts, dead letters or Flow
Service resources reach the new one."""

import time
from datetime import UTC, datetime

import jwt
import pytest

from outpost.errors import NotFound
from outpost.flow.specs import PIPELINE, STREAMING_FLOW
from outpost.models import Event
from outpost.queue.items import Outcome
from outpost.queue.keys import Keys
from tests.conftest import AUTH, kinesis_body
from tests.test_flowservice import BASE, headers, post, seed_bodies
from tests.topologies import topology  # noqa: F401  (single node and cluster)

TENANT = "acme"


async def build_old_tenant(client, worker):
    """A tenant with a destination, an event (with its attempt and dead letter) and
    Flow Service connections in two sandboxes and a flow; returns its ids and token."""
    assert (await client.put(f"/api/v1/tenants/{TENANT}", headers=AUTH)).status == 201
    body = kinesis_body("no-such-stream", "http://127.0.0.1:1")
    r = await client.post(f"/api/v1/tenants/{TENANT}/destinations", headers=AUTH, json=body)
    dest = (await r.json())["id"]
    event = {"tenant_id": TENANT, "topic": "orders", "id": "e1", "eligible_for_retry": False}
    r = await client.post("/api/v1/publish", headers=AUTH, json={**event, "data": {"v": "old"}})
    assert r.status == 202
    await worker.run_until_empty(limit=10)
    r = await client.get("/api/v1/attempts", headers=AUTH, params={"tenant_id": TENANT})
    [attempt] = (await r.json())["models"]
    base, source = seed_bodies("000")
    conns = [(await post(client, "connections", base, sandbox=s))["id"] for s in ("prod", "dev")]
    source |= {"baseConnectionId": conns[0]}
    source["params"]["stream"] = "orders-stream"
    src = (await post(client, "sourceConnections", source))["id"]
    target = {
        "name": "pipeline",
        "connectionSpec": {"id": PIPELINE, "version": "1.0"},
        "params": {"topic": "orders"},
    }
    tgt = (await post(client, "targetConnections", target))["id"]
    flow = {"name": "f", "flowSpec": {"id": STREAMING_FLOW, "version": "1.0"}}
    flow |= {"sourceConnectionIds": [src], "targetConnectionIds": [tgt]}
    await post(client, "flows", flow)
    token = await (await client.get(f"/api/v1/tenants/{TENANT}/token", headers=AUTH)).json()
    return {"dest": dest, "attempt": attempt["id"], "conns": conns, "token": token["token"]}


async def test_recreated_tenant_refuses_old_tokens_and_shows_nothing_old(client, deps, worker):
    old = await build_old_tenant(client, worker)
    own = {"Authorization": f"Bearer {old['token']}"}
    assert (await client.get(f"/api/v1/tenants/{TENANT}", headers=own)).status == 200
    assert (await client.delete(f"/api/v1/tenants/{TENANT}", headers=AUTH)).status == 200
    assert (await client.put(f"/api/v1/tenants/{TENANT}", headers=AUTH)).status == 201

    for path in (f"/api/v1/tenants/{TENANT}", f"/api/v1/tenants/{TENANT}/destinations"):
        r = await client.get(path, headers=own)
        assert r.status == 401, (path, await r.text())
    r = await client.get(f"{BASE}/connections", headers=headers(token=old["token"]))
    assert r.status == 401

    new = await (await client.get(f"/api/v1/tenants/{TENANT}/token", headers=AUTH)).json()
    mine = {"Authorization": f"Bearer {new['token']}"}
    for caller in (mine, AUTH):
        q = {"tenant_id": TENANT}
        for path in ("/api/v1/events", "/api/v1/attempts"):
            r = await client.get(path, headers=caller, params=q)
            assert (await r.json())["models"] == [], (path, await r.text())
        for path in ("/api/v1/events/e1", f"/api/v1/attempts/{old['attempt']}"):
            r = await client.get(path, headers=caller, params=q)
            assert r.status == 404, (path, await r.text())
        base = f"/api/v1/tenants/{TENANT}"
        assert await (await client.get(f"{base}/destinations", headers=caller)).json() == []
        r = await client.get(f"{base}/destinations/{old['dest']}", headers=caller)
        assert r.status == 404
        r = await client.get(f"{base}/dead-letters", headers=caller)
        assert (await r.json())["models"] == [], await r.text()
        token = caller["Authorization"].split(" ", 1)[1]
        for kind in ("connections", "sourceConnections", "targetConnections", "flows"):
            for sandbox in ("prod", "dev"):
                r = await client.get(
                    f"{BASE}/{kind}", headers=headers(sandbox=sandbox, token=token)
                )
                assert (await r.json())["items"] == [], (kind, sandbox, await r.text())
    assert [f for f in await deps.flows.flow_ids() if f[0] == TENANT] == []

    event = {"tenant_id": TENANT, "topic": "orders", "id": "e1", "data": {"v": "new"}}
    assert (await client.post("/api/v1/publish", headers=AUTH, json=event)).status == 202
    r = await client.get("/api/v1/events/e1", headers=mine, params={"tenant_id": TENANT})
    assert r.status == 200 and (await r.json())["data"] == {"v": "new"}, await r.text()


async def test_delete_leaves_no_key_of_the_tenant_but_its_generation(client, deps, worker, redis):
    await build_old_tenant(client, worker)
    assert (await client.delete(f"/api/v1/tenants/{TENANT}", headers=AUTH)).status == 200
    keys = Keys(deps.settings.deployment_id)
    left = sorted([k.decode() async for k in redis.scan_iter(match="*", count=500)])
    assert [k for k in left if TENANT in k] == [keys.tenant_generation(TENANT)]
    assert not [k for k in left if k.startswith(keys.attempt(""))], left
    for n in range(deps.settings.delivery_partitions):
        for index in (keys.admin_events(n), keys.admin_attempts(n)):
            assert await redis.zcard(index) == 0, index
    assert await redis.scard(keys.flow_index()) == 0


async def test_tokens_without_a_generation_are_of_the_first(client, deps):
    """Tokens issued before generations (no `gen` claim) keep working for the tenant they
    were issued for, and stop at its re-creation; a malformed `gen` is 401."""
    assert (await client.put(f"/api/v1/tenants/{TENANT}", headers=AUTH)).status == 201
    now = int(time.time())
    claims = {"iss": "outpost", "sub": TENANT, "iat": now, "exp": now + 60}
    secret = deps.settings.api_jwt_secret
    legacy = {"Authorization": f"Bearer {jwt.encode(claims, secret, algorithm='HS256')}"}
    for gen in ("1", 0, True, 1.0):
        bad = jwt.encode({**claims, "gen": gen}, secret, algorithm="HS256")
        r = await client.get(
            f"/api/v1/tenants/{TENANT}", headers={"Authorization": f"Bearer {bad}"}
        )
        assert r.status == 401, (gen, await r.text())
    assert (await client.get(f"/api/v1/tenants/{TENANT}", headers=legacy)).status == 200
    assert (await client.delete(f"/api/v1/tenants/{TENANT}", headers=legacy)).status == 200
    assert (await client.put(f"/api/v1/tenants/{TENANT}", headers=AUTH)).status == 201
    assert (await client.get(f"/api/v1/tenants/{TENANT}", headers=legacy)).status == 401
    fresh = {"Authorization": f"Bearer {deps.tokens.issue(TENANT, generation=2)}"}
    assert (await client.get(f"/api/v1/tenants/{TENANT}", headers=fresh)).status == 200


async def queued_task(client, deps, tenant=TENANT):
    """A tenant with a destination and one event whose task a worker has read."""
    assert (await client.put(f"/api/v1/tenants/{tenant}", headers=AUTH)).status == 201
    body = kinesis_body("no-such-stream", "http://127.0.0.1:1")
    r = await client.post(f"/api/v1/tenants/{tenant}/destinations", headers=AUTH, json=body)
    dest = (await r.json())["id"]
    event = {"tenant_id": tenant, "topic": "orders", "id": "e1", "data": {}}
    assert (await client.post("/api/v1/publish", headers=AUTH, json=event)).status == 202
    await deps.queue.ensure_groups()
    [entry] = await deps.queue.read("c1", count=10, block_ms=100)
    return dest, entry


async def tenant_keys(redis, deps):
    keys = Keys(deps.settings.deployment_id)
    found = [k.decode() async for k in redis.scan_iter(match=keys.tenant_pattern(TENANT))]
    return sorted(k for k in found if k != keys.tenant_generation(TENANT))


@pytest.mark.parametrize(
    "outcome",
    [Outcome("failed", "x", dead=True), Outcome("failed", "x", retry_in=0), Outcome("success")],
)
async def test_a_delivery_in_flight_during_the_delete_writes_nothing(client, deps, redis, outcome):
    """A task read before the delete and completed after it is acked, and leaves no
    attempt, failure count, retry or dead letter that a tenant created again would see."""
    _, entry = await queued_task(client, deps)
    assert (await client.delete(f"/api/v1/tenants/{TENANT}", headers=AUTH)).status == 200
    await deps.queue.complete(entry, outcome, time.time())
    assert await tenant_keys(redis, deps) == []
    assert not [k async for k in redis.scan_iter(match="*attempt*")]
    assert (await deps.queue.depth())["retrying"] == 0
    # the purge removed the tenant's lanes (with what they held): nothing left pending
    assert not await redis.exists(entry.stream)
    assert not await redis.sismember(
        Keys(deps.settings.deployment_id).lanes_of(entry.stream), entry.stream
    )


async def test_a_publish_racing_the_delete_stores_nothing(client, deps, redis):
    dest, _ = await queued_task(client, deps)
    assert (await client.delete(f"/api/v1/tenants/{TENANT}", headers=AUTH)).status == 200
    late = Event(id="e2", tenant_id=TENANT, topic="orders", time=datetime.now(UTC), data={})
    [result] = await deps.queue.publish_many([(late, [(dest, late.id)], [dest])])
    assert isinstance(result, NotFound)
    assert await tenant_keys(redis, deps) == []


async def test_a_delete_stopped_half_way_is_finished_by_deleting_again(client, deps, redis):
    """A crash between the `deleting` mark and the last step: the tenant takes no writes
    and no tokens, cannot be upserted (409), and DELETE finishes the work."""
    await queued_task(client, deps)
    token = await (await client.get(f"/api/v1/tenants/{TENANT}/token", headers=AUTH)).json()
    await redis.hset(Keys(deps.settings.deployment_id).tenant(TENANT), "deleting", "1")
    own = {"Authorization": f"Bearer {token['token']}"}
    assert (await client.get(f"/api/v1/tenants/{TENANT}", headers=own)).status == 401
    r = await client.put(f"/api/v1/tenants/{TENANT}", headers=AUTH)
    assert r.status == 409 and "DELETE" in (await r.json())["message"]
    late = Event(id="e2", tenant_id=TENANT, topic="orders", time=datetime.now(UTC), data={})
    [result] = await deps.queue.publish_many([(late, [], [])])
    assert isinstance(result, NotFound)
    assert (await client.delete(f"/api/v1/tenants/{TENANT}", headers=AUTH)).status == 200
    assert await tenant_keys(redis, deps) == []
    assert (await client.put(f"/api/v1/tenants/{TENANT}", headers=AUTH)).status == 201
