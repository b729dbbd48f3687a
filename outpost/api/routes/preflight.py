"""What a tenant asks about a destination before it delivers: the preflight
(`POST .../test`: the type's checks, each naming its cause) and, for AWS types with a
role, the trust and permissions policies to put on that role (`GET .../aws-trust-policy`)."""

from __future__ import annotations

import re
import time
from typing import Any

from aiohttp import web

from outpost.api.routes.common import _deps, _destination_or_404, _path_id
from outpost.deps import Deps
from outpost.destinations.endpoints import ForbiddenEndpoint
from outpost.errors import ValidationFailed
from outpost.models import Destination

STREAM = re.compile(
    r"[a-zA-Z0-9_.-]{1,128}|arn:aws[a-z-]*:kinesis:[a-z0-9-]+:\d{12}:stream/[a-zA-Z0-9_.-]{1,128}"
)


async def test_destination(request: web.Request) -> web.Response:
    deps = _deps(request)
    dest = await _destination_or_404(
        deps, _path_id(request, "tenant_id"), _path_id(request, "destination_id")
    )
    started = time.perf_counter()
    provider = deps.registry.get(dest.type)
    checks = await _guarded(deps, dest) or await provider.preflight(dest)
    return web.json_response(
        {
            "ok": all(c.get("ok") for c in checks),
            "checks": checks,
            "ms": round((time.perf_counter() - started) * 1000, 1),
        }
    )


async def _guarded(deps: Deps, dest: Destination) -> list[dict[str, Any]]:
    """The endpoint guard first, as at send time: a forbidden address is never called."""
    for field, url in deps.registry.get(dest.type).endpoints(dest.config):
        try:
            await deps.endpoints.check(url, at_send=True)
        except ForbiddenEndpoint as exc:
            return [{"name": "endpoint", "ok": False, "message": f"config.{field}: {exc}"}]
    return []


async def aws_trust_policy(request: web.Request) -> web.Response:
    deps = _deps(request)
    dest = await _destination_or_404(
        deps, _path_id(request, "tenant_id"), _path_id(request, "destination_id")
    )
    policy = await deps.registry.get(dest.type).trust_policy(dest)
    if policy is None:
        raise ValidationFailed(
            ["credentials.role_arn: this destination assumes no AWS role (set role_arn first)"]
        )
    return web.json_response(policy)


async def explore_streams(request: web.Request) -> web.Response:
    return await _explore(request, None)


async def explore_records(request: web.Request) -> web.Response:
    stream = request.match_info["stream"]
    if not STREAM.fullmatch(stream):
        raise ValidationFailed(["stream: a stream name or ARN"])
    return await _explore(request, stream)


async def _explore(request: web.Request, stream: str | None) -> web.Response:
    deps = _deps(request)
    dest = await _destination_or_404(
        deps, _path_id(request, "tenant_id"), _path_id(request, "destination_id")
    )
    raw = request.query.get("limit", "10")
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise ValidationFailed(["limit: an integer from 1 to 100"])
    guarded = await _guarded(deps, dest)
    if guarded:
        return web.json_response({"ok": False, "message": guarded[0]["message"]})
    found = await deps.registry.get(dest.type).explore(dest, stream, int(raw))
    if found is None:
        raise ValidationFailed([f"type: {dest.type} destinations have nothing to explore"])
    return web.json_response(found)
