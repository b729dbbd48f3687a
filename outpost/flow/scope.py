"""Who asks the Flow Service: the tenant (`x-gw-ims-org-id`), the sandbox inside it
(`x-sandbox-name`, default `prod`) and the caller, checked against the credentials."""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiohttp import web

from outpost.auth import principal_of
from outpost.deps import DEPS
from outpost.errors import Forbidden, Invalid, NotFound
from outpost.models import ID_PATTERN

_ID = re.compile(ID_PATTERN)

_SANDBOX = re.compile(r"^[a-z0-9-]{1,64}$")


@dataclass(frozen=True)
class Scope:
    org: str
    sandbox: str
    by: str


async def _scope(request: web.Request) -> Scope:
    org = request.headers.get("x-gw-ims-org-id", "")
    sandbox = request.headers.get("x-sandbox-name", "") or "prod"
    if not _ID.fullmatch(org):
        raise Invalid("x-gw-ims-org-id is required: the tenant id")
    if not _SANDBOX.fullmatch(sandbox):
        raise Invalid("x-sandbox-name must be 1-64 of a-z, 0-9, '-'")
    principal = principal_of(request)
    if principal.tenant_id is not None and principal.tenant_id != org:
        raise Forbidden("the token is for another tenant than x-gw-ims-org-id")
    if not await request.app[DEPS].store.tenant_exists(org):
        raise NotFound("tenant", f"org {org} is not a tenant")
    return Scope(org, sandbox, principal.tenant_id or "admin")


def _kind(request: web.Request) -> str:
    return str(request.match_info["kind"])
