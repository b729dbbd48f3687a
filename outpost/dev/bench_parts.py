"""`make bench`'s helper processes (`python -m outpost.dev.bench endpoint|load ...` run
them): a minimal Kinesis PutRecord/PutRecords server that measures publish -> receive
latency, and the publish load generator."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import subprocess
import sys
import time
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector, web

KEY = "bench-admin-key"
_STEP = 2**128 // 100
SHARDS = [  # 100 shards, a ceiling of ~100,000 records/s: no limit the bench reaches
    {
        "ShardId": f"shardId-{i:012d}",
        "HashKeyRange": {
            "StartingHashKey": str(i * _STEP),
            "EndingHashKey": str(2**128 - 1 if i == 99 else (i + 1) * _STEP - 1),
        },
    }
    for i in range(100)
]


# -- the minimal Kinesis endpoint -------------------------------------------------------------
def endpoint_app() -> web.Application:
    latencies: dict[str, list[float]] = {}  # stream name -> publish -> receive seconds

    def note(stream: str, data_b64: str) -> None:
        try:
            doc = json.loads(base64.b64decode(data_b64))
            sent = doc.get("data", doc).get("sent_at")
        except (ValueError, AttributeError):
            return
        if isinstance(sent, float):
            latencies.setdefault(stream, []).append(time.time() - sent)

    async def kinesis(request: web.Request) -> web.Response:
        op = request.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
        body = json.loads(await request.read())
        if op == "ListShards":  # many shards: the batcher's buckets never bind here
            return web.json_response({"Shards": SHARDS}, content_type="application/x-amz-json-1.1")
        if op == "PutRecords":  # (latency is measured on single PutRecords only)
            records = [
                {"ShardId": "shardId-000000000000", "SequenceNumber": str(i)}
                for i in range(len(body["Records"]))
            ]
            out = {"FailedRecordCount": 0, "Records": records}
        else:
            note(body.get("StreamName", ""), body["Data"])
            out = {"ShardId": "shardId-000000000000", "SequenceNumber": "1"}
        return web.json_response(out, content_type="application/x-amz-json-1.1")

    async def stats(request: web.Request) -> web.Response:
        """The latencies noted since the last call (of one stream with `?stream=`; each
        one too, in seconds, with `?samples=1`: rounds pooled by the caller)."""
        named = [request.query["stream"]] if "stream" in request.query else list(latencies)
        data = sorted(x for name in named for x in latencies.pop(name, []))
        out = {"n": len(data), "p50": pct(data, 50), "p99": pct(data, 99)}
        return web.json_response({**out, "samples": data} if "samples" in request.query else out)

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_get("/stats", stats)
    app.router.add_post("/{tail:.*}", kinesis)
    return app


def outpost_process(command: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`python -m outpost <command>` with `env`, its output dropped."""
    return subprocess.Popen(
        [sys.executable, "-m", "outpost", command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def pct(data: list[float], p: float) -> float | None:
    if not data:
        return None
    return data[min(len(data) - 1, int(len(data) * p / 100))] * 1000


# -- publish load, from its own process -----------------------------------------------------
async def load(
    url: str, seconds: float, concurrency: int, rate: float, batch: int = 0, tenant: str = "bench"
) -> dict[str, Any]:
    """`concurrency` clients publishing for `seconds` (each at `rate` / concurrency per
    second, or flat out): the rate and p99 of accepted (202) publishes, how many were shed
    (503; the client then waits its Retry-After) and how many failed otherwise."""
    latencies: list[float] = []
    errors = shed = 0
    deadline = time.monotonic() + seconds
    interval = concurrency / rate if rate else 0.0
    body: dict[str, Any] = {"tenant_id": tenant, "topic": "orders", "data": {"pad": "x" * 200}}
    async with ClientSession(
        connector=TCPConnector(limit=concurrency),
        timeout=ClientTimeout(total=10),
        headers={"Authorization": f"Bearer {KEY}"},
    ) as http:

        async def one_client(offset: float) -> None:
            nonlocal errors, shed
            next_at = time.monotonic() + offset
            while time.monotonic() < deadline:
                if interval:
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                    next_at += interval
                started = time.monotonic()
                body["data"]["sent_at"] = time.time()
                payload: Any = [body] * batch if batch else body
                wait, status = 0.0, 0
                with contextlib.suppress(ClientError, TimeoutError):
                    async with http.post(url, json=payload) as resp:
                        await resp.read()
                        status = resp.status
                        wait = float(resp.headers.get("Retry-After", 0))
                if status == 202:
                    latencies.append(time.monotonic() - started)
                else:
                    shed += status == 503
                    errors += status != 503
                    await asyncio.sleep(wait)  # a shed client waits as told

        await asyncio.gather(*(one_client(i * interval / concurrency) for i in range(concurrency)))
    return _summary(sorted(latencies), shed, errors, seconds, batch)


def _summary(
    data: list[float], shed: int, errors: int, seconds: float, batch: int
) -> dict[str, Any]:
    answered = len(data) + shed
    return {
        "per_s": len(data) * (batch or 1) / seconds,
        "p99_ms": pct(data, 99),
        "errors": errors,
        "shed_share": shed / answered if answered else 0.0,
    }
