"""SSRF guard: tenant-supplied endpoints must be public, at create/update and at send time.
DNS is simulated with an injected resolver (this machine has no outside network)."""

import pytest

from outpost.deps import Deps
from outpost.destinations.endpoints import EndpointPolicy, ForbiddenEndpoint, forbidden
from outpost.dev import devstack
from outpost.runtime import build_worker, create_app
from tests.conftest import AUTH, kinesis_body, make_settings

DNS = {
    "kinesis.example.com": ["52.94.0.10"],
    "rebind.example.com": ["52.94.0.11"],
    "metadata.example.com": ["169.254.169.254"],
    "mixed.example.com": ["52.94.0.12", "10.1.2.3"],
}


async def fake_resolver(host):
    if host not in DNS:
        raise OSError("no such host")
    return DNS[host]


@pytest.mark.parametrize(
    ("address", "bad"),
    [
        ("127.0.0.1", True),
        ("10.0.0.5", True),
        ("172.16.3.4", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),
        ("100.64.0.1", True),
        ("0.0.0.0", True),
        ("224.0.0.1", True),
        ("::1", True),
        ("fd00:ec2::254", True),
        ("fe80::1", True),
        ("::ffff:127.0.0.1", True),
        ("52.94.0.10", False),
        ("2600:1f18::1", False),
    ],
)
def test_forbidden_addresses(address, bad):
    assert forbidden(address) is bad


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://kinesis.example.com", True),
        ("http://127.0.0.1:4566", False),
        ("http://localhost:4566", False),
        ("http://[::1]:4566", False),
        ("http://metadata.example.com/latest", False),
        ("http://mixed.example.com", False),
        ("http://nowhere.example.com", False),
        ("http://169.254.169.254", False),
    ],
)
async def test_policy(url, ok):
    async def with_localhost(host):
        return ["127.0.0.1"] if host == "localhost" else await fake_resolver(host)

    policy = EndpointPolicy(allow_private=False, resolver=with_localhost)
    if ok:
        await policy.check(url)
    else:
        with pytest.raises(ForbiddenEndpoint):
            await policy.check(url)
    await EndpointPolicy(allow_private=True, resolver=with_localhost).check(url)


@pytest.fixture
async def guarded(aiohttp_client, redis, redis_server):
    s = make_settings(redis_server.redis_url, destinations_allow_private_endpoints=False)
    deps = Deps.build(s, redis)
    deps.endpoints = EndpointPolicy(allow_private=False, resolver=fake_resolver)
    c = await aiohttp_client(create_app(s, deps, run_promoter=False))
    await c.put("/api/v1/tenants/acme", headers=AUTH)
    yield c, deps, s
    await deps.registry.close()


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:4566",
        "http://169.254.169.254",
        "http://metadata.example.com",
        "http://10.0.0.1",
    ],
)
async def test_private_endpoints_are_422_on_create_and_update(guarded, endpoint):
    client, _, _ = guarded
    r = await client.post(
        "/api/v1/tenants/acme/destinations", headers=AUTH, json=kinesis_body("s", endpoint)
    )
    body = await r.json()
    assert r.status == 422 and body["data"][0].startswith("config.endpoint:")
    r = await client.post(
        "/api/v1/tenants/acme/destinations",
        headers=AUTH,
        json=kinesis_body("s", "https://kinesis.example.com"),
    )
    assert r.status == 201
    dest = (await r.json())["id"]
    r = await client.patch(
        f"/api/v1/tenants/acme/destinations/{dest}",
        headers=AUTH,
        json={"config": {"endpoint": endpoint}},
    )
    assert r.status == 422 and "config.endpoint" in await r.text()


async def test_checked_again_at_send_time(guarded, moto):
    client, deps, settings = guarded
    r = await client.post(
        "/api/v1/tenants/acme/destinations",
        headers=AUTH,
        json=kinesis_body("s", "https://rebind.example.com"),
    )
    assert r.status == 201
    DNS["rebind.example.com"] = ["169.254.169.254"]  # the name now points at metadata
    try:
        await client.post(
            "/api/v1/publish",
            headers=AUTH,
            json={"tenant_id": "acme", "topic": "orders", "data": {}},
        )
        worker = build_worker(
            deps, settings, endpoints=EndpointPolicy(allow_private=False, resolver=fake_resolver)
        )
        await worker.run_until_empty()
    finally:
        DNS["rebind.example.com"] = ["52.94.0.11"]
    [dead] = await deps.queue.dead_letters("acme")
    assert dead["code"] == "endpoint_forbidden"
    assert deps.registry.get("aws_kinesis").writer.targets == {}  # nothing was sent


async def test_operator_endpoint_is_trusted(guarded, moto, moto_stream, monkeypatch):
    """AWS_ENDPOINT_URL_* are the operator's: a destination without `config.endpoint`
    reaches a 127.0.0.1 server through them while the guard is on."""
    client, deps, settings = guarded
    monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", moto.url)
    body = kinesis_body(moto_stream, moto.url)
    del body["config"]["endpoint"]
    r = await client.post("/api/v1/tenants/acme/destinations", headers=AUTH, json=body)
    assert r.status == 201
    await client.post(
        "/api/v1/publish", headers=AUTH, json={"tenant_id": "acme", "topic": "orders", "data": {}}
    )
    await build_worker(deps, settings).run_until_empty()
    assert len(devstack.read_stream(moto.url, moto_stream, expect=1)) == 1
