"""A real HTTP receiver for the webhook and hookdeck types: an aiohttp server on
127.0.0.1 (its own thread and loop, started once per session) that records every request
(method, path, headers, body) and answers what a test tells it: a status, a delay, a
body, for every request to a path or only for some event ids, for a number of times.
Each test takes its own path (`receiver.path()`), so tests never see each other's
requests."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from multidict import CIMultiDict


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: CIMultiDict[str]
    body: bytes
    status: int  # what the receiver answered

    @property
    def event_id(self) -> str:
        return self.headers.get("x-outpost-event-id", "")


@dataclass
class Rule:
    status: int
    delay: float = 0.0
    body: bytes = b""
    content_type: str = "text/plain"
    times: int | None = None  # None: every request
    event_ids: frozenset[str] | None = None  # None: whatever the event
    headers: dict[str, str] = field(default_factory=dict)


class Receiver:
    def __init__(self) -> None:
        self.url = ""
        self._lock = threading.Lock()
        self._requests: list[Received] = []
        self._rules: dict[str, list[Rule]] = {}
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="http-receiver", daemon=True)

    # -- what a test uses -------------------------------------------------------------
    def path(self) -> str:
        return f"/h/{uuid.uuid4().hex[:12]}"

    def answer(self, path: str, status: int, **options: object) -> None:
        """Requests to `path` get `status` (options: Rule's fields) before the default
        200; rules are tried in the order given."""
        with self._lock:
            self._rules.setdefault(path, []).append(Rule(status, **options))  # type: ignore[arg-type]

    def heal(self, path: str) -> None:
        with self._lock:
            self._rules.pop(path, None)

    def requests(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self._requests if r.path == path]

    def delivered(self, path: str, expect: int = 0, timeout: float = 10.0) -> list[Received]:
        """The requests to `path` answered 2xx, waiting (up to `timeout`) for `expect`."""
        deadline = time.monotonic() + timeout
        while True:
            got = [r for r in self.requests(path) if 200 <= r.status < 300]
            if len(got) >= expect or time.monotonic() > deadline:
                return got
            time.sleep(0.02)

    # -- the server -------------------------------------------------------------------
    def _rule(self, path: str, event_id: str) -> Rule | None:
        with self._lock:
            for rule in self._rules.get(path, []):
                if rule.times == 0 or (rule.event_ids and event_id not in rule.event_ids):
                    continue
                if rule.times is not None:
                    rule.times -= 1
                return rule
        return None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = CIMultiDict(request.headers)
        rule = self._rule(request.path, headers.get("x-outpost-event-id", ""))
        rule = rule or Rule(200, body=b'{"ok":true}', content_type="application/json")
        if rule.delay:
            await asyncio.sleep(rule.delay)
        with self._lock:
            self._requests.append(
                Received(request.method, request.path, headers, body, rule.status)
            )
        return web.Response(
            status=rule.status, body=rule.body, content_type=rule.content_type, headers=rule.headers
        )

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def start(self) -> Receiver:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the HTTP receiver did not start")
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture(scope="session")
def http_receiver() -> Iterator[Receiver]:
    receiver = Receiver().start()
    yield receiver
    receiver.stop()
