"""What the API's request handlers share: the body and path checks, the caller's tenant,
the 404s of a missing tenant or destination, the `limit` and repeated query values."""

from __future__ import annotations

import re
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from outpost import exactjson
from outpost.api import metrics
from outpost.auth import principal_of
from outpost.deps import DEPS, Deps
from outpost.destinations.registry import problems
from outpost.errors import Conflict, NotFound, ValidationFailed
from outpost.models import ID_PATTERN, Destination
from outpost.surface import read_json

_ID = re.compile(ID_PATTERN)


M = TypeVar("M", bound=BaseModel)


async def parse_body(
    request: web.Request, model: type[M], required: bool = True, exact: bool = False
) -> M:
    """The JSON body as `model`, or 400 (malformed) / 422 naming every bad field; `exact`:
    every number keeps its digits (see surface.read_json)."""
    body = await read_json(request, required=required, exact=exact)
    try:
        return model.model_validate({} if body is None else body)
    except ValidationError as exc:
        raise ValidationFailed(problems(exc)) from None


def exact_response(body: object) -> web.Response:
    """A JSON response holding events' data: every number with its published digits
    (aiohttp's json.dumps would write a float's shortest form)."""
    return web.Response(body=exactjson.dumps(body), content_type="application/json")


def _deps(request: web.Request) -> Deps:
    return request.app[DEPS]


def _path_id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not _ID.fullmatch(value):
        raise ValidationFailed([f"{name} must match {ID_PATTERN}"])
    return value


async def _tenant_or_404(deps: Deps, tenant_id: str) -> None:
    if not await deps.store.tenant_exists(tenant_id):
        raise NotFound("tenant")


async def _destination_or_404(deps: Deps, tenant_id: str, dest_id: str) -> Destination:
    await _tenant_or_404(deps, tenant_id)
    dest = await deps.store.get_destination(tenant_id, dest_id)
    if dest is None:
        raise NotFound("destination")
    return dest


def _own_tenant(request: web.Request) -> str | None:
    """The caller's tenant when it holds a tenant token; None for the admin."""
    return principal_of(request).tenant_id


def _values(request: web.Request, name: str) -> set[str]:
    return set(metrics.listed(request.query, name))


def _limit(request: web.Request, default: int = 100, most: int = 1000) -> int:
    try:
        limit = int(request.query.get("limit") or default)
    except ValueError:
        raise ValidationFailed(["limit must be an integer"]) from None
    if not 1 <= limit <= most:
        raise ValidationFailed([f"limit must be between 1 and {most}"])
    return limit


async def _owner_of(deps: Deps, event_id: str) -> str:
    owners = await deps.queue.event_owners(event_id)
    if not owners:
        raise NotFound("event")
    if len(owners) > 1:
        raise Conflict(
            "several tenants have an event with this id: pass tenant_id",
            {"tenant_ids": owners},
        )
    return owners[0]
