"""Hookdeck's official SDKs (Python `outpost-sdk`, TypeScript `@hookdeck/outpost-sdk`)
create, read, update and delete webhook and hookdeck destinations on a live
`outpost all`, and a webhook event arrives signed at the real HTTP receiver. The SDKs
validate each response against Outpost's contract; a response they reject fails."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from outpost_sdk import Outpost

from outpost.dev import devstack
from tests.conftest import ADMIN_KEY
from tests.servers.http_receiver import Receiver
from tests.servers.service import outpost_all
from tests.test_sdk import wait_for

NODE_CACHE = Path(os.environ.get("OUTPOST_NODE_CACHE", Path.home() / ".cache" / "outpost-node"))
TOKEN = base64.b64encode(b"src_sdk01:key-1").decode()


@pytest.fixture(scope="module")
def live_http(http_receiver: Receiver) -> Iterator[str]:
    receiver = {"DESTINATIONS_HOOKDECK_URL": http_receiver.url}
    receiver["DESTINATIONS_HOOKDECK_API_URL"] = http_receiver.url
    with outpost_all(**receiver) as url:
        yield url


def test_python_sdk_webhook_crud_and_a_signed_delivery(live_http, http_receiver):
    sdk = Outpost(api_key=ADMIN_KEY, server_url=live_http)
    sdk.tenants.upsert(tenant_id="sdk-http")
    path = http_receiver.path()
    config = {"url": http_receiver.url + path, "custom_headers": '{"x-team":"a"}'}
    dest = sdk.destinations.create(
        tenant_id="sdk-http", body={"type": "webhook", "topics": ["orders"], "config": config}
    )
    secret = dest.credentials.secret
    assert secret.startswith("whsec_") and dest.config.url == config["url"]
    got = sdk.destinations.get(tenant_id="sdk-http", destination_id=dest.id)
    assert got.credentials.secret == secret
    rotated = sdk.destinations.update(
        tenant_id="sdk-http",
        destination_id=dest.id,
        body={"type": "webhook", "credentials": {"rotate_secret": True}},
    )
    assert rotated.credentials.previous_secret == secret
    assert rotated.credentials.previous_secret_invalid_at is not None
    sdk.publish(request={"tenant_id": "sdk-http", "topic": "orders", "id": "w1", "data": {"a": 1}})
    [r] = wait_for(lambda: http_receiver.delivered(path, 1, timeout=0.1))
    keys = [rotated.credentials.secret, secret]
    sigs = [hmac.new(k.encode(), r.body, hashlib.sha256).hexdigest() for k in keys]
    assert r.headers["x-outpost-signature"] == "v0=" + ",".join(sigs)
    assert r.headers["x-team"] == "a"
    assert [d.id for d in sdk.destinations.list(tenant_id="sdk-http")] == [dest.id]
    types = {t.type for t in sdk.schemas.list_destination_types()}
    assert {"webhook", "hookdeck"} <= types
    sdk.destinations.delete(tenant_id="sdk-http", destination_id=dest.id)
    assert sdk.destinations.list(tenant_id="sdk-http") == []


def test_python_sdk_hookdeck_crud(live_http):
    sdk = Outpost(api_key=ADMIN_KEY, server_url=live_http)
    sdk.tenants.upsert(tenant_id="sdk-hd")
    body = {"type": "hookdeck", "topics": "*", "credentials": {"token": TOKEN}}
    dest = sdk.destinations.create(tenant_id="sdk-hd", body=body)
    assert dest.credentials.token == TOKEN[:4] + "******"
    assert sdk.schemas.get_destination_type(type_="hookdeck").type == "hookdeck"
    other = base64.b64encode(b"src_sdk01:key-2").decode()
    updated = sdk.destinations.update(
        tenant_id="sdk-hd",
        destination_id=dest.id,
        body={"type": "hookdeck", "credentials": {"token": other}},
    )
    assert updated.credentials.token == other[:4] + "******"
    assert sdk.destinations.get(tenant_id="sdk-hd", destination_id=dest.id).id == dest.id
    sdk.destinations.delete(tenant_id="sdk-hd", destination_id=dest.id)


def test_typescript_sdk_webhook_and_hookdeck_crud(live_http, http_receiver):
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed: the TypeScript SDK runs where node is (CI has it)")
    devstack.npm_install(NODE_CACHE, "@hookdeck/outpost-sdk", "@hookdeck/outpost-sdk@1.6.0")
    script = NODE_CACHE / "ts_sdk_http.mjs"  # beside node_modules, so the import resolves
    shutil.copy(Path(__file__).with_name("ts_sdk_http.mjs"), script)
    env = {
        **os.environ,
        "OUTPOST_URL": live_http,
        "OUTPOST_KEY": ADMIN_KEY,
        "WEBHOOK_URL": http_receiver.url + http_receiver.path(),
        "HOOKDECK_TOKEN": TOKEN,
    }
    run = subprocess.run([node, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "TS SDK HTTP OK" in run.stdout
