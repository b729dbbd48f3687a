"""A streaming flow's runs (`/runs`) on moto: counts kept per window as records flow and
matching what the reader read, published and failed; an ended window closed once across
readers and notified (listed, and an operator event); the reader's GetRecords fast path
gives what botocore gives."""

import asyncio
import base64
import json
import time

import orjson
from aiohttp import web
from botocore.parsers import create_parser
from botocore.session import get_session

from outpost.delivery.alerts import Alerts
from outpost.dev import devstack
from outpost.flow.connectors import fast_get_records
from outpost.store.runs import RunStore
from outpost.store.sources import SourceState
from tests.test_source import BASE, H, flow_status, make_flow, put, reader_for, tenant, wait_for

__all__ = ["tenant"]  # the fixture, used by name


async def runs_of(client, flow, **query):
    params = {"property": f"flowId=={flow}", **query}
    r = await client.get(f"{BASE}/runs", headers=H, params=params)
    assert r.status == 200, await r.text()
    return await r.json()


async def read_until(deps, client, flow, n, readers=1, alerts=None):
    tasks = []
    made = [reader_for(deps, alerts=alerts) for _ in range(readers)]
    tasks = [asyncio.create_task(r.run()) for r in made]

    async def done():
        return (await flow_status(client, flow))["metrics"]["recordsRead"] >= n

    return made, tasks, done


async def stop(made, tasks):
    for r in made:
        r.stop()
    await asyncio.gather(*tasks)


async def test_a_run_counts_exactly_what_was_read_published_and_failed(client, deps, moto, tenant):
    stream = "in-runs"
    devstack.create_stream(moto.url, stream, shards=2)
    put(moto.url, stream, [{"n": i} for i in range(5)] + [b"{nope", [1, 2], b"also not"])
    flow = await make_flow(client, moto.url, stream)
    made, tasks, done = await read_until(deps, client, flow, 8)
    try:
        await wait_for(done)
    finally:
        await stop(made, tasks)
    [run] = (await runs_of(client, flow))["items"]
    assert run["flowId"] == flow and run["status"] == "inProgress"  # the hour goes on
    metrics = run["metrics"]
    assert metrics["recordSummary"] == {
        "inputRecordCount": 8,
        "outputRecordCount": 5,
        "failedRecordCount": 3,
    }
    status = await flow_status(client, flow)
    assert status["metrics"] == {"recordsRead": 8, "eventsPublished": 5, "failedRecords": 3}
    errors = {e["code"]: e["recordCount"] for e in metrics["statusSummary"]["errors"]}
    assert errors == {"SOURCE-1001-400": 2, "SOURCE-1003-400": 1}
    assert run["endTime"] - run["startTime"] == 3600 * 1000 and run["startTime"] % 3_600_000 == 0
    assert run["startTime"] <= metrics["durationSummary"]["startedAtUTC"] <= time.time() * 1000
    r = await client.get(f"{BASE}/runs/{run['id']}", headers=H)
    assert (await r.json())["items"] == [run]
    assert (await runs_of(client, flow, count="true")) == {"count": 1}
    assert (await runs_of(client, "other-flow"))["items"] == []
    for ghost in (f"{flow}.1", "nothing", f"{flow}.x"):
        r = await client.get(f"{BASE}/runs/{ghost}", headers=H)
        assert r.status == 404 and (await r.json())["status"] == 404
    await client.put("/api/v1/tenants/other", headers={"Authorization": H["Authorization"]})
    r = await client.get(f"{BASE}/runs/{run['id']}", headers={**H, "x-gw-ims-org-id": "other"})
    assert r.status == 404  # another org never sees it
    r = await client.get(f"{BASE}/runs/{run['id']}", headers={**H, "x-sandbox-name": "dev"})
    assert r.status == 404  # nor another sandbox


async def operator(aiohttp_server):
    got = []

    async def handle(request):
        got.append(json.loads(await request.read()))
        return web.Response()

    app = web.Application()
    app.router.add_post("/ops", handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    return got, f"http://127.0.0.1:{server.port}/ops"


async def test_ended_windows_are_closed_once_and_notified(
    client, deps, moto, tenant, aiohttp_server
):
    deps.sources = SourceState(deps.redis, deps.keys, window_seconds=1.0)
    deps.runs = RunStore(deps.redis, deps.keys, window_ms=1000)
    got, url = await operator(aiohttp_server)
    stream = "in-windows"
    devstack.create_stream(moto.url, stream, shards=1)
    put(moto.url, stream, [{"n": 1}, b"bad", {"n": 2}])
    flow = await make_flow(client, moto.url, stream)
    alerts = Alerts(url=url)
    made, tasks, done = await read_until(deps, client, flow, 3, readers=2, alerts=alerts)
    try:
        await wait_for(done)

        async def notified(n):
            r = await client.get(f"{BASE}/runs/notifications", headers=H)
            return len((await r.json())["items"]) >= n

        await wait_for(lambda: notified(1))
        await asyncio.sleep(1.2)  # the next window starts
        put(moto.url, stream, [{"n": 3}, {"n": 4}])
        await wait_for(lambda: notified(2))
        await asyncio.sleep(2.5)  # both readers look again: nothing is notified twice
    finally:
        await stop(made, tasks)
        await alerts.close()
    notes = (await (await client.get(f"{BASE}/runs/notifications", headers=H)).json())["items"]
    assert [n["topic"] for n in notes] == ["flow.run.success", "flow.run.failed"]  # newest first
    assert [n["inputRecordCount"] for n in notes] == [2, 3]
    assert notes[1]["failedRecordCount"] == 1 and notes[1]["flowId"] == flow
    assert sorted(e["topic"] for e in got) == ["flow.run.failed", "flow.run.success"]
    assert {e["tenant_id"] for e in got} == {"acme"}
    assert {e["data"]["runId"] for e in got} == {n["runId"] for n in notes}
    runs = (await runs_of(client, flow, orderby="+startTime"))["items"]
    assert [r["status"] for r in runs] == ["failed", "success"]
    read = sum(r["metrics"]["recordSummary"]["inputRecordCount"] for r in runs)
    assert read == (await flow_status(client, flow))["metrics"]["recordsRead"] == 5


def test_the_get_records_fast_path_gives_what_botocore_gives():
    model = get_session().get_service_model("kinesis").operation_model("GetRecords")
    body = orjson.dumps(
        {
            "Records": [
                {
                    "SequenceNumber": "4960",
                    "ApproximateArrivalTimestamp": 1764460800.125,
                    "Data": base64.b64encode(b'{"n": 1}').decode(),
                    "PartitionKey": "pk",
                },
                {
                    "SequenceNumber": "4961",
                    "ApproximateArrivalTimestamp": 1764460801,
                    "Data": "",
                    "PartitionKey": "pk2",
                    "EncryptionType": "NONE",
                },
            ],
            "NextShardIterator": "AAA",
            "MillisBehindLatest": 0,
            "ChildShards": [],
        }
    )
    parser = create_parser("json")
    headers = {"x-amzn-requestid": "r1"}
    expected = parser.parse(
        {"body": body, "status_code": 200, "headers": headers}, model.output_shape
    )
    response = {"body": body, "status_code": 200, "headers": headers}
    ours: dict = {}
    fast_get_records(response_dict=response, customized_response_dict=ours)
    got = parser.parse(response, model.output_shape)
    got.update(ours)
    for parsed in (expected, got):
        parsed.pop("ResponseMetadata", None)
    assert got == expected
    assert got["Records"][0]["ApproximateArrivalTimestamp"].utcoffset().total_seconds() == 0
    for status, raw in ((400, body), (200, b"not json"), (200, b'{"Records": [{"Data": 5}]}')):
        left = {"body": raw, "status_code": status, "headers": {}}
        extra: dict = {}
        fast_get_records(response_dict=left, customized_response_dict=extra)
        assert extra == {} and left["body"] == raw  # botocore parses (and judges) it
