"""GCP Pub/Sub's harness: a topic on the Pub/Sub emulator, published to through the
test proxy of tests/servers/pubsub.py (who published, injected failures). A permanent
failure is the real one: the topic is deleted (NOT_FOUND)."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

import grpc

from outpost.destinations.base import Kind
from tests.contract.harnesses.base import Harness
from tests.servers.pubsub import PROJECT, PubSubServer, service_account

KEYS: dict[str, dict[str, str]] = {}


def key(email: str) -> dict[str, str]:
    if email not in KEYS:  # one RSA key per account for the session
        KEYS[email] = service_account(email)
    return KEYS[email]


class PubSubHarness(Harness):
    type = "gcp_pubsub"
    batching = {"batching": True, "batch_max_records": 10, "batch_linger_ms": 10}
    codes = {Kind.RETRY: "server_error", Kind.PERMANENT: "topic_not_found"}
    bad_values = [
        ("config.project_id", "Not A Project!"),
        ("config.topic", "x"),
        ("config.endpoint", "ftp://somewhere"),
        ("config.batch_max_records", 1001),
        ("credentials.service_account_json", " "),
    ]

    def __init__(self, server: PubSubServer):
        self.server = server
        self.proxy = server.proxy
        self.topic = f"c-{uuid.uuid4().hex[:12]}"
        self.subscription = server.create_topic(self.topic)
        self._seen_from = len(self.proxy.identities)

    def body(self, **config: Any) -> dict[str, Any]:
        return {
            "type": "gcp_pubsub",
            "topics": ["orders"],
            "config": {
                "project_id": PROJECT,
                "topic": self.topic,
                "endpoint": self.server.proxy_address,
                **config,
            },
            "credentials": self.credentials(),
        }

    def credentials(self, rotated: bool = False) -> dict[str, Any]:
        email = f"{'rotated' if rotated else 'publisher'}@{PROJECT}.iam.gserviceaccount.com"
        return {"service_account_json": json.dumps(key(email))}

    def received(self, expect: int) -> list[tuple[str, bytes]]:
        found = self.server.read(self.subscription, expect)
        return [(m.attributes["event-id"], m.data) for m in found]

    def identities(self) -> list[str]:
        return self.proxy.identities[self._seen_from :]

    def identity(self, credentials: dict[str, Any]) -> str:
        return str(json.loads(credentials["service_account_json"])["client_email"])

    def fail(self, kind: Kind) -> None:
        if kind is Kind.RETRY:
            self.proxy.fail_with = grpc.StatusCode.UNAVAILABLE
        else:
            self.server.delete_topic(self.topic)
            self._deleted = True

    def heal(self) -> None:
        self.proxy.heal()
        if getattr(self, "_deleted", False):
            self.subscription = self.server.create_topic(self.topic)
            self._deleted = False

    def fail_some_records(self, keys: list[str]) -> None:
        self.proxy.refused.clear()
        self.proxy.fail_next = 1  # the first Publish call (a batch of at most 10)

    def failed_records(self) -> Counter[str]:
        return Counter(dict(self.proxy.refused))

    async def close(self) -> None:
        self.proxy.heal()
