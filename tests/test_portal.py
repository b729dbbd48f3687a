"""The tenant portal's page and files: the link's target is served, public, self-contained
(nothing from another origin, a strict CSP), and the committed bundle is the build of the
committed sources. The browser drives it in tests/test_portal_browser.py."""

import shutil
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from outpost.api.portal import STATIC, sources_digest
from outpost.dev import portalbuild
from tests.conftest import AUTH, NODE_CACHE


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.urls += [a[k] for k in ("src", "href") if a.get(k)]


async def test_the_portal_link_opens_a_page_served_here(client):
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    link = await (await client.get("/api/v1/tenants/acme/portal", headers=AUTH)).json()
    url = urlsplit(link["redirect_url"])
    assert url.path == "/portal" and "token=" in url.query
    r = await client.get(url.path + "?" + url.query)  # public: the page holds the token
    assert r.status == 200 and r.content_type == "text/html"
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "unsafe" not in csp
    assert r.headers["Cache-Control"] == "no-store"  # the link's token is in its URL
    assert r.headers["Referrer-Policy"] == "no-referrer"
    page = await r.text()
    assert "http:" not in page and "https:" not in page
    links = Links()
    links.feed(page)
    assert {urlsplit(u).path for u in links.urls} == {"/portal/portal.js", "/portal/portal.css"}
    for u in links.urls:
        got = await client.get(u)
        assert got.status == 200 and len(await got.read()) > 1000, u
    js = await client.get("/portal/portal.js")
    assert js.content_type == "application/javascript"
    assert (await client.get("/portal/portal.css")).content_type == "text/css"


@pytest.mark.parametrize("name", ["index.html", "..%2F__init__.py", "package.json", "x"])
async def test_only_the_portal_files_are_served(client, name):
    assert (await client.get(f"/portal/{name}")).status == 404


def test_the_committed_bundle_was_built_from_the_committed_sources():
    """Edit src/ or the lock file without `make portal` and this fails."""
    first = (STATIC / "portal.js").read_text().split("\n", 1)[0]
    assert first == portalbuild.banner(sources_digest())


def test_the_bundle_has_no_remote_urls_or_eval():
    js = (STATIC / "portal.js").read_text()
    assert "eval(" not in js and "new Function" not in js  # the CSP forbids both anyway
    assert "https://" not in js  # (http:// appears only as the SVG/MathML namespaces)


@pytest.mark.skipif(not shutil.which("npm"), reason="rebuilding the bundle needs node and npm")
def test_rebuilding_gives_the_committed_bundle_byte_for_byte(tmp_path):
    out = portalbuild.build(tmp_path / "portal.js", cache=NODE_CACHE)
    assert out.read_bytes() == (STATIC / "portal.js").read_bytes()
