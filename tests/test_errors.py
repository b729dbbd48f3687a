"""Errors cross each boundary once: the layers below the surfaces raise domain errors
(outpost/errors.py), and one closed table (surface.STATUS) gives each its HTTP status, the
same on both surfaces."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

import outpost
from outpost.api.app import error_response
from outpost.errors import (
    AlreadyExists,
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    LimitReached,
    NotConfigured,
    NotFound,
    PreconditionFailed,
    RateLimited,
    TooLarge,
    Unauthenticated,
    Unavailable,
    ValidationFailed,
)
from outpost.flow.app import flow_error
from outpost.surface import STATUS, Render, errors_middleware

ROOT = Path(outpost.__file__).parent

# Every domain error with the status clients have always seen for it.
SAMPLES: list[tuple[DomainError, int]] = [
    (Invalid("invalid cursor"), 400),
    (LimitReached("tenant has reached MAX_DESTINATIONS_PER_TENANT (2)"), 400),
    (Unauthenticated("token expired"), 401),
    (Forbidden("this route needs the admin API key"), 403),
    (NotFound("tenant"), 404),
    (AlreadyExists("destination des_1 already exists"), 409),
    (Conflict("several tenants have an event with this id", {"tenant_ids": ["a", "b"]}), 409),
    (PreconditionFailed("the etag does not match: the resource changed"), 412),
    (TooLarge("request body is larger than MAX_EVENT_BYTES (10)"), 413),
    (ValidationFailed(["topic is required"]), 422),
    (RateLimited("tenant is over PUBLISH_RATE_LIMIT_PER_SECOND (5)", retry_after=1), 429),
    (NotConfigured("tenant tokens are off: set API_JWT_SECRET"), 501),
    (Unavailable("the event could not be stored (OOM)"), 503),
]


def _ours(cls: type) -> list[type]:
    """Every subclass of `cls` defined in the outpost package (the dev tools aside)."""
    for info in pkgutil.walk_packages(outpost.__path__, "outpost."):
        if not info.name.startswith("outpost.dev") and not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    found, todo = [], list(cls.__subclasses__())
    while todo:
        sub = todo.pop()
        todo += sub.__subclasses__()
        if sub.__module__.startswith("outpost."):
            found.append(sub)
    return found


def test_the_table_is_closed() -> None:
    """Every domain error class of ours has a status, and the table holds nothing else."""
    assert set(_ours(DomainError)) == set(STATUS)
    assert {type(e) for e, _ in SAMPLES} == set(STATUS)
    assert {type(e): status for e, status in SAMPLES} == STATUS


def _app(render: Render, raised: list[Exception]) -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        raise raised[int(request.match_info["i"])]

    app = web.Application(middlewares=[errors_middleware(render)])
    app.router.add_get("/raise/{i}", handler)
    return app


@pytest.mark.parametrize("i", range(len(SAMPLES)), ids=[type(e).__name__ for e, _ in SAMPLES])
async def test_both_surfaces_answer_a_domain_error_with_its_status(aiohttp_client: Any, i: int):
    exc, status = SAMPLES[i]
    raised: list[Exception] = [e for e, _ in SAMPLES]
    api = await aiohttp_client(_app(error_response, raised))
    flow = await aiohttp_client(_app(flow_error, raised))

    r = await api.get(f"/raise/{i}")
    assert r.status == status
    assert await r.json() == {"status": status, "message": exc.message, "data": exc.data}
    expected = "1" if isinstance(exc, RateLimited | Unavailable) else None
    assert r.headers.get("Retry-After") == expected

    r = await flow.get(f"/raise/{i}")
    body = await r.json()
    assert (r.status, body["status"]) == (status, status)
    assert body["report"]["detailed-message"] == exc.message
    assert body["type"].endswith(f"-{status}")


async def test_a_domain_error_missing_from_the_table_is_a_logged_500(aiohttp_client: Any):
    class Unmapped(DomainError):
        pass

    client = await aiohttp_client(_app(error_response, [Unmapped("secret detail")]))
    with capture_logs() as logs:
        r = await client.get("/raise/0")
    assert r.status == 500
    assert await r.json() == {"status": 500, "message": "internal server error", "data": None}
    assert [e["error"] for e in logs if e["event"] == "unmapped_domain_error"] == ["Unmapped"]


# -- nothing below the surfaces speaks HTTP --------------------------------------------------
BELOW = [ROOT / "store", ROOT / "queue", ROOT / "destinations", ROOT / "ingest.py"]


def _modules(*roots: Path) -> list[Path]:
    return [f for r in roots for f in ([r] if r.is_file() else sorted(r.rglob("*.py")))]


def _http_of(tree: ast.AST) -> list[str]:
    """aiohttp.web imports, `status=` arguments and the APIError name in one module."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            web = module == "aiohttp" and any(a.name == "web" for a in node.names)
            if web or module.startswith("aiohttp.web"):
                found.append(f"line {node.lineno}: from {module} import ...")
        elif isinstance(node, ast.Import):
            found += [
                f"line {node.lineno}: import {a.name}" for a in node.names if ".web" in a.name
            ]
        elif isinstance(node, ast.keyword) and node.arg == "status":
            found.append(f"line {node.value.lineno}: status=")
        elif isinstance(node, ast.Name | ast.Attribute) and "APIError" in ast.unparse(node):
            found.append(f"line {node.lineno}: APIError")
    return found


def _raised_statuses(tree: ast.AST) -> list[str]:
    """`raise Something(4xx/5xx, ...)`: an HTTP status chosen where the error is raised."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            for arg in node.exc.args:
                status = arg.value if isinstance(arg, ast.Constant) else None
                if type(status) is int and 400 <= status < 600:
                    found.append(f"line {node.lineno}: raise ... {arg.value}")
    return found


def test_nothing_below_the_surfaces_speaks_http() -> None:
    offences = {
        str(f.relative_to(ROOT)): found
        for f in _modules(*BELOW)
        if (found := _http_of(ast.parse(f.read_text())))
    }
    assert offences == {}


def test_no_error_is_raised_with_an_http_status() -> None:
    runtime = [f for f in _modules(ROOT) if "dev" not in f.relative_to(ROOT).parts]
    offences = {
        str(f.relative_to(ROOT)): found
        for f in runtime
        if (found := _raised_statuses(ast.parse(f.read_text())))
    }
    assert offences == {}


def test_the_checks_see_what_they_forbid() -> None:
    """The two checks above find the shapes they exist for (so they cannot pass vacuously)."""
    bad = ast.parse(
        "from aiohttp import web\nimport aiohttp.web\n"
        "def f():\n    x = Response(status=404)\n    raise APIError(409, 'taken')\n"
    )
    assert len(_http_of(bad)) == 4
    assert _raised_statuses(bad) == ["line 5: raise ... 409"]
    fine = "import aiohttp\nfrom aiohttp import ClientSession\nfrom aiohttp.client import X\n"
    assert _http_of(ast.parse(fine)) == []
