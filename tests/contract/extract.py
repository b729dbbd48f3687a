"""Write the facts our contract test needs from Outpost's published OpenAPI document.

    python -m tests.contract.extract PATH/TO/outpost-openapi.yaml [OUT.json]

Reads the reference YAML (hookdeck/outpost's `docs/apis/openapi.yaml`) and writes
`tests/contract/outpost_contract.json` (or OUT.json): per operation its query parameters,
response statuses, the fields of its 2xx JSON responses and of its JSON request body. See
tests/contract/README.md for where the committed file came from."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.contract.schema import enums, properties, query_parameters, resolve, types_of

METHODS = ("get", "put", "post", "patch", "delete")
OUT = Path(__file__).with_name("outpost_contract.json")
_BULLET = re.compile(r"^\s*-\s*`([^`]+)`:", re.M)


def _fields(doc: dict[str, Any], schema: Any, with_enum: bool = False) -> dict[str, Any]:
    props, required = properties(doc, schema)
    out: dict[str, Any] = {}
    for name in sorted(props):
        field: dict[str, Any] = {"types": sorted(types_of(doc, props[name]))}
        if with_enum:
            scalar, items = enums(doc, props[name])
            field.update(_enum_entries(scalar, items))
        out[name] = field
    return {"fields": out, "required": sorted(required)}


def _enum_entries(scalar: set[Any], items: set[Any]) -> dict[str, Any]:
    entries: dict[str, Any] = {}
    if scalar:
        entries["enum"] = sorted(scalar, key=str)
    if items:
        entries["items_enum"] = sorted(items, key=str)
    return entries


def _query(doc: dict[str, Any], param: dict[str, Any]) -> dict[str, Any]:
    schema = param.get("schema", {})
    scalar, items = enums(doc, schema)
    types = types_of(doc, schema)
    entry: dict[str, Any] = {
        "name": param["name"],
        "required": bool(param.get("required", False)),
        "types": sorted(types),
        **_enum_entries(scalar, items),
    }
    flat = resolve(doc, schema)
    if flat.get("type") == "object":  # deepObject: time[gte], time[start], ...
        entry["keys"] = sorted(flat.get("properties", {}))
    for key in ("minimum", "maximum", "default"):
        if key in flat:
            entry[key] = flat[key]
    if "example" in param or "example" in flat:
        entry["example"] = param.get("example", flat.get("example"))
    documented = _BULLET.findall(param.get("description", ""))
    if documented:  # values listed only in the description (include=...)
        entry["described_values"] = documented
    return entry


def _operation(doc: dict[str, Any], op: dict[str, Any]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, response in op["responses"].items():
        content = resolve(doc, response).get("content", {}).get("application/json")
        if content and status.startswith("2"):
            responses[status] = _fields(doc, content["schema"])
    body = op.get("requestBody", {}).get("content", {}).get("application/json")
    return {
        "statuses": sorted(op["responses"]),
        "query": [_query(doc, p) for p in query_parameters(doc, op)],
        "responses": responses,
        "request": _fields(doc, body["schema"], with_enum=True) if body else None,
    }


def extract(doc: dict[str, Any]) -> dict[str, Any]:
    operations = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                operations.append({"path": path, "method": method, **_operation(doc, op)})
    return {
        "openapi": doc.get("openapi"),
        "version": doc["info"].get("version"),
        "operations": operations,
    }


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print(__doc__, file=sys.stderr)
        return 2
    doc = yaml.safe_load(Path(argv[0]).read_text())
    out = Path(argv[1]) if len(argv) == 2 else OUT
    facts = extract(doc)
    out.write_text(json.dumps(facts, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out} ({len(facts['operations'])} operations)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
