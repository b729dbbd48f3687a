"""Explore with preview: an S3 object's first rows (JSON, JSON lines, CSV) with an
inferred schema, at most FLOW_PREVIEW_MAX_BYTES fetched of a 50 MB object; a single S3
file's entry; a Kinesis stream's latest records, on moto."""

import asyncio
import json

from outpost.dev import devstack
from outpost.flow.preview import infer_schema, rows_of
from outpost.flow.specs import S3
from tests.servers.s3_objects import BIG_KEY, BUCKET, PARQUET_KEY, PARQUET_ROWS
from tests.test_source import BASE, H, make_flow, put


def test_rows_and_schema_of_each_file_type():
    rows = rows_of(b"a,b\n1,x\n2.5,y\n3,\n", "delimited", 10, False)
    assert rows == [{"a": "1", "b": "x"}, {"a": "2.5", "b": "y"}, {"a": "3", "b": ""}]
    assert infer_schema(rows) == {
        "columns": [{"name": "a", "type": "number"}, {"name": "b", "type": "string"}]
    }
    cut = rows_of(b'{"n": 1}\n{"n": 2}\n{"n": 3, "par', "json", 10, True)
    assert cut == [{"n": 1}, {"n": 2}]  # the partial last line is dropped
    assert rows_of(b'[{"n": 1}, {"n": 2}, {"n": 3}]', "json", 2, False) == [{"n": 1}, {"n": 2}]
    mixed = [{"n": 1, "t": True, "o": {"x": 1}}, {"n": "two", "t": None, "l": [1]}]
    assert infer_schema(mixed)["columns"] == [
        {"name": "n", "type": "string"},
        {"name": "t", "type": "boolean"},
        {"name": "o", "type": "object"},
        {"name": "l", "type": "array"},
    ]


async def s3_connection(client, url):
    body = {
        "name": "files",
        "auth": {
            "specName": "Access Key",
            "params": {"s3AccessKey": "testing", "s3SecretKey": "testing", "serviceUrl": url},
        },
        "connectionSpec": {"id": S3, "version": "1.0"},
    }
    r = await client.post(f"{BASE}/connections", json=body, headers=H)
    assert r.status == 201, await r.text()
    return (await r.json())["id"]


async def explore(client, conn, **query):
    r = await client.get(f"{BASE}/connections/{conn}/explore", headers=H, params=query)
    return r.status, await r.json()


async def test_s3_previews_are_parsed_typed_and_bounded(client, deps, moto, s3_files):
    await client.put("/api/v1/tenants/acme", headers=H)
    conn = await s3_connection(client, moto.url)
    status, body = await explore(
        client,
        conn,
        objectType="file",
        object=f"{BUCKET}/in/table.csv",
        preview="true",
        fileType="delimited",
        previewRows="5",
    )
    assert status == 200 and body["format"] == "delimited"
    assert body["data"][0] == {"id": "1", "name": "ada", "score": "3.5"}
    assert body["schema"]["columns"][0] == {"name": "id", "type": "integer"}
    status, body = await explore(
        client, conn, objectType="file", object=f"{BUCKET}/in/events.jsonl", preview="true"
    )
    assert status == 200 and body["data"][0] == {"n": 1, "ok": True}
    assert body["data"][1]["_error"] == "not valid JSON"  # shown, not fatal
    status, body = await explore(
        client, conn, object=f"{BUCKET}/{BIG_KEY}", preview="true", previewRows="100"
    )
    assert status == 200 and len(body["data"]) == 100 and body["truncated"] is True
    assert [r["n"] for r in body["data"]] == list(range(100))
    status, [item] = await explore(client, conn, objectType="file", object=f"{BUCKET}/{BIG_KEY}")
    assert item["type"] == "file" and item["size"] == 50 * 1024 * 1024 and item["etag"]
    for bad in (
        {"previewRows": "0"},
        {"previewRows": "many"},
        {"fileType": "parquet"},
        {"object": ""},
        {"object": "no-such-bucket/x.json"},
    ):
        query = {"object": f"{BUCKET}/in/orders.json", "preview": "true", **bad}
        status, body = await explore(client, conn, **query)
        assert status == 400 and body["report"]["detailed-message"], (bad, body)


async def test_a_parquet_preview_has_rows_and_the_files_schema(client, deps, moto, s3_files):
    await client.put("/api/v1/tenants/acme", headers=H)
    conn = await s3_connection(client, moto.url)
    query = {"object": f"{BUCKET}/{PARQUET_KEY}", "preview": "true", "fileType": "parquet"}
    status, body = await explore(client, conn, **query, previewRows="3")
    assert status == 200 and body["format"] == "parquet" and body["truncated"] is True, body
    assert [r["id"] for r in body["data"]] == [0, 1, 2]
    assert body["data"][1]["price"] == 1.1 and body["data"][1]["raw"] == "Af8="
    assert body["data"][1]["at_ns"] == "2023-11-14T22:13:21.123456789Z"
    columns = {c["name"]: c["type"] for c in body["schema"]["columns"]}
    assert columns == {
        "id": "integer",
        "name": "string",
        "price": "number",
        "at_ns": "string",
        "at_s": "string",
        "day": "string",
        "raw": "string",
        "tags": "object",
        "score": "number",
        "ok": "boolean",
    }
    status, body = await explore(client, conn, **query, previewRows="100")
    assert status == 200 and len(body["data"]) == PARQUET_ROWS and body["truncated"] is False
    assert "_error" in body["data"][7]  # the row that cannot be read is shown, not fatal
    status, body = await explore(client, conn, **{**query, "object": f"{BUCKET}/pq/broken.parquet"})
    assert status == 400 and "not a readable parquet file" in body["report"]["detailed-message"]


async def test_a_kinesis_preview_shows_the_latest_records(client, deps, moto):
    await client.put("/api/v1/tenants/acme", headers=H)
    stream = "in-preview"
    devstack.create_stream(moto.url, stream, shards=2)
    put(moto.url, stream, [{"n": i} for i in range(30)])
    await make_flow(client, moto.url, stream)
    [conn] = (await (await client.get(f"{BASE}/connections", headers=H)).json())["items"]
    status, body = await asyncio.wait_for(
        explore(client, conn["id"], object=stream, preview="true", previewRows="5"), 30
    )
    assert status == 200, body
    assert [r["n"] for r in body["data"]] == [25, 26, 27, 28, 29]
    assert body["schema"] == {"columns": [{"name": "n", "type": "integer"}]}
    assert json.dumps(body).count("secret") == 0


def test_a_parquet_preview_fetches_no_byte_past_its_budget():
    import pytest

    from outpost.flow.parquet import RangedObject, TooMuch

    file = RangedObject(None, {"Size": 100, "Key": "k"}, None, budget=40)
    file.seek(-8, 2)
    assert file.tell() == 92 and file.seek(0) == 0
    with pytest.raises(TooMuch):  # 50 bytes of a budget of 40: refused before any GET
        file.read(50)
