"""Wires the processes: the HTTP application (the API with the Flow Service mounted inside
it, and the retry promoter beside them) and the OpenAPI document of both surfaces."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from outpost.api.app import create_api_app
from outpost.api.openapi import OpenAPIPart, build
from outpost.api.routes import ROUTES
from outpost.delivery.promoter import promote_loop
from outpost.deps import DEPS, Deps
from outpost.flow import openapi as flow_openapi
from outpost.flow.app import PREFIX as FLOW_PREFIX
from outpost.flow.app import create_flow_app
from outpost.flow.handlers import FLOW_ROUTES
from outpost.settings import Settings


def flow_document() -> OpenAPIPart:
    return OpenAPIPart(
        paths=flow_openapi.paths(FLOW_PREFIX, FLOW_ROUTES),
        schemas=flow_openapi.SCHEMAS,
        description=f"The Flow Service connection API is under {FLOW_PREFIX}.",
    )


def openapi_document() -> dict[str, Any]:
    """The document `/api/v1/openapi.json` serves: the API's operations and the Flow
    Service's."""
    return build(ROUTES, parts=[flow_document()])


def create_app(settings: Settings, deps: Deps, run_promoter: bool = True) -> web.Application:
    """The API with the Flow Service mounted at its prefix; with `run_promoter`, the retry
    promoter runs for the application's lifetime (an `outpost api` process)."""
    app = create_api_app(settings, deps, documents=[flow_document()])
    app.add_subapp(FLOW_PREFIX, create_flow_app(deps))
    if run_promoter:
        app.cleanup_ctx.append(_retry_promoter)
    return app


async def _retry_promoter(app: web.Application) -> AsyncIterator[None]:
    stopping = asyncio.Event()
    task = asyncio.create_task(promote_loop(app[DEPS].queue, stopping))
    yield
    stopping.set()
    await task
