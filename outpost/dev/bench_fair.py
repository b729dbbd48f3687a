"""`make bench`'s fairness run: does a destination far behind delay another tenant's?

Two tenants, each with an unbatched Kinesis destination on a bench endpoint of its own (as
two destinations' endpoints are; B's then measures B's publish -> receive latency alone),
one API and one worker process:
1. B alone: B publishes at `fair_rate`/s for `fair_seconds`; B's p99 (idle).
2. A's backlog: the worker stopped, `fair_backlog` events queued for A at once, the worker
   started again; A's drain rate alone over `fair_seconds`.
3. Shared: B publishes as in 1 while A drains; B's p99 and A's drain rate over the same
   seconds.
The figures: B's p99 idle and with A's backlog, and their ratio (the goal: <= 2); A's
drain rate alone and shared, and their ratio (the goal: >= 0.9); how much of A's backlog
was left at the end (it must not have run out).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import ClientSession

TENANTS = ("fair-a", "fair-b")
B_CLIENTS = 4


def _outpost(command: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "outpost", command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _load(url: str, seconds: float, rate: float, tenant: str) -> dict[str, Any]:
    """The bench's load process publishing for `tenant`: its summary when it is done."""
    args = ["load", url, str(seconds), str(B_CLIENTS), str(rate), "0", tenant]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "outpost.dev.bench",
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    out, _ = await proc.communicate()
    summary: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return summary


async def _setup(redis_url: str, endpoints: tuple[str, str], key: str, secret: str) -> Any:
    """A fresh Redis with the two tenants and their destinations."""
    from outpost.deps import Deps
    from outpost.queue.connection import connect_redis
    from outpost.settings import Settings

    settings = Settings(api_key=key, aes_encryption_secret=secret, redis_url=redis_url)
    deps = Deps.build(settings, connect_redis(redis_url))
    await deps.redis.flushdb(asynchronous=True)
    for tenant, endpoint in zip(TENANTS, endpoints, strict=True):
        await deps.store.upsert_tenant(tenant, None)
        body = {
            "type": "aws_kinesis",
            "topics": "*",
            "config": {"stream_name": tenant, "region": "us-east-1", "endpoint": endpoint},
            "credentials": {"key": "bench", "secret": "bench-secret"},
        }
        await deps.store.create_destination(deps.registry.create(tenant, body, "d1"))
    return deps


async def _backlog(deps: Any, n: int) -> None:
    """`n` events queued for A, in pipelined chunks (each its own publish script)."""
    from outpost.models import Event

    now = datetime.now(UTC)
    for start in range(0, n, 1000):
        chunk: list[Any] = []
        for i in range(start, min(n, start + 1000)):
            ev = Event(id=f"a{i}", tenant_id=TENANTS[0], topic="orders", time=now, data={"n": i})
            chunk.append((ev, [("d1", ev.id)], ()))
        await deps.queue.publish_many(chunk)


async def _b_p99(url: str, endpoint: str, seconds: float, rate: float) -> dict[str, Any]:
    """B publishes at `rate` for `seconds`: the p99 of its publish -> receive latency, and
    how many of its events arrived by a second after the last was published."""
    published = await _load(url, seconds, rate, TENANTS[1])
    await asyncio.sleep(1.0)  # the last ones delivered
    async with (
        ClientSession() as http,
        http.get(f"{endpoint}/stats", params={"stream": TENANTS[1]}) as resp,
    ):
        stats: dict[str, Any] = await resp.json()
        return {**stats, "publish_p99": published["p99_ms"]}


async def _drained(deps: Any, seconds: float, pid: int) -> dict[str, float]:
    """A's drain over `seconds` (the queue's depth, B's few tasks aside): per second, per
    second of the worker's CPU time (what other processes on the machine take from the
    worker does not move it), and the depth at the end."""
    before, started, cpu = (await deps.queue.depth())["queued"], time.monotonic(), _cpu(pid)
    await asyncio.sleep(seconds)
    after = (await deps.queue.depth())["queued"]
    used = _cpu(pid) - cpu
    return {
        "per_s": (before - after) / (time.monotonic() - started),
        "per_cpu_s": (before - after) / used if used else 0.0,
        "left": after,
    }


def _cpu(pid: int) -> float:
    """A process's CPU seconds so far (user + system, from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _started(deps: Any, n: int, limit: float = 60.0) -> None:
    """Until the worker has begun on the backlog, then a second more to warm up."""
    for _ in range(int(limit / 0.05)):
        if (await deps.queue.depth())["queued"] < n:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)


async def fairness(
    redis_url: str, endpoints: tuple[str, str], env: dict[str, str], args: dict[str, Any]
) -> dict[str, Any]:
    """`endpoints`: A's and B's bench endpoints."""
    from outpost.dev import devstack

    seconds, rate, n = args["fair_seconds"], args["fair_rate"], args["fair_backlog"]
    deps = await _setup(redis_url, endpoints, env["API_KEY"], env["AES_ENCRYPTION_SECRET"])
    endpoint = endpoints[1]
    url = f"http://127.0.0.1:{env['API_PORT']}/api/v1/publish"
    api, worker = _outpost("api", env), _outpost("worker", env)
    try:
        devstack.wait_for_port(int(env["API_PORT"]), api)
        await asyncio.sleep(1.5)
        idle = await _b_p99(url, endpoint, seconds, rate)
        worker.terminate()
        worker.wait(timeout=30)
        await _backlog(deps, n)
        worker = _outpost("worker", env)
        await _started(deps, n)
        alone = await _drained(deps, seconds, worker.pid)
        shared_b = asyncio.create_task(_b_p99(url, endpoint, seconds, rate))
        shared = await _drained(deps, seconds, worker.pid)
        busy = await shared_b
    finally:
        for p in (api, worker):
            p.terminate()
            p.wait(timeout=30)
        await deps.redis.aclose()
    return _figures(idle, busy, alone, shared)


def _figures(
    idle: dict[str, Any], busy: dict[str, Any], alone: dict[str, float], shared: dict[str, float]
) -> dict[str, Any]:
    return {
        "fair_b_p99_idle_ms": idle["p99"],
        "fair_b_p99_with_backlog_ms": busy["p99"],  # None: none of B's events arrived
        "fair_b_p99_ratio": (busy["p99"] / idle["p99"]) if idle["p99"] and busy["p99"] else None,
        # of B's p99, the POST /publish's own (the API shares the cores with the worker)
        "fair_b_publish_call_p99_idle_ms": idle["publish_p99"],
        "fair_b_publish_call_p99_with_backlog_ms": busy["publish_p99"],
        "fair_b_arrived_idle": idle["n"],
        "fair_b_arrived_with_backlog": busy["n"],
        "fair_a_drain_alone_per_s": alone["per_s"],
        "fair_a_drain_shared_per_s": shared["per_s"],
        "fair_a_drain_ratio": (shared["per_s"] / alone["per_s"]) if alone["per_s"] else None,
        # the same per second of the worker's CPU: steadier on a shared machine
        "fair_a_drain_alone_per_cpu_s": alone["per_cpu_s"],
        "fair_a_drain_shared_per_cpu_s": shared["per_cpu_s"],
        "fair_a_drain_cpu_ratio": (
            shared["per_cpu_s"] / alone["per_cpu_s"] if alone["per_cpu_s"] else None
        ),
        "fair_a_backlog_left": shared["left"],
    }


def endpoint_process() -> Any:
    """A bench endpoint process on a free port, started."""
    from outpost.dev import devstack

    port = devstack.free_port()
    return devstack.Server(
        [sys.executable, "-m", "outpost.dev.bench", "endpoint", str(port)], port
    ).start()


async def fair_only(args: dict[str, Any]) -> dict[str, Any]:
    """`python -m outpost.dev.bench fair [name=value ...]`: the fairness run alone."""
    from outpost.dev import devstack
    from outpost.dev.bench import service_env

    eps = (endpoint_process(), endpoint_process())
    redis = devstack.redis_server()
    redis.start()
    try:
        env = service_env(redis.redis_url, devstack.free_port(), args["concurrency"])
        return await fairness(redis.redis_url, (eps[0].url, eps[1].url), env, args)
    finally:
        for ep in eps:
            ep.stop()
        redis.stop()
