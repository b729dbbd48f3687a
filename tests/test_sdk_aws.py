"""Hookdeck's official SDKs (Python `outpost-sdk`, TypeScript `@hookdeck/outpost-sdk`)
against a live `outpost all`: create, read, update and delete an aws_sqs, aws_s3 and
aws_eventbridge destination, and deliver through the SQS and EventBridge ones to moto.
The SDKs validate every response against Outpost's contract; a rejected one fails."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from outpost_sdk import Outpost

from outpost.dev import devstack
from tests.conftest import ADMIN_KEY
from tests.contract.harnesses.aws import moto_client
from tests.contract.harnesses.sqs import drain
from tests.test_sdk import NODE_CACHE, live, wait_for

__all__ = ["live"]  # the module-scoped `outpost all` fixture, shared with test_sdk


def crud(sdk: Outpost, tenant: str, body: dict[str, Any], patch: dict[str, Any]) -> Any:
    """Create, get, list by type, update, and the secret masked in every answer."""
    dest = sdk.destinations.create(tenant_id=tenant, body=body)
    assert dest.type == body["type"] and dest.credentials.secret == "sdk-******"
    assert dest.credentials.key != body["credentials"]["key"]  # Outpost marks the key sensitive
    got = sdk.destinations.get(tenant_id=tenant, destination_id=dest.id)
    assert got.id == dest.id and got.config == dest.config
    listed = sdk.destinations.list(tenant_id=tenant, type_=body["type"])
    assert [d.id for d in listed] == [dest.id]
    updated = sdk.destinations.update(
        tenant_id=tenant, destination_id=dest.id, body={"type": body["type"], **patch}
    )
    assert updated.id == dest.id
    return updated


def test_python_sdk_crud_and_delivery(live):
    base, moto = live
    sdk = Outpost(api_key=ADMIN_KEY, server_url=base)
    tenant = f"sdk-aws-{uuid.uuid4().hex[:6]}"
    sdk.tenants.upsert(tenant_id=tenant, body={})
    creds = {"key": "AKIASDKAWS", "secret": "sdk-secret-value-1"}
    sqs = moto_client("sqs", moto)
    queue_url = sqs.create_queue(QueueName=tenant)["QueueUrl"]
    q = crud(
        sdk,
        tenant,
        {
            "type": "aws_sqs",
            "topics": ["orders"],
            "credentials": creds,
            "config": {"queue_url": queue_url, "endpoint": moto},
        },
        {"credentials": {"key": "AKIAROTATED", "secret": "sdk-secret-value-2"}},
    )
    s3 = crud(
        sdk,
        tenant,
        {
            "type": "aws_s3",
            "topics": ["users"],
            "credentials": creds,
            "config": {"bucket": "sdk-bucket", "region": "eu-west-1"},
        },
        {"config": {"storage_class": "GLACIER", "key_template": 'metadata."event-id"'}},
    )
    assert s3.config.storage_class == "GLACIER" and s3.target == "sdk-bucket in eu-west-1"
    eb = crud(
        sdk,
        tenant,
        {
            "type": "aws_eventbridge",
            "topics": ["users"],
            "credentials": creds,
            "config": {"region": "us-east-1", "event_bus_name": "sdk-bus", "endpoint": moto},
        },
        {"config": {"event_bus_name": "other-bus"}},
    )
    assert eb.config.event_bus_name == "other-bus"
    types = {t.type for t in sdk.schemas.list_destination_types()}
    assert {"aws_sqs", "aws_s3", "aws_eventbridge"} <= types
    pub = sdk.publish(request={"tenant_id": tenant, "topic": "orders", "data": {"n": 1}})
    assert pub.destination_ids == [q.id]
    [message] = drain(sqs, queue_url, expect=1)
    assert message["Body"] == '{"n":1}'
    attempts = wait_for(lambda: sdk.attempts.list(request={"tenant_id": tenant}).models)
    assert attempts[0].status == "success"
    for dest in (q, s3, eb):
        sdk.destinations.delete(tenant_id=tenant, destination_id=dest.id)
    assert sdk.destinations.list(tenant_id=tenant) == []
    sdk.tenants.delete(tenant_id=tenant)


def test_typescript_sdk_crud(live):
    """@hookdeck/outpost-sdk 1.6.0 (the newest on npm) knows aws_sqs and aws_s3; it has
    no aws_eventbridge type, so that one is covered by the Python SDK only."""
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed: the TypeScript SDK runs where node is (CI has it)")
    devstack.npm_install(NODE_CACHE, "@hookdeck/outpost-sdk", "@hookdeck/outpost-sdk@1.6.0")
    script = NODE_CACHE / "ts_sdk_aws.mjs"  # beside node_modules, so the import resolves
    shutil.copy(Path(__file__).with_name("ts_sdk_aws.mjs"), script)
    base, moto = live
    sqs = moto_client("sqs", moto)
    queue_url = sqs.create_queue(QueueName=f"ts-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    env = {
        **os.environ,
        "OUTPOST_URL": base,
        "OUTPOST_KEY": ADMIN_KEY,
        "MOTO_URL": moto,
        "QUEUE_URL": queue_url,
    }
    run = subprocess.run([node, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "TS SDK AWS OK" in run.stdout
    [message] = drain(sqs, queue_url, expect=1)
    meta = json.loads(message["MessageAttributes"]["metadata"]["StringValue"])
    assert (message["Body"], meta["event-id"]) == ('{"via":"ts"}', "ts-aws-evt-1")
