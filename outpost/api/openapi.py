"""The OpenAPI 3.1 document, generated from the route table (`routes.ROUTES`), the request
models and the response shapes (`schemas.py`): a route cannot be missing from it, and a
test validates real responses against it. Served at `/api/v1/openapi.json` and rendered
at `/api/v1/docs` (apidocs.py)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from outpost.api import schemas
from outpost.api.metrics import (
    ATTEMPT_DIMENSIONS,
    ATTEMPT_MEASURES,
    EVENT_DIMENSIONS,
    EVENT_MEASURES,
)
from outpost.models import (
    DestinationCreate,
    DestinationUpdate,
    PublishBatch,
    PublishRequest,
    RedriveRequest,
    ReplayRequest,
    RetryRequest,
    TenantUpsert,
)

ERROR_STATUSES = {
    "400": "Malformed JSON, bad cursor or bad request",
    "401": "Missing or invalid credentials",
    "403": "The credentials do not allow this route or tenant",
    "404": "Not found",
    "409": "Conflict",
    "413": "Body larger than MAX_EVENT_BYTES",
    "422": "Validation error: data lists each bad field",
    "429": "Over PUBLISH_RATE_LIMIT_PER_SECOND (see Retry-After)",
    "501": "Not configured",
    "503": "Redis unavailable: nothing was accepted",
}


def _q(name: str, kind: str = "string", **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": kind, **extra}
    return {"name": name, "in": "query", "required": False, "schema": schema}


PAGE = [
    _q("limit", "integer", minimum=1, maximum=1000),
    _q("next"),
    _q("prev"),
    _q("dir", enum=["asc", "desc"]),
    _q("order_by", enum=["time"]),
]
TIME = [_q(f"time[{op}]", format="date-time") for op in ("gte", "gt", "lte", "lt")]
INCLUDE = [_q("include", enum=["event", "event.data", "response_data", "destination"])]


def _metrics_query(measures: set[str], dimensions: set[str]) -> list[dict[str, Any]]:
    return [
        _q("time[start]", format="date-time"),
        _q("time[end]", format="date-time"),
        _q("granularity", pattern=r"^\d+[smhdwM]$"),
        _q("measures", enum=sorted(measures)),
        _q("dimensions", enum=sorted(dimensions)),
        *(_q(f"filters[{d}]") for d in sorted(dimensions)),
    ]


@dataclass
class Op:
    ok: int
    response: Any  # a model, a list of a model, or None
    request: type[BaseModel] | None = None
    query: list[dict[str, Any]] = field(default_factory=list)
    also_ok: tuple[int, ...] = ()  # further success statuses with the same body
    media: str = "application/json"


def _operations() -> dict[str, Op]:
    """Each handler's operation (a data table: one `return` of a literal)."""
    return {
        "healthz": Op(200, schemas.Health),
        "openapi_json": Op(200, None),
        "docs_page": Op(200, None, media="text/html"),
        "list_tenants": Op(
            200,
            schemas.TenantPage,
            query=[
                _q("id"),
                _q("limit", "integer", minimum=1, maximum=100),
                _q("next"),
                _q("prev"),
                _q("dir", enum=["asc", "desc"]),
            ],
        ),
        "upsert_tenant": Op(200, schemas.Tenant, TenantUpsert, also_ok=(201,)),
        "get_tenant": Op(200, schemas.Tenant),
        "delete_tenant": Op(200, schemas.SuccessResponse),
        "tenant_token": Op(200, schemas.TenantToken),
        "tenant_portal": Op(
            200, schemas.PortalRedirect, query=[_q("theme", enum=["light", "dark"])]
        ),
        "list_destinations": Op(200, [schemas.Destination], query=[_q("type"), _q("topics")]),
        "create_destination": Op(201, schemas.Destination, DestinationCreate),
        "get_destination": Op(200, schemas.Destination),
        "update_destination": Op(200, schemas.Destination, DestinationUpdate),
        "delete_destination": Op(200, schemas.SuccessResponse),
        "enable_destination": Op(200, schemas.Destination),
        "disable_destination": Op(200, schemas.Destination),
        "test_destination": Op(200, schemas.PreflightResult),
        "aws_trust_policy": Op(200, schemas.AWSTrustPolicy),
        "explore_streams": Op(200, schemas.Explored),
        "explore_records": Op(
            200, schemas.Explored, query=[_q("limit", "integer", minimum=1, maximum=100)]
        ),
        "publish": Op(202, schemas.PublishResponse, PublishRequest),
        "retry": Op(202, schemas.SuccessResponse, RetryRequest),
        "publish_batch": Op(202, schemas.PublishBatchResult, PublishBatch),
        "list_events": Op(
            200,
            schemas.EventPage,
            query=[
                _q("id"),
                _q("id_prefix"),
                _q("tenant_id"),
                _q("destination_id"),
                _q("topic"),
                *TIME,
                *PAGE,
            ],
        ),
        "get_event": Op(200, schemas.Event, query=[_q("tenant_id")]),
        "list_attempts": Op(
            200,
            schemas.AttemptPage,
            query=[
                _q("tenant_id"),
                _q("event_id"),
                _q("event_id_prefix"),
                _q("destination_id"),
                _q("destination_type"),
                _q("topic"),
                _q("status", enum=["success", "failed"]),
                *TIME,
                *PAGE,
                *INCLUDE,
            ],
        ),
        "get_attempt": Op(200, schemas.Attempt, query=[_q("tenant_id"), *INCLUDE]),
        "list_destination_attempts": Op(
            200,
            schemas.AttemptPage,
            query=[
                _q("event_id"),
                _q("event_id_prefix"),
                _q("topic"),
                _q("status", enum=["success", "failed"]),
                *TIME,
                *PAGE,
                *INCLUDE,
            ],
        ),
        "get_destination_attempt": Op(200, schemas.Attempt, query=INCLUDE),
        "list_dead_letters": Op(
            200,
            schemas.DeadLetterPage,
            query=[
                _q("destination_id"),
                _q("limit", "integer", minimum=1, maximum=1000),
                _q("next"),
            ],
        ),
        "redrive_dead_letters": Op(202, schemas.RedriveResult, RedriveRequest),
        "list_undelivered": Op(
            200,
            schemas.UndeliveredPage,
            query=[
                _q("status", enum=["dead_lettered", "missed", "failed", "pending"]),
                *TIME,
                _q("limit", "integer", minimum=1, maximum=1000),
            ],
        ),
        "replay_destination": Op(202, schemas.ReplayResult, ReplayRequest),
        "event_metrics": Op(
            200, schemas.MetricsResponse, query=_metrics_query(EVENT_MEASURES, EVENT_DIMENSIONS)
        ),
        "attempt_metrics": Op(
            200, schemas.MetricsResponse, query=_metrics_query(ATTEMPT_MEASURES, ATTEMPT_DIMENSIONS)
        ),
        "destination_types": Op(200, [schemas.DestinationType]),
        "destination_type": Op(200, schemas.DestinationType),
        "topics": Op(200, None),
    }


def _models(ops: dict[str, Op]) -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {"ErrorResponse": schemas.ErrorResponse}
    for op in ops.values():
        for m in (op.request, op.response[0] if isinstance(op.response, list) else op.response):
            if isinstance(m, type) and issubclass(m, BaseModel):
                found[m.__name__] = m
    return list(found.values())


def _ref(model: Any) -> dict[str, Any]:
    if model is None:
        return {}
    if isinstance(model, list):
        return {"type": "array", "items": _ref(model[0])}
    return {"$ref": f"#/components/schemas/{model.__name__}"}


@dataclass(frozen=True)
class OpenAPIPart:
    """Another surface's share of the served document (the runtime hands it in)."""

    paths: dict[str, Any]
    schemas: dict[str, Any]
    description: str = ""


Route = tuple[str, str, Any, str]
# GET /metrics: Prometheus's text format, public as the probes are
METRICS: dict[str, Any] = {
    "operationId": "metrics",
    "summary": "The process's Prometheus metrics (README: Observability).",
    "parameters": [],
    "responses": {
        "200": {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
    "security": [],
    "x-access": "public",
}


def build(
    routes: Sequence[Route], prefix: str = "/api/v1", parts: Sequence[OpenAPIPart] = ()
) -> dict[str, Any]:
    ops = _operations()
    _, defs = models_json_schema(
        [
            (m, "validation" if m in {o.request for o in ops.values()} else "serialization")
            for m in _models(ops)
        ],
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, Any] = {}
    for method, path, handler, access in routes:
        operation = _operation(path, handler, access, ops[handler.__name__])
        paths.setdefault(prefix + path, {})[method.lower()] = operation
    root_health = {**paths[prefix + "/healthz"]["get"], "operationId": "healthz_root"}
    paths["/healthz"] = {"get": root_health}
    paths["/metrics"] = {"get": METRICS}
    for part in parts:
        paths.update(part.paths)
    return _document(prefix, paths, defs["$defs"], parts)


def _operation(path: str, handler: Any, access: str, op: Op) -> dict[str, Any]:
    """One route's operation: its path parameters, query, body, responses and security."""
    error = {
        "description": "",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }
    params = [
        {
            "name": n,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"},
        }
        for n in re.findall(r"{(\w+)}", path)
    ]
    content = {op.media: {"schema": _ref(op.response) or {}}}
    operation: dict[str, Any] = {
        "operationId": handler.__name__,
        "summary": (handler.__doc__ or handler.__name__.replace("_", " ")).split("\n")[0],
        "parameters": params + op.query,
        "responses": {
            **{str(c): {"description": "OK", "content": content} for c in (op.ok, *op.also_ok)},
            **{code: {**error, "description": text} for code, text in ERROR_STATUSES.items()},
        },
        "security": _security(access),
        "x-access": access,
    }
    if op.request is not None:
        operation["requestBody"] = {
            "required": handler.__name__ not in ("upsert_tenant", "redrive_dead_letters"),
            "content": {"application/json": {"schema": _ref(op.request)}},
        }
    return operation


def _security(access: str) -> list[dict[str, list[str]]]:
    if access == "public":
        return []
    if access == "admin":
        return [{"AdminApiKey": []}]
    return [{"AdminApiKey": []}, {"TenantJwt": []}]


def _document(
    prefix: str, paths: dict[str, Any], defs: dict[str, Any], parts: Sequence[OpenAPIPart]
) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "outpost",
            "version": "1.0.0",
            "description": "Multi-tenant event delivery (Outpost-compatible API). Every "
            f"{prefix} operation is served identically under /2025-07-01."
            + "".join(f" {part.description}" for part in parts),
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": {**defs, **{k: v for p in parts for k, v in p.schemas.items()}},
            "securitySchemes": {
                "AdminApiKey": {"type": "http", "scheme": "bearer"},
                "TenantJwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }


class Document:
    """The served document, built on its first request."""

    def __init__(self, make: Callable[[], dict[str, Any]]):
        self._make = make
        self._doc: dict[str, Any] | None = None

    def get(self) -> dict[str, Any]:
        if self._doc is None:
            self._doc = self._make()
        return self._doc


OPENAPI = web.AppKey("openapi", Document)


async def openapi_json(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of this API."""
    return web.json_response(request.app[OPENAPI].get())
