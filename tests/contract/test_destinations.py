"""The destination conformance suite: every destination type passes every test here, run
against the real local server of its type (Kinesis on moto and on kinesis-local, memory
in-process) through the real API and worker. A new type: one harness module in
tests/contract/harnesses/, one entry in its HARNESSES. Batch partial failures of
Kinesis under heavier load: tests/test_batching.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from outpost.crypto import mask
from outpost.delivery.worker import Worker
from outpost.deps import Deps
from outpost.destinations.base import DestinationType, Kind
from outpost.destinations.memory.provider import MemoryDestination
from outpost.models import Event
from outpost.retry import RetryPolicy
from outpost.runtime import build_worker, create_app
from outpost.settings import Settings
from tests.conftest import AUTH
from tests.contract.harnesses import HARNESSES, Harness, same_version


@pytest.fixture
async def memory_type() -> MemoryDestination:
    return MemoryDestination()


@pytest.fixture
async def cdeps(
    settings: Settings, redis: Redis, memory_type: MemoryDestination
) -> AsyncIterator[Deps]:
    d = Deps.build(settings, redis, extra_types=[memory_type])
    yield d
    await d.registry.close()


@pytest.fixture
async def api(aiohttp_client: Any, settings: Settings, cdeps: Deps) -> Any:
    client = await aiohttp_client(create_app(settings, cdeps, run_promoter=False))
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    return client


@pytest.fixture
def worker(cdeps: Deps) -> Worker:
    return build_worker(cdeps, cdeps.settings, policy=RetryPolicy(max_retries=5, interval=0.02))


@pytest.fixture(params=list(HARNESSES))
async def harness(
    request: pytest.FixtureRequest, memory_type: MemoryDestination
) -> AsyncIterator[Harness]:
    h = await HARNESSES[request.param](request, memory_type)
    yield h
    await h.close()


def provider(deps: Deps, h: Harness) -> DestinationType:
    return deps.registry.get(h.type)


async def create(api: Any, body: dict[str, Any]) -> dict[str, Any]:
    r = await api.post("/api/v1/tenants/acme/destinations", json=body, headers=AUTH)
    assert r.status == 201, await r.text()
    return dict(await r.json())


async def publish(api: Any, event_id: str) -> None:
    body = {"tenant_id": "acme", "topic": "orders", "id": event_id, "data": {"id": event_id}}
    r = await api.post("/api/v1/publish", json=body, headers=AUTH)
    assert r.status == 202, await r.text()


async def attempts_by_event(deps: Deps, dest_id: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for a in await deps.queue.attempts("acme", dest_id, count=1000):
        out.setdefault(a["event_id"], []).append(a)
    return out


# -- validate -----------------------------------------------------------------------------
async def test_a_good_config_is_accepted_and_every_required_field_is_named(api, cdeps, harness):
    created = await create(api, harness.body())
    assert created["type"] == harness.type and created["target"]
    schema = provider(cdeps, harness).schema
    required = [("config", f["key"]) for f in schema.config_fields if f.get("required")]
    required += [("credentials", f["key"]) for f in schema.credential_fields if f.get("required")]
    assert required
    for section, key in required:
        body = harness.body()
        del body[section][key]
        r = await api.post("/api/v1/tenants/acme/destinations", json=body, headers=AUTH)
        assert r.status == 422
        assert f"{section}.{key} is required" in (await r.json())["data"]


async def test_each_bad_value_is_named_all_at_once(api, harness):
    body = harness.body(unknown_field=1)
    for path, value in harness.bad_values:
        section, key = path.split(".")
        body[section][key] = value
    r = await api.post("/api/v1/tenants/acme/destinations", json=body, headers=AUTH)
    assert r.status == 422
    found = (await r.json())["data"]
    for path, _ in [*harness.bad_values, ("config.unknown_field", 1)]:
        assert any(p.startswith(path) for p in found), (path, found)


# -- format -------------------------------------------------------------------------------
async def test_format_is_pure_and_the_retried_record_is_byte_identical(api, cdeps, worker, harness):
    dest_id = (await create(api, harness.body()))["id"]
    await publish(api, "evt_retried")
    harness.fail(Kind.RETRY)
    [entry] = await cdeps.queue.read(worker.name, count=10, block_ms=100)
    outcome = await worker.process(entry)
    assert (outcome.code, outcome.dead, outcome.retry_in is not None) == (
        harness.codes[Kind.RETRY],
        False,
        True,
    )
    harness.heal()
    await worker.run_until_empty()
    dest = await cdeps.store.get_destination("acme", dest_id)
    event = Event.from_json(
        orjson.loads(await cdeps.redis.get(cdeps.keys.event("acme", "evt_retried")))
    )
    p = provider(cdeps, harness)
    record = p.format(event, dest)
    assert record == p.format(event, same_version(dest))  # pure: a fresh parse, same record
    [(key, data)] = harness.received(expect=1)
    assert (key, data) == ("evt_retried", record.data)  # the retry sent exactly these bytes
    assert len(await cdeps.queue.attempts("acme", dest_id)) == 2


# -- send ---------------------------------------------------------------------------------
async def test_one_event_arrives_exactly_once_through_the_worker(api, cdeps, worker, harness):
    dest_id = (await create(api, harness.body()))["id"]
    await publish(api, "evt_once")
    await worker.run_until_empty()
    await asyncio.sleep(0.2)  # time for any second copy to land
    assert [k for k, _ in harness.received(expect=1)] == ["evt_once"]
    [attempt] = await cdeps.queue.attempts("acme", dest_id)
    assert attempt["status"] == "success" and attempt["response_data"]


# -- classify -----------------------------------------------------------------------------
async def test_a_permanent_failure_dead_letters_and_a_retryable_one_retries(
    api, cdeps, worker, harness
):
    dest_id = (await create(api, harness.body()))["id"]
    harness.fail(Kind.PERMANENT)
    await publish(api, "evt_perm")
    await worker.run_until_empty()
    [dead] = await cdeps.queue.dead_letters("acme")
    assert (dead["e"], dead["code"]) == ("evt_perm", harness.codes[Kind.PERMANENT])
    assert len(await cdeps.queue.attempts("acme", dest_id)) == 1  # never retried
    harness.heal()
    harness.fail(Kind.RETRY)
    await publish(api, "evt_retry")
    [entry] = await cdeps.queue.read(worker.name, count=10, block_ms=100)
    assert (await worker.process(entry)).retry_in is not None
    harness.heal()
    await worker.run_until_empty()
    assert [k for k, _ in harness.received(expect=1)] == ["evt_retry"]
    retried = (await attempts_by_event(cdeps, dest_id))["evt_retry"]
    assert sorted(a["status"] for a in retried) == ["failed", "success"]
    assert len(await cdeps.queue.dead_letters("acme")) == 1


# -- batch --------------------------------------------------------------------------------
async def test_send_batch_of_n_records_arrives_n_times(api, cdeps, harness):
    dest_id = (await create(api, harness.body(**harness.batching)))["id"]
    dest = await cdeps.store.get_destination("acme", dest_id)
    p = provider(cdeps, harness)
    events = [
        Event(id=f"b{i}", tenant_id="acme", topic="orders", time=datetime.now(UTC), data={})
        for i in range(7)
    ]
    results = await asyncio.gather(*await p.send_batch([p.format(e, dest) for e in events], dest))
    # a type with no batch call (HTTP) sends each record of send_batch alone
    size = 7 if p.batching(dest) else 1
    assert len(results) == 7 and all(r.get("batch_size", 1) == size for r in results)
    assert sorted(k for k, _ in harness.received(expect=7)) == [e.id for e in events]


async def test_a_partial_batch_failure_retries_only_the_failed_records(api, cdeps, worker, harness):
    dest_id = (await create(api, harness.body(**harness.batching)))["id"]
    ids = [f"p{i:02d}" for i in range(30)]
    harness.fail_some_records(ids)
    for eid in ids:
        await publish(api, eid)
    await worker.run_until_empty(limit=30)
    assert sorted(k for k, _ in harness.received(expect=30)) == ids  # each exactly once
    failed = harness.failed_records()
    assert 0 < len(failed) < len(ids)
    by_event = await attempts_by_event(cdeps, dest_id)
    assert {e: len(a) for e, a in by_event.items()} == {e: failed[e] + 1 for e in ids}


# -- credentials --------------------------------------------------------------------------
async def test_sensitive_credentials_are_masked_in_every_response(api, cdeps, harness):
    created = await create(api, harness.body())
    r = await api.get(f"/api/v1/tenants/acme/destinations/{created['id']}", headers=AUTH)
    shown = [created["credentials"], (await r.json())["credentials"]]
    schema = provider(cdeps, harness).schema
    sent = harness.credentials()
    assert (schema.sensitive | schema.revealed) & set(sent)  # a secret to mask or reveal
    for creds in shown:
        for key, value in sent.items():  # revealed ones (webhook secrets) are shown in full
            assert creds[key] == (mask(value) if key in schema.masked else value)


async def test_patched_credentials_are_used_on_the_next_send(api, cdeps, worker, harness):
    dest_id = (await create(api, harness.body()))["id"]
    await publish(api, "evt_before")
    await worker.run_until_empty()
    rotated = harness.credentials(rotated=True)
    r = await api.patch(
        f"/api/v1/tenants/acme/destinations/{dest_id}",
        json={"credentials": rotated},
        headers=AUTH,
    )
    assert r.status == 200, await r.text()
    await publish(api, "evt_after")
    await worker.run_until_empty()
    assert sorted(k for k, _ in harness.received(expect=2)) == ["evt_after", "evt_before"]
    assert harness.identities() == [
        harness.identity(harness.credentials()),
        harness.identity(rotated),
    ]


async def test_the_memory_type_is_not_offered_unless_asked_for(client, api):
    """Production's registry (Deps.build without extra types) has no `memory`."""
    default = await client.get("/api/v1/destination-types", headers=AUTH)
    with_memory = await api.get("/api/v1/destination-types", headers=AUTH)
    offered = [t["type"] for t in await default.json()]
    assert "aws_kinesis" in offered and "memory" not in offered
    assert [t["type"] for t in await with_memory.json()] == [*offered, "memory"]
