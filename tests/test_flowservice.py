"""The Flow Service surface: seeds 000 and 001 verbatim (their request bodies are copied
into tests/fixtures/flow_seeds.json; only the host and the {PLACEHOLDERS} change), specs,
validation, the PATCH/etag cycle, listing, org/sandbox isolation, test and explore on
local servers."""

import json
import re
from pathlib import Path

import boto3
import pytest

from outpost.dev import devstack
from outpost.flow.specs import KINESIS, PIPELINE, S3, STREAMING_FLOW
from tests.conftest import ADMIN_KEY

SEEDS = json.loads((Path(__file__).parent / "fixtures" / "flow_seeds.json").read_text())
BASE = "/data/foundation/flowservice"
FILL = {
    "{ACCESS_KEY_ID}": "AKIAFLOWSERVICETEST",
    "{SECRET_KEY}": "kinesis-secret-value-123",
    "{REGION}": "us-east-1",
    "{S3_ACCESS_KEY}": "AKIAS3ACCESSKEY",
    "{S3_SECRET_KEY}": "s3-secret-value-456",
}


def seed_bodies(name):
    """The -d '...' bodies of a seed's curl commands, placeholders filled."""
    bodies = []
    for body in SEEDS[name]:
        raw = json.dumps(body)
        for k, v in FILL.items():
            raw = raw.replace(k, v)
        bodies.append(json.loads(raw))
    return bodies


def headers(org="acme", sandbox="prod", token=ADMIN_KEY):
    """Seed headers: Authorization, x-api-key, x-gw-ims-org-id, x-sandbox-name."""
    return {
        "Authorization": f"Bearer {token}",
        "x-api-key": "outpost",
        "x-gw-ims-org-id": org,
        "x-sandbox-name": sandbox,
        "Content-Type": "application/json",
    }


@pytest.fixture
async def fs(client):
    for t in ("acme", "globex"):
        await client.put(f"/api/v1/tenants/{t}", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    return client


async def post(client, kind, body, expect=201, **h):
    r = await client.post(f"{BASE}/{kind}", json=body, headers=headers(**h))
    text = await r.text()
    assert r.status == expect, text
    return json.loads(text) if text else None


async def get_item(client, kind, rid, **h):
    r = await client.get(f"{BASE}/{kind}/{rid}", headers=headers(**h))
    assert r.status == 200, await r.text()
    [item] = (await r.json())["items"]
    return item


def assert_flow_error(body, status):
    assert set(body) == {"type", "title", "status", "report"}
    assert body["status"] == status and body["type"].endswith(f"-{status}")
    assert re.search(r"/FLOW-\d+-\d+$", body["type"])
    assert body["report"]["detailed-message"] and body["report"]["request-id"]


async def test_seed_000_kinesis_base_and_source_connection(fs, redis):
    connection_body, source_body = seed_bodies("000")
    created = await post(fs, "connections", connection_body)
    assert set(created) == {"id", "etag"}
    assert created["etag"].startswith('"') and created["etag"].endswith('"')
    source_body["baseConnectionId"] = created["id"]  # the seed shows its own example id
    source_body["params"]["stream"] = "orders-stream"  # the seed's {STREAM}
    source = await post(fs, "sourceConnections", source_body)
    item = await get_item(fs, "connections", created["id"])
    assert item["auth"]["params"]["accessKeyId"] == "AKIAFLOWSERVICETEST"
    assert item["auth"]["params"]["secretKey"] == "********"
    assert item["connectionSpec"]["id"] == KINESIS and item["state"] == "enabled"
    assert item["imsOrgId"] == "acme" and item["sandboxName"] == "prod"
    assert isinstance(item["createdAt"], int) and item["createdAt"] > 10**12  # epoch ms
    assert item["etag"] == item["version"] == created["etag"]
    src = await get_item(fs, "sourceConnections", source["id"])
    assert src["params"] == {"stream": "orders-stream", "dataType": "raw", "reset": "latest"}
    assert src["data"] == {"format": "json"}
    everything = b" ".join(
        [k for k in await redis.keys("*")]
        + [repr(await redis.hgetall(k)).encode() for k in await redis.keys("*fs:*")]
    )
    assert b"kinesis-secret-value-123" not in everything


async def test_seed_001_s3_base_connection_test_and_explore(fs, moto, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto.url)
    s3 = boto3.client("s3", endpoint_url=moto.url, **devstack.FAKE_AWS)
    s3.create_bucket(Bucket="flow-bucket")
    for key in ("top.json", "2024/01/a.json", "2024/01/b.json", "2024/readme.txt"):
        s3.put_object(Bucket="flow-bucket", Key=key, Body=b"{}")
    [body] = seed_bodies("001")
    created = await post(fs, "connections", body)
    item = await get_item(fs, "connections", created["id"])
    assert (
        item["connectionSpec"]["id"] == S3 and item["auth"]["params"]["s3SecretKey"] == "********"
    )
    r = await fs.get(f"{BASE}/connections/{created['id']}/test", headers=headers())
    assert await r.json() == {"result": True}
    root = await (
        await fs.get(
            f"{BASE}/connections/{created['id']}/explore?objectType=root", headers=headers()
        )
    ).json()
    assert {
        "type": "folder",
        "name": "flow-bucket",
        "path": "flow-bucket/",
        "canPreview": False,
        "canFetchSchema": False,
    } in root
    url = f"{BASE}/connections/{created['id']}/explore?objectType=folder&object=flow-bucket/"
    top = await (await fs.get(url, headers=headers())).json()
    assert {(i["type"], i["name"]) for i in top} == {("folder", "2024"), ("file", "top.json")}
    deeper = await (await fs.get(url + "2024/", headers=headers())).json()
    assert {(i["type"], i["path"]) for i in deeper} == {
        ("folder", "flow-bucket/2024/01/"),
        ("file", "flow-bucket/2024/readme.txt"),
    }


async def test_kinesis_test_and_explore_on_local_kinesis(fs, moto, moto_stream):
    conn = await post(
        fs,
        "connections",
        {
            "name": "k",
            "auth": {
                "specName": "Aws Kinesis authentication credentials",
                "params": {
                    "accessKeyId": "a",
                    "secretKey": "b",
                    "region": "us-east-1",
                    "endpoint": moto.url,
                },
            },
            "connectionSpec": {"id": KINESIS, "version": "1.0"},
        },
    )
    r = await fs.get(f"{BASE}/connections/{conn['id']}/test", headers=headers())
    assert await r.json() == {"result": True}
    streams = await (
        await fs.get(f"{BASE}/connections/{conn['id']}/explore?objectType=root", headers=headers())
    ).json()
    assert moto_stream in {s["name"] for s in streams}
    dead = await post(
        fs,
        "connections",
        {
            "name": "dead",
            "auth": {
                "specName": "Aws Kinesis authentication credentials",
                "params": {
                    "accessKeyId": "a",
                    "secretKey": "b",
                    "region": "us-east-1",
                    "endpoint": f"http://127.0.0.1:{devstack.free_port()}",
                },
            },
            "connectionSpec": {"id": KINESIS, "version": "1.0"},
        },
    )
    r = await fs.get(f"{BASE}/connections/{dead['id']}/test", headers=headers())
    assert await r.json() == {"result": False}


async def test_connection_specs(fs):
    r = await fs.get(f"{BASE}/connectionSpecs", headers=headers())
    specs = {s["id"]: s for s in (await r.json())["items"]}
    assert set(specs) == {KINESIS, S3, PIPELINE}
    kinesis_auth = specs[KINESIS]["authSpec"][0]
    assert kinesis_auth["name"] == "Aws Kinesis authentication credentials"
    assert kinesis_auth["spec"]["properties"]["secretKey"]["format"] == "password"
    assert specs[S3]["authSpec"][0]["spec"]["properties"]["s3SecretKey"]["format"] == "password"
    assert set(specs[KINESIS]["sourceSpec"]["spec"]["properties"]) == {
        "stream",
        "dataType",
        "reset",
    }
    one = await (await fs.get(f"{BASE}/connectionSpecs/{S3}", headers=headers())).json()
    assert one["items"][0]["name"] == "amazon-s3"
    r = await fs.get(f"{BASE}/connectionSpecs/nope", headers=headers())
    assert r.status == 404
    assert_flow_error(await r.json(), 404)


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda b: b["auth"].update(specName="Nope"), "auth.specName must be one of"),
        (lambda b: b["auth"]["params"].pop("region"), "auth.params.region is required"),
        (lambda b: b["auth"]["params"].update(bogus="x"), "auth.params.bogus is not a known"),
        (lambda b: b["auth"]["params"].update(region="mars"), "auth.params.region"),
        (lambda b: b["connectionSpec"].update(id="0000"), "connectionSpec.id '0000'"),
        (lambda b: b.pop("name"), "name is required"),
        (lambda b: b.update(providerId="someone-else"), "providerId must be"),
        (lambda b: b.update(extra=1), "extra is not a known field"),
    ],
)
async def test_connection_validation_names_the_problem(fs, mutate, needle):
    body, _ = seed_bodies("000")
    mutate(body)
    err = await post(fs, "connections", body, expect=400)
    assert_flow_error(err, 400)
    assert needle in err["report"]["detailed-message"], err


async def test_patch_etag_cycle(fs):
    body, _ = seed_bodies("000")
    created = await post(fs, "connections", body)
    url = f"{BASE}/connections/{created['id']}"
    ops = [
        {"op": "replace", "path": "/name", "value": "renamed"},
        {"op": "replace", "path": "/auth/params/secretKey", "value": "rotated-secret-789"},
    ]
    r = await fs.patch(url, json=ops, headers=headers())
    assert r.status == 400 and "If-Match" in (await r.json())["report"]["detailed-message"]
    r = await fs.patch(url, json=ops, headers={**headers(), "If-Match": '"stale"'})
    assert r.status == 412
    assert_flow_error(await r.json(), 412)
    r = await fs.patch(url, json=ops, headers={**headers(), "If-Match": created["etag"]})
    assert r.status == 200
    second = await r.json()
    assert second["id"] == created["id"] and second["etag"] != created["etag"]
    item = await get_item(fs, "connections", created["id"])
    assert item["name"] == "renamed" and item["etag"] == second["etag"]
    assert item["auth"]["params"]["secretKey"] == "********"
    r = await fs.patch(url, json=ops, headers={**headers(), "If-Match": created["etag"]})
    assert r.status == 412  # the first etag is stale now
    bad = [{"op": "replace", "path": "/connectionSpec/id", "value": S3}]
    r = await fs.patch(url, json=bad, headers={**headers(), "If-Match": second["etag"]})
    assert r.status == 400
    r = await fs.patch(
        url,
        json=[{"op": "remove", "path": "/auth/params/region"}],
        headers={**headers(), "If-Match": second["etag"]},
    )
    assert r.status == 400 and "auth.params.region is required" in await r.text()


async def test_listing(fs):
    body, _ = seed_bodies("000")
    for name in ("alpha", "bravo", "charlie", "delta", "echo"):
        await post(fs, "connections", {**body, "name": name})
    q = await fs.get(f"{BASE}/connections?count=true", headers=headers())
    assert await q.json() == {"count": 5}
    names, url = [], f"{BASE}/connections?limit=2&orderby=name"
    while url:
        page = await (await fs.get(url, headers=headers())).json()
        names += [i["name"] for i in page["items"]]
        nxt = page["_links"].get("next")
        url = f"{BASE}{nxt['href']}&orderby=name" if nxt else None
    assert names == ["alpha", "bravo", "charlie", "delta", "echo"]
    some = await (
        await fs.get(f"{BASE}/connections?property=name==bravo,delta", headers=headers())
    ).json()
    assert sorted(i["name"] for i in some["items"]) == ["bravo", "delta"]
    both = await (
        await fs.get(
            f"{BASE}/connections?property=name!=bravo&property=name!=alpha&orderby=-name",
            headers=headers(),
        )
    ).json()
    assert [i["name"] for i in both["items"]] == ["echo", "delta", "charlie"]


async def test_org_and_sandbox_isolation(fs, deps):
    body, _ = seed_bodies("000")
    created = await post(fs, "connections", body)
    rid = created["id"]
    for h in ({"org": "globex"}, {"sandbox": "dev"}):
        r = await fs.get(f"{BASE}/connections/{rid}", headers=headers(**h))
        assert r.status == 404
        listed = await (await fs.get(f"{BASE}/connections", headers=headers(**h))).json()
        assert listed["items"] == []
    no_org = {k: v for k, v in headers().items() if k != "x-gw-ims-org-id"}
    r = await fs.get(f"{BASE}/connections", headers=no_org)
    assert r.status == 400
    assert_flow_error(await r.json(), 400)
    assert (await fs.get(f"{BASE}/connections", headers=headers(org="ghost"))).status == 404
    acme_token = deps.tokens.issue("acme")
    r = await fs.get(f"{BASE}/connections/{rid}", headers=headers(token=acme_token))
    assert r.status == 200
    r = await fs.get(f"{BASE}/connections", headers=headers(org="globex", token=acme_token))
    assert r.status == 403
    r = await fs.get(f"{BASE}/connections", headers=headers(token="garbage"))
    assert r.status == 401
    assert_flow_error(await r.json(), 401)
    _, source = seed_bodies("000")
    source["baseConnectionId"] = rid
    err = await post(fs, "sourceConnections", source, expect=400, sandbox="dev")
    assert "baseConnectionId" in err["report"]["detailed-message"]


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda b: b["params"].update(reset="sometimes"), "params.reset"),
        (lambda b: b["params"].update(dataType="csv"), "params.dataType"),
        (lambda b: b["params"].pop("stream"), "params.stream is required"),
        (lambda b: b["data"].update(format="parquet"), "data.format must be one of"),
        (lambda b: b.update(baseConnectionId="nope"), "baseConnectionId nope"),
    ],
)
async def test_source_connection_validation(fs, mutate, needle):
    base, source = seed_bodies("000")
    source["baseConnectionId"] = (await post(fs, "connections", base))["id"]
    source["params"]["stream"] = "s"
    mutate(source)
    err = await post(fs, "sourceConnections", source, expect=400)
    assert needle in err["report"]["detailed-message"], err


async def test_targets_flows_actions_and_delete_protection(fs):
    base, source = seed_bodies("000")
    conn = (await post(fs, "connections", base))["id"]
    source["baseConnectionId"] = conn
    source["params"]["stream"] = "orders-stream"
    src = (await post(fs, "sourceConnections", source))["id"]
    tgt = (
        await post(
            fs,
            "targetConnections",
            {
                "name": "pipeline",
                "connectionSpec": {"id": PIPELINE, "version": "1.0"},
                "params": {"topic": "orders"},
            },
        )
    )["id"]
    flow = await post(
        fs,
        "flows",
        {
            "name": "kinesis to orders",
            "flowSpec": {"id": STREAMING_FLOW, "version": "1.0"},
            "sourceConnectionIds": [src],
            "targetConnectionIds": [tgt],
        },
    )
    r = await fs.post(f"{BASE}/flows/{flow['id']}/action?op=disable", headers=headers())
    assert r.status == 200 and (await r.json())["etag"] != flow["etag"]
    assert (await get_item(fs, "flows", flow["id"]))["state"] == "disabled"
    r = await fs.post(f"{BASE}/flows/{flow['id']}/action?op=pause", headers=headers())
    assert r.status == 400
    for kind, rid in (
        ("connections", conn),
        ("sourceConnections", src),
        ("targetConnections", tgt),
    ):
        r = await fs.delete(f"{BASE}/{kind}/{rid}", headers=headers())
        assert r.status == 400 and "in use" in (await r.json())["report"]["detailed-message"]
    for kind, rid in (
        ("flows", flow["id"]),
        ("sourceConnections", src),
        ("targetConnections", tgt),
        ("connections", conn),
    ):
        r = await fs.delete(f"{BASE}/{kind}/{rid}", headers=headers())
        assert r.status == 204, (kind, await r.text())
    err = await post(
        fs,
        "flows",
        {
            "name": "x",
            "flowSpec": {"id": "nope", "version": "1.0"},
            "sourceConnectionIds": [src],
            "targetConnectionIds": [tgt],
        },
        expect=400,
    )
    assert "flowSpec.id" in err["report"]["detailed-message"]


async def test_s3_test_uses_head_bucket_when_a_bucket_is_named(fs, moto, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto.url)
    boto3.client("s3", endpoint_url=moto.url, **devstack.FAKE_AWS).create_bucket(Bucket="here")
    [body] = seed_bodies("001")
    for bucket, expected in (("here", True), ("not-here", False)):
        b = json.loads(json.dumps(body))
        b["auth"]["params"]["bucketName"] = bucket
        created = await post(fs, "connections", b)
        r = await fs.get(f"{BASE}/connections/{created['id']}/test", headers=headers())
        assert await r.json() == {"result": expected}


async def test_target_topic_is_checked_against_topics(aiohttp_client, redis, redis_server):
    from outpost.deps import Deps
    from outpost.runtime import create_app
    from tests.conftest import make_settings

    s = make_settings(redis_server.redis_url, topics=["orders"])
    c = await aiohttp_client(create_app(s, Deps.build(s, redis), run_promoter=False))
    await c.put("/api/v1/tenants/acme", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    body = {
        "name": "t",
        "connectionSpec": {"id": PIPELINE, "version": "1.0"},
        "params": {"topic": "users"},
    }
    err = await post(c, "targetConnections", body, expect=400)
    assert "TOPICS" in err["report"]["detailed-message"]
    await post(c, "targetConnections", {**body, "params": {"topic": "orders"}})
