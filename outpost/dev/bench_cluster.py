"""The queue on a single node beside the queue on a local Redis Cluster (outpost.dev.cluster:
3 masters + 3 replicas), in the same run: publish rate (coalesced batches through
Queue.publish_many: the tenant step, the drain, the outbox cleared) and drain rate (a
worker's own Redis work: read a fair share of the lanes, complete each task as a
success: the tenant step, the attempt records, the partition step), by one worker
process and by two. No destination is called: this measures what the layout costs.

Beside each rate, the CPU it took per 1,000 events or tasks: the publisher's or the
workers', and the redis-servers' (on the cluster also its replicas' share), and how busy
the machine was: on a small machine the cluster's six servers and the workers share the
cores. `cluster_drain_cpu_ceiling_per_s` is what the workers and the cluster could reach
if every core of the machine were theirs (the cores over the CPU a task takes): no number
of workers goes above it on this machine.

`python -m outpost.dev.bench_cluster [single|cluster|both] [events] [rounds]` prints a table
and one JSON line; `make bench` runs it as one of its parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

from outpost.dev.bench_ceilings import cpu_seconds, machine_cpu

TENANTS = 40  # with two destinations each: lanes spread over every partition
DESTINATIONS = ("d1", "d2")
BATCH = 500  # events per publish_many call (as the API's coalescer makes them)
PARTITIONS = 16
ROUNDS = 3  # per topology, in turns: each figure is the median (the machine is shared)


def client(target: str) -> Any:
    """A client of `redis://...` or of `cluster:<port>`."""
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

    if target.startswith("cluster:"):
        return RedisCluster(host="127.0.0.1", port=int(target.split(":", 1)[1]))
    return Redis.from_url(target)


def deps_of(redis: Any) -> Any:
    from outpost.deps import Deps
    from outpost.settings import Settings

    settings = Settings(
        api_key="bench",
        aes_encryption_secret="bench-aes-secret",
        redis_url="redis://127.0.0.1:1/0",  # unused: the client is handed over
        delivery_partitions=PARTITIONS,
    )
    return Deps.build(settings, redis)


async def publish(target: str, n: int) -> float:
    """Publish `n` events over TENANTS tenants: events/s."""
    from outpost.models import Event

    redis = client(target)
    deps = deps_of(redis)
    now = datetime.now(UTC)
    items = []
    for i in range(n):
        event = Event(id=f"b{i}", tenant_id=f"t{i % TENANTS}", topic="t", time=now, data={})
        items.append((event, [(d, event.id) for d in DESTINATIONS], ()))
    started = time.monotonic()
    for at in range(0, n, BATCH):
        await deps.queue.publish_many(items[at : at + BATCH])
    elapsed = time.monotonic() - started
    await redis.aclose()
    return n / elapsed


async def drain_worker(target: str, consumer: str, on_go: bool = False) -> dict[str, float]:
    """One worker's loop until the queue stays empty: tasks done, first and last time, CPU
    seconds. `on_go`: once connected, say "ready" and start on a line of stdin."""
    from outpost.queue.items import Outcome

    redis = client(target)
    deps = deps_of(redis)
    queue = deps.queue
    await queue.ensure_groups()
    if on_go:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    cpu = time.process_time()
    done, first, last, idle = 0, 0.0, 0.0, 0
    while idle < 3:
        entries = await queue.read(consumer, count=BATCH, block_ms=100)
        if not entries:
            idle += 1
            continue
        idle = 0
        first = first or time.monotonic()
        waits = [queue.complete_soon(e, Outcome("success"), time.time()) for e in entries]
        for w in waits:
            await w
        done += len(entries)
        last = time.monotonic()
    await redis.aclose()
    return {"done": done, "first": first, "last": last, "cpu": time.process_time() - cpu}


def drain(target: str, workers: int, servers: dict[str, list[int]]) -> dict[str, float]:
    """`workers` processes drain the queue together, started at once once all are up:
    tasks/s, and the CPU milliseconds per
    1,000 tasks of the workers and of each group of `servers` (name: redis-server pids)."""
    before = {name: server_cpu(group) for name, group in servers.items()}
    machine = machine_cpu()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "outpost.dev.bench_cluster", "drain", target, f"w{i}", "go"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for i in range(workers)
    ]
    for p in procs:  # all started and connected: then all at once (not by start-up speed)
        assert p.stdout is not None and p.stdout.readline().strip() == b"ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        p.stdin.flush()
    results = [json.loads(p.communicate(timeout=600)[0].splitlines()[-1]) for p in procs]
    busy, total = (now - then for now, then in zip(machine_cpu(), machine, strict=True))
    done = sum(r["done"] for r in results)
    span = max(r["last"] for r in results) - min(r["first"] for r in results if r["first"])
    per_1k = 1000_000 / max(done, 1)
    out = {
        "per_s": done / span if span > 0 else 0.0,
        "worker_cpu_ms_per_1k": sum(r["cpu"] for r in results) * per_1k,
        "machine_busy_pct": 100 * busy / max(total, 1),  # every process's, ours or not
    }
    for name, group in servers.items():
        out[f"{name}_cpu_ms_per_1k"] = (server_cpu(group) - before[name]) * per_1k
    return out


def server_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes `pids` used so far (Linux /proc)."""
    return sum(cpu_seconds(pid) for pid in pids)


def pids(servers: list[Any]) -> list[int]:
    return [server.proc.pid for server in servers]


async def flush(target: str) -> None:
    redis = client(target)
    if target.startswith("cluster:"):
        await redis.flushall(target_nodes=redis.PRIMARIES)
    else:
        await redis.flushall()
    await redis.aclose()


async def topology_figures(
    name: str, target: str, n: int, servers: dict[str, list[int]]
) -> dict[str, float]:
    """Publish then drain with one worker, then again with two; with the CPU each took
    (`servers`: groups of redis-server pids, by name)."""
    out: dict[str, float] = {}
    for workers in (1, 2):
        await flush(target)
        before = server_cpu(servers["redis"]), time.process_time()
        out[f"{name}_publish_per_s"] = await publish(target, n)
        out[f"{name}_publish_cpu_ms_per_1k"] = (time.process_time() - before[1]) * 1e6 / n
        out[f"{name}_publish_redis_cpu_ms_per_1k"] = (
            (server_cpu(servers["redis"]) - before[0]) * 1e6 / n
        )
        for key, value in drain(target, workers, servers).items():
            out[f"{name}_drain_{workers}w_{key}"] = value
    return out


async def figures(n: int = 20_000, which: str = "both", rounds: int = ROUNDS) -> dict[str, float]:
    """Each topology's figures `rounds` times, the topologies in turns (both up at once,
    so a change of the machine's load meets both), each figure the median of its rounds."""
    from outpost.dev import devstack
    from outpost.dev.cluster import RedisCluster

    targets: dict[str, tuple[str, dict[str, list[int]]]] = {}
    with contextlib.ExitStack() as up:
        if which in ("single", "both"):
            server = devstack.redis_server()
            server.start()
            up.callback(server.stop)
            targets["single"] = (server.redis_url, {"redis": pids([server])})
        if which in ("cluster", "both"):
            cluster = RedisCluster().start()
            up.callback(cluster.stop)
            groups = {"redis": pids(cluster.nodes)}
            groups["replicas"] = pids(cluster.nodes[cluster.masters :])
            targets["cluster"] = (f"cluster:{cluster.port}", groups)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
        for _ in range(rounds):
            for name, (target, groups) in targets.items():
                runs[name].append(await topology_figures(name, target, n, groups))
    out = {k: statistics.median(r[k] for r in got) for got in runs.values() for k in got[0]}
    if which == "both":
        out["cluster_vs_single_drain_1w"] = (
            out["cluster_drain_1w_per_s"] / out["single_drain_1w_per_s"]
        )
        out["cluster_2w_vs_1w"] = out["cluster_drain_2w_per_s"] / out["cluster_drain_1w_per_s"]
        out["cluster_drain_cpu_ceiling_per_s"] = cpu_ceiling(out)
        out["cluster_vs_single_publish"] = (
            out["cluster_publish_per_s"] / out["single_publish_per_s"]
        )
    return out


def cpu_ceiling(out: dict[str, float]) -> float:
    """Tasks/s the workers and the cluster could reach if every core of the machine were
    theirs: the cores over the CPU a task takes (workers' and redis-servers', as two
    workers took it)."""
    per_task_ms = out["cluster_drain_2w_worker_cpu_ms_per_1k"] / 1000
    per_task_ms += out["cluster_drain_2w_redis_cpu_ms_per_1k"] / 1000
    return (os.cpu_count() or 1) * 1000 / per_task_ms


def main(argv: list[str]) -> None:
    if argv and argv[0] == "drain":
        print(json.dumps(asyncio.run(drain_worker(argv[1], argv[2], argv[3:] == ["go"]))))
        return
    which = argv[0] if argv else "both"
    n = int(argv[1]) if len(argv) > 1 else 20_000
    rounds = int(argv[2]) if len(argv) > 2 else ROUNDS
    out = asyncio.run(figures(n, which, rounds))
    for key, value in out.items():
        print(f"{key:32} {value:12.2f}")
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
