"""A Redis that freezes (SIGSTOP) or fills up (maxmemory, noeviction) under a running
`outpost api`: readiness and publish answer 503 (publish with Retry-After) within a few
seconds, in our words, and the client does not resend what Redis refused."""

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest
import redis as redis_sync

from outpost.dev import devstack
from tests.conftest import ADMIN_KEY
from tests.test_processes import OUTPOST, service_env, wait_healthy


def request(port, method, path, body=None, timeout=15):
    """(status, headers, body, seconds): never waits more than `timeout`."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"},
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, headers, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        status, headers, raw = exc.code, exc.headers, exc.read()
    return status, headers, json.loads(raw or b"null"), time.monotonic() - started


EVENT = {"tenant_id": "acme", "topic": "orders", "data": {"n": 1}}


@pytest.fixture
def api(tmp_path):
    """A redis-server and an `outpost api` on it with short Redis timeouts."""
    server = devstack.redis_server().start()
    port, log_path = devstack.free_port(), tmp_path / "stderr.log"
    env = service_env(
        server.redis_url,
        port,
        REDIS_SOCKET_TIMEOUT_SECONDS="2",
        REDIS_CONNECT_TIMEOUT_SECONDS="1",
    )
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen([*OUTPOST, "api"], env=env, stderr=log_file)
    try:
        wait_healthy(port, proc)
        assert request(port, "PUT", "/api/v1/tenants/acme")[0] in (200, 201)
        yield server, port, log_path
    finally:
        if server.proc:
            os.kill(server.proc.pid, signal.SIGCONT)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        server.stop()


def wait_status(port, path, want, limit=15.0):
    deadline = time.monotonic() + limit
    while (got := request(port, "GET", path)[0]) != want:
        assert time.monotonic() < deadline, f"{path}: still {got}, wanted {want}"
        time.sleep(0.2)


def test_frozen_redis_gives_503_within_seconds_and_recovers(api):
    server, port, _ = api
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        status, _, _, took = request(port, "GET", "/healthz")
        assert (status, took < 5) == (503, True)
        status, headers, body, took = request(port, "POST", "/api/v1/publish", EVENT)
        assert status == 503 and took < 8, (status, took)
        assert headers["Retry-After"] == "1"
        assert "nothing was accepted" in body["message"]
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    wait_status(port, "/healthz", 200)
    assert request(port, "POST", "/api/v1/publish", EVENT)[0] == 202


def errors_of(client, name):
    stats = client.info("errorstats")
    return int(stats.get(f"errorstat_{name}", {}).get("count", 0))


def fill(client):
    """Redis at its maxmemory with noeviction: writes are refused with OOM."""
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", str(client.info("memory")["used_memory"] + 512 * 1024))
    for i in range(10_000):
        try:
            client.set(f"fill:{i}", b"x" * 16384)
        except redis_sync.exceptions.OutOfMemoryError:
            # stay over it: the refused command's buffers are freed, and a small write
            # would fit again
            used = client.info("memory")["used_memory"]
            client.config_set("maxmemory", str(used - 256 * 1024))
            return
    raise AssertionError("Redis never reached its maxmemory")


def test_redis_out_of_memory_gives_clean_503_and_no_resend(api):
    server, port, log_path = api
    client = redis_sync.Redis.from_url(server.redis_url)
    try:
        fill(client)
        before = errors_of(client, "OOM")
        status, headers, body, _ = request(port, "POST", "/api/v1/publish", EVENT)
        assert (status, headers["Retry-After"]) == (503, "1")
        assert body["message"] == "storage is full: nothing was accepted, retry later"
        status, headers, body, _ = request(port, "PUT", "/api/v1/tenants/other")
        assert (status, headers["Retry-After"]) == (503, "1")
        assert body["message"] == "storage is full: nothing was accepted, retry later"
        assert errors_of(client, "OOM") - before <= 2  # one refusal each, never resent
        assert request(port, "GET", "/healthz")[0] == 503

        client.config_set("maxmemory", "0")
        wait_status(port, "/healthz", 200)
        assert request(port, "POST", "/api/v1/publish", EVENT)[0] == 202
    finally:
        client.close()
    assert "OOM command" not in log_path.read_text()
