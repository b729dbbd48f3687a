"""The Flow Service surface as its own aiohttp application, mounted under `PREFIX` by the
runtime: its routes, its error body `{type, title, status, report}`, its authentication
(the same admin key and tenant tokens as the API; every route scopes to the
`x-gw-ims-org-id` tenant itself)."""

from __future__ import annotations

import uuid

from aiohttp import web

from outpost.deps import DEPS, Deps
from outpost.flow.handlers import FLOW_ROUTES
from outpost.surface import auth_middleware, errors_middleware

PREFIX = "/data/foundation/flowservice"
_CODES = {
    400: 1101,
    401: 1104,
    403: 1105,
    404: 1102,
    405: 1107,
    409: 1106,
    412: 1103,
    413: 1108,
    422: 1101,
    429: 1109,
    500: 1199,
    503: 1198,
}
_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    413: "Payload too large",
    422: "Unprocessable entity",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


def flow_error(
    status: int, message: str, data: object = None, headers: dict[str, str] | None = None
) -> web.Response:
    """The Flow Service error body: {type, title, status, report}."""
    code = _CODES.get(status, 1100)
    report: dict[str, object] = {"detailed-message": message, "request-id": uuid.uuid4().hex}
    if isinstance(data, list):
        report["details"] = data
    body = {
        "type": f"https://ns.adobe.com/aep/errors/FLOW-{code}-{status}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "report": report,
    }
    return web.json_response(body, status=status)


def create_flow_app(deps: Deps) -> web.Application:
    app = web.Application(
        middlewares=[errors_middleware(flow_error), auth_middleware(lambda _: "any")],
        client_max_size=deps.settings.max_event_bytes,
    )
    app[DEPS] = deps
    for method, path, handler in FLOW_ROUTES:
        app.router.add_route(method, path, handler)
    return app
