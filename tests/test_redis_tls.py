"""TLS and ACL users on a real TLS redis-server (tests/servers/redis_tls.py): the one client
factory connects with the CA verified, with a client certificate when the server asks for
one, as an ACL user with limited rights (the service publishes and delivers under README's
minimal ACL); a wrong CA, a missing client certificate or a wrong password is one clear
sentence at start."""

from __future__ import annotations

from typing import Any

import pytest
import structlog.testing

from outpost.deps import Deps
from outpost.dev import devstack
from outpost.queue.connection import RedisConfig, StartupError, check_redis, connect_redis
from outpost.runtime import (
    build_worker,
    check_redis_settings,
    create_app,
    redis_client,
    redis_config,
)
from tests.conftest import AUTH, make_settings
from tests.servers.redis_tls import ACL_PASSWORD, ACL_USER
from tests.test_processes import service_env
from tests.test_startup_errors import one_line, outpost


def tls(server: Any, **over: Any) -> RedisConfig:
    values: dict[str, Any] = {"tls": True, "ca_file": server.file("ca.crt"), **over}
    return RedisConfig(server.url, **values)


async def test_verified_tls_connects(redis_tls):
    await check_redis(tls(redis_tls))
    client = connect_redis(tls(redis_tls))
    try:
        assert await client.ping()
    finally:
        await client.aclose()


async def test_a_rediss_url_is_tls_too(redis_tls):
    url = f"rediss://127.0.0.1:{redis_tls.port}/0"
    await check_redis(RedisConfig(url, ca_file=redis_tls.file("ca.crt")))


async def test_wrong_ca_is_one_clear_sentence(redis_tls):
    with pytest.raises(StartupError) as caught:
        await check_redis(tls(redis_tls, ca_file=redis_tls.file("other-ca.crt")), wait=10)
    assert str(caught.value).startswith(
        f"cannot reach Redis at 127.0.0.1:{redis_tls.port} "
        "(TLS handshake failed: certificate verify failed"
    ), caught.value


async def test_verify_off_accepts_any_certificate(redis_tls):
    await check_redis(tls(redis_tls, ca_file=redis_tls.file("other-ca.crt"), verify=False))


async def test_plain_client_on_a_tls_port_is_told_why(redis_tls):
    with pytest.raises(StartupError) as caught:
        await check_redis(RedisConfig(redis_tls.url), wait=0.5)
    assert str(caught.value).endswith(
        "(the server closed the connection: does it want TLS? set REDIS_TLS_ENABLED)"
    ), caught.value


async def test_mutual_tls_needs_the_client_certificate(redis_mtls):
    with pytest.raises(StartupError) as caught:
        await check_redis(tls(redis_mtls), wait=10)
    assert "TLS handshake failed" in str(caught.value), caught.value
    with_cert = tls(
        redis_mtls, cert_file=redis_mtls.file("client.crt"), key_file=redis_mtls.file("client.key")
    )
    await check_redis(with_cert)


async def test_wrong_password_of_an_acl_user(redis_tls):
    config = tls(redis_tls, username=ACL_USER, password="not-the-password")
    with pytest.raises(StartupError) as caught:
        await check_redis(config, wait=10)
    message = str(caught.value)
    assert message == (
        f"Redis at 127.0.0.1:{redis_tls.port} refused us (authentication failed for user "
        f"{ACL_USER} (wrong password, or the user is off))"
    )
    assert "not-the-password" not in message


def tls_env(server: Any, **extra: str) -> dict[str, str]:
    env = service_env(server.url, devstack.free_port())
    env.update({"REDIS_TLS_ENABLED": "true", "REDIS_TLS_CA_FILE": server.file("ca.crt"), **extra})
    return env


def test_the_cli_says_it_in_one_line(redis_tls):
    """The real process: a wrong CA, then a wrong password, each exit 2 with one line."""
    env = tls_env(redis_tls, REDIS_TLS_CA_FILE=redis_tls.file("other-ca.crt"))
    line = one_line(outpost("api", env))
    assert "TLS handshake failed: certificate verify failed" in line, line
    env = tls_env(redis_tls, REDIS_USERNAME=ACL_USER, REDIS_PASSWORD="wrong-pw-123")
    line = one_line(outpost("worker", env))
    assert f"authentication failed for user {ACL_USER}" in line and "wrong-pw-123" not in line


async def test_the_service_publishes_and_delivers_as_the_acl_user(
    aiohttp_client, redis_tls, http_receiver
):
    settings = make_settings(
        redis_tls.url,
        redis_tls_enabled=True,
        redis_tls_ca_file=redis_tls.file("ca.crt"),
        redis_username=ACL_USER,
        redis_password=ACL_PASSWORD,
    )
    await check_redis(redis_config(settings))
    redis = redis_client(settings)
    deps = Deps.build(settings, redis)
    try:
        client = await aiohttp_client(create_app(settings, deps, run_promoter=False))
        path = http_receiver.path()
        assert (await client.put("/api/v1/tenants/acl", headers=AUTH)).status in (200, 201)
        body = {"type": "webhook", "topics": "*", "config": {"url": http_receiver.url + path}}
        r = await client.post("/api/v1/tenants/acl/destinations", json=body, headers=AUTH)
        assert r.status == 201, await r.text()
        for i in range(3):
            event = {"tenant_id": "acl", "topic": "orders", "id": f"e{i}", "data": {"i": i}}
            r = await client.post("/api/v1/publish", json=event, headers=AUTH)
            assert r.status == 202, await r.text()
        await build_worker(deps, settings).run_until_empty()
        got = http_receiver.delivered(path, 3)
        assert sorted(g.event_id for g in got) == ["e0", "e1", "e2"]
        assert await redis.execute_command("ACL", "WHOAMI") == ACL_USER.encode()
    finally:
        await deps.registry.close()
        await redis.aclose()


async def test_verify_off_is_said_loudly_at_start(redis_tls):
    settings = make_settings(redis_tls.url, redis_tls_enabled=True, redis_tls_verify=False)
    with structlog.testing.capture_logs() as logs:
        await check_redis_settings(settings)
    [warning] = [entry for entry in logs if entry["event"] == "redis_tls_not_verified"]
    assert warning["log_level"] == "warning" and "any certificate" in warning["message"]
