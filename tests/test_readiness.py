"""Redis goes away under a running `outpost api`: /healthz answers 503, the API logs one
warning per outage (not one per request), and notices Redis's return by itself."""

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from outpost.dev import devstack
from tests.conftest import ADMIN_KEY
from tests.test_processes import OUTPOST, service_env, wait_healthy


@pytest.fixture
def redis_servers():
    """Start redis-servers on demand (the same port again after a stop); all stopped after."""
    started = []

    def start(port=None):
        started.append(devstack.redis_server(port=port).start())
        return started[-1]

    yield start
    for server in started:
        server.stop()


def status(port, path):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def log_events(path, name):
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
    return [e for e in lines if name is None or e["event"] == name]


def wait_for_log(path, name, count, timeout=15):
    deadline = time.monotonic() + timeout
    while len(log_events(path, name)) < count:
        assert time.monotonic() < deadline, f"no {name} #{count} in the log"
        time.sleep(0.1)


def test_redis_outage_gives_503_and_one_warning_per_outage(redis_servers, tmp_path):
    redis = redis_servers()
    api_port, log_path = devstack.free_port(), tmp_path / "stderr.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [*OUTPOST, "api"], env=service_env(redis.redis_url, api_port), stderr=log_file
        )
    try:
        wait_healthy(api_port, proc)
        redis.stop()
        assert [status(api_port, "/healthz") for _ in range(2)] == [503, 503]
        assert status(api_port, "/api/v1/tenants/acme") == 503
        [warning] = log_events(log_path, "redis_unavailable")
        assert warning["level"] == "warning"
        assert warning["address"] == f"127.0.0.1:{redis.port}"
        # healthz gives up before the client's reconnect retries do
        assert warning["error"] in {"no answer within 2 s", "connection refused"}

        again = redis_servers(port=redis.port)  # back, and nobody probes: the API notices
        wait_for_log(log_path, "redis_available", 1)
        assert status(api_port, "/healthz") == 200

        again.stop()
        assert status(api_port, "/healthz") == 503  # a second outage: a second warning
        assert len(log_events(log_path, "redis_unavailable")) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    assert "error" not in {e["level"] for e in log_events(log_path, None)}
