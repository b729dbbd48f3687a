"""Our OpenAPI document is a superset of Outpost's published contract on every path we
share: the contract's status codes, required response fields and their types, request
fields and query parameters (with every enum value it lists) all appear in ours.

The contract's facts come from tests/contract/outpost_contract.json, extracted from
Outpost's OpenAPI document by tests/contract/extract.py (see tests/contract/README.md)."""

import json
from pathlib import Path

import pytest

from outpost.runtime import openapi_document as build
from tests.contract.schema import enums, properties, query_parameters, types_of

CONTRACT = json.loads((Path(__file__).parent / "contract" / "outpost_contract.json").read_text())
OURS = build()
NOT_SERVED = {"/config"}  # managed-Outpost only: project settings of Hookdeck's hosted service
IGNORED_STATUS = {"500", "501"}  # ours may not fail that way (no RediSearch dependency)


def shared_operations():
    for op in CONTRACT["operations"]:
        if op["path"] not in NOT_SERVED:
            yield op["path"], op["method"], op


SHARED = list(shared_operations())


def check_responses(op, ours):
    want = set(op["statuses"]) - IGNORED_STATUS
    assert want <= set(ours["responses"]), f"missing statuses {want - set(ours['responses'])}"
    for status, theirs in op["responses"].items():
        ours_schema = ours["responses"][status]["content"]["application/json"]["schema"]
        mine, _ = properties(OURS, ours_schema)
        missing = set(theirs["required"]) - set(mine)
        assert not missing, f"{status}: required fields missing: {missing}"
        for name in set(theirs["fields"]) & set(mine):
            t_types, m_types = set(theirs["fields"][name]["types"]), types_of(OURS, mine[name])
            if "any" in t_types or "any" in m_types:
                continue
            assert t_types & m_types, f"{status}: {name} is {m_types}, contract {t_types}"


def check_query(op, ours):
    mine = {p["name"]: p for p in query_parameters(OURS, ours)}
    missing = {
        p["name"]
        for p in op["query"]
        if p["name"] not in mine and not any(m.startswith(p["name"] + "[") for m in mine)
    }
    assert not missing, f"query parameters not documented: {missing}"
    for p in op["query"]:
        wanted = set(p.get("enum", [])) | set(p.get("items_enum", []))
        wanted |= set(p.get("described_values", []))
        if not wanted or p["name"] not in mine:
            continue
        scalar, items = enums(OURS, mine[p["name"]]["schema"])
        if scalar or items:  # ours lists values: it must list every one the contract does
            assert wanted <= scalar | items, (
                f"{p['name']}: not in our enum {wanted - scalar - items}"
            )


@pytest.mark.parametrize(
    ("path", "method", "op"), SHARED, ids=[f"{m.upper()} {p}" for p, m, _ in SHARED]
)
def test_shared_operation_is_a_superset(path, method, op):
    ours = OURS["paths"].get("/api/v1" + path, {}).get(method)
    assert ours is not None, f"{method.upper()} {path} is not served"
    check_responses(op, ours)
    if op["request"]:
        mine, _ = properties(OURS, ours["requestBody"]["content"]["application/json"]["schema"])
        theirs = set(op["request"]["fields"])
        assert theirs <= set(mine), f"request fields not accepted: {theirs - set(mine)}"
    check_query(op, ours)
