"""The Lua rule: every key a script touches arrives in KEYS (Redis Cluster routes a call by
its declared keys, and a later split by hash tag needs the list to be complete).

Two checks. Statically, every `redis.call` in every shipped `.lua` file names its key as
`KEYS[...]` or a local bound from KEYS. On a real redis-server, each script runs through
the code that calls it with a guard in front that refuses any key not in KEYS.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

import outpost
from outpost.deps import Deps
from outpost.models import Event, Task
from outpost.queue import lua
from outpost.queue.calls import Calls
from outpost.queue.items import Outcome
from tests import slots
from tests.conftest import kinesis_body
from tests.topologies import topology  # noqa: F401  (single node and cluster)

SCRIPTS = sorted(Path(outpost.__file__).parent.glob("*/scripts/*.lua"))
# (XGROUP names its key after the subcommand: `redis.call('XGROUP', 'CREATE', key, ...)`)
CALL = re.compile(r"redis\.p?call\(\s*'(\w+)'\s*,\s*(?:'CREATE'\s*,\s*)?([^,)]+)")
LOCALS = re.compile(r"local\s+([\w\s,]+?)\s*=\s*(.+)")
FROM_KEYS = re.compile(r"KEYS\[.+\]$")
TABLE_OF_KEYS = re.compile(r"\{\s*KEYS\[[^\]]+\](\s*,\s*KEYS\[[^\]]+\])*\s*\}$")

# Runs before a script's own text: a local `redis` whose `call` refuses undeclared keys.
GUARD = """
local declared = {}
for _, k in ipairs(KEYS) do declared[k] = true end
local real_redis = redis
local redis = setmetatable({}, {__index = real_redis})
redis.call = function(command, key, ...)
  local named = key
  if command == 'XGROUP' then named = select(1, ...) end
  if not declared[named] then error('undeclared key ' .. tostring(named)) end
  return real_redis.call(command, key, ...)
end
"""


def key_locals(text: str) -> tuple[set[str], set[str]]:
    """Names bound from KEYS (`local a, b = KEYS[1], KEYS[t.x]`), and tables of them."""
    names, tables = set(), set()
    for line in text.splitlines():
        m = LOCALS.match(line.strip())
        if not m:
            continue
        targets = [n.strip() for n in m.group(1).split(",")]
        values = [v.strip() for v in re.split(r",\s*(?![^{]*\})", m.group(2))]
        for name, value in zip(targets, values, strict=False):
            if FROM_KEYS.match(value):
                names.add(name)
            elif TABLE_OF_KEYS.match(value):
                tables.add(name)
    return names, tables


def test_the_scripts_ship_with_the_package():
    assert {p.parent.parent.name for p in SCRIPTS} == {"queue", "store"}  # and nowhere else
    assert len(SCRIPTS) >= 11


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.stem)
def test_every_call_names_its_key_from_KEYS(path: Path):
    text = path.read_text()
    names, tables = key_locals(text)
    calls = CALL.findall(text)
    assert calls, "a script with no redis.call?"
    for command, key in calls:
        key = key.strip()
        from_table = re.fullmatch(r"(\w+)\[\w+\]", key)
        assert FROM_KEYS.match(key) or key in names or (from_table and from_table[1] in tables), (
            f"{path.name}: {command} on {key}, which is not from KEYS"
        )


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.stem)
def test_every_script_documents_its_layout(path: Path):
    header = path.read_text().split("\n\n")[0] + path.read_text()[:1500]
    for part in ("-- KEYS:", "-- ARGV:", "-- Returns"):
        assert part in header, f"{path.name} lacks {part!r} in its top comment"


@pytest.fixture
def guarded(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every script registered from now on runs behind GUARD; returns the names loaded."""
    loaded: set[str] = set()
    original = lua.source

    def source(package: str, name: str) -> str:
        loaded.add(name)
        return GUARD + original(package, name)

    monkeypatch.setattr(lua, "source", source)
    return loaded


async def test_the_guard_refuses_an_undeclared_key(redis: Redis, guarded: set[str]):
    script = redis.register_script(GUARD + "return redis.call('GET', 'elsewhere')")
    with pytest.raises(ResponseError, match="undeclared key elsewhere"):
        await script(keys=["somewhere"])
    assert await redis.register_script(GUARD + "return redis.call('GET', KEYS[1])")(["k"]) is None


async def test_queue_and_store_scripts_touch_only_their_keys(
    redis_server, settings, guarded: set[str]
):
    client = Redis.from_url(redis_server.redis_url)  # no script registered on it yet
    await client.flushdb()
    deps = Deps.build(settings, client)
    try:
        await run_every_queue_and_store_script(deps)
    finally:
        await deps.registry.close()
        await client.aclose()
    assert guarded >= {
        "publish",
        "complete",
        "requeue",
        "upsert_tenant",
        "create_destination",
        "replace_destination",
        "swap_destination",
        "swap_flow_resource",
    }


async def run_every_queue_and_store_script(deps: Deps) -> None:
    store, queue = deps.store, deps.queue
    assert await store.upsert_tenant("acme", {"a": "1"}) is True
    assert await store.upsert_tenant("acme", {"a": "2"}) is False
    on = deps.registry.create("acme", kinesis_body("s", "http://127.0.0.1:1"), "d1")
    off = deps.registry.create("acme", kinesis_body("s", "http://127.0.0.1:1"), "d2")
    await store.create_destination(on)
    await store.create_destination(off)
    assert await store.replace_destination(on) is True
    assert await store.reencrypt_all() == (2, 0)
    events = [
        Event(id=f"e{i}", tenant_id="acme", topic="t", time=datetime.now(UTC), data={})
        for i in range(6)
    ]
    # every event queued to d1, and held (kept as a dead letter) for d2
    results = await queue.publish_many([(e, [("d1", e.id)], ["d2"]) for e in events])
    assert results == [True] * 6
    await queue.ensure_groups()
    entries = await queue.read("c1", count=10, block_ms=100)
    assert len(entries) == 6
    outcomes = [
        Outcome("success"),
        Outcome("failed", "x", retry_in=0),
        Outcome("failed", "x", dead=True),
        Outcome("failed", "x", retry_in=0, record_attempt=False),
        Outcome("failed", "x", dead=True),
        Outcome("success"),
    ]
    done = [queue.complete_soon(e, o, 1.0) for e, o in zip(entries, outcomes, strict=True)]
    for d in done:
        await d  # a refused key would surface here as the task's own error
    assert await queue.promote_due() == 2
    letters = await queue.dead_letters("acme")
    assert len(letters) == 8  # 6 held at publish, 2 dead after an attempt
    items = [(d["id"], Task.from_fields(d), d["e"]) for d in letters]
    assert await queue.redrive("acme", items) == 8
    assert await queue.dead_letters("acme") == []
    record = {"id": "c1", "imsOrgId": "acme", "sandboxName": "prod", "etag": '"1"'}
    await deps.flows.create("connections", record, set())
    assert await deps.flows.replace("connections", {**record, "etag": '"2"'}, '"1"', set()) == 1


async def test_a_script_call_spanning_two_slots_is_refused(redis):
    """The session-wide check (tests/slots.py) can fail: two tenants' keys in one call."""
    script = redis.register_script("return #KEYS")
    keys = ["{t:a}:x", "{t:b}:x"]
    with pytest.raises(slots.CrossSlot):
        await script(keys=keys)
    assert slots.BROKEN.pop() == keys  # (deliberate: not a failure of the session)
    assert await script(keys=["{t:a}:x", "{t:a}:y"]) == 2
    try:  # and as queue/calls.py sends them (pipelined; on a cluster, each call's answer)
        answers = await Calls().script(script, keys, []).run(redis)
    except slots.CrossSlot:
        answers = [slots.CrossSlot()]
    assert isinstance(answers[0], slots.CrossSlot)
    assert slots.BROKEN.pop() == keys


async def test_every_script_call_keeps_to_one_slot(deps):
    """Every queue and store script, as the code calls it: each call's KEYS hash to one
    slot (on the cluster the call would be refused otherwise, and is run there too)."""
    seen: list[list[str]] = []
    slots.SEEN.append(seen)
    try:
        await run_every_queue_and_store_script(deps)
    finally:
        slots.SEEN.remove(seen)
    assert len(seen) >= 12
    assert [keys for keys in seen if len(slots.slots_of(keys)) != 1] == []
