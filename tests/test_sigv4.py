"""The lean send path signs exactly as aiobotocore does (no server: the request is caught
before it leaves aiobotocore)."""

from __future__ import annotations

import datetime
from typing import Any
from unittest import mock

import botocore.auth
import pytest
from aiobotocore.session import AioSession
from botocore.handlers import add_retry_headers

from outpost.destinations.aws import sigv4

FIXED = datetime.datetime(2026, 11, 22, 12, 0, 0)
COMPARED = ("X-Amz-Target", "Content-Type", "X-Amz-Date", "X-Amz-Security-Token", "Authorization")


class Caught(Exception):
    pass


async def aiobotocore_request(
    operation: str, params: dict[str, Any], region: str, endpoint: str | None, token: str | None
) -> dict[str, Any]:
    """What aiobotocore would put on the wire for this call at FIXED time."""
    seen: dict[str, Any] = {}
    async with AioSession().create_client(
        "kinesis",
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        aws_session_token=token,
    ) as client:
        # the two SDK telemetry headers (a random invocation id, the retry count) are the
        # only thing the lean path leaves out: take them out here so the rest must match
        client.meta.events.unregister("request-created", add_retry_headers)

        def grab(request: Any, **_: Any) -> None:
            seen["url"] = request.url
            seen["body"] = request.body
            seen["headers"] = {k: _s(v) for k, v in request.headers.items()}
            raise Caught

        client.meta.events.register(f"before-send.kinesis.{operation}", grab)
        frozen = mock.patch.object(botocore.auth, "get_current_datetime", return_value=FIXED)
        with frozen, pytest.raises(Caught):
            await getattr(client, _snake(operation))(**params)
        seen["endpoint"] = client.meta.endpoint_url
    return seen


def lean_request(
    operation: str, body: bytes, url: str, region: str, token: str | None
) -> dict[str, Any]:
    t = sigv4.target(url, region, "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=FIXED):
        headers = sigv4.signed_headers(t, operation, body)
    return {"url": t.url, "body": body, "headers": headers}


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _snake(op: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in op).lstrip("_")


DATA = '{"metadata":{"event-id":"évt_1"},"data":{"n":1,"s":"ünï ✓"}}'.encode()


@pytest.mark.parametrize(
    ("region", "endpoint", "token"),
    [
        ("us-east-1", None, None),
        ("eu-west-1", None, "FwoGZXIvYXdzEXAMPLE//token=="),
        ("us-east-1", "http://127.0.0.1:4566", None),
        ("ap-southeast-2", "https://vpce-1.kinesis.ap-southeast-2.vpce.amazonaws.com", "t"),
        # the signer's own canonical host and path: a default port, a path to quote
        ("us-east-1", "https://Kinesis.Example.com:443/a b/~c/", None),
    ],
)
async def test_put_record_is_signed_byte_identically(region, endpoint, token):
    params = {"StreamName": "orders-stream", "Data": DATA, "PartitionKey": "customer/42 é"}
    theirs = await aiobotocore_request("PutRecord", params, region, endpoint, token)
    body = sigv4.put_record_body("orders-stream", DATA, "customer/42 é")
    ours = lean_request(
        "PutRecord", body, await sigv4.resolve_endpoint(region, endpoint), region, token
    )
    assert ours["url"] == theirs["url"]
    assert ours["body"] == theirs["body"]
    for name in COMPARED:
        assert ours["headers"].get(name) == theirs["headers"].get(name), name
    assert "Signature=" in ours["headers"]["Authorization"]
    assert ("X-Amz-Security-Token" in ours["headers"]) == (token is not None)


async def test_put_records_is_signed_byte_identically():
    records = [(DATA, "a"), (b"\x00\xffbinary", "b"), (b"{}", "c" * 256)]
    params = {
        "Records": [{"Data": d, "PartitionKey": k} for d, k in records],
        "StreamName": "orders-stream",
    }
    theirs = await aiobotocore_request("PutRecords", params, "us-west-2", None, None)
    body = sigv4.put_records_body("orders-stream", records)
    ours = lean_request(
        "PutRecords", body, await sigv4.resolve_endpoint("us-west-2", None), "us-west-2", None
    )
    assert ours["body"] == theirs["body"]
    assert ours["url"] == theirs["url"]
    for name in COMPARED:
        assert ours["headers"].get(name) == theirs["headers"].get(name), name


async def test_a_different_time_or_secret_changes_the_signature():
    """The comparison above is not vacuous: the signature depends on what it should."""
    body = sigv4.put_record_body("s", b"x", "k")
    url = "https://kinesis.us-east-1.amazonaws.com/"
    a = lean_request("PutRecord", body, url, "us-east-1", None)["headers"]["Authorization"]
    t = sigv4.target(url, "us-east-1", "AKIDEXAMPLE", "another-secret", None)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=FIXED):
        b = sigv4.signed_headers(t, "PutRecord", body)["Authorization"]
    later = FIXED + datetime.timedelta(seconds=1)
    t2 = sigv4.target(
        url, "us-east-1", "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None
    )
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=later):
        c = sigv4.signed_headers(t2, "PutRecord", body)["Authorization"]
    assert len({a, b, c}) == 3


async def test_endpoint_resolution_follows_aws_endpoint_url_env(monkeypatch):
    assert await sigv4.resolve_endpoint("eu-central-1", None) == (
        "https://kinesis.eu-central-1.amazonaws.com"
    )
    assert await sigv4.resolve_endpoint("cn-north-1", None) == (
        "https://kinesis.cn-north-1.amazonaws.com.cn"
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", "http://127.0.0.1:9999")
    assert await sigv4.resolve_endpoint("eu-central-1", None) == "http://127.0.0.1:9999"
    assert await sigv4.resolve_endpoint("eu-central-1", "http://h:1") == "http://h:1"


@pytest.mark.parametrize(
    ("status", "header", "body", "code", "message"),
    [
        (
            400,
            "",
            {"__type": "ResourceNotFoundException", "message": "no"},
            "ResourceNotFoundException",
            "no",
        ),
        (
            400,
            "",
            {"__type": "com.amazonaws.kinesis.v20131202#ValidationException", "Message": "bad"},
            "ValidationException",
            "bad",
        ),
        (
            400,
            "ProvisionedThroughputExceededException:http://internal.amazon.com/",
            {"message": "slow down"},
            "ProvisionedThroughputExceededException",
            "slow down",
        ),
        (503, "", {}, "", "<html>busy</html>"),
    ],
)
def test_errors_are_parsed_as_botocore_does(status, header, body, code, message):
    raw = b"<html>busy</html>" if not body else b"{}"
    err = sigv4._error(status, header, body, raw)
    assert err["Error"] == {"Code": code, "Message": message}
    assert err["ResponseMetadata"]["HTTPStatusCode"] == status


@pytest.mark.parametrize("stream", ["orders-stream", "arn:aws:kinesis:us-east-1:123:stream/s"])
def test_put_records_body_is_what_json_dumps_gives(stream):
    """The body written out directly is botocore's `json.dumps` of the same members, for
    keys that need escaping and with explicit hash keys on some records."""
    import base64
    import json

    records = [(DATA, 'a "quoted"\\key\n'), (b"\x00\xff", "ünï ✓ \U0001f600"), (b"", "k")]
    hash_keys = ["340282366920938463463374607431768211455", None, "0"]
    entries = []
    for (data, key), hash_key in zip(records, hash_keys, strict=True):
        entry = {"Data": base64.b64encode(data).decode(), "PartitionKey": key}
        if hash_key:
            entry["ExplicitHashKey"] = hash_key
        entries.append(entry)
    member = "StreamARN" if stream.startswith("arn:") else "StreamName"
    expected = json.dumps({"Records": entries, member: stream}).encode()
    assert sigv4.put_records_body(stream, records, hash_keys) == expected
    assert (
        sigv4.put_records_body(stream, records[:2])
        == json.dumps(
            {
                "Records": [
                    {k: v for k, v in e.items() if k != "ExplicitHashKey"} for e in entries[:2]
                ],
                member: stream,
            }
        ).encode()
    )
