"""No tenant's input can fail another's request, and no input can make the service slow
or answer 5xx: filter bounds and per-event failures in a coalesced publish, JMESPath
template bounds, linear topic wildcards, JSON body limits (depth, big numbers, NaN,
surrogates), time bounds."""

import asyncio
import random
import re
import time

import pytest

from outpost.destinations.kinesis.partition_key import check_cost, compile_template, partition_key
from outpost.errors import PermanentError
from outpost.models import Destination, topic_matches
from tests.conftest import AUTH, FAKE_CREDS

KINESIS = {"stream_name": "s", "region": "us-east-1", "endpoint": "http://127.0.0.1:1"}


def nested(depth: int, leaf: object = "x") -> dict:
    """{"data": {"data": ... leaf}} `depth` objects deep."""
    out: object = leaf
    for _ in range(depth):
        out = {"data": out}
    assert isinstance(out, dict)
    return out


def not_chain(depth: int) -> dict:
    """{"$not": {"$not": ... {"$eq": 1}}}: every level is evaluated whatever the event holds
    (about five Python frames per level while matching)."""
    out: dict = {"$eq": 1}
    for _ in range(depth):
        out = {"$not": out}
    return out


def dest_body(**extra: object) -> dict:
    return {
        "type": "aws_kinesis",
        "topics": "*",
        "config": dict(KINESIS),
        "credentials": dict(FAKE_CREDS),
        **extra,
    }


async def poisoned(deps, tenant_id: str) -> None:
    """A destination whose filter recurses past Python's limit while matching, stored
    directly (as an older release or a hand edit could have left it)."""
    dest = Destination(
        id="poison",
        tenant_id=tenant_id,
        type="aws_kinesis",
        topics="*",
        config=dict(KINESIS),
        credentials=dict(FAKE_CREDS),
        created_at="2024-01-01T00:00:00.000Z",
        updated_at="2024-01-01T00:00:00.000Z",
        filter={"data": not_chain(300)},
    )
    await deps.store.create_destination(dest)


# -- 3: filters ---------------------------------------------------------------------------


async def test_a_poisoned_filter_fails_only_its_own_event_in_a_coalesced_publish(client, deps):
    for t in ("acme", "globex"):
        await client.put(f"/api/v1/tenants/{t}", headers=AUTH)
    await poisoned(deps, "acme")
    r = await client.post("/api/v1/tenants/globex/destinations", headers=AUTH, json=dest_body())
    assert r.status == 201
    ok = {"tenant_id": "globex", "id": "g1", "topic": "orders", "data": {"n": 1}}
    bad = {"tenant_id": "acme", "id": "a1", "topic": "orders", "data": {"n": 1}}
    # two concurrent single publishes ...
    bad_r, ok_r = await asyncio.wait_for(
        asyncio.gather(
            client.post("/api/v1/publish", headers=AUTH, json=bad),
            client.post("/api/v1/publish", headers=AUTH, json=ok),
        ),
        10,
    )
    assert ok_r.status == 202, await ok_r.text()
    assert bad_r.status == 500 and "poison" not in await bad_r.text()
    # ... and one batch, which is always one coalesced call
    ok2, bad2 = dict(ok, id="g2"), dict(bad, id="a2")
    r = await client.post("/api/v1/publish/batch", headers=AUTH, json=[bad2, ok2])
    body = await r.json()
    assert r.status == 202 and [x["status"] for x in body["results"]] == [500, 202]
    assert body["accepted"] == 1


async def test_a_poisoned_filter_fails_only_its_own_event_in_one_call(client, deps):
    from outpost.models import Event, utcnow

    for t in ("acme", "globex"):
        await client.put(f"/api/v1/tenants/{t}", headers=AUTH)
    await poisoned(deps, "acme")
    events = [
        Event(id=f"e{t}", tenant_id=t, topic="o", time=utcnow(), data={})
        for t in ("acme", "globex")
    ]
    bad, ok = await deps.ingest.publish_many(events)
    assert isinstance(bad, Exception) and ok == (True, [])


async def test_filter_depth_and_size_are_bounded_at_create_and_update(client):
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    url = "/api/v1/tenants/acme/destinations"
    r = await client.post(url, headers=AUTH, json=dest_body(filter=nested(40)))
    body = await r.json()
    assert r.status == 422 and any("FILTER_MAX_DEPTH (16)" in p for p in body["data"]), body
    big = {"data": {"$in": ["x" * 100] * 300}}
    r = await client.post(url, headers=AUTH, json=dest_body(filter=big))
    body = await r.json()
    assert r.status == 422 and any("FILTER_MAX_BYTES (16384)" in p for p in body["data"]), body
    r = await client.post(url, headers=AUTH, json=dest_body(filter=nested(8)))
    assert r.status == 201
    dest = (await r.json())["id"]
    r = await client.patch(f"{url}/{dest}", headers=AUTH, json={"filter": nested(40)})
    assert r.status == 422 and "FILTER_MAX_DEPTH" in await r.text()
    not_nested = {"$or": [{"data": {"$eq": i}} for i in range(5)]}
    r = await client.patch(f"{url}/{dest}", headers=AUTH, json={"filter": not_nested})
    assert r.status == 200


# -- 5: topic wildcards -------------------------------------------------------------------


def old_topic_matches(pattern: str, topic: str) -> bool:
    """The semantics as they were (a backtracking regex), the reference for the table."""
    if "*" not in pattern:
        return pattern == topic
    return re.fullmatch(".*".join(re.escape(p) for p in pattern.split("*")), topic) is not None


TOPIC_CASES = [
    ("orders", "orders", True),
    ("orders", "orders.created", False),
    ("orders.*", "orders.created", True),
    ("orders.*", "orders.", True),
    ("orders.*", "orders", False),
    ("*", "", True),
    ("*", "anything", True),
    ("**", "x", True),
    ("*.created", "orders.created", True),
    ("*.created", "orders.updated", False),
    ("a*b*c", "abc", True),
    ("a*b*c", "aXbYc", True),
    ("a*b*c", "acb", False),
    ("ab*ba", "aba", False),  # prefix and suffix must not overlap
    ("ab*ba", "abba", True),
    ("a*a", "a", False),
    ("a*a", "aa", True),
    ("*a*", "bab", True),
    ("x.*.y", "x..y", True),
    ("o.*", "o.a\nb", False),  # a star never spans a line break (as `.` in the regex)
    ("o.*\nb", "o.a\nb", True),
    ("a.b*", "aXb", False),  # `.` is literal
    ("[a]*", "[a]x", True),
]


@pytest.mark.parametrize(("pattern", "topic", "expected"), TOPIC_CASES)
def test_topic_wildcards_keep_their_meaning(pattern, topic, expected):
    assert old_topic_matches(pattern, topic) is expected
    assert topic_matches(pattern, topic) is expected


def test_topic_wildcards_agree_with_the_old_matcher_on_random_cases():
    rng = random.Random(14)
    for _ in range(3000):
        pattern = "".join(rng.choice("ab*\n.") for _ in range(rng.randint(0, 7)))
        topic = "".join(rng.choice("ab\n.") for _ in range(rng.randint(0, 9)))
        assert topic_matches(pattern, topic) is old_topic_matches(pattern, topic), (pattern, topic)


def test_a_crafted_wildcard_pattern_is_matched_in_linear_time():
    started = time.perf_counter()  # the regex took ~3 s here (polynomial in the stars)
    assert topic_matches("a*" * 5 + "b", "a" * 200) is False
    assert time.perf_counter() - started < 0.05
    pattern, topic = "a*" * 120 + "b", "a" * 200_000  # far beyond any real topic
    started = time.perf_counter()
    assert topic_matches(pattern, topic) is False
    assert topic_matches(pattern, topic + "b") is True
    assert time.perf_counter() - started < 0.2


# -- 6: request bodies and time bounds ----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (
            b'{"tenant_id":"acme","data":' + b'{"a":' * 100_000 + b"1" + b"}" * 100_001,
            "MAX_JSON_DEPTH (64)",
        ),
        (b'{"tenant_id":"acme","data":' + b'{"a":' * 70 + b"1" + b"}" * 71, "MAX_JSON_DEPTH (64)"),
        (
            b'{"tenant_id":"acme","data":{"l":' + b"[" * 70 + b"]" * 70 + b"}}",
            "MAX_JSON_DEPTH (64)",
        ),
        (b'{"tenant_id":"acme","data":{"n":NaN}}', "NaN is not JSON"),
        (b'{"tenant_id":"acme","data":{"n":-Infinity}}', "-Infinity is not JSON"),
        (b'{"tenant_id":"acme","data":{"s":"\\ud800"}}', "lone UTF-16 surrogate"),
        (b'{"tenant_id":"acme","data":{"\\udfff":1}}', "lone UTF-16 surrogate"),
        # the same surrogate as raw (CESU-8) bytes: the stdlib parser lets them through
        (b'{"tenant_id":"acme","data":{"s":"\xed\xa0\x80"}}', "lone UTF-16 surrogate"),
    ],
)
async def test_bodies_no_service_can_carry_are_400(client, body, said):
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    for path, data in (("/api/v1/publish", body), ("/api/v1/publish/batch", b"[" + body + b"]")):
        r = await client.post(path, headers={**AUTH, "Content-Type": "application/json"}, data=data)
        answer = await r.json()
        assert r.status == 400 and said in answer["message"], (path, answer)


async def test_a_body_within_the_depth_limit_and_a_paired_surrogate_are_accepted(client):
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    body = b'{"tenant_id":"acme","data":' + b'{"a":' * 60 + b'"\\ud83d\\ude00"' + b"}" * 61
    r = await client.post("/api/v1/publish", headers=AUTH, data=body)
    assert r.status == 202, await r.text()


@pytest.mark.parametrize(
    "query",
    [
        "time[gte]=2024-01-01T00:00:00%2B02:00&time[lte]=2024-01-02T00:00:00",
        "time[gt]=2024-01-01&time[lt]=2024-01-02T00:00:00Z",
        "time[gte]=0001-01-01T00:00:00%2B14:00&time[lte]=9999-12-31T23:59:59-14:00",
    ],
)
async def test_mixed_time_zones_in_event_and_attempt_bounds(client, query):
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    for path in ("/api/v1/events", "/api/v1/attempts", "/api/v1/tenants/acme/events"):
        r = await client.get(f"{path}?{query}", headers=AUTH)
        assert r.status in (200, 404), (path, r.status, await r.text())
        assert r.status != 404 or path.endswith("acme/events")


@pytest.mark.parametrize(
    "span",
    [
        "time[start]=2024-01-01T00:00:00%2B02:00&time[end]=2024-01-02T00:00:00",
        "time[start]=0001-01-01T00:00:00%2B14:00&time[end]=9999-12-31T23:59:59-14:00",
        "time[start]=2024-01-01&time[end]=2024-01-02T00:00:00Z",
    ],
)
async def test_mixed_time_zones_in_metrics(client, span):
    for kind, extra in (("events", ""), ("attempts", "&granularity=1M")):
        r = await client.get(f"/api/v1/metrics/{kind}?{span}&measures=count{extra}", headers=AUTH)
        assert r.status in (200, 400), (kind, r.status, await r.text())


# -- 4: partition key templates -----------------------------------------------------------

BLOW_UP = "data" + "[].[@,@]" * 16  # 2^16 copies of data: ~1 s and 2 MB per event


@pytest.mark.parametrize(
    ("template", "said"),
    [
        (BLOW_UP, "projections, flattens, filters and multiselects"),
        ("join(':', [" + ",".join(f"data.f{i}" for i in range(40)) + "])", "expression nodes"),
        ("to_string(" * 20 + "data" + ")" * 20, "nested too deep"),
    ],
)
async def test_costly_partition_key_templates_are_refused(client, template, said):
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    body = dest_body()
    body["config"]["partition_key_template"] = template
    r = await client.post("/api/v1/tenants/acme/destinations", headers=AUTH, json=body)
    answer = await r.json()
    assert r.status == 422 and any(said in p for p in answer["data"]), answer


def test_an_allowed_template_stays_fast_on_a_wide_event():
    doc = {"metadata": {}, "data": {"items": [{"id": i, "v": [i, i]} for i in range(20_000)]}}
    for template in ("data.items[*].id", "data.items[?id > `5`].v[]", "data.items[].[id, v]"):
        expression = compile_template(template)
        check_cost(expression)  # allowed
        started = time.perf_counter()
        with pytest.raises(PermanentError):  # far too long a key: a permanent failure
            partition_key(expression, doc, "evt")
        assert time.perf_counter() - started < 1.0, template  # ~0.05 s here; a blow-up is seconds
