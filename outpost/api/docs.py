"""The API reference page at `{prefix}/docs`: Swagger UI rendering `{prefix}/openapi.json`.

Swagger UI's files come from the pinned `swagger-ui-bundle-v2` package (Swagger UI's own
dist, repackaged for Python by connexion's maintainers) and are served by us under
`{prefix}/docs/`: the page loads nothing from another origin, and its Content-Security-Policy
says so to the browser too."""

from __future__ import annotations

import functools
import html

from aiohttp import web
from swagger_ui_bundle import swagger_ui_path

# the files the page needs (source maps too, for a browser's developer tools)
ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui.css.map": "application/json",
    "swagger-ui-bundle.js": "application/javascript",
    "swagger-ui-bundle.js.map": "application/json",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
# ours: Swagger UI pointed at our document, with no validator badge (it would call
# validator.swagger.io) and no top bar to load other documents
INIT_JS = """window.addEventListener("load", function () {
  var el = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: el.dataset.spec,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
"""
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
)
CACHE = "public, max-age=86400"  # the files change only with the pinned package


def _base(request: web.Request) -> str:
    """The API prefix the page was asked under (/api/v1 or /2025-07-01)."""
    return request.path.rsplit("/docs", 1)[0]


async def docs_page(request: web.Request) -> web.Response:
    """API reference (Swagger UI) rendered from the OpenAPI document."""
    base = html.escape(_base(request), quote=True)
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>outpost API reference</title>
<link rel="stylesheet" href="{base}/docs/swagger-ui.css">
<link rel="icon" type="image/png" href="{base}/docs/favicon-32x32.png">
</head>
<body>
<noscript>The API reference needs JavaScript; the document itself is
<a href="{base}/openapi.json">{base}/openapi.json</a>.</noscript>
<div id="swagger-ui" data-spec="{base}/openapi.json"></div>
<script src="{base}/docs/swagger-ui-bundle.js"></script>
<script src="{base}/docs/init.js"></script>
</body>
</html>
"""
    return web.Response(
        text=page, content_type="text/html", headers={"Content-Security-Policy": CSP}
    )


@functools.cache
def _read(name: str) -> bytes:
    return (swagger_ui_path / name).read_bytes()


async def docs_asset(request: web.Request) -> web.Response:
    """One of the page's files; anything else is 404."""
    name = request.match_info["asset"]
    if name == "init.js":
        body, kind = INIT_JS.encode(), "application/javascript"
    elif name in ASSETS:
        body, kind = _read(name), ASSETS[name]
    else:
        raise web.HTTPNotFound()
    return web.Response(body=body, content_type=kind, headers={"Cache-Control": CACHE})
