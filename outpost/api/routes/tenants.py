"""Tenants: upsert, read, delete, list; their API tokens and portal links."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from outpost.api.routes.common import (
    _deps,
    _limit,
    _own_tenant,
    _path_id,
    _values,
    parse_body,
)
from outpost.deps import Deps
from outpost.errors import NotFound, ValidationFailed
from outpost.models import TenantUpsert


async def upsert_tenant(request: web.Request) -> web.Response:
    deps = _deps(request)
    tenant_id = _path_id(request, "tenant_id")
    body = await parse_body(request, TenantUpsert, required=False)
    retention = body.event_retention_seconds
    most = deps.settings.event_retention_seconds
    if retention is not None and retention > most:  # the log indexes are cut at `most`
        raise ValidationFailed(
            [f"event_retention_seconds: at most {most} (EVENT_RETENTION_SECONDS)"]
        )
    if "event_retention_seconds" not in body.model_fields_set:
        retention = -1  # unchanged
    created = await deps.store.upsert_tenant(tenant_id, body.metadata, retention)
    tenant = await deps.store.get_tenant(tenant_id)
    return web.json_response(tenant, status=201 if created else 200)


async def get_tenant(request: web.Request) -> web.Response:
    tenant = await _deps(request).store.get_tenant(_path_id(request, "tenant_id"))
    if tenant is None:
        raise NotFound("tenant")
    return web.json_response(tenant)


async def delete_tenant(request: web.Request) -> web.Response:
    if not await _deps(request).store.delete_tenant(_path_id(request, "tenant_id")):
        raise NotFound("tenant")
    return web.json_response({"success": True})


async def tenant_token(request: web.Request) -> web.Response:
    deps = _deps(request)
    tenant_id = _path_id(request, "tenant_id")
    token = deps.tokens.issue(tenant_id, generation=await _generation(deps, tenant_id))
    return web.json_response({"token": token, "tenant_id": tenant_id})


async def tenant_portal(request: web.Request) -> web.Response:
    """A link to the tenant portal (`/portal`, api/portal/) carrying a fresh tenant token."""
    deps = _deps(request)
    tenant_id = _path_id(request, "tenant_id")
    generation = await _generation(deps, tenant_id)
    theme = request.query.get("theme") or None  # empty: omitted, as Outpost
    if theme not in (None, "light", "dark"):
        raise ValidationFailed(["theme must be light or dark"])
    base = deps.settings.portal_referer_url or f"{request.scheme}://{request.host}/portal"
    query = {"token": deps.tokens.issue(tenant_id, generation=generation), "tenant_id": tenant_id}
    if theme:
        query["theme"] = theme
    sep = "&" if "?" in base else "?"
    return web.json_response(
        {"redirect_url": f"{base}{sep}{urlencode(query)}", "tenant_id": tenant_id}
    )


async def list_tenants(request: web.Request) -> web.Response:
    q = request.query
    limit = _limit(request, default=20, most=100)
    direction = q.get("dir") or "desc"
    if direction not in ("asc", "desc"):
        raise ValidationFailed(["dir must be asc or desc"])
    own, ids = _own_tenant(request), _values(request, "id")
    if own is not None or ids:  # a tenant token sees its own tenant only (the contract)
        wanted = sorted(ids & {own} if own is not None and ids else ids or {own or ""})
        found = [await _deps(request).store.get_tenant(t) for t in wanted]
        tenants, nxt, prev = [t for t in found if t], None, None
        count = len(tenants)
    else:
        tenants, nxt, prev, count = await _deps(request).store.list_tenants(
            limit, q.get("next") or None, q.get("prev") or None, direction == "desc"
        )
    return web.json_response(
        {
            "models": tenants,
            "pagination": {
                "order_by": "created_at",
                "dir": direction,
                "limit": limit,
                "next": nxt,
                "prev": prev,
            },
            "count": count,
        }
    )


async def _generation(deps: Deps, tenant_id: str) -> int:
    """The tenant's generation, for the tokens issued to it; 404 when there is none."""
    generation = await deps.store.tenant_generation(tenant_id)
    if generation is None:
        raise NotFound("tenant")
    return generation
