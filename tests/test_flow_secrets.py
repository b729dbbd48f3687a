"""Issue 14 item 16: a Flow Service validation error never echoes a secret parameter's
value (jsonschema's messages quote the instance): not in the body, not in the log."""

import pytest

from outpost.flow.specs import KINESIS, S3
from tests.conftest import AUTH
from tests.test_source import BASE, H

MARKER = "SECRETMARKER-7f3a"


def kinesis(params):
    return {
        "name": "in",
        "auth": {"specName": "Aws Kinesis authentication credentials", "params": params},
        "connectionSpec": {"id": KINESIS, "version": "1.0"},
    }


def s3(params):
    return {
        "name": "s3",
        "auth": {"specName": "Access Key", "params": params},
        "connectionSpec": {"id": S3, "version": "1.0"},
    }


GOOD = {"accessKeyId": "AKIA", "region": "us-east-1"}
CASES = [
    kinesis({**GOOD, "secretKey": {"value": MARKER}}),
    kinesis({**GOOD, "secretKey": [MARKER, MARKER]}),
    kinesis({**GOOD, "secretKey": 31337}),  # a number: the marker is the number itself
    kinesis({**GOOD, "secretKey": MARKER, "region": 5}),  # another field wrong, secret fine
    kinesis([MARKER]),  # params not an object at all
    kinesis({**GOOD, "secretKey": MARKER, "unknown": 1}),
    s3({"s3AccessKey": "AKIA", "s3SecretKey": {"k": MARKER}, "s3SessionToken": [MARKER]}),
]


@pytest.mark.parametrize("body", CASES)
async def test_validation_errors_never_echo_secret_values(client, body, capsys):
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    r = await client.post(f"{BASE}/connections", json=body, headers=H)
    text = await r.text()
    assert 400 <= r.status < 500, text
    marker = "31337" if body["auth"]["params"] == {**GOOD, "secretKey": 31337} else MARKER
    assert marker not in text
    out = capsys.readouterr()
    assert marker not in out.out + out.err


async def test_errors_still_name_the_field_and_the_rule(client):
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    r = await client.post(
        f"{BASE}/connections", json=kinesis({**GOOD, "secretKey": 31337}), headers=H
    )
    body = await r.json()
    assert r.status == 400
    assert body["report"]["details"] == ["auth.params.secretKey: must be of type string"]


async def test_missing_and_unknown_parameters_still_named(client):
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    r = await client.post(f"{BASE}/connections", json=kinesis({**GOOD, "extra": 1}), headers=H)
    details = (await r.json())["report"]["details"]
    assert details == [
        "auth.params.extra is not a known parameter",
        "auth.params.secretKey is required",
    ]
