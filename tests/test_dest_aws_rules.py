"""aws_sqs, aws_s3 and aws_eventbridge: what create refuses (and why), what a redirecting
endpoint gets, and the pure parts (S3 keys written as Go writes them, the error rows the
three services add)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from aiohttp import web
from botocore.exceptions import ClientError

from outpost.destinations.aws import errors
from outpost.destinations.aws.clients import ClientCache, Identity
from outpost.destinations.base import Kind
from outpost.destinations.s3.format import user_metadata
from outpost.destinations.s3.key import go_float, go_text, time_fields
from outpost.destinations.sqs.config import aws_region
from outpost.errors import PermanentError
from outpost.runtime import build_worker
from tests.conftest import AUTH, FAKE_CREDS
from tests.contract.harnesses.aws import moto_client
from tests.test_redirects import SECRET_BODY, Local

SQS_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders"


async def create(client, body):
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    body = {"topics": ["orders"], "credentials": dict(FAKE_CREDS), **body}
    return await client.post("/api/v1/tenants/acme/destinations", json=body, headers=AUTH)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            {
                "type": "aws_s3",
                "config": {
                    "bucket": "b-1",
                    "region": "us-east-1",
                    "key_template": "data[].[@,@][].[@,@][].[@,@][]",
                },
            },
            "config.key_template: has 11 projections",
        ),
        (
            {
                "type": "aws_s3",
                "config": {"bucket": "b-1", "region": "us-east-1", "storage_class": "COLD"},
            },
            "config.storage_class: must be one of STANDARD",
        ),
        (
            {
                "type": "aws_eventbridge",
                "config": {"region": "us-east-1", "event_bus_name": "arn:aws:sqs:x"},
            },
            "config.event_bus_name: must be an event bus name or ARN",
        ),
    ],
)
async def test_create_names_the_bad_field(client, body, problem):
    r = await create(client, body)
    assert r.status == 422
    assert any(p.startswith(problem) for p in (await r.json())["data"]), await r.text()


async def test_what_outpost_accepts_is_accepted(client):
    for body in (
        {"type": "aws_sqs", "config": {"queue_url": SQS_URL}},
        {
            "type": "aws_s3",
            "config": {
                "bucket": "b-1",
                "region": "us-gov-west-1",
                "storage_class": "intelligent_tiering",
            },
        },
        {"type": "aws_eventbridge", "config": {"region": "us-east-1"}, "credentials": {}},
    ):
        r = await create(client, body)
        assert r.status == 201, await r.text()
    created = await r.json()
    assert created["target"] == " in us-east-1" and created["target_url"] is None


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"queue_url": SQS_URL, "endpoint": "http://127.0.0.1:9"}, "endpoint"),
        # no endpoint: the calls go to the queue URL's host, so that is what the guard checks
        ({"queue_url": "http://10.0.0.5:4566/000000000000/q"}, "queue_url"),
    ],
)
async def test_a_private_host_is_refused_at_create(client, deps, config, field):
    deps.endpoints.allow_private = False
    r = await create(client, {"type": "aws_sqs", "config": config})
    assert r.status == 422
    assert (await r.json())["data"][0].startswith(f"config.{field}: ")


async def test_a_queue_url_host_gone_private_is_refused_at_send(client, deps, moto):
    """Created while private hosts were allowed, then the guard applies: the send is
    refused (dead letter), nothing reaches the queue's host."""
    sqs = moto_client("sqs", moto.url)
    queue_url = sqs.create_queue(QueueName="guarded")["QueueUrl"]
    r = await create(client, {"type": "aws_sqs", "config": {"queue_url": queue_url}})
    assert r.status == 201, await r.text()
    deps.endpoints.allow_private = False
    r = await client.post(
        "/api/v1/publish", headers=AUTH, json={"tenant_id": "acme", "topic": "orders", "data": {}}
    )
    await build_worker(deps, deps.settings).run_until_empty(limit=20)
    [dead] = await deps.queue.dead_letters("acme")
    assert dead["code"] == "endpoint_forbidden"
    assert "Messages" not in sqs.receive_message(QueueUrl=queue_url)


@pytest.mark.parametrize(
    "body",
    [
        {"type": "aws_sqs", "config": {"queue_url": SQS_URL}},
        {"type": "aws_sqs", "config": {"queue_url": SQS_URL, "batching": True}},
        {"type": "aws_s3", "config": {"bucket": "b-1", "region": "us-east-1"}},
        {"type": "aws_eventbridge", "config": {"region": "us-east-1", "batching": True}},
    ],
    ids=["sqs", "sqs-batch", "s3", "eventbridge-batch"],
)
async def test_delivery_does_not_follow_redirects(client, deps, body):
    async def secret(request):
        return web.json_response({"MessageId": "m", "leak": SECRET_BODY})

    async with Local(secret) as target:

        async def redirect(request):
            raise web.HTTPTemporaryRedirect(target.url + "/")

        async with Local(redirect) as redirector:
            body["config"]["endpoint"] = redirector.url
            r = await create(client, body)
            assert r.status == 201, await r.text()
            dest = await r.json()
            r = await client.post(
                "/api/v1/publish",
                headers=AUTH,
                json={"tenant_id": "acme", "topic": "orders", "data": {}},
            )
            assert r.status == 202
            await build_worker(deps, deps.settings).run_until_empty(limit=20)
    assert target.hits == 0 and redirector.hits == 1  # permanent: not retried
    [attempt] = await deps.queue.attempts("acme", dest["id"])
    assert (attempt["status"], attempt["code"]) == ("failed", "redirect_refused")
    assert SECRET_BODY not in json.dumps(attempt)


# -- pure -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (42, "42"),
        (100000, "100000"),
        (1000000, "1e+06"),
        (1234567, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (-2.25, "-2.25"),
        (True, "true"),
        ("x", "x"),
        ([1, "a"], "[1 a]"),
        ({"b": 1, "a": [2]}, "map[a:[2] b:1]"),
    ],
)
def test_key_template_results_are_written_as_go_writes_them(value, text):
    assert go_text(value) == text
    if isinstance(value, float):
        assert go_float(value) == text


def test_time_fields_are_outposts():
    when = datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC)
    assert time_fields(when) == {
        "year": "2026",
        "month": "01",
        "day": "02",
        "hour": "03",
        "minute": "04",
        "second": "05",
        "date": "2026-01-02",
        "datetime": "2026-01-02T03:04:05",
        "unix": "1767323045",
        "rfc3339": "2026-01-02T03:04:05Z",
        "rfc3339_nano": "2026-01-02T03:04:05.12Z",
    }
    assert time_fields(when.replace(microsecond=0))["rfc3339_nano"] == "2026-01-02T03:04:05Z"


def test_s3_metadata_outside_ascii_is_rfc2047_and_a_bad_name_is_permanent():
    assert user_metadata({"city": "Zürich", "n": "1"}) == {
        "city": "=?utf-8?q?Z=C3=BCrich?=",
        "n": "1",
    }
    with pytest.raises(PermanentError):
        user_metadata({"bad name": "x"})


def test_queue_url_regions():
    assert aws_region(SQS_URL) == "eu-west-1"
    assert aws_region("https://us-west-2.queue.amazonaws.com/1/q") == "us-west-2"
    assert aws_region("https://sqs.cn-north-1.amazonaws.com.cn/1/q") == "cn-north-1"
    assert aws_region("https://sqs.eu-west-1.amazonaws.com.evil.example/1/q") is None


@pytest.mark.parametrize(
    ("operation", "code", "status", "row"),
    [
        (
            "SendMessage",
            "AWS.SimpleQueueService.NonExistentQueue",
            400,
            (Kind.PERMANENT, "queue_not_found"),
        ),
        ("SendMessageBatch", "RequestThrottled", 500, (Kind.RETRY, "throughput_exceeded")),
        ("PutObject", "NoSuchBucket", 404, (Kind.PERMANENT, "bucket_not_found")),
        ("PutObject", "SlowDown", 503, (Kind.RETRY, "throughput_exceeded")),
        ("PutObject", "InvalidAccessKeyId", 403, (Kind.AUTH, "access_denied")),
        ("PutEvents", "ResourceNotFoundException", 400, (Kind.PERMANENT, "event_bus_not_found")),
        ("PutRecord", "ResourceNotFoundException", 400, (Kind.PERMANENT, "stream_not_found")),
        ("PutEvents", "NotAuthorizedForSourceException", 400, (Kind.AUTH, "access_denied")),
        ("PutEvents", "", 307, (Kind.PERMANENT, "redirect_refused")),
    ],
)
def test_the_three_services_rows(operation, code, status, row):
    exc = ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        operation,
    )
    failure = errors.classify(exc)
    assert (failure.kind, failure.code) == row


@pytest.mark.parametrize("template", ["(" * 3000 + "a" + ")" * 3000, "!" * 5000 + "a"])
async def test_a_template_deeper_than_the_parser_is_a_422_not_a_500(client, moto, template):
    """The JMESPath parser recursed past Python's limit: RecursionError, answered 500."""
    for body in (
        {
            "type": "aws_s3",
            "config": {"bucket": "b-1", "region": "us-east-1", "key_template": template},
        },
        {
            "type": "aws_kinesis",
            "config": {
                "stream_name": "s",
                "region": "us-east-1",
                "partition_key_template": template,
            },
        },
    ):
        r = await create(client, body)
        assert r.status == 422, await r.text()
        assert "nested too deep" in (await r.json())["data"][0]


async def test_one_client_per_identity_and_a_rotated_key_gets_its_own():
    """Clients are cached by what they sign with: concurrent sends share one, a PATCHed
    secret gets a new one, and the least recently used is retired past the bound."""
    cache = ClientCache(timeout=1, max_connections=2, size=2)
    who = Identity("sqs", "us-east-1", "http://127.0.0.1:9", "AKIA1", "secret-1", None)
    first, again = await asyncio.gather(cache.get(who), cache.get(who))
    assert first is again
    rotated = await cache.get(replace(who, secret="secret-2"))
    assert rotated is not first
    assert rotated._request_signer._credentials.secret_key == "secret-2"
    await cache.get(replace(who, key="AKIA3"))  # a third identity: `who`'s client retires
    assert await cache.get(replace(who, secret="secret-2")) is rotated
    assert first in cache._retired and len(cache._clients) == 2
    await cache.close()


async def test_eventbridge_without_credentials_never_signs_as_the_process(
    client, deps, monkeypatch
):
    """Outpost lets EventBridge credentials be empty; the call is then signed with the empty
    key (and fails as unauthenticated on AWS), never with the worker's own AWS identity."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATHEPROCESSROLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "process-secret")
    seen: list[str] = []

    async def put_events(request):
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"FailedEntryCount": 0, "Entries": [{"EventId": "1"}]})

    async with Local(put_events) as bus:
        config = {"region": "us-east-1", "endpoint": bus.url}
        r = await create(client, {"type": "aws_eventbridge", "config": config, "credentials": {}})
        assert r.status == 201, await r.text()
        r = await client.post(
            "/api/v1/publish",
            headers=AUTH,
            json={"tenant_id": "acme", "topic": "orders", "data": {}},
        )
        await build_worker(deps, deps.settings).run_until_empty(limit=20)
    [authorization] = seen
    assert "Credential=/" in authorization and "AKIATHEPROCESSROLE" not in authorization
