"""The OpenAPI document and the real app's router agree: every (method, path) the app
serves is documented (the Outpost managed prefix /2025-07-01 mirrors /api/v1 exactly), and
every documented operation is served. HEAD/OPTIONS and the docs page's files are not API."""

import re

from aiohttp import web

from outpost.api.app import PREFIXES
from outpost.runtime import openapi_document as build

MIRROR, MAIN = PREFIXES[1], PREFIXES[0]
GROUP = re.compile(r"\(\?P<(\w+)>([^()]*)\)")


def concrete_paths(resource: web.AbstractResource) -> list[str]:
    """A resource's paths in the document's notation: `{name}` for a parameter, and one
    path per alternative of a fixed-word group such as `{kind:connections|flows}`."""
    info = resource.get_info()
    if "path" in info:
        return [info["path"]]
    paths = [""]
    pattern, last = info["pattern"].pattern, 0
    for match in GROUP.finditer(pattern):
        literal = pattern[last : match.start()].replace("\\", "")
        name, body = match.groups()
        words = body.split("|") if re.fullmatch(r"[\w|-]+", body) else [f"{{{name}}}"]
        paths = [p + literal + w for p in paths for w in words]
        last = match.end()
    return [p + pattern[last:].replace("\\", "") for p in paths]


def served(app: web.Application) -> set[tuple[str, str]]:
    out = set()
    for resource in app.router.resources():
        info = resource.get_info()
        if "app" in info:  # a sub-app (its resources already carry its prefix)
            out |= served(info["app"])
            continue
        for route in resource:
            if route.method in ("HEAD", "OPTIONS"):
                continue
            out |= {(route.method, p) for p in concrete_paths(resource)}
    # the docs page's files and the tenant portal (a page and its files) are not API
    return {
        (m, p) for m, p in out if not p.endswith("/docs/{asset}") and not p.startswith("/portal")
    }


async def ok(request):
    return web.Response()


def test_concrete_paths_expand_kind_groups():
    app = web.Application()
    app.router.add_get("/x/{kind:a|bC}/{id}/t", ok)
    sub = web.Application()
    sub.router.add_post("/y/{n}", ok)
    app.add_subapp("/sub", sub)
    assert served(app) == {("GET", "/x/a/{id}/t"), ("GET", "/x/bC/{id}/t"), ("POST", "/sub/y/{n}")}


async def test_every_served_route_is_documented_and_every_documented_one_served(client):
    routes = served(client.app)
    mirrored = {(m, p) for m, p in routes if p.startswith(MIRROR + "/")}
    main = {(m, p) for m, p in routes if p.startswith(MAIN + "/")}
    assert {(m, MAIN + p.removeprefix(MIRROR)) for m, p in mirrored} == main
    doc = build()
    documented = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    assert routes - mirrored == documented
    flow = {(m, p) for m, p in documented if p.startswith("/data/foundation/flowservice/")}
    assert len(flow) == 2 + 4 * 5 + 3  # specs; 4 kinds x CRUD + list; test, explore, action


async def test_every_documented_operation_answers_in_its_documented_statuses(client):
    """Without credentials each operation is answered (never 404 for want of a route, never
    5xx) with a status it documents."""
    for path, item in build()["paths"].items():
        url = re.sub(r"{\w+}", "x1", path)
        for method, op in item.items():
            r = await client.request(method.upper(), url)
            assert r.status < 500 and str(r.status) in op["responses"], (method, path, r.status)
            if op["x-access"] != "public":
                assert r.status == 401, (method, path)
