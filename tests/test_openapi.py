"""The OpenAPI document: valid 3.1, complete, matching what the handlers really return,
and fuzzed with schemathesis against a live `outpost api` (no 5xx, every error in shape)."""

import asyncio
import os
import re
import subprocess
import sys

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from outpost.dev import devstack
from outpost.runtime import openapi_document as build
from tests.conftest import ADMIN_KEY, AES_SECRET, AUTH, kinesis_body

DOC = build()


def check(method, template, status, body):
    """Validate a response body against the document's schema for it."""
    op = DOC["paths"]["/api/v1" + template.split("?")[0]][method.lower()]
    response = op["responses"][str(status)]
    schema = response["content"]["application/json"]["schema"]
    Draft202012Validator({**schema, "components": DOC["components"]}).validate(body)


def test_document_is_valid_openapi_31():
    validate(DOC)
    assert DOC["openapi"] == "3.1.0"


async def test_served_document_and_docs_page(client):
    r = await client.get("/api/v1/openapi.json")  # public
    assert r.status == 200 and (await r.json())["paths"].keys() == DOC["paths"].keys()
    page = await (await client.get("/api/v1/docs")).text()
    assert 'data-spec="/api/v1/openapi.json"' in page  # rendered from the served document


async def test_real_responses_match_the_documented_schemas(client, worker, deps, moto, moto_stream):
    async def call(method, template, status, body=None, headers=AUTH, **ids):
        r = await client.request(
            method, "/api/v1" + template.format(**ids), json=body, headers=headers
        )
        assert r.status == status, await r.text()
        payload = await r.json()
        check(method, template, status, payload)
        return payload

    await call("GET", "/healthz", 200)
    await call("PUT", "/tenants/{tenant_id}", 201, {"metadata": {"a": "b"}}, tenant_id="acme")
    await call("PUT", "/tenants/{tenant_id}", 200, {"metadata": {"a": "c"}}, tenant_id="acme")
    await call("GET", "/tenants", 200)
    await call("GET", "/tenants/{tenant_id}", 200, tenant_id="acme")
    token = await call("GET", "/tenants/{tenant_id}/token", 200, tenant_id="acme")
    bad = await call(
        "POST",
        "/tenants/{tenant_id}/destinations",
        201,
        kinesis_body("missing", moto.url),
        tenant_id="acme",
    )
    good = await call(
        "POST",
        "/tenants/{tenant_id}/destinations",
        201,
        kinesis_body(moto_stream, moto.url),
        tenant_id="acme",
    )
    ids = {"tenant_id": "acme", "destination_id": good["id"]}
    await call("GET", "/tenants/{tenant_id}/destinations", 200, tenant_id="acme")
    await call(
        "PATCH",
        "/tenants/{tenant_id}/destinations/{destination_id}",
        200,
        {"metadata": {"team": "x"}},
        **ids,
    )
    await call("PUT", "/tenants/{tenant_id}/destinations/{destination_id}/disable", 200, **ids)
    await call("PUT", "/tenants/{tenant_id}/destinations/{destination_id}/enable", 200, **ids)
    await call(
        "POST",
        "/publish",
        202,
        {
            "tenant_id": "acme",
            "topic": "orders",
            "id": "e1",
            "eligible_for_retry": False,
            "data": {"n": 1},
        },
    )
    await worker.run_until_empty()
    await call("GET", "/events", 200)
    await call("GET", "/events/{event_id}", 200, event_id="e1")
    attempts = await call("GET", "/attempts", 200)
    await call("GET", "/attempts/{attempt_id}", 200, attempt_id=attempts["models"][0]["id"])
    page = await call(
        "GET",
        "/tenants/{tenant_id}/destinations/{destination_id}/attempts"
        "?include=event.data&include=destination",
        200,
        **ids,
    )
    await call(
        "GET",
        "/tenants/{tenant_id}/destinations/{destination_id}/attempts/{attempt_id}",
        200,
        attempt_id=page["models"][0]["id"],
        **ids,
    )
    await call("GET", "/tenants/{tenant_id}/dead-letters", 200, tenant_id="acme")
    await call(
        "POST",
        "/tenants/{tenant_id}/dead-letters/redrive",
        202,
        {"destination_id": bad["id"]},
        tenant_id="acme",
    )
    await call("POST", "/retry", 202, {"event_id": "e1", "destination_id": good["id"]})
    await call("GET", "/destination-types", 200)
    await call("GET", "/destination-types/{type}", 200, type="aws_kinesis")
    await call("GET", "/topics", 200)
    # errors have the documented error shape
    await call("GET", "/tenants/{tenant_id}", 404, tenant_id="ghost")
    await call("GET", "/tenants", 401, headers={})
    tenant_auth = {"Authorization": f"Bearer {token['token']}"}
    await call("POST", "/publish", 403, {"tenant_id": "acme", "data": {}}, headers=tenant_auth)
    await call(
        "POST", "/tenants/{tenant_id}/destinations", 422, {"type": "aws_kinesis"}, tenant_id="acme"
    )
    await call("DELETE", "/tenants/{tenant_id}/destinations/{destination_id}", 200, **ids)
    await call("DELETE", "/tenants/{tenant_id}", 200, tenant_id="acme")


@pytest.fixture
def live_api(tmp_path):
    redis = devstack.redis_server().start()
    port = devstack.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REDIS_"))}
    env.update(
        {
            "API_KEY": ADMIN_KEY,
            "AES_ENCRYPTION_SECRET": AES_SECRET,
            "API_JWT_SECRET": "j" * 40,
            "REDIS_URL": redis.redis_url,
            "API_HOST": "127.0.0.1",
            "API_PORT": str(port),
            "LOG_LEVEL": "error",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "outpost", "api"], env=env, stderr=subprocess.DEVNULL
    )
    try:
        devstack.wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        redis.stop()


async def test_schemathesis_finds_no_server_error(live_api, tmp_path):
    """Property-based fuzzing of every operation, the Flow Service's included: 0 responses
    >= 500, and every response (the 4xx included) matches its documented schema."""
    import urllib.request

    req = urllib.request.Request(f"{live_api}/api/v1/tenants/acme", method="PUT", headers=AUTH)
    await asyncio.to_thread(urllib.request.urlopen, req)
    exe = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    run = await asyncio.to_thread(
        subprocess.run,
        [
            exe,
            "run",
            f"{live_api}/api/v1/openapi.json",
            "-u",
            live_api,
            "-H",
            f"Authorization: Bearer {ADMIN_KEY}",
            "-H",  # the Flow Service routes act for this org (tenant): fuzz past the 404
            "x-gw-ims-org-id: acme",
            "-c",
            "not_a_server_error,response_schema_conformance",
            "-n",
            "25",
            "--seed",
            "42",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    summary = run.stdout[-3000:]
    assert run.returncode == 0, summary
    generated = re.search(r"(\d+) generated, (\d+) passed", summary)
    assert generated and generated.group(1) == generated.group(2), summary
    assert int(generated.group(1)) > 500
    print(f"\nschemathesis: {generated.group(0)}")
