"""Pages cost a fixed number of Redis round trips, however many items they hold: a page of
tenants, `include=` on an attempts page and a dead-letter redrive each load their items in
one MGET, pipeline or script, never one call per item. Round trips are counted where the
client writes to the socket (one write per command, or per pipeline)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from redis.asyncio.connection import AbstractConnection

from outpost.models import Event
from outpost.queue import lanes as lanes_module
from outpost.queue.calls import Calls
from outpost.queue.items import Outcome
from outpost.queue.lua import register
from tests.conftest import AUTH, kinesis_body


class RoundTrips:
    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.count = 0
        send = AbstractConnection.send_packed_command

        async def counted(conn, command, check_health=True):  # type: ignore[no-untyped-def]
            self.count += 1
            await send(conn, command, check_health)

        monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)

    async def of(self, coro):  # type: ignore[no-untyped-def]
        before = self.count
        result = await coro
        return self.count - before, result


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    return RoundTrips(monkeypatch)


async def test_a_page_of_tenants_is_read_in_one_round_trip(deps, trips):
    for n in range(30):
        await deps.store.upsert_tenant(f"t{n:02d}", {"n": str(n)})
    few, (small, *_) = await trips.of(deps.store.list_tenants(2, None, None, False))
    many, (large, *_) = await trips.of(deps.store.list_tenants(25, None, None, False))
    assert [t["id"] for t in small] == ["t00", "t01"]
    assert [t["id"] for t in large] == [f"t{n:02d}" for n in range(25)]
    assert large[7]["metadata"] == {"n": "7"} and large[7]["destinations_count"] == 0
    assert few == many <= 3  # the index, the tenants (one pipeline), the count


async def make_destination(client, tenant: str = "acme") -> str:
    await client.put(f"/api/v1/tenants/{tenant}", headers=AUTH)
    r = await client.post(
        f"/api/v1/tenants/{tenant}/destinations",
        headers=AUTH,
        json=kinesis_body("s", "http://127.0.0.1:1", topics="*"),
    )
    assert r.status == 201, await r.text()
    return str((await r.json())["id"])


async def attempts_of(deps, dest: str, n: int, start: int) -> None:
    """`n` events published to `dest` and delivered, each leaving one attempt."""
    for i in range(start, start + n):
        ev = Event(id=f"e{i}", tenant_id="acme", topic="t", time=datetime.now(UTC), data={})
        assert await deps.queue.publish(ev, [(dest, ev.id)])
    await deps.queue.ensure_groups()
    entries = await deps.queue.read("c1", count=n, block_ms=100)
    assert len(entries) == n
    for entry in entries:
        # now, not an old time: a completion may trim attempts older than the retention
        await deps.queue.complete(entry, Outcome("success", topic="t"), time.time())


async def test_include_loads_a_page_of_events_and_destinations_at_once(client, deps, trips):
    dest = await make_destination(client)
    url = "/api/v1/attempts?tenant_id=acme&include=event.data&include=destination&limit=100"

    async def listed(n: int) -> tuple[int, list[dict]]:
        got, r = await trips.of(client.get(url, headers=AUTH))
        assert r.status == 200
        body = await r.json()
        assert len(body["models"]) == n
        return got, body["models"]

    await attempts_of(deps, dest, 2, 0)
    few, _ = await listed(2)
    await attempts_of(deps, dest, 20, 2)
    many, models = await listed(22)
    assert few == many
    shown = {m["event"]["id"]: m for m in models}
    assert shown["e5"]["event"]["data"] == {} and shown["e5"]["event"]["destination_id"] == dest
    assert shown["e5"]["destination"]["id"] == dest


async def test_redrive_loads_a_page_of_dead_letters_at_once(client, deps, trips):
    dest = await make_destination(client)

    async def redriven(n: int, start: int) -> int:
        for i in range(start, start + n):  # held for the destination: a dead letter each
            ev = Event(id=f"e{i}", tenant_id="acme", topic="t", time=datetime.now(UTC), data={})
            assert await deps.queue.publish(ev, [], held=[dest])
        got, r = await trips.of(
            client.post("/api/v1/tenants/acme/dead-letters/redrive", headers=AUTH)
        )
        assert r.status == 202 and await r.json() == {"redriven": n, "skipped": []}
        return got

    await redriven(1, 0)  # loads the script into Redis (NOSCRIPT, SCRIPT LOAD) once
    assert await redriven(2, 1) == await redriven(30, 3)
    assert (await deps.queue.depth())["queued"] == 33
    assert await deps.queue.dead_letters("acme") == []


async def test_a_pipelined_script_call_costs_no_script_exists_and_survives_a_flush(redis, trips):
    script = register(redis, "outpost.queue", "owners")  # (a fresh client: not loaded)
    first, _ = await trips.of(_owners_call(script).run(redis))  # loads the script once
    again, answer = await trips.of(_owners_call(script).run(redis))
    assert again == 1 < first  # no SCRIPT EXISTS before each pipeline
    await redis.script_flush()  # as a restarted Redis: it forgot every script
    lost, answer_after = await trips.of(_owners_call(script).run(redis))
    assert lost == 3  # the pipeline, the SCRIPT LOAD, the failed call again
    assert answer_after == answer and not isinstance(answer[0], BaseException)


def _owners_call(script):  # type: ignore[no-untyped-def]
    return Calls().script(script, ["{p:0}:owners:e1"], ["[]"])


async def test_a_lane_the_bell_names_is_read_without_reading_every_index(deps, trips, monkeypatch):
    """A lane joining its index rings its partition's bell with its name: the read that
    hears it reads that lane at once (one more XREADGROUP), not every partition's index
    first (a pipeline of SMEMBERS per partition): a tenant whose lane empties and refills
    at each event cost a refresh of all the indexes per event."""
    monkeypatch.setattr(lanes_module, "REFRESH_SECONDS", 60.0)  # no periodic read here
    await deps.queue.ensure_groups()
    assert await deps.queue.read("c1", count=10, block_ms=None) == []  # indexes read
    now = datetime.now(UTC)
    event = Event(id="e1", tenant_id="acme", topic="t", time=now, data={})
    await deps.queue.publish_many([(event, [("d1", "")], ())])
    spent, entries = await trips.of(deps.queue.read("c1", count=10, block_ms=None))
    assert [e.task.event_id for e in entries] == ["e1"]
    assert spent == 2  # the read that hears the bell, the read of the new lane
