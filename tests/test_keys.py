"""Ids inside Redis keys: no two distinct ids, and no two kinds of key, share a key; no id
can move a hash tag; ids of safe characters keep the keys they always had."""

import itertools
import re
from collections import Counter
from urllib.parse import quote

import pytest
from redis.crc import key_slot

from outpost.queue.keys import Keys, partition_tag
from tests.conftest import AUTH, kinesis_body
from tests.topologies import topology  # noqa: F401  (single node and cluster)

TRICKY = [
    "X",
    "X:attempts",
    "X:attempts:d",
    "attempts",
    "a:b",
    "a%3Ab",
    "a%b",
    "%",
    "{t:a}",
    "a}b{",
    "}",
    "{",
    "*",
    "a b",
    "évé",
    "日本",
    "a/b",
    "-",
    ".",
]


def every_key(keys: Keys, a: str, b: str) -> dict[str, tuple[str, ...]]:
    """Each key builder with ids (a, b), the key -> which builder and ids made it."""
    built = {
        ("tenant", a): keys.tenant(a),
        ("destinations", a): keys.destinations(a),
        ("event", a, b): keys.event(a, b),
        ("event_owners", a): keys.event_owners(a),
        ("events_index", a): keys.events_index(a),
        ("outbox", a): keys.outbox(a),
        ("attempt", a): keys.attempt(a),
        ("attempts", a, b): keys.attempts(a, b),
        ("tenant_attempts", a): keys.tenant_attempts(a),
        ("event_attempts", a, b): keys.event_attempts(a, b),
        ("dead_letters", a): keys.dead_letters(a),
        ("failures", a, b): keys.failures(a, b),
        ("publish_rate", a): keys.publish_rate(a, 7),
        ("flow_resources", a, b): keys.flow_resources(a, b, "connections"),
        ("flow_resources_kind", a, b): keys.flow_resources("o", a, b),
        ("flow_state", a): keys.flow_state(a, "checkpoints"),
        ("flow_notifications", a, b): keys.flow_notifications(a, b),
        ("lane", a, b): keys.lane(3, a, b),
    }
    return {key: made for made, key in built.items()}


@pytest.mark.parametrize("deployment", ["", "dep", "dep:x{y}"])
def test_key_builders_are_injective_over_tricky_ids(deployment):
    keys = Keys(deployment)
    seen: dict[str, tuple[str, ...]] = {}
    for a, b in itertools.product(TRICKY, repeat=2):
        for key, made in every_key(keys, a, b).items():
            assert seen.setdefault(key, made) == made, f"{made} and {seen[key]} share {key}"
    fixed = [keys.tenants(), keys.admin_events(0), keys.admin_attempts(0), keys.flow_index()]
    fixed += [keys.retries(0), keys.partition(0), keys.lanes(0), keys.bell(0), keys.outboxes(0)]
    assert not set(fixed) & set(seen)


@pytest.mark.parametrize("tricky", TRICKY)
def test_no_id_moves_the_hash_tag(tricky):
    keys = Keys("d{e}p")
    for key in every_key(keys, tricky, tricky):
        tags = re.findall(r"\{[^}]*\}", key)
        assert len(tags) <= 1 and key.count("{") == key.count("}") == len(tags), key
        if tags:
            assert tags[0].count(":") == 1, key  # `{t:<id>}`: the id holds no `:`


@pytest.mark.parametrize("deployment", ["", "d{e}p"])
def test_a_lane_names_its_destination_and_its_partition_index(deployment):
    keys = Keys(deployment)
    for a, b in itertools.product(TRICKY, repeat=2):
        lane = keys.lane(5, a, b)
        assert keys.lane_owner(lane) == (a, b)
        assert keys.lanes_of(lane) == keys.lanes(5)
        assert re.fullmatch(keys.lane_pattern(a).replace("*", ".*").replace("{", r"\{"), lane)
    assert keys.lanes_of(keys.partition(5)) is None


def test_keys_of_safe_ids_are_unchanged():
    """Existing data stays reachable after the upgrade: the keys of ids without escaped
    characters are byte-identical to what they were."""
    keys = Keys("prod")
    assert keys.event("acme", "evt_1.a-b") == "prod:{t:acme}:event:evt_1.a-b"
    assert keys.event_attempts("acme", "e1") == "prod:{t:acme}:event:e1:attempts"
    assert keys.attempts("acme", "des_1") == "prod:{t:acme}:attempts:des_1"
    assert keys.attempt("att_9") == "prod:attempt:att_9"  # an id of before
    assert keys.attempt(keys.attempt_id(12, "9f")) == "prod:{p:12}:attempt:att_12_9f"
    assert keys.attempt("att_12_9f:x") == "prod:attempt:att_12_9f%3Ax"  # not one of ours
    assert keys.event_owners("e1") == "prod:{e:e1}:owners"
    assert keys.flow_resources("acme", "prod", "connections") == "prod:{t:acme}:fs:prod:connections"
    assert keys.flow_state("f-1", "checkpoints") == "prod:{f:f-1}:checkpoints"
    assert Keys().tenant("acme") == "{t:acme}:tenant"


async def test_event_x_and_x_attempts_keep_their_own_data(client, deps, worker):
    """Event `X:attempts` once took the key of event `X`'s attempts: published after X
    was delivered it was refused as a duplicate (lost); published before, X's completion
    hit WRONGTYPE."""
    tenant = "acme:eu"
    assert (await client.put(f"/api/v1/tenants/{tenant}", headers=AUTH)).status == 201
    body = kinesis_body("no-such-stream", "http://127.0.0.1:1")
    r = await client.post(f"/api/v1/tenants/{tenant}/destinations", headers=AUTH, json=body)
    dest = (await r.json())["id"]
    ids = ["X", "X:attempts", "X:attempts:" + dest]
    for event_id in ids:
        r = await client.post(
            "/api/v1/publish",
            headers=AUTH,
            json={
                "tenant_id": tenant,
                "topic": "orders",
                "id": event_id,
                "eligible_for_retry": False,
                "data": {"marker": event_id},
            },
        )
        assert r.status == 202, await r.text()
        await worker.run_until_empty(limit=10)
    for event_id in ids:
        r = await client.get(f"/api/v1/events/{event_id}", headers=AUTH)
        assert r.status == 200, (event_id, await r.text())
        assert (await r.json())["data"] == {"marker": event_id}
        r = await client.get(
            "/api/v1/attempts", headers=AUTH, params={"tenant_id": tenant, "event_id": event_id}
        )
        assert r.status == 200, await r.text()
        attempts = (await r.json())["models"]
        assert [a["event_id"] for a in attempts] == [event_id], (event_id, attempts)
    r = await client.get("/api/v1/events", headers=AUTH, params={"tenant_id": tenant})
    assert sorted(e["id"] for e in (await r.json())["models"]) == sorted(ids)


@pytest.mark.parametrize("bad", ["a{b}", "a*", "a b", "évé", "a%b", "a/b"])
async def test_ids_outside_the_id_pattern_are_a_clear_400(client, bad):
    """The API keeps ID_PATTERN (Outpost's contract sets no pattern on ids); an id outside
    it is refused with a 4xx naming the rule, never stored nor a 5xx."""
    r = await client.put(f"/api/v1/tenants/{quote(bad, safe='')}", headers=AUTH)
    assert 400 <= r.status < 500, await r.text()
    assert (await client.put("/api/v1/tenants/acme", headers=AUTH)).status == 201
    r = await client.post(
        "/api/v1/publish",
        headers=AUTH,
        json={"tenant_id": "acme", "topic": "orders", "id": bad, "data": {}},
    )
    assert r.status in (400, 422), await r.text()
    r = await client.get("/api/v1/events", headers=AUTH, params={"tenant_id": "acme"})
    assert (await r.json())["models"] == []


def test_partition_tags_spread_evenly_over_the_slots():
    """A cluster whose masters split the 16,384 slots evenly (redis-cli --cluster create)
    gets its share of partitions: with P a power of two, each 1/P of the slots holds
    exactly one partition; the default 16 over three masters is 6/5/5 (`{p:<n>}` alone
    was 10/3/3). A single node keeps `{p:<n>}`."""
    for partitions in (2, 16, 64, 1024):
        ranges = Counter(
            key_slot(partition_tag(n).encode()) * partitions // 16384 for n in range(partitions)
        )
        assert sorted(ranges) == list(range(partitions)), partitions
    thirds = Counter(key_slot(partition_tag(n).encode()) * 3 // 16384 for n in range(16))
    assert sorted(thirds.values()) == [5, 5, 6]
    keys = Keys("prod", spread=True)
    assert keys.lanes(5) == f"prod:{{{partition_tag(5)}}}:lanes" != Keys("prod").lanes(5)
    assert Keys.partition_of(keys.lanes(5)) == 5 and Keys.partition_of(keys.retries(300)) == 300
