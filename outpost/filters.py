"""Destination filters: Outpost's JSON filter language, evaluated against an event
`{id, topic, time, metadata, data}`. Pure.

A filter is an object. Plain keys descend into the event (`{"data": {"tier": "gold"}}`);
a value is compared for equality, or holds operators: `$eq $neq $gt $gte $lt $lte $in
$nin $startsWith $endsWith $exist`. `$or` and `$and` take lists of filters, `$not` one.
"""

from __future__ import annotations

import json
from typing import Any

COMPARE = {
    "$eq",
    "$neq",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$startsWith",
    "$endsWith",
    "$exist",
}
LOGIC = {"$or", "$and", "$not"}
_MISSING = object()


def bounds(flt: Any, max_depth: int, max_bytes: int) -> list[str]:
    """Why a filter is too big to keep (empty list: it is not). Checked before anything
    walks the filter recursively: matching a filter costs Python frames per level, and
    every publish of the tenant evaluates it. Iterative, so any depth is safe to measure."""
    out = []
    depth, stack = 0, [(flt, 1)]
    while stack and depth <= max_depth:
        node, level = stack.pop()
        if isinstance(node, (dict, list)):
            depth = max(depth, level)
            stack += [(v, level + 1) for v in (node.values() if isinstance(node, dict) else node)]
    if depth > max_depth:
        out.append(f"filter: nested deeper than FILTER_MAX_DEPTH ({max_depth}) objects and lists")
        return out  # too deep to serialize safely
    size = len(json.dumps(flt, separators=(",", ":"), ensure_ascii=False).encode())
    if size > max_bytes:
        out.append(f"filter: {size} bytes of JSON, more than FILTER_MAX_BYTES ({max_bytes})")
    return out


def problems(flt: Any, path: str = "filter") -> list[str]:
    """Why a filter is malformed (empty list: it is fine)."""
    if not isinstance(flt, dict):
        return [f"{path} must be an object"]
    out = []
    for key, value in flt.items():
        where = f"{path}.{key}"
        if key in ("$or", "$and"):
            if not isinstance(value, list) or not value:
                out.append(f"{where} must be a non-empty list of filters")
            else:
                for i, sub in enumerate(value):
                    out += problems(sub, f"{where}[{i}]")
        elif key == "$not":
            out += problems(value, where)
        elif key.startswith("$"):
            out.append(f"{where}: unknown operator (use {', '.join(sorted(COMPARE | LOGIC))})")
        elif isinstance(value, dict) and any(k.startswith("$") for k in value):
            out += _operator_problems(value, where)
        elif isinstance(value, dict):
            out += problems(value, where)
    return out


def _operator_problems(ops: dict[str, Any], where: str) -> list[str]:
    out = []
    for op, arg in ops.items():
        if op in LOGIC:  # inside a field: each part is a condition on that field
            parts = arg if isinstance(arg, list) else [arg]
            if op != "$not" and (not isinstance(arg, list) or not arg):
                out.append(f"{where}.{op} must be a non-empty list")
            for i, part in enumerate(parts):
                at = f"{where}.{op}[{i}]"
                if isinstance(part, dict) and any(k.startswith("$") for k in part):
                    out += _operator_problems(part, at)
                elif isinstance(part, dict):
                    out += problems(part, at)
        elif op not in COMPARE:
            out.append(f"{where}.{op}: unknown operator")
        elif op in ("$in", "$nin") and not isinstance(arg, list):
            out.append(f"{where}.{op} takes a list")
        elif op in ("$startsWith", "$endsWith") and not isinstance(arg, str):
            out.append(f"{where}.{op} takes a string")
        elif op == "$exist" and not isinstance(arg, bool):
            out.append(f"{where}.{op} takes true or false")
    return out


def matches(flt: dict[str, Any] | None, doc: Any) -> bool:
    if not flt:
        return True
    for key, cond in flt.items():
        if key == "$or":
            ok = any(matches(sub, doc) for sub in cond)
        elif key == "$and":
            ok = all(matches(sub, doc) for sub in cond)
        elif key == "$not":
            ok = not matches(cond, doc)
        else:
            value = doc.get(key, _MISSING) if isinstance(doc, dict) else _MISSING
            ok = _check(cond, value)
        if not ok:
            return False
    return True


def _check(cond: Any, value: Any) -> bool:
    if isinstance(cond, dict) and any(k.startswith("$") for k in cond):
        return all(_operator(op, arg, value) for op, arg in cond.items())
    if isinstance(cond, dict):
        return value is not _MISSING and isinstance(value, dict) and matches(cond, value)
    return value is not _MISSING and value == cond


def _operator(op: str, arg: Any, value: Any) -> bool:
    if op == "$exist":
        return (value is not _MISSING) == arg
    if op in LOGIC:
        return _logic(op, arg, value)
    if value is _MISSING:
        return op in ("$neq", "$nin")
    if op == "$eq":
        return bool(value == arg)
    if op == "$neq":
        return bool(value != arg)
    if op == "$in":
        return any(v in arg for v in value) if isinstance(value, list) else value in arg
    if op == "$nin":
        return not (any(v in arg for v in value) if isinstance(value, list) else value in arg)
    if op in ("$startsWith", "$endsWith"):
        if not isinstance(value, str):
            return False
        return value.startswith(arg) if op == "$startsWith" else value.endswith(arg)
    return _order(op, arg, value)


def _logic(op: str, arg: Any, value: Any) -> bool:
    """`$or`/`$and`/`$not` inside a field: their filters apply to that field's value."""
    subs = arg if isinstance(arg, list) else [arg]
    results = [_check(sub, value) for sub in subs]
    if op == "$or":
        return any(results)
    if op == "$and":
        return all(results)
    return not results[0]


def _order(op: str, arg: Any, value: Any) -> bool:
    numbers = (int, float)
    comparable = (
        isinstance(value, numbers)
        and isinstance(arg, numbers)
        and not isinstance(value, bool)
        and not isinstance(arg, bool)
    ) or (isinstance(value, str) and isinstance(arg, str))
    if not comparable:
        return False
    return {"$gt": value > arg, "$gte": value >= arg, "$lt": value < arg, "$lte": value <= arg}[op]
