"""Reading OpenAPI 3.x schemas the way the contract test compares them: `$ref`s resolved,
`oneOf`/`anyOf` flattened into object variants (nulls dropped), array responses read
through their items. Used on Outpost's reference document (by `extract.py`) and on ours
(by `tests/test_contract.py`)."""

from __future__ import annotations

from typing import Any


def resolve(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = doc
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def variants(doc: dict[str, Any], schema: Any) -> list[dict[str, Any]]:
    """A schema's object variants (oneOf/anyOf flattened, nulls dropped)."""
    schema = resolve(doc, schema)
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return [v for s in schema[key] for v in variants(doc, s)]
    return [] if schema.get("type") == "null" else [schema]


def types_of(doc: dict[str, Any], schema: Any) -> set[str]:
    found: set[str] = set()
    for v in variants(doc, schema):
        t = v.get("type")
        found |= set(t) if isinstance(t, list) else {t} if t else {"any"}
    return found - {"null"}


def properties(doc: dict[str, Any], schema: Any) -> tuple[dict[str, Any], set[str]]:
    props: dict[str, Any] = {}
    required: set[str] = set()
    for v in variants(doc, schema):
        if v.get("type") == "array":
            return properties(doc, v["items"])
        props.update(v.get("properties", {}))
        required |= set(v.get("required", []))
    return props, required


def enums(doc: dict[str, Any], schema: Any) -> tuple[set[Any], set[Any]]:
    """The enum values a schema lists: (for a scalar, for an array's items)."""
    scalar: set[Any] = set()
    items: set[Any] = set()
    for v in variants(doc, schema):
        if v.get("type") == "array" and "items" in v:
            items |= enums(doc, v["items"])[0]
        else:
            scalar |= set(v.get("enum", []))
    return scalar, items


def query_parameters(doc: dict[str, Any], op: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        p for p in (resolve(doc, p) for p in op.get("parameters", [])) if p.get("in") == "query"
    ]
