"""The probe port (HEALTH_PORT) of the real processes: `outpost worker|source|api` as
subprocesses against a private redis-server that the tests stop and start again. Liveness
(/healthz) never follows Redis; readiness (/readyz) does, and names the loops it checked."""

import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from outpost.dev import devstack
from outpost.health import LIVE_PATH, READY_PATH, RedisWatch, probe_app
from outpost.runtime import _Running
from tests.test_processes import service_env

OUTPOST = [sys.executable, "-m", "outpost"]


def probe(port: int, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for(port: int, path: str, status: int, proc: subprocess.Popen, timeout: float = 30):
    """Poll until `path` answers `status`; its body."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the process exited"
        try:
            got, body = probe(port, path)
            if got == status:
                return body
            last = (got, body)
        except OSError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{path} never answered {status}; last: {last}")


class Running:
    def __init__(self, command: str, redis: devstack.RedisServer):
        self.redis = redis
        self.health = devstack.free_port()
        env = service_env(
            redis.redis_url,
            devstack.free_port(),
            HEALTH_HOST="127.0.0.1",
            HEALTH_PORT=str(self.health),
        )
        self.proc = subprocess.Popen(
            [*OUTPOST, command], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )


@pytest.fixture(scope="module")
def private_redis() -> Iterator[devstack.RedisServer]:
    """A redis-server of this module's own: these tests stop and restart it (with its
    append-only file, as a production Redis keeps its data across a restart)."""
    server = devstack.redis_server(aof=True).start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["worker", "source", "api"])
def running(request: pytest.FixtureRequest, private_redis) -> Iterator[Running]:
    if private_redis.proc.poll() is not None:  # a previous test left it stopped
        private_redis.start()
    process = Running(request.param, private_redis)
    yield process
    process.proc.terminate()
    process.proc.wait(timeout=20)


def test_ready_names_redis_and_the_loops_of_the_process(running):
    body = wait_for(running.health, READY_PATH, 200, running.proc)
    command = running.proc.args[-1]
    assert body == {"status": "ready", "checks": {"redis": "ok", command: "ok"}}
    assert probe(running.health, LIVE_PATH) == (200, {"status": "alive"})


def test_redis_down_means_not_ready_but_alive_and_back(running):
    wait_for(running.health, READY_PATH, 200, running.proc)
    running.redis.stop()
    try:
        body = wait_for(running.health, READY_PATH, 503, running.proc)
        assert body["status"] == "not_ready" and body["checks"]["redis"] == "failed"
        # liveness never asks Redis: the process is not restarted for an outage
        for _ in range(3):
            assert probe(running.health, LIVE_PATH) == (200, {"status": "alive"})
        assert running.proc.poll() is None
    finally:
        running.redis.start()
    wait_for(running.health, READY_PATH, 200, running.proc)


def test_a_taken_probe_port_stops_start_up_naming_the_setting(redis_server):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = service_env(
            redis_server.redis_url,
            devstack.free_port(),
            HEALTH_HOST="127.0.0.1",
            HEALTH_PORT=str(port),
        )
        run = subprocess.run([*OUTPOST, "worker"], env=env, capture_output=True, timeout=60)
    err = run.stderr.decode()
    assert run.returncode == 2 and "Traceback" not in err, err
    assert err.splitlines()[-1] == (
        f"outpost: cannot listen on 127.0.0.1:{port} "
        "(address already in use; set HEALTH_PORT or stop what uses it)"
    )


async def test_a_stopped_loop_makes_the_process_not_ready(aiohttp_client, redis, redis_server):
    """A worker or reader task that ended (crashed) fails readiness by name, Redis up."""
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    running = _Running(worker_task=done)
    watch = RedisWatch(redis, redis_server.redis_url)
    client = await aiohttp_client(probe_app(watch, running.loops))
    resp = await client.get(READY_PATH)
    assert resp.status == 503
    assert await resp.json() == {
        "status": "not_ready",
        "checks": {"redis": "ok", "worker": "failed"},
    }
    assert (await client.get(LIVE_PATH)).status == 200
