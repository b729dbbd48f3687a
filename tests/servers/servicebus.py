"""Azure Service Bus has no local server outside Docker (its emulator is a container), so
its tests stop at the client boundary: `FakeServiceBus` stands where the SDK's sender
would be (the one fake of the destination tests, said so in the README). Our code builds
the SDK's real `ServiceBusMessage`s and `ServiceBusMessageBatch`es; the fake records what
each `send_messages` call was handed, and fails a call with the SDK's own exception types
when told to."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from azure.servicebus import ServiceBusMessage, ServiceBusMessageBatch, parse_connection_string

MAX_BATCH_BYTES = 256 * 1024  # the Standard tier's message (and batch) limit


@dataclass
class Sent:
    entity: str
    policy: str  # the connection string's SharedAccessKeyName: who sent it
    message: ServiceBusMessage
    batch_size: int  # messages in the call that carried it


@dataclass
class FakeServiceBus:
    sent: list[Sent] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)  # messages per send_messages call
    fail_with: BaseException | None = None  # every call fails with it
    fail_keys: set[str] = field(default_factory=set)  # a call carrying one of them fails
    failed: Counter[str] = field(default_factory=Counter)  # event ids of failed calls
    closed: int = 0

    def open(self, connection_string: str, name: str) -> FakeHandle:
        policy = str(parse_connection_string(connection_string).shared_access_key_name)
        return FakeHandle(FakeSender(self, name, policy), self)


@dataclass
class FakeHandle:
    sender: FakeSender
    bus: FakeServiceBus

    async def close(self) -> None:
        self.bus.closed += 1


@dataclass
class FakeSender:
    bus: FakeServiceBus
    entity: str
    policy: str

    async def create_message_batch(self) -> ServiceBusMessageBatch:
        return ServiceBusMessageBatch(max_size_in_bytes=MAX_BATCH_BYTES)

    async def send_messages(self, sent: Any, timeout: float | None = None) -> None:  # noqa: ASYNC109 - the SDK's signature
        messages = list(sent._messages) if isinstance(sent, ServiceBusMessageBatch) else [sent]
        self.bus.calls.append(len(messages))
        keys = [str(m.application_properties["event-id"]) for m in messages]
        if self.bus.fail_with is not None:
            self.bus.failed.update(keys)
            raise self.bus.fail_with
        if self.bus.fail_keys & set(keys):  # once per key
            self.bus.fail_keys -= set(keys)
            self.bus.failed.update(keys)
            raise busy()
        self.bus.sent += [Sent(self.entity, self.policy, m, len(messages)) for m in messages]


def busy() -> BaseException:
    from azure.servicebus.exceptions import ServiceBusServerBusyError

    return ServiceBusServerBusyError(message="The server is busy (injected)")


def connection_string(policy: str = "RootManageSharedAccessKey", key: str = "a2V5") -> str:
    return (
        "Endpoint=sb://outpost-test.servicebus.windows.net/;"
        f"SharedAccessKeyName={policy};SharedAccessKey={key}"
    )
