"""Tenant isolation: every route in the route table x every kind of caller.

The matrix is built from `ROUTES`, so a new route without an entry in `CALLS`
fails `test_every_route_is_in_the_matrix`. For each route the world is rebuilt (two
tenants with a destination, an event, an attempt and a dead letter each), then the route
is called as: nobody, a garbage token, the other tenant, the own tenant, the admin.
No body a tenant receives may contain the other tenant's ids or data.
"""

import json
import time

import jwt
import pytest

from outpost.api.routes import ROUTES
from tests.conftest import AUTH, kinesis_body

CALLERS = ("none", "garbage", "other", "own", "admin")

# handler → (body for the call, status expected for the *other* tenant on an `any` route)
CALLS = {
    "healthz": (None, 200),
    "openapi_json": (None, 200),
    "docs_page": (None, 200),
    "list_tenants": (None, 200),
    "upsert_tenant": ({"metadata": {"k": "v"}}, None),
    "get_tenant": (None, None),
    "delete_tenant": (None, None),
    "tenant_token": (None, None),
    "tenant_portal": (None, None),
    "list_destinations": (None, None),
    "create_destination": ("DEST_BODY", None),
    "get_destination": (None, None),
    "update_destination": ({"topics": "*"}, None),
    "delete_destination": (None, None),
    "enable_destination": (None, None),
    "disable_destination": (None, None),
    "publish": ({"tenant_id": "acme", "topic": "orders", "data": {"x": 1}}, None),
    "publish_batch": ([{"tenant_id": "acme", "topic": "orders", "data": {"x": 1}}], None),
    "retry": ({"event_id": "{event_id}", "destination_id": "{destination_id}"}, 404),
    "list_events": (None, 200),
    "get_event": (None, 404),
    "list_attempts": (None, 200),
    "get_attempt": (None, 404),
    "list_destination_attempts": (None, None),
    "get_destination_attempt": (None, None),
    "list_dead_letters": (None, None),
    "redrive_dead_letters": ({}, None),
    "list_undelivered": (None, None),
    "replay_destination": ({"since": "2020-01-01T00:00:00Z"}, None),
    "event_metrics": (
        None,
        200,
        "?time[start]=2020-01-01T00:00:00Z"
        "&time[end]=2030-01-01T00:00:00Z&measures=count&dimensions=topic",
    ),
    "attempt_metrics": (
        None,
        200,
        "?time[start]=2020-01-01T00:00:00Z"
        "&time[end]=2030-01-01T00:00:00Z&measures=count,error_rate",
    ),
    "destination_types": (None, 200),
    "destination_type": (None, 200),
    "topics": (None, 200),
    "test_destination": (None, None),  # 200: the preflight of an unreachable endpoint
    "aws_trust_policy": (None, None),  # own and admin: 422 (OWN below)
    "explore_streams": (None, None),  # 200: ok false (the endpoint is unreachable)
    "explore_records": (None, None),
}
# what the owner and the admin get where it is not 2xx: the matrix's destination holds
# static keys, and only a role has a trust policy
OWN = {"aws_trust_policy": 422}


class World:
    """Two tenants with a destination, an event, an attempt and a dead letter each."""

    async def build(self, client, deps, worker, redis):
        await redis.flushdb()
        self.ids = {}
        for tenant in ("acme", "globex"):
            await client.put(f"/api/v1/tenants/{tenant}", headers=AUTH)
            body = kinesis_body("no-such-stream", "http://127.0.0.1:1")
            r = await client.post(f"/api/v1/tenants/{tenant}/destinations", headers=AUTH, json=body)
            dest = (await r.json())["id"]
            event = f"{tenant}-evt"
            await client.post(
                "/api/v1/publish",
                headers=AUTH,
                json={
                    "tenant_id": tenant,
                    "topic": "orders",
                    "id": event,
                    "eligible_for_retry": False,
                    "data": {"marker": f"{tenant}-private-data"},
                },
            )
            self.ids[tenant] = {
                "tenant_id": tenant,
                "destination_id": dest,
                "event_id": event,
                "type": "aws_kinesis",
                "stream": "no-such-stream",
            }
        await worker.run_until_empty()  # one failed attempt + one dead letter each
        for tenant in ("acme", "globex"):
            [attempt] = await deps.queue.attempts(tenant, self.ids[tenant]["destination_id"])
            self.ids[tenant]["attempt_id"] = attempt["id"]
        self.tokens = {t: deps.tokens.issue(t) for t in ("acme", "globex")}

    def headers(self, caller):
        return {
            "none": {},
            "garbage": {"Authorization": "Bearer not-a-token"},
            "other": {"Authorization": f"Bearer {self.tokens['globex']}"},
            "own": {"Authorization": f"Bearer {self.tokens['acme']}"},
            "admin": AUTH,
        }[caller]

    def secrets_of(self, tenant):
        ids = self.ids[tenant]
        return [ids["destination_id"], ids["event_id"], ids["attempt_id"], f"{tenant}-private-data"]


def expected(access, caller, other_status):
    if access == "public":
        return 200
    if caller in ("none", "garbage"):
        return 401
    if caller in ("own", "admin"):
        return 403 if (access == "admin" and caller == "own") else "2xx"
    if access in ("admin", "tenant"):
        return 403
    return other_status


def fill(template, ids):
    return json.loads(
        json.dumps(template)
        .replace("{event_id}", ids["event_id"])
        .replace("{destination_id}", ids["destination_id"])
    )


def test_every_route_is_in_the_matrix():
    names = {handler.__name__ for _, _, handler, _ in ROUTES}
    assert names == set(CALLS), f"routes without a matrix entry: {names - set(CALLS)}"


@pytest.mark.parametrize(
    ("method", "path", "handler", "access"),
    ROUTES,
    ids=[f"{m} {p}" for m, p, _, _ in ROUTES],
)
async def test_route_matrix(client, deps, worker, redis, method, path, handler, access):
    world = World()
    body_template, other_status, *query = CALLS[handler.__name__]
    for caller in CALLERS:
        await world.build(client, deps, worker, redis)  # destructive calls start afresh
        ids = world.ids["acme"]
        url = "/api/v1" + path.format(**ids) + "".join(query)
        body = body_template
        if body == "DEST_BODY":
            body = kinesis_body("s", "http://127.0.0.1:1")
        elif body is not None:
            body = fill(body, ids)
        r = await client.request(method, url, json=body, headers=world.headers(caller))
        text = await r.text()
        want = expected(access, caller, other_status)
        if want == "2xx" and handler.__name__ in OWN:
            want = OWN[handler.__name__]
        if want == "2xx":
            assert 200 <= r.status < 300, (caller, r.status, text)
        else:
            assert r.status == want, (caller, r.status, text)
        if r.status >= 400:
            assert set(json.loads(text)) == {"status", "message", "data"}
        if caller == "own":
            assert not any(s in text for s in world.secrets_of("globex")), text
        if caller == "other":
            assert not any(s in text for s in world.secrets_of("acme")), text


async def test_expired_and_foreign_tokens_are_401(client, deps, redis):
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    now = time.time()
    expired = deps.tokens.issue("acme", now=now - 2 * deps.tokens.ttl)
    forged = jwt.encode(
        {"iss": "outpost", "sub": "acme", "exp": int(now) + 60},
        "not-our-secret-but-just-as-long-as-ours",
        algorithm="HS256",
    )
    unsigned = jwt.encode(
        {"iss": "outpost", "sub": "acme", "exp": int(now) + 60}, None, algorithm="none"
    )
    wrong_issuer = jwt.encode(
        {"iss": "someone", "sub": "acme", "exp": int(now) + 60},
        deps.tokens.secret,
        algorithm="HS256",
    )
    for token in (expired, forged, unsigned, wrong_issuer):
        r = await client.get("/api/v1/tenants/acme", headers={"Authorization": f"Bearer {token}"})
        assert r.status == 401, token


async def test_deleted_tenants_token_stops_working(client, deps):
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    r = await client.get("/api/v1/tenants/acme/token", headers=AUTH)
    body = await r.json()
    assert body["tenant_id"] == "acme"
    claims = jwt.decode(body["token"], deps.tokens.secret, algorithms=["HS256"])
    assert claims["iss"] == "outpost" and claims["sub"] == "acme"
    assert claims["exp"] - claims["iat"] == 24 * 3600
    tenant = {"Authorization": f"Bearer {body['token']}"}
    assert (await client.get("/api/v1/tenants/acme", headers=tenant)).status == 200
    await client.delete("/api/v1/tenants/acme", headers=AUTH)
    assert (await client.get("/api/v1/tenants/acme", headers=tenant)).status == 401
    assert (await client.get("/api/v1/tenants/ghost/token", headers=AUTH)).status == 404


async def test_tenant_token_lists_only_its_own_tenant(client, deps):
    for t in ("acme", "globex"):
        await client.put(f"/api/v1/tenants/{t}", headers=AUTH)
    token = deps.tokens.issue("acme")
    r = await client.get("/api/v1/tenants", headers={"Authorization": f"Bearer {token}"})
    body = await r.json()
    assert [t["id"] for t in body["models"]] == ["acme"] and body["count"] == 1


async def test_auth_is_off_only_when_said_so(aiohttp_client, redis, redis_server):
    from outpost.deps import Deps
    from outpost.runtime import create_app
    from tests.conftest import make_settings

    s = make_settings(redis_server.redis_url, api_key="", api_auth_disabled=True)
    assert s.check_service_secrets() == []
    c = await aiohttp_client(create_app(s, Deps.build(s, redis), run_promoter=False))
    assert (await c.put("/api/v1/tenants/acme")).status == 201  # no credentials needed
    s2 = make_settings(redis_server.redis_url, api_key="")
    assert any(p.startswith("API_KEY") for p in s2.check_service_secrets())
    c2 = await aiohttp_client(create_app(s2, Deps.build(s2, redis), run_promoter=False))
    assert (await c2.get("/api/v1/tenants/acme")).status == 401  # empty key matches nothing
    assert (
        await c2.get("/api/v1/tenants/acme", headers={"Authorization": "Bearer "})
    ).status == 401
