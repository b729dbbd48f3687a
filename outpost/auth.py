"""Who is calling: the admin (API_KEY) or one tenant (an HS256 JWT from
`GET /tenants/{id}/token`), and what each route lets them do.

Every API route in `api/routes.py` declares its access (the Flow Service routes are all `any`):
- `public`: no credentials (health);
- `admin`: the API key only; a tenant token gets 403;
- `tenant`: the path's `{tenant_id}` must be the token's tenant, else 403 (whether or not
  that tenant exists, so existence does not leak);
- `any`: admin or tenant; the handler scopes what a tenant sees to its own data.
Missing, malformed, expired or badly signed credentials, and tokens of deleted tenants,
get 401. A token carries the generation of the tenant it was issued for (claim `gen`; a
token without it is of generation 1, the first): a tenant deleted and created again is a
new generation, and the tokens of the old one get 401.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import jwt
from aiohttp import web

from outpost.errors import Forbidden, NotConfigured, Unauthenticated

ISSUER = "outpost"
ACCESS_LEVELS = ("public", "admin", "tenant", "any")


@dataclass(frozen=True)
class Principal:
    tenant_id: str | None = None  # None: the admin

    @property
    def admin(self) -> bool:
        return self.tenant_id is None


ADMIN = Principal()


class Tokens:
    def __init__(self, secret: str, ttl_seconds: int = 24 * 3600):
        self.secret = secret
        self.ttl = ttl_seconds

    @property
    def enabled(self) -> bool:
        return bool(self.secret)

    def issue(self, tenant_id: str, now: float | None = None, generation: int = 1) -> str:
        """A token for the tenant's `generation` (`Store.tenant_generation`)."""
        if not self.enabled:
            raise NotConfigured("tenant tokens are off: set API_JWT_SECRET")
        iat = int(now if now is not None else time.time())
        claims = {
            "iss": ISSUER,
            "sub": tenant_id,
            "gen": generation,
            "iat": iat,
            "exp": iat + self.ttl,
        }
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def verify(self, token: str) -> tuple[str, int]:
        """The token's tenant id and generation, or Unauthenticated."""
        if not self.enabled:
            raise Unauthenticated("invalid API key")
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=["HS256"],
                issuer=ISSUER,
                options={"require": ["exp", "iss", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired") from None
        except jwt.InvalidTokenError:
            raise Unauthenticated("invalid API key or token") from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise Unauthenticated("invalid token subject")
        generation = claims.get("gen", 1)
        if type(generation) is not int or generation < 1:
            raise Unauthenticated("invalid token generation")
        return sub, generation


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TenantGeneration = Callable[[str], Awaitable[int | None]]  # None: no such tenant


def bearer(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("missing Authorization: Bearer <API_KEY or tenant token>")
    return token.strip()


async def authenticate(
    request: web.Request, api_key: str, tokens: Tokens, tenant_generation: TenantGeneration
) -> Principal:
    token = bearer(request)
    if api_key and hmac.compare_digest(token.encode(), api_key.encode()):
        return ADMIN
    tenant_id, generation = tokens.verify(token)
    current = await tenant_generation(tenant_id)
    if current is None:
        raise Unauthenticated("the token's tenant no longer exists")
    if current != generation:
        raise Unauthenticated("the token's tenant was deleted (this one was created since)")
    return Principal(tenant_id)


def authorize(principal: Principal, access: str, path_tenant: str | None) -> None:
    if principal.admin or access == "any":
        return
    if access == "admin":
        raise Forbidden("this route needs the admin API key")
    if access == "tenant" and path_tenant != principal.tenant_id:
        raise Forbidden("the token is for another tenant")


PRINCIPAL = web.RequestKey("principal", Principal)


def principal_of(request: web.Request) -> Principal:
    return request.get(PRINCIPAL, ADMIN)
