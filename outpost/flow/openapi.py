"""The Flow Service operations of the OpenAPI document, one per (route, kind) of
`flowservice.FLOW_ROUTES`: bodies at the level the handlers check them (the auth and
source params themselves are JSON Schemas in each connection spec), `201 {id, etag}`,
`{items: [...]}` answers and the `{type, title, status, report}` error."""

from __future__ import annotations

import re
from typing import Any

from outpost.models import ID_PATTERN

KINDS = ("connections", "sourceConnections", "targetConnections", "flows")
ERRORS = {
    "400": "Bad request: missing or bad headers, fields, params or JSON Patch",
    "401": "Missing or invalid credentials",
    "403": "The token is for another tenant than x-gw-ims-org-id",
    "404": "No such org (tenant), spec or resource in this org and sandbox",
    "412": "If-Match does not match the resource's etag",
    "413": "Body larger than MAX_EVENT_BYTES",
    "503": "Redis unavailable",
}
_STR = {"type": "string"}
_OBJ = {"type": "object"}
_SPEC_REF = {"type": "object", "required": ["id"], "properties": {"id": _STR}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _items(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": schema}},
    }


def _create(required: dict[str, Any], optional: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": sorted(required),
        "properties": {**required, **optional, "description": _STR},
    }


SCHEMAS: dict[str, Any] = {
    "FlowError": {
        "type": "object",
        "required": ["type", "title", "status", "report"],
        "properties": {
            "type": _STR,
            "title": _STR,
            "status": {"type": "integer"},
            "report": {
                "type": "object",
                "required": ["detailed-message", "request-id"],
                "properties": {
                    "detailed-message": _STR,
                    "request-id": _STR,
                    "details": {"type": "array", "items": _STR},
                },
            },
        },
    },
    "FlowCreated": {
        "type": "object",
        "required": ["id", "etag"],
        "properties": {"id": _STR, "etag": _STR},
    },
    "ConnectionSpec": {
        "type": "object",
        "required": ["id", "name", "providerId", "authSpec"],
        "properties": {"id": _STR, "name": _STR, "providerId": _STR, "authSpec": {"type": "array"}},
    },
    "FlowResource": {
        "type": "object",
        "description": "The stored resource; secret auth params shown as ********; "
        "timestamps in epoch milliseconds. A flow also carries metrics and lastRunDetails.",
        "required": ["id", "etag", "createdAt", "updatedAt", "state"],
        "properties": {
            "id": _STR,
            "name": _STR,
            "etag": _STR,
            "createdAt": {"type": "integer"},
            "updatedAt": {"type": "integer"},
            "state": {"type": "string", "enum": ["enabled", "disabled"]},
            "imsOrgId": _STR,
            "sandboxName": _STR,
        },
    },
    "FlowList": {
        "type": "object",
        "description": "A page of `items` with `_links.next` when there is more, "
        "or `{count}` with count=true.",
        "properties": {
            "items": {"type": "array", "items": _ref("FlowResource")},
            "_links": _OBJ,
            "count": {"type": "integer", "minimum": 0},
        },
    },
    "ConnectionCreate": _create(
        {
            "name": _STR,
            "connectionSpec": _SPEC_REF,
            "auth": {
                "type": "object",
                "required": ["specName", "params"],
                "properties": {"specName": _STR, "params": _OBJ},
            },
        },
        {"providerId": _STR},
    ),
    "SourceConnectionCreate": _create(
        {
            "name": _STR,
            "baseConnectionId": _STR,
            "connectionSpec": _SPEC_REF,
            "params": {
                "type": "object",
                "description": "Kinesis: stream (required), dataType, reset; S3: path "
                "(bucket/folder/ or bucket/key, required)",
                "properties": {
                    "stream": _STR,
                    "path": _STR,
                    "dataType": {"type": "string", "enum": ["raw", "xdm"]},
                    "reset": {"type": "string", "enum": ["latest", "earliest"]},
                },
            },
        },
        {
            "data": {
                "type": "object",
                "properties": {
                    "format": {"type": "string", "enum": ["json", "delimited", "parquet"]}
                },
            }
        },
    ),
    "TargetConnectionCreate": _create(
        {
            "name": _STR,
            "connectionSpec": _SPEC_REF,
            "params": {"type": "object", "required": ["topic"], "properties": {"topic": _STR}},
        },
        {"data": _OBJ},
    ),
    "FlowCreate": _create(
        {
            "name": _STR,
            "flowSpec": _SPEC_REF,
            "sourceConnectionIds": {"type": "array", "items": _STR, "minItems": 1, "maxItems": 1},
            "targetConnectionIds": {"type": "array", "items": _STR, "minItems": 1, "maxItems": 1},
        },
        {
            "scheduleParams": {
                "type": "object",
                "description": "An S3 (cloud storage) flow's schedule",
                "required": ["startTime", "frequency"],
                "properties": {
                    "startTime": {"type": "integer", "description": "epoch seconds"},
                    "frequency": {
                        "type": "string",
                        "enum": ["minute", "hour", "day", "week", "once"],
                    },
                    "interval": {"type": "integer", "minimum": 1, "maximum": 10_000},
                },
            }
        },
    ),
    "FlowRun": {
        "type": "object",
        "description": "One window of a streaming flow (FLOW_RUN_WINDOW_SECONDS, hourly by "
        "default): counts kept as records flow; failed while any record of the ended window "
        "failed. Timestamps in epoch milliseconds.",
        "required": ["id", "flowId", "status", "startTime", "endTime", "metrics"],
        "properties": {
            "id": _STR,
            "flowId": _STR,
            "status": {"type": "string", "enum": ["success", "failed", "inProgress"]},
            "startTime": {"type": "integer"},
            "endTime": {"type": "integer"},
            "metrics": {
                "type": "object",
                "required": ["recordSummary", "durationSummary", "statusSummary"],
                "properties": {
                    "recordSummary": {
                        "type": "object",
                        "properties": {
                            "inputRecordCount": {"type": "integer", "minimum": 0},
                            "outputRecordCount": {"type": "integer", "minimum": 0},
                            "failedRecordCount": {"type": "integer", "minimum": 0},
                        },
                    },
                    "durationSummary": _OBJ,
                    "statusSummary": _OBJ,
                },
            },
        },
    },
    "RunList": {
        "type": "object",
        "description": "A page of runs with `_links.next` when there is more, "
        "or `{count}` with count=true.",
        "properties": {
            "items": {"type": "array", "items": _ref("FlowRun")},
            "_links": _OBJ,
            "count": {"type": "integer", "minimum": 0},
        },
    },
    "RunNotification": {
        "type": "object",
        "required": ["topic", "flowId", "runId", "createdAt"],
        "properties": {
            "topic": {"type": "string", "enum": ["flow.run.success", "flow.run.failed"]},
            "flowId": _STR,
            "runId": _STR,
            "createdAt": {"type": "integer"},
            "inputRecordCount": {"type": "integer"},
            "outputRecordCount": {"type": "integer"},
            "failedRecordCount": {"type": "integer"},
        },
    },
    "Preview": {
        "type": "object",
        "description": "Parsed rows (at most previewRows; FLOW_PREVIEW_MAX_BYTES of an S3 "
        "object) and the schema inferred from them; truncated when there is more.",
        "required": ["format", "schema", "data"],
        "properties": {
            "format": {"type": "string", "enum": ["json", "delimited", "parquet"]},
            "schema": {
                "type": "object",
                "properties": {
                    "columns": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name", "type"],
                            "properties": {"name": _STR, "type": _STR},
                        },
                    }
                },
            },
            "data": {"type": "array"},
            "truncated": {"type": "boolean"},
        },
    },
    "JsonPatch": {
        "type": "array",
        "minItems": 1,
        "items": {
            "type": "object",
            "required": ["op", "path"],
            "properties": {
                "op": {"type": "string", "enum": ["add", "replace", "remove"]},
                "path": {"type": "string", "pattern": "^/"},
                "value": {},
            },
        },
    },
}
_BODIES = dict(
    zip(
        KINDS,
        ("ConnectionCreate", "SourceConnectionCreate", "TargetConnectionCreate", "FlowCreate"),
        strict=True,
    )
)


def _param(name: str, where: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "schema": schema}


SCOPE = [
    _param("x-gw-ims-org-id", "header", {"type": "string", "pattern": ID_PATTERN}, True),
    _param("x-sandbox-name", "header", {"type": "string", "pattern": "^[a-z0-9-]{1,64}$"}),
]
LISTING = [
    _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 100}),
    _param("continuationToken", "query", _STR),
    _param("orderby", "query", {"type": "string", "examples": ["-createdAt", "+name"]}),
    {**_param("property", "query", {"type": "array", "items": _STR}), "explode": True},
    _param("count", "query", {"type": "boolean"}),
]


def _json(schema: dict[str, Any], text: str = "OK") -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {"schema": schema}}}


_CREATED = {"200": _json(_ref("FlowCreated"), "The new etag")}
_RESULT = {"type": "object", "required": ["result"], "properties": {"result": {"type": "boolean"}}}
# handler -> (summary, parameters, request body schema, success responses); `{kind}` and
# `{one}` in a summary name the resource, a body of "{kind}" is that kind's create body
_OPERATIONS: dict[str, tuple[str, list[Any], str | None, dict[str, Any]]] = {
    "list_specs": (
        "List the connection specs",
        [],
        None,
        {"200": _json(_items(_ref("ConnectionSpec")))},
    ),
    "get_spec": ("Get a connection spec", [], None, {"200": _json(_items(_ref("ConnectionSpec")))}),
    "list_all": ("List {kind}", SCOPE + LISTING, None, {"200": _json(_ref("FlowList"))}),
    "create": ("Create a {one}", SCOPE, "{kind}", {"201": _json(_ref("FlowCreated"), "Created")}),
    "get_one": ("Get a {one}", SCOPE, None, {"200": _json(_items(_ref("FlowResource")))}),
    "patch": (
        "Update a {one} with a JSON Patch (If-Match: its etag)",
        [*SCOPE, _param("If-Match", "header", _STR, True)],
        "JsonPatch",
        _CREATED,
    ),
    "delete": (
        "Delete a {one} (400 while something uses it)",
        SCOPE,
        None,
        {"204": {"description": "Deleted"}},
    ),
    "test_connection": (
        "Test a base connection (Kinesis ListStreams, S3 HeadBucket or ListBuckets)",
        SCOPE,
        None,
        {"200": _json(_RESULT)},
    ),
    "explore": (
        "Explore a base connection: S3 buckets, prefixes, objects; Kinesis streams. "
        "preview=true: an S3 object's first rows or a stream's latest records, with a schema",
        [
            *SCOPE,
            _param("objectType", "query", {"type": "string", "enum": ["root", "folder", "file"]}),
            _param("object", "query", _STR),
            _param("startAfter", "query", _STR),  # S3: go on after a continuation's key
            _param("preview", "query", {"type": "boolean"}),
            _param(
                "fileType", "query", {"type": "string", "enum": ["json", "delimited", "parquet"]}
            ),
            _param("previewRows", "query", {"type": "integer", "minimum": 1, "maximum": 100}),
        ],
        None,
        {"200": _json({"anyOf": [{"type": "array", "items": _OBJ}, _ref("Preview")]})},
    ),
    "list_runs": (
        "List the runs of the org's flows (property=flowId==<id> for one flow's)",
        SCOPE + LISTING,
        None,
        {"200": _json(_ref("RunList"))},
    ),
    "get_run": ("Get a run", SCOPE, None, {"200": _json(_items(_ref("FlowRun")))}),
    "list_notifications": (
        "List the latest run notifications (a run that ended: success or failed)",
        [*SCOPE, _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 100})],
        None,
        {"200": _json(_items(_ref("RunNotification")))},
    ),
    "flow_action": (
        "Enable or disable a flow",
        [*SCOPE, _param("op", "query", {"type": "string", "enum": ["enable", "disable"]}, True)],
        None,
        _CREATED,
    ),
}


def _specifics(handler: str, kind: str) -> tuple[str, list[Any], str | None, dict[str, Any]]:
    summary, params, body, ok = _OPERATIONS[handler]
    summary = summary.format(kind=kind, one=kind[:-1])
    return summary, params, _BODIES[kind] if body == "{kind}" else body, ok


def _expand(path: str) -> list[tuple[str, str]]:
    """`/{kind:a|b}/x` -> [('/a/x', 'a'), ('/b/x', 'b')]; a path without a kind -> kind ''."""
    match = re.search(r"{kind:([^}]+)}", path)
    if match is None:
        return [(path, "")]
    return [(path.replace(match.group(0), k), k) for k in match.group(1).split("|")]


def paths(prefix: str, routes: list[tuple[str, str, Any]]) -> dict[str, Any]:
    """The document's paths for the flow routes, each kind its own path."""
    error = _json(_ref("FlowError"))
    out: dict[str, Any] = {}
    for method, path, handler in routes:
        for concrete, kind in _expand(path):
            summary, params, body, ok = _specifics(handler.__name__, kind)
            ids = [_param(n, "path", _STR, True) for n in re.findall(r"{(\w+)}", concrete)]
            operation: dict[str, Any] = {
                "operationId": f"flow_{handler.__name__}" + (f"_{kind}" if kind else ""),
                "summary": summary,
                "tags": ["Flow Service"],
                "parameters": ids + params,
                "responses": {**ok, **{c: {**error, "description": t} for c, t in ERRORS.items()}},
                "security": [{"AdminApiKey": []}, {"TenantJwt": []}],
                "x-access": "any",
            }
            if body is not None:
                content = {"application/json": {"schema": _ref(body)}}
                operation["requestBody"] = {"required": True, "content": content}
            out.setdefault(prefix + concrete, {})[method.lower()] = operation
    return out
