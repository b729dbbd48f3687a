"""Issue 16: delivering into a tenant's own AWS account with a role we assume.

moto serves STS and Kinesis; moto keeps a stream in the account of the keys that made it,
and keys from AssumeRole act in the role's account. So a stream made in the tenant's
account (111122223333) is found only by calls signed with the assumed role's keys: the
operator's own (account 123456789012) get ResourceNotFound. A recording proxy in front of
moto (tests/role_proxy.py) notes who signed each call and what AssumeRole carried.
"""

from __future__ import annotations

import asyncio
import uuid

import boto3
import pytest

from outpost.delivery.alerts import Alerts
from outpost.destinations.aws.roles import Roles
from outpost.models import Destination
from outpost.retry import RetryPolicy
from outpost.runtime import build_worker
from tests.conftest import AUTH, FAKE_CREDS
from tests.role_proxy import RoleProxy

TENANT_ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{TENANT_ACCOUNT}:role/outpost-delivery"
OPERATOR_KEY = "AKIAOPERATOR0EXAMPLE"
DESTS = "/api/v1/tenants/acme/destinations"


@pytest.fixture
async def proxy(moto, monkeypatch):
    """The proxy, and the service's own credentials (the standard chain: environment)
    pointed at it for STS."""
    p = await RoleProxy(moto.url).start()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", OPERATOR_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "operator-secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", p.url)
    yield p
    await p.close()


def tenant_stream(moto_url: str) -> str:
    """A stream in the tenant's account, made as the tenant would (through the role)."""
    kw = {"endpoint_url": moto_url, "region_name": "us-east-1"}
    sts = boto3.client("sts", aws_access_key_id="AKIATENANT", aws_secret_access_key="x", **kw)
    c = sts.assume_role(RoleArn=ROLE, RoleSessionName="setup")["Credentials"]
    kinesis = boto3.client(
        "kinesis",
        aws_access_key_id=c["AccessKeyId"],
        aws_secret_access_key=c["SecretAccessKey"],
        aws_session_token=c["SessionToken"],
        **kw,
    )
    name = f"t-{uuid.uuid4().hex[:10]}"
    kinesis.create_stream(StreamName=name, ShardCount=1)
    return str(
        kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    )


def role_body(stream_arn: str, endpoint: str, **creds) -> dict:
    return {
        "type": "aws_kinesis",
        "topics": ["orders"],
        "config": {"stream_arn": stream_arn, "endpoint": endpoint},
        "credentials": {"role_arn": ROLE, **creds},
    }


async def create(client, body, status=201):
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    r = await client.post(DESTS, headers=AUTH, json=body)
    assert r.status == status, await r.text()
    return await r.json()


async def test_create_with_role_and_stream_arn(client, moto):
    arn = f"arn:aws:kinesis:eu-west-1:{TENANT_ACCOUNT}:stream/orders"
    dest = await create(client, role_body(arn, moto.url))
    assert dest["config"]["region"] == "eu-west-1" and dest["config"]["stream_name"] == "orders"
    external_id = dest["credentials"]["external_id"]
    assert len(external_id) >= 32 and dest["credentials"]["role_arn"] == ROLE
    again = await create(client, role_body(arn, moto.url))
    assert again["credentials"]["external_id"] != external_id  # one per destination
    shown = await (await client.get(f"{DESTS}/{dest['id']}", headers=AUTH)).json()
    assert shown["credentials"]["external_id"] == external_id  # not a secret: in full


@pytest.mark.parametrize(
    ("config", "creds", "field"),
    [
        ({}, {"role_arn": ROLE, **FAKE_CREDS}, "credentials.key"),
        ({}, {"role_arn": "arn:aws:iam::1234:role/x"}, "credentials.role_arn"),
        ({"stream_arn": "arn:aws:kinesis:us-east-1:1:stream/x"}, {}, "config.stream_arn"),
        (
            {"stream_arn": "arn:aws:kinesis:eu-west-1:111122223333:stream/s"},
            {},
            "config.stream_arn",
        ),
        (
            {"stream_arn": "arn:aws:kinesis:us-east-1:111122223333:stream/other"},
            {},
            "config.stream_arn",
        ),
    ],
)
async def test_bad_role_or_arn_is_422_naming_the_field(client, moto, config, creds, field):
    body = {
        "type": "aws_kinesis",
        "topics": ["orders"],
        "config": {"stream_name": "s", "region": "us-east-1", **config},
        "credentials": creds or {"role_arn": ROLE},
    }
    answer = await create(client, body, status=422)
    assert any(p.startswith(field) for p in answer["data"]), answer


async def test_external_id_is_the_service_s(client, moto):
    arn = f"arn:aws:kinesis:us-east-1:{TENANT_ACCOUNT}:stream/s"
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    token = (await (await client.get("/api/v1/tenants/acme/token", headers=AUTH)).json())["token"]
    tenant = {"Authorization": f"Bearer {token}"}
    body = role_body(arn, moto.url, external_id="mine-" + "x" * 40)
    r = await client.post(DESTS, headers=tenant, json=body)
    assert r.status == 422 and "credentials.external_id" in (await r.text())
    dest = await (await client.post(DESTS, headers=tenant, json=role_body(arn, moto.url))).json()
    url, old = f"{DESTS}/{dest['id']}", dest["credentials"]["external_id"]
    r = await client.patch(url, headers=tenant, json={"credentials": {"external_id": "x" * 40}})
    assert r.status == 422
    r = await client.patch(url, headers=tenant, json={"credentials": {"rotate_external_id": True}})
    assert r.status == 422  # only the admin rotates
    r = await client.patch(url, headers=AUTH, json={"credentials": {"rotate_external_id": True}})
    new = (await r.json())["credentials"]["external_id"]
    assert r.status == 200 and new != old and len(new) >= 32


async def test_roles_only_refuses_static_keys(aiohttp_client, redis_server, redis, moto):
    from outpost.deps import Deps
    from outpost.runtime import create_app
    from tests.conftest import make_settings

    settings = make_settings(redis_server.redis_url, aws_roles_only=True)
    deps = Deps.build(settings, redis)
    client = await aiohttp_client(create_app(settings, deps, run_promoter=False))
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    static = {
        "type": "aws_kinesis",
        "topics": ["orders"],
        "config": {"stream_name": "s", "region": "us-east-1"},
        "credentials": dict(FAKE_CREDS),
    }
    r = await client.post(DESTS, headers=AUTH, json=static)
    assert r.status == 422 and "roles only" in await r.text()
    arn = f"arn:aws:kinesis:us-east-1:{TENANT_ACCOUNT}:stream/s"
    assert (await client.post(DESTS, headers=AUTH, json=role_body(arn, moto.url))).status == 201
    await deps.registry.close()


async def test_nothing_to_delivering_with_a_role(client, worker, deps, moto, proxy):
    """The README walk-through: create (role_arn + stream_arn) -> trust policy ->
    preflight ok -> publish; every Kinesis call signed with the assumed role's keys."""
    arn = tenant_stream(moto.url)
    dest = await create(client, role_body(arn, proxy.url))
    base, external_id = f"{DESTS}/{dest['id']}", dest["credentials"]["external_id"]
    policy = await (await client.get(f"{base}/aws-trust-policy", headers=AUTH)).json()
    [trust] = policy["trust_policy"]["Statement"]
    assert trust["Principal"] == {"AWS": "arn:aws:sts::123456789012:user/moto"}
    assert trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": external_id}}
    [allow] = policy["permissions_policy"]["Statement"]
    assert allow["Resource"] == arn and "kinesis:PutRecords" in allow["Action"]
    pre = await (await client.post(f"{base}/test", headers=AUTH)).json()
    assert pre["ok"] is True, pre
    assert [c["name"] for c in pre["checks"]] == ["assume_role", "stream", "list_shards", "write"]
    stream = pre["checks"][1]
    assert (stream["status"], stream["open_shard_count"], stream["stream_mode"]) == (
        "ACTIVE",
        1,
        "PROVISIONED",
    )
    for n in range(20):
        body = {"tenant_id": "acme", "topic": "orders", "id": f"e{n}", "data": {"n": n}}
        assert (await client.post("/api/v1/publish", headers=AUTH, json=body)).status == 202
    await worker.run_until_empty()
    attempts = await deps.queue.attempts("acme", dest["id"])
    assert sorted(a["status"] for a in attempts) == ["success"] * 20
    [assume] = proxy.ops("AssumeRole")  # preflight's session reused by all 20 deliveries
    assert assume.key == OPERATOR_KEY
    assert assume.params["ExternalId"] == external_id
    assert assume.params["RoleSessionName"] == f"outpost-{dest['id']}"
    puts = proxy.ops("PutRecord")
    assert len(puts) == 20
    assert {c.key for c in puts} == {c.key for c in proxy.ops("DescribeStreamSummary")}
    assert all(c.key.startswith("ASIA") and c.key != OPERATOR_KEY for c in puts)
    assert all(c.params.get("StreamARN") == arn for c in puts)
    # explore, through the same role: the tenant account's streams, the latest records
    seen = await (await client.get(f"{base}/streams", headers=AUTH)).json()
    assert seen["ok"] is True and arn in {s["arn"] for s in seen["streams"]}
    records = f"{base}/streams/{arn.rsplit('/', 1)[1]}/records"
    every = (await (await client.get(f"{records}?limit=100", headers=AUTH)).json())["records"]
    assert sorted(rec["json"]["data"]["n"] for rec in every) == list(range(20))  # decoded
    latest = (await (await client.get(f"{records}?limit=5", headers=AUTH)).json())["records"]
    assert latest == every[-5:]
    assert len(proxy.ops("AssumeRole")) == 1


async def test_a_denied_role_fails_fast_and_alerts(client, deps, moto, proxy, aiohttp_server):
    from tests.test_alerts import receiver

    proxy.deny.add(ROLE)
    arn = tenant_stream(moto.url)
    dest = await create(client, role_body(arn, proxy.url))
    base = f"{DESTS}/{dest['id']}"
    pre = await (await client.post(f"{base}/test", headers=AUTH)).json()
    assert pre["ok"] is False
    [check] = pre["checks"]
    assert check["name"] == "assume_role" and "trust policy does not allow us" in check["message"]
    got, url = await receiver(aiohttp_server)
    alerts = Alerts(url=url, secret="s", limit=100, auto_disable=True)
    worker = build_worker(deps, deps.settings, policy=RetryPolicy(5, 0.01), alerts=alerts)
    body = {"tenant_id": "acme", "topic": "orders", "data": {}}
    await client.post("/api/v1/publish", headers=AUTH, json=body)
    await worker.run_until_empty()
    [attempt] = await deps.queue.attempts("acme", dest["id"])  # no retry schedule burnt
    assert (attempt["status"], attempt["code"]) == ("failed", "role_denied")
    await alerts.flush()
    import json

    [alert] = [json.loads(raw) for _, raw in got]
    assert alert["topic"] == "alert.destination_broken"
    assert alert["data"]["destination_disabled"] is True
    assert alert["data"]["last_error"]["code"] == "role_denied"
    shown = await (await client.get(base, headers=AUTH)).json()
    assert shown["disabled_at"] is not None
    await alerts.close()


async def test_preflight_names_a_missing_stream(client, moto, proxy):
    arn = f"arn:aws:kinesis:us-east-1:{TENANT_ACCOUNT}:stream/not-there"
    dest = await create(client, role_body(arn, proxy.url))
    pre = await (await client.post(f"{DESTS}/{dest['id']}/test", headers=AUTH)).json()
    assert pre["ok"] is False
    assert [c["name"] for c in pre["checks"]] == ["assume_role", "stream"]
    assert pre["checks"][0]["ok"] is True
    assert "stream not found in us-east-1/111122223333" in pre["checks"][1]["message"]


async def test_preflight_of_a_type_without_checks_and_no_role_policy(client, moto, moto_stream):
    from tests.conftest import kinesis_body

    static = await create(client, kinesis_body(moto_stream, moto.url))
    base = f"{DESTS}/{static['id']}"
    r = await client.get(f"{base}/aws-trust-policy", headers=AUTH)
    assert r.status == 422 and "credentials.role_arn" in await r.text()
    pre = await (await client.post(f"{base}/test", headers=AUTH)).json()
    assert pre["ok"] is True and [c["name"] for c in pre["checks"]] == [
        "stream",
        "list_shards",
        "write",
    ]
    hook = {"type": "webhook", "topics": ["orders"], "config": {"url": "http://127.0.0.1:9/x"}}
    webhook = await create(client, hook)
    pre = await (await client.post(f"{DESTS}/{webhook['id']}/test", headers=AUTH)).json()
    assert pre["ok"] is True and pre["checks"][0]["message"] == "no checks for this type"


async def test_assumed_keys_are_cached_and_refreshed_before_expiry(moto, proxy):
    now = [1_000_000.0]
    roles = Roles(duration=900, clock=lambda: now[0])
    dest = Destination(
        id="des_1",
        tenant_id="acme",
        type="aws_kinesis",
        topics=["orders"],
        config={},
        credentials={"role_arn": ROLE, "external_id": "e" * 32},
        created_at="2026-01-01T00:00:00Z",
        updated_at="2026-01-01T00:00:00Z",
    )
    first = await asyncio.gather(*(roles.keys(dest) for _ in range(10)))  # one AssumeRole
    assert len(set(first)) == 1 and roles.assumed == 1
    now[0] += 900 - 225 - 1  # still inside: refreshed only `margin` (225 s) before expiry
    assert await roles.keys(dest) == first[0] and roles.assumed == 1
    now[0] += 2
    fresh = await roles.keys(dest)
    assert fresh != first[0] and roles.assumed == 2
    assert len(proxy.ops("AssumeRole")) == 2
    await roles.close()


def tenant_client(service: str, moto_url: str):
    kw = {"endpoint_url": moto_url, "region_name": "us-east-1"}
    sts = boto3.client("sts", aws_access_key_id="AKIATENANT", aws_secret_access_key="x", **kw)
    c = sts.assume_role(RoleArn=ROLE, RoleSessionName="setup")["Credentials"]
    return boto3.client(
        service,
        aws_access_key_id=c["AccessKeyId"],
        aws_secret_access_key=c["SecretAccessKey"],
        aws_session_token=c["SessionToken"],
        **kw,
    )


async def test_sqs_delivers_with_a_role_by_the_same_code(client, worker, deps, moto, proxy):
    """The other AWS types take the same role path: an SQS queue in the tenant's account."""
    sqs = tenant_client("sqs", moto.url)
    queue_url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    assert f"/{TENANT_ACCOUNT}/" in queue_url
    body = {
        "type": "aws_sqs",
        "topics": ["orders"],
        "config": {"queue_url": queue_url, "endpoint": proxy.url},
        "credentials": {"role_arn": ROLE},
    }
    dest = await create(client, body)
    base = f"{DESTS}/{dest['id']}"
    policy = await (await client.get(f"{base}/aws-trust-policy", headers=AUTH)).json()
    [allow] = policy["permissions_policy"]["Statement"]
    assert allow == {
        "Effect": "Allow",
        "Action": ["sqs:SendMessage"],
        "Resource": f"arn:aws:sqs:us-east-1:{TENANT_ACCOUNT}:{queue_url.rsplit('/', 1)[1]}",
    }
    pre = await (await client.post(f"{base}/test", headers=AUTH)).json()
    assert pre["ok"] is True and [c["name"] for c in pre["checks"]] == ["assume_role"]
    for n in range(3):
        body = {"tenant_id": "acme", "topic": "orders", "data": {"n": n}}
        assert (await client.post("/api/v1/publish", headers=AUTH, json=body)).status == 202
    await worker.run_until_empty()
    got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert len(got) == 3
    [assume] = proxy.ops("AssumeRole")
    assert assume.params["ExternalId"] == dest["credentials"]["external_id"]
    sends = proxy.ops("SendMessage")
    assert len(sends) == 3 and all(c.key.startswith("ASIA") for c in sends)


def role_destination(role: str = ROLE) -> Destination:
    return Destination(
        id="des_2",
        tenant_id="acme",
        type="aws_kinesis",
        topics=["orders"],
        config={},
        credentials={"role_arn": role, "external_id": "e" * 32},
        created_at="2026-01-01T00:00:00Z",
        updated_at="2026-01-01T00:00:00Z",
    )


async def test_a_refusal_is_remembered_briefly_but_not_by_the_preflight(moto, proxy):
    from outpost.destinations.aws.roles import RoleRefused

    proxy.deny.add(ROLE)
    now = [0.0]
    roles = Roles(clock=lambda: now[0])
    dest = role_destination()
    for _ in range(5):  # queued events of a refused destination: STS asked once
        with pytest.raises(RoleRefused) as refused:
            await roles.keys(dest)
    assert refused.value.code == "role_denied" and len(proxy.ops("AssumeRole")) == 1
    proxy.deny.clear()  # the tenant fixes its trust policy and runs the preflight
    await roles.session(dest, fresh=True)
    assert len(proxy.ops("AssumeRole")) == 2
    await roles.keys(dest)  # and deliveries use the fixed role at once
    assert len(proxy.ops("AssumeRole")) == 2
    await roles.close()


async def test_trust_policy_without_an_aws_identity_is_501_naming_the_setting(
    client, moto, monkeypatch, tmp_path
):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto.url)
    arn = f"arn:aws:kinesis:us-east-1:{TENANT_ACCOUNT}:stream/s"
    dest = await create(client, role_body(arn, moto.url))
    r = await client.get(f"{DESTS}/{dest['id']}/aws-trust-policy", headers=AUTH)
    assert r.status == 501 and "AWS_ROLE_PRINCIPAL_ARN" in (await r.json())["message"]
