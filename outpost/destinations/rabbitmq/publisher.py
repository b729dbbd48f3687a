"""Publishing with publisher confirms (aio-pika): a send succeeds when the broker has
acknowledged the message.

One connection per broker URL (server and credentials: rotated credentials get a new
connection on the next send), LRU-bounded; on it, one confirm-mode channel per exchange,
so a channel the broker closes (a missing exchange) takes only that exchange's publishes
with it. Publishes on a channel are pipelined: each waits for its own confirm. A cached
connection found dead when used (the broker restarted, an idle connection was dropped) is
replaced once at once rather than failing the attempt."""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection
from aiormq import exceptions as amqp
from aiormq import spec

from outpost.destinations.rabbitmq.format import Record

T = TypeVar("T")
# what a publish on a connection that died while cached fails with (aio-pika says
# RuntimeError when asked for a channel on a closed connection); a broker's reply (a
# channel closed with NOT_FOUND, a nack) or a timeout is not one of them
STALE = (ConnectionError, RuntimeError, amqp.ChannelInvalidStateError, amqp.ConnectionClosed)
MAX_CONNECTIONS = 256


class Shared(Generic[T]):
    """Concurrent callers that need the same missing thing (a connection, a channel)
    share one attempt to make it; a failed attempt is not remembered."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Future[T]] = {}

    async def get(self, key: str, make: Callable[[], Awaitable[T]]) -> T:
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.ensure_future(make())
            self._tasks[key] = task
            task.add_done_callback(lambda t: self._forget(key, t))
        return await asyncio.shield(task)

    def _forget(self, key: str, task: asyncio.Future[T]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have gone

    def cancel(self) -> None:
        for task in self._tasks.values():
            task.cancel()


class Link:
    """A connection and its confirm-mode channels, by exchange."""

    def __init__(self, connection: AbstractConnection, timeout: float):
        self.connection = connection
        self.timeout = timeout
        self.channels: dict[str, AbstractChannel] = {}
        self.closing = False
        self._opening: Shared[AbstractChannel] = Shared()

    @property
    def closed(self) -> bool:
        return self.connection.is_closed

    async def channel(self, exchange: str) -> AbstractChannel:
        channel = self.channels.get(exchange)
        if channel is None or channel.is_closed:
            channel = await self._opening.get(exchange, lambda: self._open(exchange))
        return channel

    async def _open(self, exchange: str) -> AbstractChannel:
        async with asyncio.timeout(self.timeout):
            channel = await self.connection.channel(publisher_confirms=True)
        self.channels[exchange] = channel
        return channel

    async def close(self) -> None:
        self._opening.cancel()
        await self.connection.close()


class Publisher:
    def __init__(self, timeout: float, max_connections: int = MAX_CONNECTIONS):
        self.timeout = timeout
        self.max_connections = max_connections
        self.links: OrderedDict[str, Link] = OrderedDict()
        self._connecting: Shared[Link] = Shared()
        self._closing: set[asyncio.Task[None]] = set()

    async def publish(self, url: str, record: Record) -> dict[str, Any]:
        key = hashlib.sha256(url.encode()).hexdigest()  # the password stays out of memory keys
        link, fresh = await self._link(key, url)
        try:
            await self._publish_on(link, record)
        except STALE:
            if fresh:
                raise
            self._drop(key, link)  # it died while cached: one new connection, at once
            link, _ = await self._link(key, url)
            await self._publish_on(link, record)
        return {"exchange": record.exchange, "routing_key": record.routing_key, "confirmed": True}

    async def _publish_on(self, link: Link, record: Record) -> None:
        channel = await (await link.channel(record.exchange)).get_underlay_channel()
        properties = spec.Basic.Properties(
            content_type="application/json",
            headers=dict(record.headers),
            message_id=record.message_id,
        )
        await channel.basic_publish(
            record.data,
            exchange=record.exchange,
            routing_key=record.routing_key,
            properties=properties,
            mandatory=False,  # as Outpost: an unroutable message is the broker's to drop
            timeout=self.timeout,
        )

    async def _link(self, key: str, url: str) -> tuple[Link, bool]:
        link = self.links.get(key)
        if link is not None and not link.closed:
            self.links.move_to_end(key)
            return link, False
        if link is not None:
            self._drop(key, link)
        return await self._connecting.get(key, lambda: self._connect(key, url)), True

    async def _connect(self, key: str, url: str) -> Link:
        async with asyncio.timeout(self.timeout):
            connection = await aio_pika.connect(
                url, timeout=self.timeout, client_properties={"connection_name": "outpost"}
            )
        link = self.links[key] = Link(connection, self.timeout)
        while len(self.links) > self.max_connections:
            oldest = next(iter(self.links))
            self._drop(oldest, self.links[oldest])
        return link

    def _drop(self, key: str, link: Link) -> None:
        """Closes `link`, and forgets it unless another caller has already replaced it."""
        if self.links.get(key) is link:
            del self.links[key]
        if not link.closing:
            link.closing = True
            task = asyncio.ensure_future(_quietly(link.close()))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        self._connecting.cancel()
        for key, link in list(self.links.items()):
            self._drop(key, link)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


async def _quietly(closing: Awaitable[Any]) -> None:
    try:
        await closing
    except Exception:  # a connection already dead has nothing left to close
        return
