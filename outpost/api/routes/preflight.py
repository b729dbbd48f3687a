"""What a tenant asks about a destination before it delivers: the preflight
(`POST .../test`: the type's checks, each naming its cause) and, for AWS types with a
role, the trust and permissions policies to put on that role (`GET .../aws-trust-policy`)."""

from __future__ import annotations

import time

from aiohttp import web

from outpost.api.routes.common import _deps, _destination_or_404, _path_id
from outpost.errors import ValidationFailed


async def test_destination(request: web.Request) -> web.Response:
    deps = _deps(request)
    dest = await _destination_or_404(
        deps, _path_id(request, "tenant_id"), _path_id(request, "destination_id")
    )
    started = time.perf_counter()
    checks = await deps.registry.get(dest.type).preflight(dest)
    return web.json_response(
        {
            "ok": all(c.get("ok") for c in checks),
            "checks": checks,
            "ms": round((time.perf_counter() - started) * 1000, 1),
        }
    )


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
