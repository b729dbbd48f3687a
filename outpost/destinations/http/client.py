"""The HTTP sending shared by the HTTP types (webhook, hookdeck): one aiohttp session per
type, redirects never followed, connect and read timeouts, the endpoint guard applied to
every address a host name resolves to at connect time (so a DNS answer that changed after
the check cannot walk a send into the private network), and the answer kept bounded."""

from __future__ import annotations

import asyncio
import re
import socket
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from outpost.destinations.endpoints import EndpointPolicy, ForbiddenEndpoint, forbidden

USER_AGENT = "outpost"
HEADER_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # any HTTP header name (RFC 9110)


class GuardedResolver(AbstractResolver):
    """The system resolver, refusing a host any of whose addresses is not public.
    aiohttp skips the resolver for an IP literal: `EndpointPolicy.check` covers those."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        bad = [r["host"] for r in found if forbidden(r["host"])]
        if bad:
            raise ForbiddenEndpoint(
                f"{host!r} resolves to a non-public address ({bad[0]}); private, loopback "
                "and link-local endpoints are not allowed"
            )
        return found

    async def close(self) -> None:
        await self._inner.close()


@dataclass(frozen=True)
class Answer:
    """What the receiver answered: status, headers we keep, the body bounded."""

    status: int
    body: Any  # the JSON object/array when the answer is JSON, else text
    location: str | None = None

    def response(self) -> dict[str, Any]:
        return {"status": self.status, "body": self.body}


class HTTPStatusError(Exception):
    """A non-2xx answer; `classify` decides what it means."""

    def __init__(self, answer: Answer):
        super().__init__(f"HTTP {answer.status}")
        self.answer = answer


class Sender:
    """POSTs for one type. `policy` is the deployment's endpoint policy; with private
    endpoints allowed, no resolver guard is installed."""

    def __init__(
        self,
        policy: EndpointPolicy,
        timeout: float,
        max_connections: int,
        max_body: int,
        connect_timeout: float | None = None,
    ):
        self.policy = policy
        # total bounds the whole call whatever the receiver does (never answers, trickles
        # its answer); a host that never accepts fails at sock_connect
        self.timeout = aiohttp.ClientTimeout(
            total=timeout, sock_connect=min(connect_timeout or timeout, timeout)
        )
        self.max_connections = max_connections
        self.max_body = max_body
        self._session: aiohttp.ClientSession | None = None
        # callers may outnumber connections: they queue here, so the timeout measures the
        # call itself, not the wait for a socket
        self._calls = asyncio.Semaphore(max_connections)

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.max_connections,
                resolver=None if self.policy.allow_private else GuardedResolver(),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": USER_AGENT},
                skip_auto_headers=("Content-Type",),
            )
        return self._session

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        """2xx: the answer; anything else raises HTTPStatusError; transport errors raise
        as aiohttp raises them. The URL is checked again first (IP literals, DNS)."""
        await self.policy.check(url, at_send=True)
        async with (
            self._calls,
            self.session().post(
                url, data=body, headers=headers, allow_redirects=False, timeout=self.timeout
            ) as resp,
        ):
            raw = await resp.content.read(self.max_body + 1)
            answer = Answer(
                resp.status,
                bounded_body(raw, resp.headers.get("Content-Type", ""), self.max_body),
                resp.headers.get("Location"),
            )
        if not 200 <= answer.status < 300:
            raise HTTPStatusError(answer)
        return answer

    async def get_json(self, url: str, headers: dict[str, str]) -> Any:
        """A GET whose 2xx answer is the parsed body (a service's API, not a tenant's
        endpoint); anything else raises like `post`."""
        async with self.session().get(
            url, headers=headers, allow_redirects=False, timeout=self.timeout
        ) as resp:
            raw = await resp.content.read(self.max_body + 1)
            answer = Answer(resp.status, bounded_body(raw, "json", self.max_body))
        if not 200 <= answer.status < 300:
            raise HTTPStatusError(answer)
        return answer.body

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            await asyncio.sleep(0)  # let the connector close its transports


def bounded_body(raw: bytes, content_type: str, limit: int) -> Any:
    """The body as Outpost keeps it (parsed when JSON, else text), cut at `limit` bytes:
    a longer body is kept as its first `limit` bytes of text with a marker."""
    if len(raw) > limit:
        text = raw[:limit].decode("utf-8", "replace")
        return f"{text}... [truncated at {limit} bytes]"
    if "json" in content_type.lower():
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return raw.decode("utf-8", "replace")
