"""Sends with the official client (azure-servicebus, asyncio): one client and sender per
connection string and entity (rotated credentials get new ones on the next send),
LRU-bounded, opened lazily by the SDK on the first send; and the batcher that gathers
records into `ServiceBusMessageBatch` sends.

`Opener` is the one seam: what builds a client and sender from a connection string and
an entity name (the SDK by default; the tests hand it a recording fake, since no Service
Bus runs outside Docker)."""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from azure.servicebus.aio import ServiceBusClient
from azure.servicebus.exceptions import MessageSizeExceededError

from outpost.destinations.azure_servicebus.format import Record, message

MAX_SENDERS = 256


class Handle(Protocol):
    sender: Any  # send_messages(message | batch, timeout=), create_message_batch()

    async def close(self) -> None: ...


@dataclass
class SdkHandle:
    client: ServiceBusClient
    sender: Any

    async def close(self) -> None:
        await self.sender.close()
        await self.client.close()


def open_sdk(connection_string: str, name: str) -> Handle:
    """A queue sender and a topic sender differ only in name: both send to the entity
    path `name`, as Outpost's NewSender(queueOrTopic) does."""
    client = ServiceBusClient.from_connection_string(connection_string)
    return SdkHandle(client, client.get_queue_sender(queue_name=name))


Opener = Callable[[str, str], Handle]


class Senders:
    def __init__(self, opener: Opener = open_sdk, size: int = MAX_SENDERS):
        self.opener = opener
        self.size = size
        self.handles: OrderedDict[str, Handle] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()

    def get(self, connection_string: str, name: str) -> tuple[str, Handle]:
        key = hashlib.sha256(f"{connection_string}\0{name}".encode()).hexdigest()
        handle = self.handles.get(key)
        if handle is None:
            handle = self.handles[key] = self.opener(connection_string, name)
            while len(self.handles) > self.size:
                self._close(self.handles.popitem(last=False)[1])
        self.handles.move_to_end(key)
        return key, handle

    def _close(self, handle: Handle) -> None:
        task = asyncio.ensure_future(handle.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        while self.handles:
            self._close(self.handles.popitem()[1])
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


@dataclass
class _Batch:
    handle: Handle
    name: str
    records: list[Record] = field(default_factory=list)
    waiters: list[asyncio.Future[dict[str, Any]]] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class Batcher:
    """Gathers records bound for one entity (same credentials) for `linger` seconds or
    until `max_messages`, then sends them in as few `ServiceBusMessageBatch`es as their
    size allows. A batch send is all or nothing: every record of a failed call fails
    with it (and is retried alone); a record too large for any batch fails alone."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self._open: dict[str, _Batch] = {}
        self._sending: set[asyncio.Task[None]] = set()

    def add(
        self, key: str, handle: Handle, name: str, record: Record, limits: tuple[int, float]
    ) -> asyncio.Future[dict[str, Any]]:
        max_messages, linger = limits
        loop = asyncio.get_running_loop()
        batch = self._open.get(key)
        if batch is None:
            batch = self._open[key] = _Batch(handle, name)
            batch.timer = loop.call_later(linger, self._flush, key)
        done: asyncio.Future[dict[str, Any]] = loop.create_future()
        batch.records.append(record)
        batch.waiters.append(done)
        if len(batch.records) >= max_messages:
            self._flush(key)
        return done

    def _flush(self, key: str) -> None:
        batch = self._open.pop(key, None)
        if batch is None:
            return
        if batch.timer is not None:
            batch.timer.cancel()
        task = asyncio.create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: _Batch) -> None:
        try:
            groups = await pack(batch.handle.sender, batch.records, batch.waiters)
            for sb_batch, members in groups:
                try:
                    await batch.handle.sender.send_messages(sb_batch, timeout=self.timeout)
                except Exception as exc:
                    _settle(members, exc)
                else:
                    _settle(members, {"entity": batch.name, "batch_size": len(members)})
        except Exception as exc:  # no batch could be made (the connection, the entity)
            _settle(batch.waiters, exc)
        finally:
            _settle(batch.waiters, asyncio.CancelledError("the batch ended unanswered"))

    async def close(self) -> None:
        for key in list(self._open):
            self._flush(key)
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)


async def pack(
    sender: Any, records: list[Record], waiters: list[asyncio.Future[dict[str, Any]]]
) -> list[tuple[Any, list[asyncio.Future[dict[str, Any]]]]]:
    """The records in as few batches as the entity's size limit allows, each batch with
    the waiters of its records; a record too large even alone fails now."""
    groups: list[tuple[Any, list[asyncio.Future[dict[str, Any]]]]] = []
    members: list[asyncio.Future[dict[str, Any]]] = []
    current = await sender.create_message_batch()
    for record, waiter in zip(records, waiters, strict=True):
        try:
            current.add_message(message(record))
        except MessageSizeExceededError as exc:
            if not members:
                _settle([waiter], exc)
                continue
            groups.append((current, members))
            current, members = await sender.create_message_batch(), []
            try:
                current.add_message(message(record))
            except MessageSizeExceededError as alone:
                _settle([waiter], alone)
                continue
        members.append(waiter)
    if members:
        groups.append((current, members))
    return groups


def _settle(waiters: list[asyncio.Future[dict[str, Any]]], outcome: Any) -> None:
    for waiter in waiters:
        if waiter.done():
            continue
        if isinstance(outcome, BaseException):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)
