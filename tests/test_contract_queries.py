"""The contract sweep: every value Outpost's contract accepts for a query parameter of a
shared GET route (each enum value, alone, repeated, comma-joined and in bracket notation;
integer bounds and defaults; date-times in each accepted format; examples) is accepted by
ours, on a tenant with one delivered event."""

import pytest

from tests.conftest import AUTH
from tests.test_contract import SHARED
from tests.test_history import get, make_dest, publish

DATES = ["2024-01-01T00:00:00Z", "2024-01-01T00:00:00.123456789Z", "2024-01-01T00:00:00%2B02:00"]
DATES += ["2024-01-01"]
OPAQUE = {"next", "prev"}  # cursors come from the server, not from the contract
GETS = [(p, op) for p, m, op in SHARED if m == "get" and op["query"]]


def values(p):
    """`name=value` pieces the contract allows for one parameter."""
    name, out = p["name"], []
    if "keys" in p:
        return [f"{name}[{k}]={d}" for k in p["keys"] for d in DATES]
    examples = [p[k] for k in ("minimum", "maximum", "default", "example") if k in p]
    for v in p.get("enum", []) + p.get("described_values", []):
        out.append(f"{name}={v}")
    items = p.get("items_enum", []) + p.get("described_values", [])
    if "array" in p["types"]:
        items = items or [str(p.get("example", "x")), "y"]
        out += [f"{name}={items[0]}&{name}={items[-1]}", f"{name}={','.join(items)}"]
        out += ["&".join(f"{name}[{i}]={v}" for i, v in enumerate(items))]
    out += [f"{name}={v}" for v in examples if not isinstance(v, list)]
    if not p["required"]:
        out.append(f"{name}=")
    return out or [f"{name}=x"]


def base(op):
    """The required parameters, with an allowed value each (metrics' time and measures)."""
    parts = []
    for p in op["query"]:
        if p["required"] and "keys" in p:
            parts += [f"{p['name']}[start]=2000-01-01T00:00:00Z", f"{p['name']}[end]=2099-01-01"]
        elif p["required"]:
            parts.append(f"{p['name']}={(p.get('items_enum') or p.get('enum'))[0]}")
    return parts


@pytest.fixture
async def ids(client, worker, moto, moto_stream):
    dest = await make_dest(client, "acme", moto_stream, moto.url)
    await publish(client, "acme", "e1", 1)
    await worker.run_until_empty()
    [attempt] = (await get(client, "/attempts?tenant_id=acme"))["models"]
    return {"tenant_id": "acme", "destination_id": dest, "event_id": "e1"} | {
        "attempt_id": attempt["id"],
        "type": "aws_kinesis",
    }


@pytest.mark.parametrize(("path", "op"), GETS, ids=[f"GET {p}" for p, _ in GETS])
async def test_every_contract_value_is_accepted(client, ids, path, op):
    url = "/api/v1" + path.format(**ids)
    refused = []
    for p in op["query"]:
        if p["name"] in OPAQUE:
            continue
        for piece in values(p):
            key = piece.split("=", 1)[0]
            others = [b for b in base(op) if not b.startswith((key + "=", p["name"] + "="))]
            query = "&".join([*others, piece])
            r = await client.get(f"{url}?{query}", headers=AUTH)
            if r.status != 200:
                refused.append(f"{query} -> {r.status} {await r.text()}")
    assert not refused, "\n".join(refused)
