"""The Flow-Service-compatible surface under `/data/foundation/flowservice` (seeds 000 and
001 work with only the host changed). `x-gw-ims-org-id` names the tenant and
`x-sandbox-name` a partition inside it (default `prod`): nothing crosses either."""

from __future__ import annotations

import base64
import copy
import time
import uuid
from typing import Any

from aiohttp import web

from outpost.deps import DEPS, Deps
from outpost.errors import Invalid, NotFound, PreconditionFailed
from outpost.flow import connectors, preview
from outpost.flow.checks import _COMMON, CHECKS
from outpost.flow.runs import get_run, list_notifications, runs_of
from outpost.flow.scope import Scope, _kind, _scope
from outpost.flow.specs import KINESIS, S3, SPECS, secret_params
from outpost.store.flows import new_etag
from outpost.surface import read_json

PREFIX = "/data/foundation/flowservice"


# -- views ----------------------------------------------------------------------------------
def _now_ms() -> int:
    return int(time.time() * 1000)


def _shown(record: dict[str, Any]) -> dict[str, Any]:
    """Secrets never leave in clear."""
    out = copy.deepcopy(record)
    auth = out.get("auth")
    if auth:
        secrets = secret_params(out["connectionSpec"]["id"], auth.get("specName", ""))
        for k in secrets & set(auth.get("params", {})):
            auth["params"][k] = "*" * 8
    return out


async def list_specs(request: web.Request) -> web.Response:
    return web.json_response({"items": list(SPECS.values())})


async def get_spec(request: web.Request) -> web.Response:
    spec = SPECS.get(request.match_info["id"])
    if spec is None:
        raise NotFound("connection spec", "no such connection spec")
    return web.json_response({"items": [spec]})


async def create(request: web.Request) -> web.Response:
    deps, s, kind = request.app[DEPS], await _scope(request), _kind(request)
    body = await read_json(request)
    secrets = await CHECKS[kind](deps, s, body)
    assert isinstance(body, dict)
    now, etag = _now_ms(), new_etag()
    record = {
        **{k: v for k, v in body.items() if k not in _COMMON},
        "id": str(uuid.uuid4()),
        "createdAt": now,
        "updatedAt": now,
        "createdBy": s.by,
        "updatedBy": s.by,
        "createdClient": "outpost",
        "updatedClient": "outpost",
        "imsOrgId": s.org,
        "sandboxName": s.sandbox,
        "description": body.get("description", ""),
        "state": "enabled",
        "etag": etag,
        "version": etag,
    }
    await deps.flows.create(kind, record, secrets)
    return web.json_response({"id": record["id"], "etag": etag}, status=201)


async def _get_or_404(request: web.Request) -> tuple[Deps, Scope, str, dict[str, Any]]:
    deps, s, kind = request.app[DEPS], await _scope(request), _kind(request)
    record = await deps.flows.get(kind, s.org, s.sandbox, request.match_info["id"])
    if record is None:
        raise NotFound(kind[:-1], f"no such {kind[:-1]} in this org and sandbox")
    return deps, s, kind, record


async def get_one(request: web.Request) -> web.Response:
    deps, _, kind, record = await _get_or_404(request)
    shown = _shown(record)
    if kind == "flows":
        shown.update(await deps.flows.flow_status(record["id"]))
    return web.json_response({"items": [shown]})


async def list_all(request: web.Request) -> web.Response:
    deps, s, kind = request.app[DEPS], await _scope(request), _kind(request)
    records = await deps.flows.all(kind, s.org, s.sandbox)
    return web.json_response(_listing(request, kind, records))


def _listing(request: web.Request, kind: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    q = request.query
    for expr in q.getall("property", []):
        records = [r for r in records if _matches(r, expr)]
    if q.get("count") == "true":
        return {"count": len(records)}
    order = q.get("orderby", "-createdAt")
    field, desc = order.lstrip("+-"), order.startswith("-")
    records.sort(key=lambda r: (str(_at(r, field)), r["id"]), reverse=desc)
    try:
        limit = min(max(int(q.get("limit", "100")), 1), 100)
        start = (
            int(base64.urlsafe_b64decode(q["continuationToken"]).decode())
            if q.get("continuationToken")
            else 0
        )
    except ValueError:
        raise Invalid("limit and continuationToken must be what we gave you") from None
    page = records[start : start + limit]
    body: dict[str, Any] = {"items": [_shown(r) for r in page], "_links": {}}
    if start + limit < len(records):
        token = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
        body["_links"]["next"] = {"href": f"/{kind}?continuationToken={token}&limit={limit}"}
    return body


def _at(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _matches(record: dict[str, Any], expr: str) -> bool:
    """`path==a,b` (any of), `path!=a`, or a bare `path` (exists)."""
    for op in ("!=", "=="):
        if op in expr:
            path, _, values = expr.partition(op)
            hit = str(_at(record, path)) in values.split(",")
            return hit if op == "==" else not hit
    return _at(record, expr) is not None


async def patch(request: web.Request) -> web.Response:
    deps, s, kind, record = await _get_or_404(request)
    match = request.headers.get("If-Match")
    if not match:
        raise Invalid("If-Match with the resource's etag is required")
    if _bare(match) != _bare(record["etag"]):
        raise PreconditionFailed("the etag does not match: the resource changed")
    ops = await read_json(request)
    patched = apply_patch(record, ops)
    for immutable in ("connectionSpec", "flowSpec", "baseConnectionId", *_COMMON):
        if patched.get(immutable) != record.get(immutable):
            raise Invalid(f"{immutable} cannot be changed")
    secrets = await CHECKS[kind](deps, s, {k: v for k, v in patched.items() if k not in _COMMON})
    etag = new_etag()
    patched.update(updatedAt=_now_ms(), updatedBy=s.by, etag=etag, version=etag)
    result = await deps.flows.replace(kind, patched, record["etag"], secrets)
    if result == 0:
        raise PreconditionFailed("the etag does not match: the resource changed")
    if result < 0:
        raise NotFound(kind[:-1], f"no such {kind[:-1]} in this org and sandbox")
    return web.json_response({"id": record["id"], "etag": etag})


def _bare(etag: str) -> str:
    return etag.removeprefix("W/").strip().strip('"')


def apply_patch(doc: dict[str, Any], ops: Any) -> dict[str, Any]:
    """JSON Patch (RFC 6902) `add`, `replace` and `remove` on object paths."""
    if not isinstance(ops, list) or not ops:
        raise Invalid("the body must be a JSON Patch array")
    out = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or op.get("op") not in ("add", "replace", "remove"):
            raise Invalid("each operation needs op add, replace or remove")
        parts = [
            p.replace("~1", "/").replace("~0", "~") for p in str(op.get("path", "")).split("/")[1:]
        ]
        if not parts or not parts[0]:
            raise Invalid("each operation needs a path such as /name")
        parent: Any = out
        for part in parts[:-1]:
            if not isinstance(parent, dict) or part not in parent:
                raise Invalid(f"path {op['path']} does not exist")
            parent = parent[part]
        last = parts[-1]
        if not isinstance(parent, dict):
            raise Invalid(f"path {op['path']} is not an object member")
        if op["op"] in ("remove", "replace") and last not in parent:
            raise Invalid(f"path {op['path']} does not exist")
        if op["op"] == "remove":
            del parent[last]
        else:
            if "value" not in op:
                raise Invalid(f"{op['op']} {op['path']} needs a value")
            parent[last] = op["value"]
    return out


async def delete(request: web.Request) -> web.Response:
    deps, s, kind, record = await _get_or_404(request)
    users = await _users(deps, s, kind, record["id"])
    if users:
        raise Invalid(f"in use by {', '.join(users)}: delete those first")
    await deps.flows.delete(kind, s.org, s.sandbox, record["id"])
    return web.Response(status=204)


async def _users(deps: Deps, s: Scope, kind: str, rid: str) -> list[str]:
    if kind == "connections":
        return [
            f"sourceConnection {r['id']}"
            for r in await deps.flows.all("sourceConnections", s.org, s.sandbox)
            if r.get("baseConnectionId") == rid
        ]
    if kind in ("sourceConnections", "targetConnections"):
        field = "sourceConnectionIds" if kind == "sourceConnections" else "targetConnectionIds"
        return [
            f"flow {r['id']}"
            for r in await deps.flows.all("flows", s.org, s.sandbox)
            if rid in r.get(field, [])
        ]
    return []


async def test_connection(request: web.Request) -> web.Response:
    deps, *_, record = await _connection(request)
    ok = await connectors.test(
        record["connectionSpec"]["id"], record["auth"]["params"], deps.endpoints
    )
    return web.json_response({"result": ok})


async def explore(request: web.Request) -> web.Response:
    deps, *_, record = await _connection(request)
    if request.query.get("preview") == "true":
        return web.json_response(await _preview(request, deps, record))
    items = await connectors.explore(
        record["connectionSpec"]["id"],
        record["auth"]["params"],
        request.query.get("objectType", "root"),
        request.query.get("object"),
        deps.endpoints,
        connectors.ExploreLimits(
            deps.settings.flow_explore_max_pages, deps.settings.flow_explore_seconds
        ),
        request.query.get("startAfter"),
    )
    return web.json_response(items)


async def _preview(request: web.Request, deps: Deps, record: dict[str, Any]) -> dict[str, Any]:
    q, settings = request.query, deps.settings
    try:
        rows = int(q.get("previewRows", "10"))
    except ValueError:
        raise Invalid("previewRows must be an integer from 1 to 100") from None
    limits = preview.PreviewLimits(
        rows,
        settings.flow_preview_max_bytes,
        settings.flow_explore_max_pages,
        settings.flow_explore_seconds,
    )
    spec_id = record["connectionSpec"]["id"]
    return await preview.preview(
        spec_id,
        record["auth"]["params"],
        q.get("object"),
        q.get("fileType", "json"),
        deps.endpoints,
        limits,
    )


async def _connection(request: web.Request) -> tuple[Deps, Scope, str, dict[str, Any]]:
    found = await _get_or_404(request)
    if found[3]["connectionSpec"]["id"] not in (KINESIS, S3):
        raise Invalid("this connection spec cannot be tested")
    return found


async def flow_action(request: web.Request) -> web.Response:
    deps, s, kind, record = await _get_or_404(request)
    op = request.query.get("op")
    if op not in ("enable", "disable"):
        raise Invalid("op must be enable or disable")
    etag = new_etag()
    updated = {
        **record,
        "state": f"{op}d",
        "updatedAt": _now_ms(),
        "updatedBy": s.by,
        "etag": etag,
        "version": etag,
    }
    if await deps.flows.replace(kind, updated, record["etag"], set()) != 1:
        raise PreconditionFailed("the flow changed meanwhile: try again")
    return web.json_response({"id": record["id"], "etag": etag})


async def list_runs(request: web.Request) -> web.Response:
    """Every run of the org's sandbox's flows (`property=flowId==...` narrows)."""
    deps, s = request.app[DEPS], await _scope(request)
    now, runs = _now_ms(), []
    for flow in await deps.flows.all("flows", s.org, s.sandbox):
        runs += await runs_of(deps, flow, now)
    return web.json_response(_listing(request, "runs", runs))


_KINDS = "{kind:connections|sourceConnections|targetConnections|flows}"
FLOW_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/connectionSpecs", list_specs),
    ("GET", "/connectionSpecs/{id}", get_spec),
    ("GET", f"/{_KINDS}", list_all),
    ("POST", f"/{_KINDS}", create),
    ("GET", f"/{_KINDS}/{{id}}", get_one),
    ("PATCH", f"/{_KINDS}/{{id}}", patch),
    ("DELETE", f"/{_KINDS}/{{id}}", delete),
    ("GET", "/{kind:connections}/{id}/test", test_connection),
    ("GET", "/{kind:connections}/{id}/explore", explore),
    ("POST", "/{kind:flows}/{id}/action", flow_action),
    ("GET", "/runs", list_runs),
    ("GET", "/runs/notifications", list_notifications),
    ("GET", "/runs/{id}", get_run),
]
