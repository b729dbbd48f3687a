"""Hookdeck's official SDKs (Python `outpost-sdk`, TypeScript `@hookdeck/outpost-sdk`)
create, read, update and delete a `kafka` and a `gcp_pubsub` destination against a live
`outpost all`, and an event published through the SDK arrives at the real server (Tansu
behind its SASL front; the Pub/Sub emulator). The SDKs validate every response against
Outpost's contract."""

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from outpost_sdk import Outpost

from outpost.dev import devstack
from tests.conftest import ADMIN_KEY, NODE_CACHE
from tests.servers.kafka import USERS
from tests.servers.pubsub import PROJECT, service_account
from tests.servers.service import outpost_all


@pytest.fixture(scope="module")
def live():
    with outpost_all(TOPICS="orders,users") as url:
        yield url


def wait_for(fn, limit=20.0):
    deadline = time.monotonic() + limit
    while True:
        result = fn()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def crud(sdk, tenant, create, rotate, check_masked):
    """Create, read, list, update (rotated credentials), publish one event, delete."""
    sdk.tenants.upsert(tenant_id=tenant)
    dest = sdk.destinations.create(tenant_id=tenant, body=create)
    check_masked(dest.credentials)
    assert sdk.destinations.get(tenant_id=tenant, destination_id=dest.id).id == dest.id
    assert [d.id for d in sdk.destinations.list(tenant_id=tenant)] == [dest.id]
    updated = sdk.destinations.update(
        tenant_id=tenant, destination_id=dest.id, body={"type": create["type"], **rotate}
    )
    check_masked(updated.credentials)
    pub = sdk.publish(
        request={"tenant_id": tenant, "topic": "orders", "id": f"{tenant}-1", "data": {"n": 1}}
    )
    assert pub.destination_ids == [dest.id]
    attempts = wait_for(lambda: sdk.attempts.list(request={"tenant_id": tenant}).models)
    assert attempts and attempts[0].status == "success", [
        (a.code, a.response_data) for a in attempts
    ]
    schema = sdk.schemas.get_destination_type(type_=create["type"])
    assert schema.type == create["type"] and schema.icon.startswith("<svg")
    sdk.destinations.delete(tenant_id=tenant, destination_id=dest.id)
    assert sdk.destinations.list(tenant_id=tenant) == []
    sdk.tenants.delete(tenant_id=tenant)
    return dest


def test_python_sdk_kafka_crud_and_delivery(live, kafka_server):
    topic = f"sdk-{uuid.uuid4().hex[:8]}"
    kafka_server.create_topic(topic)
    sdk = Outpost(api_key=ADMIN_KEY, server_url=live)
    create = {
        "type": "kafka",
        "topics": ["orders"],
        # tls said explicitly: the SDK fills in the contract's default, "true"
        "config": {
            "brokers": kafka_server.url,
            "topic": topic,
            "sasl_mechanism": "plain",
            "tls": "false",
        },
        "credentials": {"username": "alice", "password": USERS["alice"]},
    }
    rotate = {"credentials": {"username": "bob", "password": USERS["bob"]}}

    def masked(creds):
        assert creds.password.endswith("******") and creds.password not in USERS.values()

    dest = crud(sdk, "sdk-kafka", create, rotate, masked)
    assert dest.config.tls == "false" and dest.target == f"{kafka_server.url} / {topic}"
    [message] = kafka_server.read(topic, expect=1)
    assert (message.key, message.value) == (b"sdk-kafka-1", b'{"n":1}')


def test_python_sdk_gcp_pubsub_crud_and_delivery(live, pubsub_server):
    topic = f"sdk-{uuid.uuid4().hex[:8]}"
    subscription = pubsub_server.create_topic(topic)
    sdk = Outpost(api_key=ADMIN_KEY, server_url=live)
    first = json.dumps(service_account(f"sdk@{PROJECT}.iam.gserviceaccount.com"))
    rotated = json.dumps(service_account(f"sdk2@{PROJECT}.iam.gserviceaccount.com"))
    create = {
        "type": "gcp_pubsub",
        "topics": ["orders"],
        "config": {"project_id": PROJECT, "topic": topic, "endpoint": pubsub_server.host},
        "credentials": {"service_account_json": first},
    }
    rotate = {"credentials": {"service_account_json": rotated}}

    def masked(creds):
        assert creds.service_account_json.endswith("******")
        assert "PRIVATE KEY" not in creds.service_account_json

    dest = crud(sdk, "sdk-pubsub", create, rotate, masked)
    assert dest.target == f"{PROJECT}/{topic}"
    [message] = pubsub_server.read(subscription, expect=1)
    assert message.data == b'{"n":1}' and message.attributes["event-id"] == "sdk-pubsub-1"


def test_typescript_sdk_kafka_and_gcp_pubsub_crud(live, kafka_server, pubsub_server):
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed: the TypeScript SDK runs where node is (CI has it)")
    devstack.npm_install(NODE_CACHE, "@hookdeck/outpost-sdk", "@hookdeck/outpost-sdk@1.6.0")
    script = NODE_CACHE / "ts_sdk_streams.mjs"  # beside node_modules, so the import resolves
    shutil.copy(Path(__file__).with_name("ts_sdk_streams.mjs"), script)
    kafka_topic, pubsub_topic = f"ts-{uuid.uuid4().hex[:8]}", f"ts-{uuid.uuid4().hex[:8]}"
    kafka_server.create_topic(kafka_topic)
    pubsub_server.create_topic(pubsub_topic)
    env = {
        **os.environ,
        "OUTPOST_URL": live,
        "OUTPOST_KEY": ADMIN_KEY,
        "KAFKA_BROKERS": kafka_server.url,
        "KAFKA_TOPIC": kafka_topic,
        "KAFKA_USERS": json.dumps({u: USERS[u] for u in ("alice", "bob")}),
        "PUBSUB_ENDPOINT": pubsub_server.host,
        "PUBSUB_PROJECT": PROJECT,
        "PUBSUB_TOPIC": pubsub_topic,
        "PUBSUB_KEY": json.dumps(service_account(f"ts@{PROJECT}.iam.gserviceaccount.com")),
    }
    run = subprocess.run([node, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "TS SDK STREAMS OK" in run.stdout
