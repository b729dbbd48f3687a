"""aws_sqs, aws_s3 and aws_eventbridge end to end on moto: five events published through
the API, delivered by the worker, and what moto then holds compared field by field (bytes
where moto keeps them) with what Outpost's providers send. The expected values are
written out here from Outpost's provider code, not computed with our formatters."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.conftest import AUTH, FAKE_CREDS
from tests.contract.harnesses.aws import moto_client
from tests.contract.harnesses.sqs import drain

TIME = "2026-01-02T03:04:05.120Z"  # Unix 1767323045; Go's RFC3339Nano drops the zeros
DELIVERY_METADATA = {"app": "shop", "region": "eu"}


def events() -> list[tuple[str, str, dict[str, str]]]:
    """(id, data as published, event metadata): key order, unicode and digits that a
    re-encoding would change, and metadata that tries to override a system key."""
    return [
        (
            f"evt_{i}_{uuid.uuid4().hex[:6]}",
            f'{{"z":{i},"a":"héllo ✓ <&>","n":12.5,"list":[1,true,{{"k":null}}]}}',
            {"source": f"svc-{i}", "event-id": "forged", "region": "us"},
        )
        for i in range(5)
    ]


def metadata(event_id: str, meta: dict[str, str]) -> dict[str, str]:
    """Ours: system keys win; under a key both set, the event's wins over delivery_metadata."""
    return {
        **DELIVERY_METADATA,
        **meta,
        "event-id": event_id,
        "topic": "orders",
        "timestamp": "1767323045",
    }


async def deliver(client: Any, worker: Any, body: dict[str, Any]) -> list[tuple[str, str, dict]]:
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    body = {**body, "topics": ["orders"], "delivery_metadata": DELIVERY_METADATA}
    r = await client.post("/api/v1/tenants/acme/destinations", json=body, headers=AUTH)
    assert r.status == 201, await r.text()
    published = events()
    for event_id, data, meta in published:
        raw = (
            f'{{"tenant_id":"acme","topic":"orders","id":"{event_id}","time":"{TIME}",'
            f'"metadata":{json.dumps(meta)},"data":{data}}}'
        )
        headers = {**AUTH, "Content-Type": "application/json"}
        r = await client.post("/api/v1/publish", data=raw.encode(), headers=headers)
        assert r.status == 202, await r.text()
    await worker.run_until_empty()
    return published


def creds() -> dict[str, str]:
    return dict(FAKE_CREDS)


@pytest.mark.parametrize(
    "extra",
    [{}, {"endpoint": True}, {"endpoint": True, "batching": True}],
    ids=["queue-url-host", "SendMessage", "SendMessageBatch"],
)
async def test_sqs_receives_what_outpost_sends(client, worker, moto, extra):
    """Without `endpoint` the calls go to the queue URL's own host, as Outpost sends."""
    sqs = moto_client("sqs", moto.url)
    queue_url = sqs.create_queue(QueueName=f"e2e-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    config = {"queue_url": queue_url, **extra}
    if extra.get("endpoint"):
        config["endpoint"] = moto.url
    published = await deliver(
        client, worker, {"type": "aws_sqs", "config": config, "credentials": creds()}
    )
    messages = drain(sqs, queue_url, expect=5)
    got = {
        json.loads(m["MessageAttributes"]["metadata"]["StringValue"])["event-id"]: m
        for m in messages
    }
    assert len(messages) == 5 and len(got) == 5
    for event_id, data, meta in published:
        m = got[event_id]
        assert m["Body"] == data  # the data as published, byte for byte
        attr = m["MessageAttributes"]
        assert list(attr) == ["metadata"] and attr["metadata"]["DataType"] == "String"
        # Go's encoder writes a map's keys sorted: so do we
        expected = metadata(event_id, meta)
        assert attr["metadata"]["StringValue"] == json.dumps(
            expected, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )


async def test_s3_holds_what_outpost_writes(client, worker, moto):
    s3 = moto_client("s3", moto.url)
    bucket = f"e2e-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    config = {
        "bucket": bucket,
        "region": "us-east-1",
        "endpoint": moto.url,
        "storage_class": "standard_ia",
    }
    published = await deliver(
        client, worker, {"type": "aws_s3", "config": config, "credentials": creds()}
    )
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    # Outpost's default template: join('', [time.rfc3339_nano, '_', metadata."event-id", '.json'])
    assert keys == sorted(f"2026-01-02T03:04:05.12Z_{e}.json" for e, _, _ in published)
    for event_id, data, meta in published:
        got = s3.get_object(
            Bucket=bucket, Key=f"2026-01-02T03:04:05.12Z_{event_id}.json", ChecksumMode="ENABLED"
        )
        assert got["Body"].read() == data.encode()
        assert got["ContentType"] == "application/json"
        assert got["StorageClass"] == "STANDARD_IA"
        assert got["Metadata"] == metadata(event_id, meta)
        assert got["ChecksumSHA256"]  # sent with the object, checked by the server


async def test_s3_key_template_and_its_time_fields(client, worker, moto):
    s3 = moto_client("s3", moto.url)
    bucket = f"e2e-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    template = (
        "join('/', [time.year, time.month, time.day, time.hour, metadata.source, "
        "join('', [time.unix, '-', to_string(data.z)])])"
    )
    config = {
        "bucket": bucket,
        "region": "us-east-1",
        "endpoint": moto.url,
        "key_template": template,
    }
    await deliver(client, worker, {"type": "aws_s3", "config": config, "credentials": creds()})
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == [f"2026/01/02/03/svc-{i}/1767323045-{i}" for i in range(5)]


async def test_eventbridge_bus_routes_what_outpost_puts(client, worker, moto):
    sqs, events_ = moto_client("sqs", moto.url), moto_client("events", moto.url)
    bus = f"e2e-{uuid.uuid4().hex[:8]}"
    queue_url = sqs.create_queue(QueueName=bus)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    events_.create_event_bus(Name=bus)
    rule = {"source": ["outpost"], "detail-type": ["orders"]}
    events_.put_rule(Name="r", EventBusName=bus, EventPattern=json.dumps(rule))
    target = {"Id": "q", "Arn": arn["Attributes"]["QueueArn"]}
    events_.put_targets(Rule="r", EventBusName=bus, Targets=[target])
    config = {"event_bus_name": bus, "region": "us-east-1", "endpoint": moto.url, "batching": True}
    published = await deliver(
        client, worker, {"type": "aws_eventbridge", "config": config, "credentials": creds()}
    )
    routed = [json.loads(m["Body"]) for m in drain(sqs, queue_url, expect=5)]
    got = {e["detail"]["metadata"]["event-id"]: e for e in routed}
    assert len(routed) == 5 and len(got) == 5
    for event_id, data, meta in published:
        e = got[event_id]
        assert (e["source"], e["detail-type"]) == ("outpost", "orders")
        assert e["detail"] == {"data": json.loads(data), "metadata": metadata(event_id, meta)}
        assert list(e["detail"]["data"]) == ["z", "a", "n", "list"]  # key order kept
