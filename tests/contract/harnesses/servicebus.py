"""Azure Service Bus's harness: no Service Bus runs outside Docker, so the provider's
sender is the fake of tests/servers/servicebus.py (the client boundary: our code builds
the SDK's real messages and batches, the fake records what `send_messages` was handed and
fails with the SDK's own exception types). Every case of the suite runs through the real
API, worker and provider down to that boundary; none of it proves delivery to Azure."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from azure.servicebus.exceptions import MessagingEntityNotFoundError

from outpost.destinations.base import Kind
from tests.contract.harnesses.base import Harness
from tests.servers.servicebus import FakeServiceBus, busy, connection_string


class ServiceBusHarness(Harness):
    type = "azure_servicebus"
    batching = {"batching": True, "batch_linger_ms": 10, "batch_max_messages": 10}
    codes = {Kind.RETRY: "server_busy", Kind.PERMANENT: "entity_not_found"}
    bad_values = [
        ("config.name", "-not a name-"),
        ("config.batch_max_messages", 101),
        ("credentials.connection_string", "Endpoint=nowhere"),
    ]

    def __init__(self, bus: FakeServiceBus):
        self.bus = bus
        self.name = f"q-{uuid.uuid4().hex[:8]}"

    def body(self, **config: Any) -> dict[str, Any]:
        return {
            "type": "azure_servicebus",
            "topics": ["orders"],
            "config": {"name": self.name, **config},
            "credentials": self.credentials(),
        }

    def credentials(self, rotated: bool = False) -> dict[str, Any]:
        policy = "RotatedSendPolicy" if rotated else "SendPolicy"
        return {
            "connection_string": connection_string(policy, "cm90YXRlZA==" if rotated else "a2V5")
        }

    def received(self, expect: int) -> list[tuple[str, bytes]]:
        return [
            (str(s.message.application_properties["event-id"]), b"".join(s.message.body))
            for s in self.bus.sent
            if s.entity == self.name
        ]

    def identities(self) -> list[str]:
        return [s.policy for s in self.bus.sent if s.entity == self.name]

    def identity(self, credentials: dict[str, Any]) -> str:
        return str(credentials["connection_string"]).split("SharedAccessKeyName=")[1].split(";")[0]

    def fail(self, kind: Kind) -> None:
        self.bus.fail_with = (
            busy()
            if kind is Kind.RETRY
            else MessagingEntityNotFoundError(
                message=f"The messaging entity {self.name} could not be found (injected)"
            )
        )

    def heal(self) -> None:
        self.bus.fail_with = None

    def fail_some_records(self, keys: list[str]) -> None:
        """The first call carrying one of two of these fails as a whole (Service Bus
        batches are all or nothing); each record of it is retried alone."""
        self.bus.fail_keys = set(keys[::15])

    def failed_records(self) -> Counter[str]:
        return self.bus.failed
