"""Issue 14 item 8: a PutRecords answer of the wrong shape (too few or too many entries,
entries that are not objects, `Records` not a list, a FailedRecordCount that disagrees)
fails the whole batch as retryable (`server_error`): every event of the batch gets a
failed attempt and is retried, none is left waiting, and the worker still stops at once."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiohttp import web

from outpost.runtime import build_worker
from tests.test_delivery import publish, setup_destination
from tests.test_redirects import Local

N = 4
ANSWERS = {
    "too_few": lambda n: {"FailedRecordCount": 0, "Records": [_ok(i) for i in range(n - 1)]},
    "too_many": lambda n: {"FailedRecordCount": 0, "Records": [_ok(i) for i in range(n + 1)]},
    "not_objects": lambda n: {"FailedRecordCount": 0, "Records": list(range(n))},
    "not_a_list": lambda n: {"FailedRecordCount": 0, "Records": "nope"},
    "count_disagrees": lambda n: {"FailedRecordCount": 2, "Records": [_ok(i) for i in range(n)]},
    "count_not_int": lambda n: {"FailedRecordCount": "x", "Records": [_ok(i) for i in range(n)]},
}


def _ok(i: int) -> dict[str, str]:
    return {"ShardId": "shardId-000000000000", "SequenceNumber": str(i)}


@pytest.mark.parametrize("mode", sorted(ANSWERS))
async def test_malformed_answers_fail_the_batch_and_are_retried(client, deps, mode):
    calls: list[int] = []

    async def kinesis(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        calls.append(len(body["Records"]))
        return web.json_response(
            ANSWERS[mode](len(body["Records"])), content_type="application/x-amz-json-1.1"
        )

    async with Local(kinesis) as endpoint:
        config = {"batching": True, "batch_max_records": N, "batch_linger_ms": 50}
        dest = await setup_destination(client, "s", endpoint.url, config=config)
        for i in range(N):
            await publish(client, id=f"evt_{i}", data={})
        worker = build_worker(deps, deps.settings)
        run = asyncio.create_task(worker.run())
        deadline = time.monotonic() + 20
        try:
            while len(await deps.queue.dead_letters("acme")) < N:  # retried until the limit
                assert time.monotonic() < deadline, f"batch left unresolved ({calls})"
                await asyncio.sleep(0.05)
        finally:
            worker.stop()
            began = time.monotonic()
            await asyncio.wait_for(run, 10)
        assert time.monotonic() - began < 3  # the stop is not held up by a lost batch
    attempts = await deps.queue.attempts("acme", dest["id"], count=100)
    per_event: dict[str, list[dict]] = {}
    for a in attempts:
        per_event.setdefault(a["event_id"], []).append(a)
    assert sorted(per_event) == [f"evt_{i}" for i in range(N)]
    for tries in per_event.values():
        assert len(tries) == deps.settings.max_retry_limit + 1  # first try + every retry
        assert {(a["status"], a["code"]) for a in tries} == {("failed", "server_error")}
    assert len(calls) >= deps.settings.max_retry_limit + 1
