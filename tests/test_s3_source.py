"""S3 as a scheduled source, on moto: every row of every object under the path becomes one
event (JSON arrays, JSON lines, CSV), bad rows are failed records with their reason, a
later run ingests only new or changed objects, and a reader killed with -9 mid-run loses
no object and publishes no row twice."""

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from outpost.flow.s3source import due, format_of, rows
from outpost.flow.specs import BATCH_FLOW, PIPELINE, S3
from tests.conftest import ADMIN_KEY, AES_SECRET, AUTH
from tests.servers.s3_objects import (
    BUCKET,
    PARQUET_COUNTS,
    PARQUET_KEY,
    PARQUET_ROWS,
    SMALL_COUNTS,
    parquet_bytes,
    rows_in_big,
    s3_client,
)
from tests.test_source import BASE, H, flow_status, reader_for, wait_for


def test_due_times_follow_the_schedule():
    every_hour = {"startTime": 1000, "frequency": "hour", "interval": 2}
    assert due(every_hour, None, 999) is None  # not started
    assert due(every_hour, None, 1000) == 1000
    assert due(every_hour, 1000, 1000 + 7199) is None
    assert due(every_hour, 1000, 1000 + 7200 * 3 + 5) == 1000 + 7200 * 3  # missed ones: once
    once = {"startTime": 50, "frequency": "once", "interval": 1}
    assert due(once, None, 10**9) == 50 and due(once, 50, 10**9) is None


async def post(client, kind, body, status=201):
    r = await client.post(f"{BASE}/{kind}", json=body, headers=H)
    assert r.status == status, await r.text()
    return (await r.json()).get("id") if status == 201 else await r.json()


async def s3_flow(client, url, path, fmt="json", schedule=None):
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    params = {"s3AccessKey": "testing", "s3SecretKey": "testing", "serviceUrl": url}
    conn = await post(
        client,
        "connections",
        {
            "name": "files",
            "auth": {"specName": "Access Key", "params": params},
            "connectionSpec": {"id": S3, "version": "1.0"},
        },
    )
    src = await post(
        client,
        "sourceConnections",
        {
            "name": "src",
            "baseConnectionId": conn,
            "connectionSpec": {"id": S3, "version": "1.0"},
            "data": {"format": fmt},
            "params": {"path": path},
        },
    )
    tgt = await post(
        client,
        "targetConnections",
        {
            "name": "t",
            "connectionSpec": {"id": PIPELINE, "version": "1.0"},
            "params": {"topic": "orders"},
        },
    )
    body = {
        "name": "nightly",
        "flowSpec": {"id": BATCH_FLOW, "version": "1.0"},
        "sourceConnectionIds": [src],
        "targetConnectionIds": [tgt],
        "scheduleParams": schedule
        or {"startTime": int(time.time()) - 5, "frequency": "minute", "interval": 15},
    }
    return await post(client, "flows", body)


async def read(deps, client, flow, n, limit=60.0):
    reader = reader_for(deps)
    task = asyncio.create_task(reader.run())
    try:

        async def done():
            return (await flow_status(client, flow))["metrics"]["recordsRead"] >= n

        await wait_for(done, limit)
    finally:
        reader.stop()
        await task
    return (await flow_status(client, flow))["metrics"]


async def test_each_row_is_one_event_and_bad_rows_are_failed_records(client, deps, moto, s3_files):
    flow = await s3_flow(client, moto.url, f"{BUCKET}/in/")
    metrics = await read(deps, client, flow, sum(SMALL_COUNTS))
    events, failed = SMALL_COUNTS
    assert metrics == {
        "recordsRead": events + failed,
        "eventsPublished": events,
        "failedRecords": failed,
    }
    got = await (await client.get("/api/v1/events?tenant_id=acme", headers=AUTH)).json()
    datas = [e["data"] for e in got["models"]]
    assert {"id": 1, "total": 9.5} in datas and {"n": 3, "ok": False} in datas
    assert {"id": "1", "name": "ada", "score": "3.5"} in datas  # CSV rows are strings
    status = await flow_status(client, flow)
    reasons = {(f["object"], f["code"]) for f in status["lastRunDetails"]["failedRecords"]}
    assert reasons == {
        ("in/events.jsonl", "SOURCE-1001-400"),
        ("in/events.jsonl", "SOURCE-1003-400"),
        ("in/table.csv", "SOURCE-1005-400"),
    }
    r = await client.get(f"{BASE}/runs", headers=H, params={"property": f"flowId=={flow}"})
    [run] = (await r.json())["items"]
    assert run["metrics"]["recordSummary"]["inputRecordCount"] == events + failed


async def test_parquet_rows_are_events_and_bad_rows_or_files_are_failed_records(
    client, deps, moto, s3_files
):
    flow = await s3_flow(client, moto.url, f"{BUCKET}/pq/", fmt="parquet")
    events, failed = PARQUET_COUNTS
    metrics = await read(deps, client, flow, events + failed)
    assert metrics == {
        "recordsRead": events + failed,
        "eventsPublished": events,
        "failedRecords": failed,
    }
    got = await (await client.get("/api/v1/events?tenant_id=acme&limit=100", headers=AUTH)).json()
    rows = {e["data"]["id"]: e for e in got["models"]}
    assert sorted(rows) == [i for i in range(PARQUET_ROWS) if i != 7]
    one = rows[1]
    assert one["data"]["tags"] == {"k": "1"} and one["data"]["day"] == "2024-01-02"
    assert one["metadata"]["source-key"] == PARQUET_KEY and one["metadata"]["source-row"] == "1"
    assert rows[3]["data"]["score"] is None  # NaN: JSON has none
    raw = await deps.redis.get(deps.keys.event("acme", one["id"]))
    assert b'"price":1.10' in raw  # the decimal's digits, exactly
    status = await flow_status(client, flow)
    reasons = {
        (f["object"], f["row"], f["code"]) for f in status["lastRunDetails"]["failedRecords"]
    }
    assert reasons == {
        (PARQUET_KEY, "7", "SOURCE-1007-400"),
        ("pq/broken.parquet", "0", "SOURCE-1007-400"),
    }


def test_a_parquet_resume_starts_at_the_row_group_of_the_first_row_not_done():
    import pyarrow.parquet as pq

    from outpost.flow.parquet import _batches

    parquet = pq.ParquetFile(io.BytesIO(parquet_bytes()))  # row groups of 10
    for skip, first in ((0, 0), (9, 0), (10, 10), (15, 10), (24, 20), (25, 25), (30, 25)):
        start, batches = _batches(parquet, 4, skip)
        ids = [i for b in batches for i in b.column("id").to_pylist()]
        assert start == first and ids == list(range(first, PARQUET_ROWS)), skip


async def test_a_failed_parquet_get_fails_the_run_not_the_file(
    moto, s3_files, stalling, monkeypatch
):
    """A ranged GET refused (the object's ETag is not the listed one any more, as after
    a rewrite) or unanswered (a hanging endpoint) is the run's failure, retried from the
    checkpoint: never a bad file."""
    from botocore.exceptions import ClientError

    from outpost.flow import parquet
    from outpost.flow.connectors import _client

    params = {"s3AccessKey": "testing", "s3SecretKey": "testing", "serviceUrl": moto.url}
    obj = {"Bucket": BUCKET, "Key": PARQUET_KEY, "Size": len(parquet_bytes())}
    async with _client(S3, params) as s3:
        got = [row async for _, row in parquet.indexed_rows(s3, obj, 10)]
        assert len(got) == PARQUET_ROWS  # the same object, read whole
        with pytest.raises(ClientError) as refused:
            async for _ in parquet.indexed_rows(s3, {**obj, "ETag": '"stale"'}, 10):
                pass
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    monkeypatch.setattr(parquet, "GET_SECONDS", 0.5)
    async with _client(S3, {**params, "serviceUrl": stalling.url}) as s3:
        with pytest.raises(TimeoutError):  # an OSError, like pyarrow's own read errors
            async for _ in parquet.indexed_rows(s3, obj, 10):
                pass


async def test_later_runs_take_new_and_changed_objects_only(client, deps, moto):
    s3 = s3_client(moto.url)
    s3.create_bucket(Bucket="sched")
    s3.put_object(Bucket="sched", Key="d/a.jsonl", Body=b'{"v": "a1"}\n{"v": "a2"}\n')
    flow = await s3_flow(client, moto.url, "sched/d/")
    assert (await read(deps, client, flow, 2))["eventsPublished"] == 2
    s3.put_object(Bucket="sched", Key="d/b.jsonl", Body=b'{"v": "b1"}\n')
    s3.put_object(Bucket="sched", Key="d/a.jsonl", Body=b'{"v": "a3"}\n')  # a new ETag
    await deps.redis.delete(deps.keys.flow_state(flow, "s3_due"))  # the next scheduled time
    metrics = await read(deps, client, flow, 4)
    assert metrics == {"recordsRead": 4, "eventsPublished": 4, "failedRecords": 0}
    got = await (await client.get("/api/v1/events?tenant_id=acme", headers=AUTH)).json()
    assert sorted(e["data"]["v"] for e in got["models"]) == ["a1", "a2", "a3", "b1"]


async def test_a_schedule_is_required_and_checked(client, deps, moto):
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    for schedule, word in (
        ({"startTime": "now", "frequency": "hour"}, "startTime"),
        ({"startTime": 1, "frequency": "fortnight"}, "frequency"),
        ({"startTime": 1, "frequency": "hour", "interval": 0}, "interval"),
        ({"startTime": 1, "frequency": "hour", "when": 1}, "when"),
    ):
        with pytest.raises(AssertionError, match=word):
            await s3_flow(client, moto.url, "sched/d/", schedule=schedule)


async def test_kill_9_mid_run_skips_no_object_and_publishes_each_row_once(
    client, deps, moto, redis_server
):
    s3 = s3_client(moto.url)
    s3.create_bucket(Bucket="crash")
    for k in range(3):
        body = b"".join(b'{"k": %d, "n": %d}\n' % (k, n) for n in range(2000))
        s3.put_object(Bucket="crash", Key=f"x/{k}.jsonl", Body=body)
    flow = await s3_flow(client, moto.url, "crash/x/")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REDIS_"))}
    env.update(
        API_KEY=ADMIN_KEY,
        AES_ENCRYPTION_SECRET=AES_SECRET,
        REDIS_URL=redis_server.redis_url,
        LOG_LEVEL="warning",
        DESTINATIONS_ALLOW_PRIVATE_ENDPOINTS="true",
        SOURCE_BATCH_LIMIT="5",
        SOURCE_LEASE_SECONDS="1.5",
        SOURCE_POLL_SECONDS="0.1",
    )

    def start():
        cmd = [sys.executable, "-m", "outpost", "source"]
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def published():
        return (await flow_status(client, flow))["metrics"]["eventsPublished"]

    first = start()
    try:
        await wait_for(lambda: _over(published, 1000), limit=60)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert await published() < 6000
    second = start()
    try:
        await wait_for(lambda: _over(published, 5999), limit=120)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=20) == 0
    assert await deps.redis.zcard(deps.keys.events_index("acme")) == 6000  # each row once
    assert await published() == 6000  # the re-read batch counted once too
    status = await flow_status(client, flow)
    assert set(status["lastRunDetails"]["checkpoints"].values()) == {
        f"{s3.head_object(Bucket='crash', Key=f'x/{k}.jsonl')['ETag']}|done" for k in range(3)
    }


async def _over(fn, n):
    return await fn() > n


async def test_the_50_mb_object_streams_in_bounded_memory(
    client, deps, moto, s3_files, redis_server
):
    """The reader process's peak RSS over the whole 50 MB object stays under 150 MiB."""
    flow = await s3_flow(client, moto.url, f"{BUCKET}/big/")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REDIS_"))}
    env.update(
        API_KEY=ADMIN_KEY,
        AES_ENCRYPTION_SECRET=AES_SECRET,
        REDIS_URL=redis_server.redis_url,
        LOG_LEVEL="warning",
        DESTINATIONS_ALLOW_PRIVATE_ENDPOINTS="true",
        SOURCE_POLL_SECONDS="0.1",
    )
    proc = _start_source(env)
    started = time.monotonic()
    try:

        async def read():
            return (await flow_status(client, flow))["metrics"]["recordsRead"] >= rows_in_big()

        await wait_for(read, limit=300)
        peak = _peak_rss_mib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    metrics = (await flow_status(client, flow))["metrics"]
    # the object ends in the middle of a row: that cut row is the one failed record
    assert metrics["eventsPublished"] == rows_in_big() and metrics["failedRecords"] == 1
    seconds = time.monotonic() - started
    print(f"\nS3 50 MB: {rows_in_big()} rows in {seconds:.1f} s, reader peak RSS {peak:.0f} MiB")
    assert peak <= 150


def _start_source(env):
    cmd = [sys.executable, "-m", "outpost", "source"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _peak_rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


class Body:
    """An S3 body handing out its bytes in small reads."""

    def __init__(self, data, step=7):
        self.data, self.step = data, step

    async def read(self, n):
        out, self.data = self.data[: min(n, self.step)], self.data[min(n, self.step) :]
        return out


async def test_rows_of_each_format_from_a_chunked_body():
    pretty = json.dumps([{"n": i} for i in range(3)] + [7], indent=2).encode()
    got = [r async for r in rows(Body(pretty), "json", len(pretty))]
    assert got[:3] == [{"n": 0}, {"n": 1}, {"n": 2}] and got[3][0] == "SOURCE-1003-400"
    csv_rows = b'a,b\r\n1,"x, y"\r\n2\r\n'
    got = [r async for r in rows(Body(csv_rows), "delimited", len(csv_rows))]
    assert got[0] == {"a": "1", "b": "x, y"} and got[1][:2] == (
        "SOURCE-1005-400",
        "1 fields where the header has 2",
    )
    assert (
        format_of("d/x.CSV", "json") == "delimited" and format_of("d/x", "delimited") == "delimited"
    )
    assert format_of("d.v1/x.ndjson", "delimited") == "json"
