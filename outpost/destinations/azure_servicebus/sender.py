"""Sends with the official client (azure-servicebus, asyncio): one client and sender per
connection string and entity (rotated credentials get new ones on the next send),
LRU-bounded, opened lazily by the SDK on the first send; a batch of records (gathered by
`destinations.batcher`) goes out in as few `ServiceBusMessageBatch` sends as it needs.
This module is the only one that imports the SDK's client (loaded at the first send).

`Opener` is the one seam: what builds a client and sender from a connection string and
an entity name (the SDK by default; the tests hand it a recording fake, since no Service
Bus runs outside Docker)."""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from azure.servicebus import ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient
from azure.servicebus.exceptions import MessageSizeExceededError

from outpost.destinations.azure_servicebus.format import Record
from outpost.destinations.batcher import Answer

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
    def __init__(self, timeout: float, opener: Opener | None = None, size: int = MAX_SENDERS):
        self.timeout = timeout
        self.opener = opener or open_sdk
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

    async def send(self, handle: Handle, record: Record) -> None:
        """One message, sent alone (`SendMessage`, as Outpost)."""
        await handle.sender.send_messages(message(record), timeout=self.timeout)

    async def send_batch(
        self, context: tuple[Handle, str], records: Sequence[Record]
    ) -> list[Answer]:
        """The records in as few batch sends as the entity's size limit allows; a batch
        send is all or nothing (each record of a failed one fails with it), a record too
        large even alone fails alone."""
        handle, name = context
        groups, answers = await pack(handle.sender, records)
        for sb_batch, members in groups:
            outcome: Answer = {"entity": name, "batch_size": len(members)}
            try:
                await handle.sender.send_messages(sb_batch, timeout=self.timeout)
            except Exception as exc:
                outcome = exc
            answers.update(dict.fromkeys(members, outcome))
        return [answers[i] for i in range(len(records))]

    def _close(self, handle: Handle) -> None:
        task = asyncio.ensure_future(handle.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        while self.handles:
            self._close(self.handles.popitem()[1])
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


def message(record: Record) -> ServiceBusMessage:
    """The SDK's message for a record (built at send: it is a mutable SDK object)."""
    return ServiceBusMessage(
        body=record.data,
        application_properties=dict(record.properties),
        message_id=record.message_id,
    )


async def pack(
    sender: Any, records: Sequence[Record]
) -> tuple[list[tuple[Any, list[int]]], dict[int, Answer]]:
    """The records in as few batches as the entity's size limit allows, each batch with
    the indexes of its records; and the failure of each record too large even alone."""
    groups: list[tuple[Any, list[int]]] = []
    too_large: dict[int, Answer] = {}
    members: list[int] = []
    current = await sender.create_message_batch()
    for i, record in enumerate(records):
        try:
            current.add_message(message(record))
        except MessageSizeExceededError as exc:
            if not members:
                too_large[i] = exc
                continue
            groups.append((current, members))
            current, members = await sender.create_message_batch(), []
            try:
                current.add_message(message(record))
            except MessageSizeExceededError as alone:
                too_large[i] = alone
                continue
        members.append(i)
    if members:
        groups.append((current, members))
    return groups, too_large
