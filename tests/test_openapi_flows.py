"""The Flow Service part of the OpenAPI document matches what the handlers really take and
return: each request body below validates against its documented schema, and each response
(the errors included) against the documented response for its status."""

from jsonschema import Draft202012Validator

from outpost.flow.specs import KINESIS, PIPELINE, STREAMING_FLOW
from outpost.runtime import openapi_document as build
from tests.conftest import ADMIN_KEY

DOC = build()
BASE = "/data/foundation/flowservice"
H = {"Authorization": f"Bearer {ADMIN_KEY}", "x-gw-ims-org-id": "acme"}


def schema_check(schema, value):
    Draft202012Validator({**schema, "components": DOC["components"]}).validate(value)


async def call(client, method, template, status, body=None, headers=H, **ids):
    op = DOC["paths"][BASE + template.split("?")[0]][method.lower()]
    if body is not None:
        schema_check(op["requestBody"]["content"]["application/json"]["schema"], body)
    url = BASE + template.format(**ids)
    r = await client.request(method, url, json=body, headers=headers)
    assert r.status == status, await r.text()
    response = op["responses"][str(status)]
    if "content" not in response:
        assert await r.read() == b""
        return None
    payload = await r.json()
    schema_check(response["content"]["application/json"]["schema"], payload)
    return payload


async def test_flow_responses_match_the_document(client, moto, moto_stream):
    await client.put("/api/v1/tenants/acme", headers=H)
    specs = await call(client, "GET", "/connectionSpecs", 200)
    await call(client, "GET", "/connectionSpecs/{id}", 200, id=specs["items"][0]["id"])
    auth = {"accessKeyId": "a", "secretKey": "b", "region": "us-east-1", "endpoint": moto.url}
    conn = await call(
        client,
        "POST",
        "/connections",
        201,
        {
            "name": "k",
            "auth": {"specName": "Aws Kinesis authentication credentials", "params": auth},
            "connectionSpec": {"id": KINESIS, "version": "1.0"},
        },
    )
    await call(client, "GET", "/connections/{id}", 200, id=conn["id"])
    await call(client, "GET", "/connections/{id}/test", 200, id=conn["id"])
    streams = await call(client, "GET", "/connections/{id}/explore", 200, id=conn["id"])
    assert any(s.get("name") == moto_stream for s in streams)
    src = await call(
        client,
        "POST",
        "/sourceConnections",
        201,
        {
            "name": "s",
            "baseConnectionId": conn["id"],
            "connectionSpec": {"id": KINESIS, "version": "1.0"},
            "params": {"stream": moto_stream, "reset": "earliest"},
        },
    )
    tgt = await call(
        client,
        "POST",
        "/targetConnections",
        201,
        {"name": "t", "connectionSpec": {"id": PIPELINE}, "params": {"topic": "orders"}},
    )
    flow = await call(
        client,
        "POST",
        "/flows",
        201,
        {
            "name": "f",
            "flowSpec": {"id": STREAMING_FLOW, "version": "1.0"},
            "sourceConnectionIds": [src["id"]],
            "targetConnectionIds": [tgt["id"]],
        },
    )
    await call(client, "GET", "/flows/{id}", 200, id=flow["id"])
    await call(client, "POST", "/flows/{id}/action?op=disable", 200, id=flow["id"])
    for kind in ("connections", "sourceConnections", "targetConnections", "flows"):
        await call(client, "GET", f"/{kind}", 200)
        await call(client, "GET", f"/{kind}?count=true", 200)
    patch = [{"op": "replace", "path": "/name", "value": "renamed"}]
    etag = {**H, "If-Match": tgt["etag"]}
    await call(client, "PATCH", "/targetConnections/{id}", 200, patch, headers=etag, id=tgt["id"])
    # errors: the documented {type, title, status, report} shape
    await call(client, "PATCH", "/targetConnections/{id}", 412, patch, headers=etag, id=tgt["id"])
    await call(client, "DELETE", "/sourceConnections/{id}", 400, id=src["id"])  # in use
    await call(client, "GET", "/flows/{id}", 404, id="ghost")
    await call(client, "GET", "/flows", 404, headers={**H, "x-gw-ims-org-id": "nobody"})
    await call(client, "GET", "/flows", 401, headers={"x-gw-ims-org-id": "acme"})
    await call(client, "DELETE", "/flows/{id}", 204, id=flow["id"])


async def test_a_connection_spec_id_that_is_not_a_string_is_a_400(client):
    """Found by schemathesis: `connectionSpec.id: {}` was an unhashable key -> 500."""
    await client.put("/api/v1/tenants/acme", headers=H)
    for kind, body in (
        ("connections", {"name": "c", "auth": {}, "connectionSpec": {"id": {}}}),
        ("targetConnections", {"name": "t", "connectionSpec": {"id": []}, "params": {}}),
    ):
        r = await client.post(f"{BASE}/{kind}", json=body, headers=H)
        payload = await r.json()
        assert r.status == 400 and "connectionSpec.id" in payload["report"]["detailed-message"]
