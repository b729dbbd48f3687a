"""`make bench`'s own parts (the figures are printed by `make bench`, not asserted here)."""

import base64
import json
import time

from outpost.dev.bench_parts import endpoint_app, pct


def test_percentiles():
    data = [i / 1000 for i in range(1, 101)]
    assert pct(data, 50) == 51.0 and pct(data, 99) == 100.0 and pct([], 99) is None


async def test_endpoint_answers_putrecord_and_putrecords_and_measures(aiohttp_client):
    c = await aiohttp_client(endpoint_app())
    sent = base64.b64encode(
        json.dumps({"metadata": {}, "data": {"sent_at": time.time() - 0.01}}).encode()
    ).decode()
    h = {"X-Amz-Target": "Kinesis_20131202.PutRecord"}
    r = await c.post(
        "/", data=json.dumps({"Data": sent, "PartitionKey": "k", "StreamName": "s"}), headers=h
    )
    assert (await r.json(content_type=None))["SequenceNumber"] == "1"
    h = {"X-Amz-Target": "Kinesis_20131202.PutRecords"}
    r = await c.post(
        "/",
        data=json.dumps({"Records": [{"Data": sent, "PartitionKey": "k"}] * 3, "StreamName": "s"}),
        headers=h,
    )
    body = await r.json(content_type=None)
    assert body["FailedRecordCount"] == 0 and len(body["Records"]) == 3
    stats = await (await c.get("/stats")).json()
    assert stats["n"] == 1 and 10 <= stats["p50"] < 1000  # PutRecord alone is timed
