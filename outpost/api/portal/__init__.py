"""The tenant portal at `/portal`: the page the link of `GET /tenants/{id}/portal` opens.

A small Preact application (sources in `src/`, pinned by `package-lock.json`) built by esbuild
into one file, `static/portal.js`, that is committed and shipped in the wheel: the service
needs no node and loads nothing from another origin. `python -m outpost.dev.portalbuild`
(`make portal`) rebuilds it; the file's first line records the sources' digest and a test
checks it. The page reads the tenant's token from the link and calls the existing
tenant-token routes of `/api/v1`; the page and its files themselves are public."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from aiohttp import web

HERE = Path(__file__).parent
STATIC = HERE / "static"
ASSETS = {"portal.js": "application/javascript", "portal.css": "text/css"}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Event destinations</title>
<link rel="stylesheet" href="/portal/portal.css?v={v}">
</head>
<body>
<noscript>The portal needs JavaScript.</noscript>
<div id="portal"></div>
<script src="/portal/portal.js?v={v}"></script>
</body>
</html>
"""


def sources_digest(root: Path = HERE) -> str:
    """sha256 over the lock file and every source file (name and bytes, in name order):
    what the built bundle's first line records."""
    h = hashlib.sha256()
    for path in [root / "package-lock.json", *sorted((root / "src").glob("*.js"))]:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


@functools.cache
def _read(name: str) -> bytes:
    return (STATIC / name).read_bytes()


@functools.cache
def _version() -> str:
    """Changes with the files, so a browser never mixes an old bundle with a new page."""
    return hashlib.sha256(b"".join(_read(n) for n in sorted(ASSETS))).hexdigest()[:12]


async def portal_page(request: web.Request) -> web.Response:
    """The tenant portal (public: the page asks for nothing until it holds a token)."""
    return web.Response(
        text=PAGE.format(v=_version()),
        content_type="text/html",
        headers={
            "Content-Security-Policy": CSP,
            "Cache-Control": "no-store",  # the link's token is in this page's URL
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
        },
    )


async def portal_asset(request: web.Request) -> web.Response:
    """One of the portal's files; anything else is 404."""
    name = request.match_info["asset"]
    if name not in ASSETS:
        raise web.HTTPNotFound()
    headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
    return web.Response(body=_read(name), content_type=ASSETS[name], headers=headers)
