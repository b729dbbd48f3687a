"""aiobotocore clients for the AWS destination types (SQS, S3, EventBridge), one per
(service, region, endpoint, credentials), LRU-cached like Kinesis's signers: a PATCH that
rotates credentials changes the key, so the next send uses a new client and no restart is
needed. Every client refuses redirects (`NoRedirectSession`: the endpoint guard vetted the
endpoint, not where it points), makes ONE attempt per call (the retry schedule is ours,
not botocore's) and shares the process's aiobotocore session (service models loaded once).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig

from outpost.destinations.aws.redirects import NoRedirectSession
from outpost.destinations.aws.sigv4 import aws_session
from outpost.errors import PermanentError

CLIENT_CACHE_SIZE = 128
# an evicted client may still be in a call: it is closed this long after eviction
CLOSE_GRACE_SECONDS = 30.0


class RedirectRefused(PermanentError):
    def __init__(self, status: int):
        super().__init__(
            "redirect_refused",
            f"the endpoint answered HTTP {status} (a redirect); redirects are never followed",
        )


class RefuseRedirects(NoRedirectSession):
    """Redirects not followed, and a 3xx answer failed right here (its body unread), before
    botocore sees it: S3's region redirector would otherwise act on it. Each request ends
    within the read timeout (DELIVERY_TIMEOUT_SECONDS) in all, connecting included."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        t: aiohttp.ClientTimeout = self._timeout  # type: ignore[has-type]  # aiobotocore's
        self._timeout = aiohttp.ClientTimeout(
            total=t.sock_read, sock_connect=t.sock_connect, sock_read=t.sock_read
        )

    async def send(self, request: Any) -> Any:
        response = await super().send(request)
        if 300 <= response.status_code < 400:
            with contextlib.suppress(Exception):
                response.raw.release()
            raise RedirectRefused(response.status_code)
        return response


@dataclass(frozen=True)
class Identity:
    """Where and as whom one client calls."""

    service: str
    region: str
    endpoint: str | None
    key: str
    secret: str
    session: str | None
    path_style: bool = False  # S3 with a custom endpoint (LocalStack, moto, MinIO)

    def cache_key(self) -> str:
        parts = [self.service, self.region, self.endpoint or "", self.key, self.secret]
        parts += [self.session or "", str(self.path_style)]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()


class ClientCache:
    """The clients of one provider, bounded; `close` closes them all."""

    def __init__(
        self,
        timeout: float,
        max_connections: int,
        connect_timeout: float | None = None,
        size: int = CLIENT_CACHE_SIZE,
    ):
        self.timeout = timeout
        self.connect_timeout = min(connect_timeout or timeout, timeout)
        self.max_connections = max_connections
        self.size = size
        self._clients: OrderedDict[str, Any] = OrderedDict()
        self._retired: set[Any] = set()  # evicted, closed after the grace period
        self._closing: set[asyncio.Task[None]] = set()
        self._making: dict[str, asyncio.Future[Any]] = {}

    def config(self, path_style: bool) -> AioConfig:
        return AioConfig(
            connect_timeout=self.connect_timeout,
            read_timeout=self.timeout,  # also each request's total (RefuseRedirects)
            retries={"total_max_attempts": 1},
            max_pool_connections=self.max_connections,
            s3={"addressing_style": "path" if path_style else "auto"},
            http_session_cls=RefuseRedirects,
        )

    async def get(self, who: Identity) -> Any:
        """The identity's client; made once even when many sends ask at the same time,
        without holding up the sends of other identities meanwhile."""
        key = who.cache_key()
        client = self._clients.get(key)
        if client is not None:
            self._clients.move_to_end(key)
            return client
        making = self._making.get(key)
        if making is None:
            making = self._making[key] = asyncio.ensure_future(self._add(key, who))
            making.add_done_callback(lambda _: self._making.pop(key, None))
        return await asyncio.shield(making)

    async def _add(self, key: str, who: Identity) -> Any:
        client = await self._create(who)
        self._clients[key] = client
        while len(self._clients) > self.size:
            self._retire(self._clients.popitem(last=False)[1])
        return client

    async def _create(self, who: Identity) -> Any:
        creator = aws_session().create_client(
            who.service,
            region_name=who.region,
            endpoint_url=who.endpoint or None,
            aws_access_key_id=who.key,
            aws_secret_access_key=who.secret,
            aws_session_token=who.session or None,
            config=self.config(who.path_style),
        )
        return await creator.__aenter__()

    def _retire(self, client: Any) -> None:
        self._retired.add(client)

        async def later() -> None:
            await asyncio.sleep(CLOSE_GRACE_SECONDS)
            if client in self._retired:
                self._retired.discard(client)
                await _close(client)

        task = asyncio.create_task(later())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        for making in list(self._making.values()):
            with contextlib.suppress(Exception):
                await making
        for task in list(self._closing):
            task.cancel()
        clients = [*self._clients.values(), *self._retired]
        self._clients, self._retired = OrderedDict(), set()
        for client in clients:
            await _close(client)


async def _close(client: Any) -> None:
    with contextlib.suppress(Exception):
        await client.close()
