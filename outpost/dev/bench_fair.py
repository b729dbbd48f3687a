"""`make bench`'s fairness run: does a destination far behind delay another tenant's?

Two tenants, each with an unbatched Kinesis destination on a bench endpoint of its own (as
two destinations' endpoints are; B's then measures B's publish -> receive latency alone),
one API and one worker process. A round:
1. B alone: B publishes at `fair_rate`/s for `fair_seconds`; B's latencies (idle).
2. A's backlog: the worker stopped, `fair_backlog` events queued for A at once, the worker
   started again; A's drain rate alone over `fair_seconds`.
3. Shared: B publishes as in 1 while A drains; B's latencies and A's drain rate over the
   same seconds.
`fair_rounds` rounds (each on a flushed Redis, fresh processes), pooled: B's p99 idle and
with A's backlog over every round's events, and their ratio (the goal: <= 2), with where
B's p99 went (the publish call's own p99, and publish -> the send's start from B's attempt
records: what is left to the p99 is the send); A's drain
rate alone and shared, and their ratio (the goal: >= 0.9); how much of A's backlog was
left at the end of the last round (it must not have run out). Rounds put idle and shared
windows close together in time more than once: on a machine shared with other work, a
burst of that work then falls on both sides more evenly than on one 8-second window.
How much of the machine others took is printed beside them: the CPUs busy outside this
run's processes (`fair_foreign_cpus_*`, of `os.cpu_count()`) in B's idle and shared
windows, so a ratio moved by a neighbour shows as such.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import ClientSession

from outpost.dev.bench_ceilings import cpu_seconds, machine_cpu
from outpost.dev.bench_parts import outpost_process, pct

TENANTS = ("fair-a", "fair-b")
FAIR_ARGS = {  # `make bench`'s defaults (name=value on its command line changes one)
    "fair_backlog": 100_000,  # A's backlog
    "fair_seconds": 8.0,  # each phase of a round
    "fair_rate": 50.0,  # B's publishes per second
    "fair_rounds": 2,  # rounds, pooled
}
B_CLIENTS = 4


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


async def _b_p99(deps: Any, url: str, endpoint: str, seconds: float, rate: float) -> dict[str, Any]:
    """B publishes at `rate` for `seconds`: its publish -> receive latencies (those that
    arrived by a second after the last was published), its publish -> send start ones
    (`_started_after`), and the CPUs busy outside this run's processes while it published."""
    foreign = Foreign()
    published = await _load(url, seconds, rate, TENANTS[1])
    cpus = foreign.cpus()
    await asyncio.sleep(1.0)  # the last ones delivered
    async with (
        ClientSession() as http,
        http.get(f"{endpoint}/stats", params={"stream": TENANTS[1], "samples": "1"}) as resp,
    ):
        stats: dict[str, Any] = await resp.json()
    started = await _started_after(deps, stats["n"])
    return {**stats, "publish_p99": published["p99_ms"], "foreign_cpus": cpus, "sent": started}


async def _started_after(deps: Any, n: int) -> list[float]:
    """Of B's last `n` deliveries, publish -> send start (the attempt's time, to the
    millisecond) in seconds: the part of B's latency spent before the worker sends (the
    publish call, the lane, the read, the load), the rest being the send itself."""
    from outpost.models import parse_iso

    attempts = await deps.queue.attempts(TENANTS[1], "d1", count=max(n, 1))
    events = await deps.queue.load_events(TENANTS[1], [a["event_id"] for a in attempts])
    return sorted(
        parse_iso(a["time"]).timestamp() - ev.data["sent_at"]
        for a, ev in zip(attempts, events, strict=True)
        if ev is not None and isinstance(ev.data, dict) and "sent_at" in ev.data
    )


async def _drained(deps: Any, seconds: float, pid: int) -> dict[str, float]:
    """A's drain over `seconds` (the queue's depth, B's few tasks aside): how many, in how
    many seconds and seconds of the worker's CPU time (what other processes on the
    machine take from the worker does not move a rate per CPU second), and the depth at
    the end."""
    before, started, cpu = (await deps.queue.depth())["queued"], time.monotonic(), cpu_seconds(pid)
    busy = machine_cpu()[0]
    await asyncio.sleep(seconds)
    after = (await deps.queue.depth())["queued"]
    elapsed = time.monotonic() - started
    return {
        "drained": before - after,
        "seconds": elapsed,
        "cpu_s": cpu_seconds(pid) - cpu,
        "left": after,
        # of the machine's CPUs, how busy in all (1.0: every core all the time)
        "machine_busy": (machine_cpu()[0] - busy) / elapsed / (os.cpu_count() or 1),
    }


class Foreign:
    """The CPUs busy outside this process and its descendants since it was made: the
    machine's busy time (/proc/stat) less ours, over the wall time."""

    def __init__(self) -> None:
        self.started, self.busy, self.ours = time.monotonic(), machine_cpu()[0], _ours()

    def cpus(self) -> float:
        elapsed = time.monotonic() - self.started
        other = (machine_cpu()[0] - self.busy) - (_ours() - self.ours)
        return max(0.0, other / elapsed) if elapsed else 0.0


def _ours() -> float:
    """CPU seconds of this process (and its waited-for children) and its live descendants."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # ended meanwhile
    tree, todo = [os.getpid()], [os.getpid()]
    while todo:
        pid = todo.pop()
        kids = [p for p, ppid in parents.items() if ppid == pid]
        tree += kids
        todo += kids
    total = 0.0
    for pid in tree:
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += cpu_seconds(pid, children=True)
    return total


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
    """`endpoints`: A's and B's bench endpoints. `fair_rounds` rounds, pooled."""
    rounds = [
        await _round(redis_url, endpoints, env, args) for _ in range(args.get("fair_rounds", 1))
    ]
    return _figures(rounds)


async def _round(
    redis_url: str, endpoints: tuple[str, str], env: dict[str, str], args: dict[str, Any]
) -> dict[str, Any]:
    """One round on a flushed Redis with a fresh API and worker (see the docstring)."""
    from outpost.dev import devstack

    seconds, rate, n = args["fair_seconds"], args["fair_rate"], args["fair_backlog"]
    deps = await _setup(redis_url, endpoints, env["API_KEY"], env["AES_ENCRYPTION_SECRET"])
    endpoint = endpoints[1]
    url = f"http://127.0.0.1:{env['API_PORT']}/api/v1/publish"
    api, worker = outpost_process("api", env), outpost_process("worker", env)
    try:
        devstack.wait_for_port(int(env["API_PORT"]), api)
        await asyncio.sleep(1.5)
        idle = await _b_p99(deps, url, endpoint, seconds, rate)
        worker.terminate()
        worker.wait(timeout=30)
        await _backlog(deps, n)
        worker = outpost_process("worker", env)
        await _started(deps, n)
        alone = await _drained(deps, seconds, worker.pid)
        shared_b = asyncio.create_task(_b_p99(deps, url, endpoint, seconds, rate))
        shared = await _drained(deps, seconds, worker.pid)
        busy = await shared_b
    finally:
        for p in (api, worker):
            p.terminate()
            p.wait(timeout=30)
        await deps.redis.aclose()
    return {"idle": idle, "busy": busy, "alone": alone, "shared": shared}


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _round2(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def _figures(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    def drain(phase: str, key: str) -> float:
        done = sum(r[phase]["drained"] for r in rounds)
        spent = sum(r[phase][key] for r in rounds)
        return done / spent if spent else 0.0

    alone, shared = drain("alone", "seconds"), drain("shared", "seconds")
    alone_cpu, shared_cpu = drain("alone", "cpu_s"), drain("shared", "cpu_s")
    return {
        "fair_rounds": len(rounds),
        **_b_figures(rounds),
        "fair_a_drain_alone_per_s": alone,
        "fair_a_drain_shared_per_s": shared,
        "fair_a_drain_ratio": _ratio(shared, alone),
        # the same per second of the worker's CPU: steadier on a shared machine
        "fair_a_drain_alone_per_cpu_s": alone_cpu,
        "fair_a_drain_shared_per_cpu_s": shared_cpu,
        "fair_a_drain_cpu_ratio": _ratio(shared_cpu, alone_cpu),
        # how busy the machine was (1.0: every core): at ~1 alone, whatever B's side
        # takes (its load, API, endpoint) comes out of A's drain
        "fair_machine_busy_alone": max(r["alone"]["machine_busy"] for r in rounds),
        "fair_machine_busy_shared": max(r["shared"]["machine_busy"] for r in rounds),
        "fair_a_backlog_left": rounds[-1]["shared"]["left"],
    }


def _b_figures(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """B's figures, and the CPUs others took meanwhile."""

    def pooled(phase: str, key: str = "samples") -> list[float]:
        return sorted(x for r in rounds for x in r[phase].get(key, []))

    def worst(phase: str, key: str) -> Any:
        return max((r[phase][key] for r in rounds if r[phase][key] is not None), default=None)

    idle, busy = pct(pooled("idle"), 99), pct(pooled("busy"), 99)
    return {
        "fair_b_p99_idle_ms": idle,
        "fair_b_p99_with_backlog_ms": busy,  # None: none of B's events arrived
        "fair_b_p99_ratio": _ratio(busy, idle),
        # each round's own ratio: how far apart the rounds were
        "fair_b_p99_ratio_rounds": [
            _round2(_ratio(r["busy"]["p99"], r["idle"]["p99"])) for r in rounds
        ],
        # of B's p99, the POST /publish's own (the API shares the cores with the worker)
        "fair_b_publish_call_p99_idle_ms": worst("idle", "publish_p99"),
        "fair_b_publish_call_p99_with_backlog_ms": worst("busy", "publish_p99"),
        # of B's p99, publish -> the send's start (what waits before the worker sends)
        "fair_b_send_start_p99_idle_ms": pct(pooled("idle", "sent"), 99),
        "fair_b_send_start_p99_with_backlog_ms": pct(pooled("busy", "sent"), 99),
        "fair_b_arrived_idle": sum(r["idle"]["n"] for r in rounds),
        "fair_b_arrived_with_backlog": sum(r["busy"]["n"] for r in rounds),
        # the CPUs others took meanwhile (most busy round), of os.cpu_count()
        "fair_foreign_cpus_idle": worst("idle", "foreign_cpus"),
        "fair_foreign_cpus_with_backlog": worst("busy", "foreign_cpus"),
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
