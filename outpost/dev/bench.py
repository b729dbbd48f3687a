"""`make bench`: what the service adds to the cost of PutRecord, measured in one run.

Every server binds 127.0.0.1 and is stopped at the end. Parts, each its own process
(bench_parts.py):
- `endpoint`: a minimal Kinesis PutRecord/PutRecords server (the client's ceiling), which
  also measures publish → receive latency from a timestamp in each record's data;
- `load`: single-event `POST /publish` from a separate process (fixed rate or flat out).
The fairness run (bench_fair.py), then the cluster beside the single node (bench_cluster.py)
end it. `python -m outpost.dev.bench fair` runs only the fairness run (`fair_backlog=20000`
and the like scale it down). The report (bench_report.py): a table, the targets missed, and
last one JSON object with the figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, web

from outpost.dev import bench_ceilings, bench_cluster, bench_shards, bench_wait
from outpost.dev.bench_ceilings import cpu_seconds
from outpost.dev.bench_fair import FAIR_ARGS, endpoint_process, fair_only, fairness
from outpost.dev.bench_parts import KEY, endpoint_app, load, outpost_process
from outpost.dev.bench_report import publish_report, report

SECRET = "bench-aes-secret"
# the overload run: this many clients flat out against one API process, which sheds
# publishes beyond API_MAX_INFLIGHT_PUBLISHES (its default)
OVERLOAD_CONCURRENCY = 2000


# -- the run --------------------------------------------------------------------------------
def _spawn(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "outpost.dev.bench", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


async def ceiling(endpoint: str, seconds: float, concurrency: int) -> float:
    """Bare aiobotocore PutRecord calls/s from this process: the client's own ceiling."""
    from aiobotocore.session import AioSession

    count = 0
    deadline = time.monotonic() + seconds
    async with bench_ceilings.kinesis_client(AioSession(), endpoint, concurrency) as c:

        async def worker() -> None:
            nonlocal count
            while time.monotonic() < deadline:
                await c.put_record(StreamName="bench", Data=b'{"n":1}', PartitionKey="k")
                count += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / seconds


def service_env(redis_url: str, port: int, concurrency: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REDIS_"))}
    env.update(
        {
            "API_KEY": KEY,
            "AES_ENCRYPTION_SECRET": SECRET,
            "REDIS_URL": redis_url,
            "API_HOST": "127.0.0.1",
            "API_PORT": str(port),
            "LOG_LEVEL": "error",
            "DESTINATIONS_ALLOW_PRIVATE_ENDPOINTS": "true",
            "DELIVERY_MAX_CONCURRENCY": str(concurrency),
            # the overload run's clients all connect: shedding is by publishes in progress
            "API_MAX_CONNECTIONS": str(2 * OVERLOAD_CONCURRENCY),
        }
    )
    return env


async def prefill(
    redis_url: str, endpoint: str, n: int, batching: bool = False, aggregation: bool = False
) -> Any:
    """A tenant with a Kinesis destination on the bench endpoint, and `n` queued events
    (published in pipelined chunks, each event still its own publish script)."""
    from datetime import UTC, datetime

    from outpost.deps import Deps
    from outpost.models import Event
    from outpost.queue.connection import connect_redis
    from outpost.settings import Settings

    settings = Settings(api_key=KEY, aes_encryption_secret=SECRET, redis_url=redis_url)
    redis = connect_redis(redis_url)
    deps = Deps.build(settings, redis)
    await redis.flushdb(asynchronous=True)  # a big backlog frees in the background
    await deps.store.upsert_tenant("bench", None)
    body = _destination_body(endpoint, batching)
    body["config"].update({"aggregation": True} if aggregation else {})
    dest = deps.registry.create("bench", body, "d1")
    await deps.store.create_destination(dest)
    now = datetime.now(UTC)
    for start in range(0, n, 1000):
        chunk: list[Any] = []
        for i in range(start, min(n, start + 1000)):
            ev = Event(
                id=f"b{i}",
                tenant_id="bench",
                topic="orders",
                time=now,
                data={"n": i, "pad": "x" * 200},
            )
            chunk.append((ev, [(dest.id, ev.id)], ()))
        await deps.queue.publish_many(chunk)
    return deps


def _destination_body(endpoint: str, batching: bool) -> dict[str, Any]:
    return {
        "type": "aws_kinesis",
        "topics": "*",
        "config": {
            "stream_name": "bench",
            "region": "us-east-1",
            "endpoint": endpoint,
            **({"batching": True} if batching else {}),
        },
        "credentials": {"key": "bench", "secret": "bench-secret"},
    }


async def drain(
    deps: Any, env: dict[str, str], n: int, limit: float, cpu: dict[str, float] | None = None
) -> tuple[float, float, float]:
    """An `outpost worker` process drains the backlog: (events/s, peak RSS MiB, done);
    `cpu` gets the worker's CPU µs per event, counted from its first event on."""
    proc = outpost_process("worker", env)
    try:
        started, left, cpu0 = None, n, 0.0
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            left = (await deps.queue.depth())["queued"]
            if started is None and left < n:
                started, cpu0 = time.monotonic(), cpu_seconds(proc.pid)
            if left == 0:
                break
            await asyncio.sleep(0.05)
        done = n - left
        elapsed = time.monotonic() - (started or time.monotonic())
        rss = _peak_rss_mib(proc.pid)
        if cpu is not None:
            cpu["us_per_event"] = (cpu_seconds(proc.pid) - cpu0) / max(done, 1) * 1e6
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return (done / elapsed if elapsed else 0.0), rss, done


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def run(args: dict[str, Any]) -> dict[str, Any]:
    from outpost.dev import devstack

    conc = args["concurrency"]
    ep = endpoint_process()
    redis = devstack.redis_server()
    redis.start()
    out: dict[str, Any] = {}
    try:
        out["ceiling_putrecord_per_s"] = await ceiling(ep.url, args["seconds"], conc)
        out.update(await bench_ceilings.measure(redis.redis_url, ep.url, args["seconds"], conc))
        deps = await prefill(redis.redis_url, ep.url, args["backlog"])
        env = service_env(redis.redis_url, devstack.free_port(), conc)
        per_s, _, _ = await drain(deps, env, args["backlog"], 120)
        out["pipeline_putrecord_per_s"] = per_s
        out["ratio_putrecord"] = per_s / out["ceiling_putrecord_per_s"]
        await deps.redis.aclose()
        deps = await prefill(redis.redis_url, ep.url, args["rss_backlog"], batching=True)
        cpu: dict[str, float] = {}
        batched, rss_batched, done_batched = await drain(
            deps, env, args["rss_backlog"], args["rss_seconds"], cpu
        )
        out["pipeline_batched_per_s"] = batched
        out["pipeline_batched_cpu_us_per_event"] = cpu["us_per_event"]
        await deps.redis.aclose()
        out.update(await bench_shards.measure(prefill, drain, redis.redis_url, env, ep.url))
        out.update(await publish_figures(redis.redis_url, ep, conc, args["seconds"], per_s))
        deps = await prefill(redis.redis_url, ep.url, args["rss_backlog"])
        _, rss, done = await drain(deps, env, args["rss_backlog"], args["rss_seconds"])
        out.update({"worker_rss_mib": rss, "worker_rss_events_drained": done})
        out["worker_rss_batched_mib"] = rss_batched
        out["worker_rss_batched_events_drained"] = done_batched
        await deps.redis.aclose()
        out.update(await source_figures(out))
        out.update(await fair_beside(redis.redis_url, ep.url, env, args))
        out.update(await bench_wait.measure())  # its own master + replica
        out.update(await bench_cluster.figures())  # its own servers: single and cluster
    finally:
        ep.stop()
        redis.stop()
    return out


async def fair_beside(
    redis_url: str, a_url: str, env: dict[str, str], args: dict[str, Any]
) -> dict[str, Any]:
    """The fairness run, B on an endpoint process of its own (bench_fair.py)."""
    b_ep = endpoint_process()
    try:
        return await fairness(redis_url, (a_url, b_ep.url), env, args)
    finally:
        b_ep.stop()


async def source_figures(out: dict[str, Any]) -> dict[str, Any]:
    """One Kinesis source reader's records/s (bench_source.py), and that over the faster
    of the two drain rates: at 1 or more, the source is not the pipeline's bottleneck."""
    from outpost.dev import bench_source

    got = await bench_source.run({"records": 60_000, "shards": 8, "batch": 1000, "baseline": 1})
    drain = max(out["pipeline_putrecord_per_s"], out["pipeline_batched_per_s"]) or 1.0
    keep: tuple[str, ...] = ("source_record_by_record_per_s", "source_records_per_s")
    keep += ("source_cpu_us_per_record", "source_cpu_ratio")
    return {**{k: got[k] for k in keep}, "source_vs_drain": got["source_records_per_s"] / drain}


async def publish_figures(
    redis_url: str, ep: Any, conc: int, seconds: float, pipeline_per_s: float
) -> dict[str, Any]:
    """Publish flat out against one API process, then API + worker at about half the lower
    of the publish and delivery rates, for publish → send latency."""
    from outpost.dev import devstack

    port = devstack.free_port()
    env = service_env(redis_url, port, conc)
    url = f"http://127.0.0.1:{port}/api/v1/publish"
    api = outpost_process("api", env)
    worker = None
    try:
        devstack.wait_for_port(port, api)
        flat = _load_process(url, seconds, conc, 0)
        batched = _load_process(f"{url}/batch", seconds, 8, 0, batch=100)
        overload = _load_process(url, seconds, OVERLOAD_CONCURRENCY, 0)
        deps = await prefill(redis_url, ep.url, 0)  # an empty queue, the same destination
        await deps.redis.aclose()
        worker = outpost_process("worker", env)
        await asyncio.sleep(1.5)
        top = min(flat["per_s"], pipeline_per_s)
        lat: dict[str, Any] = {}
        for name, rate in (("half", top / 2), ("tenth", top / 10)):
            paced = _load_process(url, seconds, conc, max(rate, 20.0))
            await asyncio.sleep(1.0)
            async with ClientSession() as http, http.get(f"{ep.url}/stats") as resp:
                lat[name] = {**await resp.json(), "rate": paced["per_s"], "api": paced["p99_ms"]}
    finally:
        for p in (api, worker):
            if p is not None:
                p.terminate()
                p.wait(timeout=30)
    return {
        **publish_report(flat, batched, lat),
        "overload_accepted_p99_ms": overload["p99_ms"],
        "overload_shed_share": overload["shed_share"],
        "overload_errors": overload["errors"],
    }


def _load_process(
    url: str, seconds: float, conc: int, rate: float, batch: int = 0
) -> dict[str, Any]:
    proc = _spawn(["load", url, str(seconds), str(conc), str(rate), str(batch)])
    stdout, _ = proc.communicate(timeout=seconds + 60)
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


async def profile(n: int, batching: bool, out: str | None = None, top: int = 25) -> None:
    """One worker (in this process, under cProfile) drains `n` events to the bench
    endpoint; prints the rate, the Python calls per event and the top entries by own
    time (`out`: also dump the stats there, for pstats)."""
    import cProfile
    import pstats

    from outpost import logs
    from outpost.deps import Deps
    from outpost.dev import devstack
    from outpost.runtime import build_worker, settle_heap
    from outpost.settings import Settings

    logs.configure("error")
    port = devstack.free_port()
    ep = devstack.Server([sys.executable, "-m", "outpost.dev.bench", "endpoint", str(port)], port)
    ep.start()
    redis = devstack.redis_server()
    redis.start()
    try:
        deps = await prefill(redis.redis_url, ep.url, n, batching=batching)
        settings = Settings(
            api_key=KEY,
            aes_encryption_secret=SECRET,
            redis_url=redis.redis_url,
            destinations_allow_private_endpoints=True,
        )
        worker = build_worker(Deps.build(settings, deps.redis), settings)
        await settle_heap()  # as `outpost worker` does before it starts
        prof = cProfile.Profile()
        elapsed = await _drain_profiled(worker, deps, prof)
        stats = pstats.Stats(prof)
        calls = stats.total_calls  # type: ignore[attr-defined]
        print(f"{n} events in {elapsed:.2f} s under cProfile = {n / elapsed:.0f}/s")
        print(f"{calls} Python calls = {calls / n:.0f} per event")
        if out:
            stats.dump_stats(out)
        stats.sort_stats("tottime").print_stats(top)
        await deps.redis.aclose()
    finally:
        ep.stop()
        redis.stop()


async def _drain_profiled(worker: Any, deps: Any, prof: Any) -> float:
    """Run `worker` under `prof` until the queue is empty: the seconds it took."""
    started = time.monotonic()
    prof.enable()
    runner = asyncio.create_task(worker.run())
    while True:
        if (await deps.queue.depth())["queued"] == 0:
            break
        await asyncio.sleep(0.05)
    prof.disable()
    elapsed = time.monotonic() - started
    worker.stop()
    await runner
    return elapsed


def main(argv: list[str]) -> None:
    if {"-h", "--help"} & set(argv):
        print(__doc__)
        print("Arguments: name=value overrides (e.g. seconds=5 backlog=10000), or a part.")
        return
    if argv and argv[0] == "profile":  # ... profile [N] [batched] [out=FILE]
        n = int(argv[1]) if len(argv) > 1 else 20_000
        out = next((a[4:] for a in argv if a.startswith("out=")), None)
        asyncio.run(profile(n, batching="batched" in argv, out=out))
        return
    if argv and argv[0] == "endpoint":
        web.run_app(
            endpoint_app(), host="127.0.0.1", port=int(argv[1]), print=None, access_log=None
        )
        return
    if argv and argv[0] == "load":
        url, seconds, conc, rate = argv[1], float(argv[2]), int(argv[3]), float(argv[4])
        batch = int(argv[5]) if len(argv) > 5 else 0
        tenant = argv[6] if len(argv) > 6 else "bench"
        print(json.dumps(asyncio.run(load(url, seconds, conc, rate, batch, tenant))))
        return
    args = {
        "seconds": 5.0,
        "concurrency": 64,
        "backlog": 10_000,
        "rss_backlog": 200_000,
        "rss_seconds": 240.0,
        **FAIR_ARGS,
    }
    only_fair = bool(argv) and argv[0] == "fair"
    for item in argv[only_fair:]:
        key, _, value = item.partition("=")
        args[key.lstrip("-").replace("-", "_")] = type(args[key.lstrip("-").replace("-", "_")])(
            value
        )
    report(asyncio.run(fair_only(args) if only_fair else run(args)), with_targets=not only_fair)


if __name__ == "__main__":
    main(sys.argv[1:])
