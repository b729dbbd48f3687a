"""Our OpenAPI document is a superset of Outpost's published contract on every path we
share: the contract's status codes, required response fields and their types, request
fields and query parameters all appear in ours."""

from pathlib import Path

import pytest
import yaml

from outpost.openapi import build

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "outpost-openapi.yaml"
CONTRACT = yaml.safe_load(REFERENCE.read_text())
OURS = build()
NOT_SERVED = {"/config"}  # managed-Outpost only: project settings of Hookdeck's hosted service
IGNORED_STATUS = {"500", "501"}  # ours may not fail that way (no RediSearch dependency)


def resolve(doc, node):
    while isinstance(node, dict) and "$ref" in node:
        target = doc
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def variants(doc, schema):
    """A schema's object variants (oneOf/anyOf flattened, nulls dropped)."""
    schema = resolve(doc, schema)
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return [v for s in schema[key] for v in variants(doc, s)]
    return [] if schema.get("type") == "null" else [schema]


def types_of(doc, schema):
    found = set()
    for v in variants(doc, schema):
        t = v.get("type")
        found |= set(t) if isinstance(t, list) else {t} if t else {"any"}
    return found - {"null"}


def properties(doc, schema):
    props, required = {}, set()
    for v in variants(doc, schema):
        if v.get("type") == "array":
            return properties(doc, v["items"])
        props.update(v.get("properties", {}))
        required |= set(v.get("required", []))
    return props, required


def shared_operations():
    for path, item in CONTRACT["paths"].items():
        if path in NOT_SERVED:
            continue
        for method, op in item.items():
            if method in ("get", "put", "post", "patch", "delete"):
                yield path, method, op


@pytest.mark.parametrize(
    ("path", "method", "op"),
    list(shared_operations()),
    ids=[f"{m.upper()} {p}" for p, m, _ in shared_operations()],
)
def test_shared_operation_is_a_superset(path, method, op):
    ours = OURS["paths"].get("/api/v1" + path, {}).get(method)
    assert ours is not None, f"{method.upper()} {path} is not served"
    want = set(op["responses"]) - IGNORED_STATUS
    assert want <= set(ours["responses"]), f"missing statuses {want - set(ours['responses'])}"
    for status, response in op["responses"].items():
        content = resolve(CONTRACT, response).get("content", {}).get("application/json")
        if not content or not status.startswith("2"):
            continue
        ours_schema = ours["responses"][status]["content"]["application/json"]["schema"]
        theirs, theirs_required = properties(CONTRACT, content["schema"])
        mine, _ = properties(OURS, ours_schema)
        missing = theirs_required - set(mine)
        assert not missing, f"{status}: required fields missing: {missing}"
        for name in set(theirs) & set(mine):
            t_types, m_types = types_of(CONTRACT, theirs[name]), types_of(OURS, mine[name])
            if "any" in t_types or "any" in m_types:
                continue
            assert t_types & m_types, f"{status}: {name} is {m_types}, contract {t_types}"
    body = op.get("requestBody", {}).get("content", {}).get("application/json")
    if body:
        theirs, _ = properties(CONTRACT, body["schema"])
        mine, _ = properties(OURS, ours["requestBody"]["content"]["application/json"]["schema"])
        assert set(theirs) <= set(mine), f"request fields not accepted: {set(theirs) - set(mine)}"
    params = {
        p["name"]
        for p in (resolve(CONTRACT, p) for p in op.get("parameters", []))
        if p["in"] == "query"
    }
    mine_params = {p["name"] for p in ours["parameters"] if p["in"] == "query"}
    missing_params = {
        p
        for p in params
        if p not in mine_params and not any(m.startswith(p + "[") for m in mine_params)
    }
    assert not missing_params, f"query parameters not documented: {missing_params}"
