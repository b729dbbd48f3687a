"""Kafka's harness: a topic on the test broker (Tansu behind the SASL front of
tests/servers/kafka_front.py, which also injects the failures)."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from outpost.destinations.base import Kind
from tests.contract.harnesses.base import Harness
from tests.servers.kafka import USERS, KafkaServer

MESSAGE_TOO_LARGE, UNKNOWN_SERVER_ERROR = 10, -1


class KafkaHarness(Harness):
    type = "kafka"
    batching = {"batching": True, "batch_linger_ms": 10}
    codes = {Kind.RETRY: "kafka_error", Kind.PERMANENT: "message_too_large"}
    bad_values = [
        ("config.brokers", "no-port-here"),
        ("config.topic", "not a topic!"),
        ("config.sasl_mechanism", "gssapi"),
        ("config.tls", "maybe"),
        ("config.partition_key_template", "data.["),
        ("config.batch_linger_ms", 10_001),
        ("credentials.password", " "),
    ]

    def __init__(self, server: KafkaServer):
        self.server = server
        self.front = server.front
        self.topic = f"c-{uuid.uuid4().hex[:12]}"
        server.create_topic(self.topic, partitions=2)
        self._seen_from = len(self.front.identities)

    def body(self, **config: Any) -> dict[str, Any]:
        return {
            "type": "kafka",
            "topics": ["orders"],
            "config": {
                "brokers": self.server.url,
                "topic": self.topic,
                "sasl_mechanism": "scram-sha-256",
                "tls": "false",
                **config,
            },
            "credentials": self.credentials(),
        }

    def credentials(self, rotated: bool = False) -> dict[str, Any]:
        user = "bob" if rotated else "alice"
        return {"username": user, "password": USERS[user]}

    def received(self, expect: int) -> list[tuple[str, bytes]]:
        return [(m.key.decode(), m.value) for m in self.server.read(self.topic, expect)]

    def identities(self) -> list[str]:
        return self.front.identities[self._seen_from :]

    def identity(self, credentials: dict[str, Any]) -> str:
        return str(credentials["username"])

    def fail(self, kind: Kind) -> None:
        self.front.produce_error = UNKNOWN_SERVER_ERROR if kind is Kind.RETRY else MESSAGE_TOO_LARGE

    def heal(self) -> None:
        self.front.heal()

    def fail_some_records(self, keys: list[str]) -> None:
        self.front.refused_keys.clear()
        self.front.fail_partitions = {0: 1}  # partition 0's first batch, once

    def failed_records(self) -> Counter[str]:
        return Counter(dict(self.front.refused_keys))

    async def close(self) -> None:
        self.front.heal()
