"""/api/v1/docs is an API reference rendered by Swagger UI from our own files: every
file the page names is ours, served with the right type, and nothing comes from elsewhere."""

from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from outpost.api.app import PREFIXES

TYPES = {".css": "text/css", ".js": "application/javascript", ".png": "image/png"}


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.spec: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.urls += [a[k] for k in ("src", "href") if a.get(k)]
        if a.get("id") == "swagger-ui":
            self.spec = a.get("data-spec")


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_docs_page_uses_only_our_own_files(client, prefix):
    r = await client.get(f"{prefix}/docs")  # public: no credentials
    assert r.status == 200 and r.content_type == "text/html"
    page = await r.text()
    assert "http:" not in page and "https:" not in page
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    links = Links()
    links.feed(page)
    assert links.spec == f"{prefix}/openapi.json"
    assert {u.rsplit("/", 1)[-1] for u in links.urls} >= {
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "init.js",
        "openapi.json",
    }
    for url in [*links.urls, links.spec]:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and url.startswith(f"{prefix}/"), url
        got = await client.get(url)
        assert got.status == 200, url
        suffix = "." + url.rsplit(".", 1)[-1]
        assert got.content_type == TYPES.get(suffix, "application/json"), url
        assert len(await got.read()) > 0


async def test_the_bundle_is_swagger_ui_5_and_renders_our_document(client):
    bundle = await (await client.get("/api/v1/docs/swagger-ui-bundle.js")).text()
    assert "SwaggerUIBundle" in bundle and len(bundle) > 500_000  # the real thing
    init = await (await client.get("/api/v1/docs/init.js")).text()
    assert "el.dataset.spec" in init and "validatorUrl: null" in init  # no external badge
    doc = await (await client.get("/api/v1/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")  # Swagger UI renders 3.1 from 5.0 on


@pytest.mark.parametrize("name", ["index.html", "swagger-initializer.js", "..%2Fapp.py", "x"])
async def test_only_the_page_files_are_served(client, name):
    r = await client.get(f"/api/v1/docs/{name}")
    assert r.status == 404
