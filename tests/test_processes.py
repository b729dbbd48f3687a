"""The real processes: `outpost all|api|worker` as subprocesses against real servers."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from outpost.dev import devstack
from tests.conftest import ADMIN_KEY, AES_SECRET, kinesis_body

OUTPOST = [sys.executable, "-m", "outpost"]


def service_env(redis_url, port, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REDIS_"))}
    env.update(
        {
            "API_KEY": ADMIN_KEY,
            "AES_ENCRYPTION_SECRET": AES_SECRET,
            "REDIS_URL": redis_url,
            "API_HOST": "127.0.0.1",
            "API_PORT": str(port),
            "LOG_FORMAT": "json",
            "DELIVERY_PARTITIONS": "4",
            "DESTINATIONS_ALLOW_PRIVATE_ENDPOINTS": "true",
            **extra,
        }
    )
    return env


def call(port, method, path, body=None):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


def wait_healthy(port, proc, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "service exited during start-up"
        try:
            if call(port, "GET", "/healthz")[0] == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError("service did not become healthy")


@pytest.fixture
def fresh_redis():
    server = devstack.redis_server().start()
    yield server
    server.stop()


def test_outpost_all_delivers_and_stops_cleanly_on_sigterm(
    fresh_redis, moto, moto_stream, tmp_path
):
    port = devstack.free_port()
    log_path = tmp_path / "stderr.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [*OUTPOST, "all"],
            env=service_env(fresh_redis.redis_url, port),
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    try:
        wait_healthy(port, proc)
        call(port, "PUT", "/tenants/acme")
        status, dest = call(
            port, "POST", "/tenants/acme/destinations", kinesis_body(moto_stream, moto.url)
        )
        assert status == 201
        for n in range(20):
            assert (
                call(
                    port,
                    "POST",
                    "/publish",
                    {"tenant_id": "acme", "topic": "orders", "data": {"n": n}},
                )[0]
                == 202
            )
        records = devstack.read_stream(moto.url, moto_stream, timeout=20, expect=20)
        assert len(records) == 20
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
    logs = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    deliveries = [entry for entry in logs if entry["event"] == "delivery"]
    assert len(deliveries) == 20
    line = deliveries[0]
    assert {"event_id", "tenant_id", "destination_id", "attempt", "status", "duration_ms"} <= set(
        line
    )
    assert line["destination_id"] == dest["id"] and line["status"] == "success"
    everything = log_path.read_text()
    for secret in ("wJalrXUtnFEMI", ADMIN_KEY, AES_SECRET):  # never in the logs
        assert secret not in everything


def test_api_and_worker_as_separate_processes(fresh_redis, moto, moto_stream):
    port = devstack.free_port()
    env = service_env(fresh_redis.redis_url, port)
    api = subprocess.Popen([*OUTPOST, "api"], env=env, stderr=subprocess.DEVNULL)
    worker = None
    try:
        wait_healthy(port, api)
        call(port, "PUT", "/tenants/acme")
        call(port, "POST", "/tenants/acme/destinations", kinesis_body(moto_stream, moto.url))
        call(
            port,
            "POST",
            "/publish",
            {"tenant_id": "acme", "topic": "orders", "id": "evt_queued", "data": {}},
        )
        assert devstack.read_stream(moto.url, moto_stream) == []  # nobody delivers yet
        worker = subprocess.Popen([*OUTPOST, "worker"], env=env, stderr=subprocess.DEVNULL)
        [rec] = devstack.read_stream(moto.url, moto_stream, timeout=20, expect=1)
        assert rec["PartitionKey"] == "evt_queued"
    finally:
        for p in (api, worker):
            if p is not None:
                p.send_signal(signal.SIGTERM)
                assert p.wait(timeout=15) == 0


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"API_PORT": "http"}, ["API_PORT:"]),
        ({"API_PORT": "0", "MAX_RETRY_LIMIT": "lots"}, ["API_PORT:", "MAX_RETRY_LIMIT:"]),
        ({"API_KEY": ""}, ["API_KEY: required"]),
        ({"AES_ENCRYPTION_SECRET": ""}, ["AES_ENCRYPTION_SECRET: required"]),
    ],
)
def test_bad_settings_fail_fast_with_one_line_each(env, expected):
    full = service_env("redis://127.0.0.1:1/0", 3333, **env)
    run = subprocess.run([*OUTPOST, "api"], env=full, capture_output=True, timeout=30)
    assert run.returncode == 2
    lines = run.stderr.decode().strip().splitlines()
    assert len(lines) == len(expected)
    for line, prefix in zip(lines, expected, strict=True):
        assert line.startswith(f"outpost: config error: {prefix}")


def test_console_script_and_module_entry_points():
    exe = os.path.join(os.path.dirname(sys.executable), "outpost")
    for argv in ([exe, "--help"], [*OUTPOST, "--help"]):
        run = subprocess.run(argv, capture_output=True, timeout=30)
        assert run.returncode == 0
        for command in (b"api", b"worker", b"all", b"dev"):
            assert command in run.stdout
