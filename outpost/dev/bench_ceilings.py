"""`make bench`'s ceilings and baselines, measured in the same run as the pipeline, and the
targets the figures are held to (issue 17). Each is run from its own process where CPU is
counted, so the figure is that process's alone.

- `ceiling_batched_per_s`: bare aiobotocore PutRecords x 500 on one session;
- `http_ceiling_per_s`: a bare aiohttp handler answering 202 after one Redis SET, loaded
  by the same client as `POST /publish`;
- `naive_batcher_per_s`: an at-most-once loop (LPOP 500 from a Redis list, PutRecords),
  with its CPU per event beside it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

from aiohttp import web

BATCH = 500
PAYLOAD = json.dumps({"metadata": {}, "data": {"n": 1, "pad": "x" * 200}}).encode()
NAIVE_LIST = "bench:naive"

# (figure, numerator, denominator or None, comparison, threshold): a ratio when a
# denominator is named; every target is reported met or missed, never dropped
TARGETS: list[tuple[str, str, str | None, str, float]] = [
    ("ratio_putrecord", "pipeline_putrecord_per_s", "ceiling_putrecord_per_s", ">=", 3.0),
    ("ratio_batched", "pipeline_batched_per_s", "ceiling_batched_per_s", ">=", 0.5),
    ("ratio_batched_naive", "pipeline_batched_per_s", "naive_batcher_per_s", ">=", 1.0),
    (
        "ratio_batched_cpu_naive",
        "pipeline_batched_cpu_us_per_event",
        "naive_batcher_cpu_us_per_event",
        "<=",
        1.0,
    ),
    ("ratio_aggregated", "pipeline_aggregated_per_s", "ceiling_batched_per_s", ">=", 1.0),
    ("ratio_publish", "publish_per_s", "http_ceiling_per_s", ">=", 0.5),
    ("publish_p99_ms", "publish_p99_ms", None, "<=", 25.0),
    ("publish_batch_per_s", "publish_batch_per_s", None, ">=", 30_000.0),
    ("latency_p50_ms", "latency_p50_ms", None, "<=", 5.0),
    ("latency_p99_ms", "latency_p99_ms", None, "<=", 50.0),
    ("latency_tenth_p50_ms", "latency_tenth_p50_ms", None, "<=", 3.0),
    ("ratio_shard_limit", "shard_limited_per_s", "shard_limit_per_s", ">=", 0.9),
    ("shard_throttled_share", "shard_throttled_share", None, "<=", 0.01),
    ("worker_rss_mib", "worker_rss_mib", None, "<=", 150.0),
    # issue 20: the batched source reader against the record-by-record one, same run
    (
        "ratio_source_record_by_record",
        "source_records_per_s",
        "source_record_by_record_per_s",
        ">=",
        5.0,
    ),
    ("source_vs_drain", "source_vs_drain", None, ">=", 0.8),
    # the queue on the local Redis Cluster beside the single node (bench_cluster.py)
    ("cluster_drain_vs_single", "cluster_drain_1w_per_s", "single_drain_1w_per_s", ">=", 0.8),
    ("cluster_drain_2w_vs_1w", "cluster_drain_2w_per_s", "cluster_drain_1w_per_s", ">=", 1.6),
    ("cluster_publish_vs_single", "cluster_publish_per_s", "single_publish_per_s", ">=", 0.8),
]


def verdicts(out: dict[str, Any]) -> dict[str, Any]:
    """Each target's value (a ratio where it has a denominator), the target, and whether
    it is met; a figure the run could not measure is `missed` with value None."""
    report: dict[str, Any] = {}
    for name, top, bottom, op, threshold in TARGETS:
        num, den = out.get(top), out.get(bottom) if bottom else 1.0
        value = None
        if isinstance(num, int | float) and isinstance(den, int | float) and den:
            value = num / den
        met = value is not None and (value >= threshold if op == ">=" else value <= threshold)
        report[name] = {"value": value, "target": f"{op} {threshold:g}", "met": met}
    return report


def missed(report: dict[str, Any]) -> list[str]:
    return [name for name, v in report.items() if not v["met"]]


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat); with `children`,
    those of its children that ended and were waited for too."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11 : 15 if children else 13]) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """The machine's CPU seconds so far (/proc/stat, every core): busy (all but idle and
    iowait), and in all."""
    with open("/proc/stat", encoding="ascii") as f:  # user .. steal (guest is in user)
        ticks = [int(t) for t in f.readline().split()[1:9]]
    tick, total = os.sysconf("SC_CLK_TCK"), sum(ticks)
    return (total - ticks[3] - ticks[4]) / tick, total / tick


def kinesis_client(session: Any, endpoint: str, concurrency: int) -> Any:
    from aiobotocore.config import AioConfig

    config = AioConfig(max_pool_connections=concurrency, retries={"total_max_attempts": 1})
    return session.create_client(
        "kinesis",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=config,
    )


async def ceiling_batched(endpoint: str, seconds: float, concurrency: int = 4) -> float:
    """Records/s of bare aiobotocore PutRecords calls of 500 records, on one session."""
    from aiobotocore.session import AioSession

    count = 0
    deadline = time.monotonic() + seconds
    entries = [{"Data": PAYLOAD, "PartitionKey": f"k{i}"} for i in range(BATCH)]
    async with kinesis_client(AioSession(), endpoint, concurrency) as c:

        async def worker() -> None:
            nonlocal count
            while time.monotonic() < deadline:
                await c.put_records(StreamName="bench", Records=entries)
                count += BATCH

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / seconds


# -- the bare HTTP handler (its own process) --------------------------------------------------
def http_ceiling_app(redis_url: str) -> web.Application:
    """`POST /api/v1/publish` (and `/batch`) answers 202 after one Redis SET: the floor of
    what an API that stores before it answers can cost."""
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    counter = 0

    async def publish(request: web.Request) -> web.Response:
        nonlocal counter
        body = await request.read()
        counter += 1
        await redis.set(f"bench:http:{counter % 1024}", body)
        return web.json_response({"id": str(counter)}, status=202)

    async def close(_: web.Application) -> None:
        await redis.aclose()

    app = web.Application()
    app.router.add_post("/{tail:.*}", publish)
    app.on_cleanup.append(close)
    return app


# -- the naive at-most-once batcher (its own process) -----------------------------------------
async def naive_fill(redis_url: str, n: int) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    await redis.delete(NAIVE_LIST)
    for start in range(0, n, 5000):
        await redis.rpush(NAIVE_LIST, *[PAYLOAD] * min(5000, n - start))
    await redis.aclose()


async def naive_batcher(redis_url: str, endpoint: str, concurrency: int = 4) -> dict[str, Any]:
    """Pop up to 500 entries, PutRecords them, repeat until the list is empty; entries are
    gone from Redis before they are sent (at most once). Events/s and CPU per event."""
    from aiobotocore.session import AioSession
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    count, started, cpu0 = 0, time.monotonic(), time.process_time()
    async with kinesis_client(AioSession(), endpoint, concurrency) as c:

        async def worker() -> None:
            nonlocal count
            while items := await redis.lpop(NAIVE_LIST, BATCH):
                records = [{"Data": d, "PartitionKey": str(i)} for i, d in enumerate(items)]
                await c.put_records(StreamName="bench", Records=records)
                count += len(items)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu0
    await redis.aclose()
    return {"per_s": count / elapsed, "cpu_us_per_event": cpu / max(count, 1) * 1e6, "n": count}


# -- from the bench run -----------------------------------------------------------------------
def _python(module: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", module, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )


def _last_json(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    stdout, _ = proc.communicate(timeout=timeout)
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


async def measure(redis_url: str, endpoint: str, seconds: float, conc: int) -> dict[str, Any]:
    """The three ceilings of one bench run, each from its own process."""
    from outpost.dev import devstack

    out: dict[str, Any] = {}
    proc = _python(__name__, "batched", endpoint, str(seconds))
    out["ceiling_batched_per_s"] = _last_json(proc, seconds + 60)["per_s"]
    await naive_fill(redis_url, int(out["ceiling_batched_per_s"] * seconds) or BATCH)
    naive = _last_json(_python(__name__, "naive", redis_url, endpoint), 300)
    out["naive_batcher_per_s"] = naive["per_s"]
    out["naive_batcher_cpu_us_per_event"] = naive["cpu_us_per_event"]
    port = devstack.free_port()
    server = devstack.Server(
        [sys.executable, "-m", __name__, "http", str(port), redis_url], port
    ).start()
    try:
        url = f"{server.url}/api/v1/publish"
        load = _python("outpost.dev.bench", "load", url, str(seconds), str(conc), "0")
        out["http_ceiling_per_s"] = _last_json(load, seconds + 60)["per_s"]
    finally:
        server.stop()
    return out


def main(argv: list[str]) -> None:
    if argv[0] == "http":
        app = http_ceiling_app(argv[2])
        web.run_app(app, host="127.0.0.1", port=int(argv[1]), print=None, access_log=None)
    elif argv[0] == "batched":
        print(json.dumps({"per_s": asyncio.run(ceiling_batched(argv[1], float(argv[2])))}))
    elif argv[0] == "naive":
        print(json.dumps(asyncio.run(naive_batcher(argv[1], argv[2]))))


if __name__ == "__main__":
    main(sys.argv[1:])
