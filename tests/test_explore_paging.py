"""Issue 14 item 7: exploring a Kinesis connection against a server that always answers
HasMoreStreams=true stops after FLOW_EXPLORE_MAX_PAGES pages (or FLOW_EXPLORE_SECONDS):
the streams found so far, then one `continuation` entry whose `path` is the name to
continue from (`explore?objectType=root&object=<path>`)."""

import asyncio
import json

from aiohttp import web

from outpost.flow import connectors
from tests.test_redirects import Local
from tests.test_source import BASE, H, make_flow


async def test_endless_stream_listing_is_capped_with_a_continuation(client, deps):
    starts: list[str | None] = []

    async def endless(request: web.Request) -> web.Response:
        start = json.loads(await request.read()).get("ExclusiveStartStreamName")
        starts.append(start)
        n = len(starts)
        names = [f"s{n:05d}-{i}" for i in range(3)]
        return web.json_response({"StreamNames": names, "HasMoreStreams": True})

    async with Local(endless) as endpoint:
        await client.put("/api/v1/tenants/acme", headers=H)
        await make_flow(client, endpoint.url, "s")
        [conn] = (await (await client.get(f"{BASE}/connections", headers=H)).json())["items"]
        url = f"{BASE}/connections/{conn['id']}/explore?objectType=root"
        r = await asyncio.wait_for(client.get(url, headers=H), 30)
        items = await r.json()
        assert r.status == 200, items
        pages = deps.settings.flow_explore_max_pages
        assert len(starts) == pages
        *streams, more = items
        assert len(streams) == 3 * pages and all(s["type"] == "stream" for s in streams)
        assert more["type"] == "continuation" and more["path"] == streams[-1]["name"]
        # continuing starts after the last stream shown
        r = await client.get(f"{url}&object={more['path']}", headers=H)
        assert r.status == 200 and starts[pages] == more["path"]


async def test_time_cap(deps):
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.2)
        return web.json_response({"StreamNames": [f"x{id(request)}"], "HasMoreStreams": True})

    async with Local(slow) as endpoint:
        params = {"accessKeyId": "a", "secretKey": "b", "region": "us-east-1"}
        params["endpoint"] = endpoint.url
        limits = connectors.ExploreLimits(max_pages=1000, seconds=0.5)
        items = await asyncio.wait_for(
            connectors.explore(connectors.KINESIS, params, "root", None, deps.endpoints, limits),
            10,
        )
    assert 1 <= endpoint.hits <= 4 and items[-1]["type"] == "continuation"


S3_PAGE = """<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
<Name>b</Name><Prefix>in/</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys>
<Delimiter>/</Delimiter><IsTruncated>true</IsTruncated>
<NextContinuationToken>t{n}</NextContinuationToken>
<Contents><Key>in/k{n:05d}a</Key><Size>1</Size></Contents>
<Contents><Key>in/k{n:05d}b</Key><Size>1</Size></Contents>
</ListBucketResult>"""


async def test_endless_s3_folder_listing_is_capped_with_a_continuation(deps):
    """An S3 server that always answers IsTruncated=true: the folder listing stops after
    the page cap with a `continuation` naming the last key; `start_after` goes on there."""
    seen: list[dict[str, str]] = []

    async def endless(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        return web.Response(text=S3_PAGE.format(n=len(seen)), content_type="application/xml")

    params = {"s3AccessKey": "a", "s3SecretKey": "b", "region": "us-east-1"}
    limits = connectors.ExploreLimits(max_pages=4, seconds=30)
    async with Local(endless) as endpoint:
        params["serviceUrl"] = endpoint.url
        explore = connectors.explore(
            connectors.S3, params, "folder", "b/in/", deps.endpoints, limits
        )
        *files, more = await asyncio.wait_for(explore, 20)
        assert len(seen) == 4 and [f["name"] for f in files[:2]] == ["k00001a", "k00001b"]
        assert len(files) == 8 and all(f["type"] == "file" for f in files)
        assert more["type"] == "continuation" and more["path"] == "b/in/k00004b"
        assert seen[1]["continuation-token"] == "t1"
        again = connectors.explore(
            connectors.S3, params, "folder", "b/in/", deps.endpoints, limits, "in/k00004b"
        )
        await asyncio.wait_for(again, 20)
        assert seen[4]["start-after"] == "in/k00004b"
