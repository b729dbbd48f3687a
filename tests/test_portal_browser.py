"""The tenant portal in a real browser: Debian's chromium, headless, driven by Playwright's
Python API, against the service (API + a running worker) on 127.0.0.1 and Kinesis on moto.
A tenant opens its link, creates a Kinesis destination through the form built from the type's
schema, sees the attempt of an event the operator publishes, and retries it."""

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from outpost.dev import devstack
from outpost.runtime import build_worker, create_app
from tests.conftest import AUTH, FAKE_CREDS

CHROMIUM = os.environ.get("OUTPOST_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT = 20_000  # ms: generous, CI machines are loaded


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """One chromium process for the test, started and stopped here (make test installs it)."""
    assert os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is missing: `make test` apt-installs it"
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        await b.close()


@pytest.fixture
async def service(aiohttp_server, settings, deps):
    """The API on 127.0.0.1 and a worker delivering in the background."""
    server = await aiohttp_server(create_app(settings, deps, run_promoter=False), host="127.0.0.1")
    worker = build_worker(deps, settings)
    task = asyncio.create_task(worker.run())
    yield server
    worker.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)


async def open_portal(service, browser: Browser, tenant: str = "acme") -> Page:
    """The tenant's page, opened by the link the operator hands out."""
    async with aiohttp.ClientSession() as http:
        await http.put(service.make_url(f"/api/v1/tenants/{tenant}"), headers=AUTH)
        r = await http.get(service.make_url(f"/api/v1/tenants/{tenant}/portal"), headers=AUTH)
        link = (await r.json())["redirect_url"]
    assert urlsplit(link).hostname == "127.0.0.1"
    page = await browser.new_page()
    page.set_default_timeout(WAIT)
    await page.goto(link)
    await expect(page.get_by_role("heading", name="Destinations")).to_be_visible()
    assert "token=" not in page.url  # the token left the address bar (and the history)
    return page


async def create_kinesis(page: Page, stream: str, endpoint: str) -> str:
    await page.get_by_role("link", name="New destination").click()
    await page.select_option("#f-type", "aws_kinesis")
    await page.fill("#f-topics", "orders")
    await page.fill("#f-config-stream_name", stream)
    await page.fill("#f-config-region", "us-east-1")
    await page.fill("#f-config-endpoint", endpoint)
    await page.fill("#f-credentials-key", FAKE_CREDS["key"])
    assert await page.get_attribute("#f-credentials-secret", "type") == "password"
    await page.fill("#f-credentials-secret", FAKE_CREDS["secret"])
    await page.get_by_role("button", name="Create destination").click()
    section = page.locator("section.destination")
    await expect(section).to_be_visible()
    return await section.get_attribute("data-id") or ""


async def test_a_tenant_creates_a_kinesis_destination_sees_the_attempt_and_retries_it(
    service, browser, moto, moto_stream
):
    page = await open_portal(service, browser)
    dest_id = await create_kinesis(page, moto_stream, moto.url)
    assert dest_id
    await expect(page.locator("#dest-status")).to_have_text("enabled")

    async with aiohttp.ClientSession() as http:  # the operator publishes
        r = await http.post(
            service.make_url("/api/v1/publish"),
            json={"tenant_id": "acme", "topic": "orders", "data": {"n": 1}},
            headers=AUTH,
        )
        assert r.status == 202, await r.text()
        event_id = (await r.json())["id"]

    row = page.locator(f"tr.attempt[data-event='{event_id}']")
    await refresh_until(page, row)
    await expect(row.first.locator(".badge")).to_have_text("success")
    assert len(await asyncio.to_thread(devstack.read_stream, moto.url, moto_stream, 10, 1)) == 1

    await row.first.get_by_role("button", name="Retry").click()
    await expect(page.get_by_role("status")).to_contain_text(f"Retry of {event_id} queued")
    manual = row.filter(has_text="(manual)")
    await refresh_until(page, manual)
    await expect(manual.locator(".badge")).to_have_text("success")
    got = await asyncio.to_thread(devstack.read_stream, moto.url, moto_stream, 10, 2)
    assert len(got) == 2  # the retry put the event on the stream once more
    await expect(row).to_have_count(2)

    # the chart and the destination's controls
    await page.reload()  # the session survives a reload (sessionStorage), the chart reloads
    await expect(page.locator("#chart-totals")).to_contain_text("2 delivered")
    await page.get_by_role("button", name="Disable").click()
    await expect(page.locator("#dest-status")).to_have_text("disabled")
    await page.get_by_role("button", name="Enable").click()
    await expect(page.locator("#dest-status")).to_have_text("enabled")
    await page.get_by_role("button", name="Edit").click()
    secret = page.locator("form.dest-form #f-credentials-secret")
    assert await secret.input_value() == "" and FAKE_CREDS["secret"] not in await page.content()
    assert "(unchanged)" in (await secret.get_attribute("placeholder") or "")


async def refresh_until(page: Page, rows, tries: int = 40) -> None:
    """Click Refresh until `rows` shows (the worker delivers in the background)."""
    for _ in range(tries):
        if await rows.count():
            return
        await page.get_by_role("button", name="Refresh").first.click()
        await page.wait_for_timeout(250)
    await expect(rows.first).to_be_visible()


async def test_every_type_has_a_form_from_its_schema_with_secrets_masked(service, browser):
    page = await open_portal(service, browser)
    async with aiohttp.ClientSession() as http:
        r = await http.get(service.make_url("/api/v1/destination-types"), headers=AUTH)
        types = await r.json()
    assert len(types) >= 8
    await page.get_by_role("link", name="New destination").click()
    for t in types:
        await page.select_option("#f-type", t["type"])
        for group, key in (("config", "config_fields"), ("credentials", "credential_fields")):
            for f in t[key]:
                if f["type"] == "key_value_map":  # rows of name/value inputs, no single input
                    await expect(page.get_by_role("button", name="Add")).to_be_visible()
                    continue
                field = page.locator(f"#f-{group}-{f['key']}")
                await expect(field).to_have_count(1)
                kind = await field.get_attribute("type")
                assert (kind == "password") == bool(f.get("sensitive")), (t["type"], f["key"])


async def test_dead_letters_are_redriven_from_the_portal(service, browser, moto):
    stream = f"dl-{os.urandom(4).hex()}"  # not created yet: every attempt fails, retryable
    async with aiohttp.ClientSession() as http:
        await http.put(service.make_url("/api/v1/tenants/acme"), headers=AUTH)
        body = {
            "type": "aws_kinesis",
            "topics": ["orders"],
            "config": {"stream_name": stream, "region": "us-east-1", "endpoint": moto.url},
            "credentials": dict(FAKE_CREDS),
        }
        r = await http.post(
            service.make_url("/api/v1/tenants/acme/destinations"), json=body, headers=AUTH
        )
        assert r.status == 201, await r.text()
        r = await http.post(
            service.make_url("/api/v1/publish"),
            json={"tenant_id": "acme", "topic": "orders", "data": {"n": 2}},
            headers=AUTH,
        )
        event_id = (await r.json())["id"]
    page = await open_portal(service, browser)
    await page.get_by_role("link", name="Dead letters").click()
    row = page.locator(f"tr.dead-letter[data-event='{event_id}']")
    for _ in range(80):  # the retries run out (MAX_RETRY_LIMIT 3, 50 ms apart)
        if await row.count():
            break
        await page.reload()
        await page.wait_for_timeout(250)
    await expect(row).to_contain_text("stream_not_found")
    await asyncio.to_thread(devstack.create_stream, moto.url, stream, 1)
    await page.get_by_role("button", name="Redrive all").click()
    await expect(page.get_by_role("status")).to_have_text("1 redriven, 0 skipped")
    await expect(row).to_have_count(0)
    assert len(await asyncio.to_thread(devstack.read_stream, moto.url, stream, 15, 1)) == 1
    await page.get_by_role("link", name="Attempts").click()
    await page.select_option("select[name=status]", "success")
    await expect(page.locator(f"tr.attempt[data-event='{event_id}']")).to_have_count(1)


async def test_a_bad_or_missing_link_says_so(service, browser):
    page = await browser.new_page()
    await page.goto(str(service.make_url("/portal?token=not-a-jwt&tenant_id=acme&theme=dark")))
    await expect(page.get_by_role("heading", name="Session expired")).to_be_visible()
    await expect(page.locator("html")).to_have_class("dark")  # the link's theme
    await page.evaluate("sessionStorage.clear()")
    await page.goto(str(service.make_url("/portal")))
    await expect(page.get_by_text("Open the portal through the link")).to_be_visible()


async def test_a_tenant_edits_keeping_its_secret_filters_events_and_deletes(
    service, browser, moto, moto_stream
):
    page = await open_portal(service, browser, tenant="globex")
    dest_id = await create_kinesis(page, moto_stream, moto.url)
    url = service.make_url(f"/api/v1/tenants/globex/destinations/{dest_id}")
    async with aiohttp.ClientSession(headers=AUTH) as http:
        before = await (await http.get(url)).json()
        await page.get_by_role("button", name="Edit").click()
        await page.fill("#f-config-partition_key_template", "data.customer")
        await page.get_by_role("button", name="Save").click()
        await expect(page.locator("form.dest-form")).to_have_count(0)
        after = await (await http.get(url)).json()
        assert after["config"]["partition_key_template"] == "data.customer"
        assert after["credentials"] == before["credentials"]  # the empty secret kept it
        for topic in ("orders", "refunds"):
            body = {"tenant_id": "globex", "topic": topic, "data": {"customer": "c1"}}
            r = await http.post(service.make_url("/api/v1/publish"), json=body)
            assert r.status == 202
    records = await asyncio.to_thread(devstack.read_stream, moto.url, moto_stream, 10, 1)
    assert [r["PartitionKey"] for r in records] == ["c1"]  # the edited template at work

    await page.get_by_role("link", name="Events").click()
    await expect(page.locator("tr.event")).to_have_count(2)
    await page.fill("input[name=topic]", "refunds")
    await page.press("input[name=topic]", "Enter")
    await expect(page.locator("tr.event")).to_have_count(1)
    await expect(page.locator("tr.event")).to_contain_text("refunds")

    await page.goto(page.url.split("#")[0] + f"#/destinations/{dest_id}")
    page.once("dialog", lambda d: asyncio.ensure_future(d.accept()))
    await page.get_by_role("button", name="Delete").click()
    await expect(page.get_by_text("No destinations yet.")).to_be_visible()
    async with aiohttp.ClientSession(headers=AUTH) as http:
        assert (await http.get(url)).status == 404


async def test_a_late_answer_to_an_older_filter_is_not_shown(service, browser, moto):
    """The attempt list shows the answer to the latest filter: the unfiltered list's answer,
    held back in the browser until the filtered one is shown, does not replace it."""
    stream = f"late-{os.urandom(4).hex()}"  # not created yet: the first event fails
    page = await open_portal(service, browser)
    await create_kinesis(page, stream, moto.url)
    failed = await publish_one(service, {"n": 1})
    await until_attempts(service, failed, 1)
    await asyncio.to_thread(devstack.create_stream, moto.url, stream, 1)
    ok = await publish_one(service, {"n": 2})
    await until_attempts(service, ok, 1, status="success")

    held, asked = asyncio.Event(), asyncio.Event()

    def tab_list(url: str) -> bool:
        """The Attempts tab's own first list: no filter (the destination's page shown
        before it lists that destination's attempts)."""
        return "/api/v1/attempts?" in url and "status=" not in url and "destination_id=" not in url

    async def hold_unfiltered(route):
        if tab_list(route.request.url):
            asked.set()
            await held.wait()  # answered only after the filtered list is on the page
        await route.continue_()

    await page.route("**/api/v1/attempts*", hold_unfiltered)
    async with page.expect_response(lambda r: tab_list(r.url)):
        await page.get_by_role("link", name="Attempts").click()
        # the tab is on the page (it asked for its list): its filter, not the destination
        # page's (which has one too), is the one set next
        await asyncio.wait_for(asked.wait(), WAIT / 1000)
        await page.select_option("select[name=status]", "success")
        rows = page.locator("tr.attempt")
        await expect(rows).to_have_count(1)
        held.set()
    await page.wait_for_timeout(500)  # the late answer has arrived: give it time to render
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-event", ok)


async def publish_one(service, data: dict) -> str:
    """The operator publishes one `orders` event for acme: its id."""
    async with aiohttp.ClientSession() as http:
        r = await http.post(
            service.make_url("/api/v1/publish"),
            json={"tenant_id": "acme", "topic": "orders", "data": data},
            headers=AUTH,
        )
        assert r.status == 202, await r.text()
        return str((await r.json())["id"])


async def until_attempts(service, event_id: str, n: int, **only: str) -> None:
    """Wait until the event's attempt log holds `n` attempts (`only`: of that status, say)
    (the worker runs beside)."""
    query = {"tenant_id": "acme", "event_id": event_id, **only}
    url = service.make_url("/api/v1/attempts").with_query(query)
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            got = await (await http.get(url, headers=AUTH)).json()
            if len(got["models"]) >= n:
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"{event_id}: fewer than {n} attempts after 10 s")
