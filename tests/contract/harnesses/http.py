"""The HTTP types' harnesses (webhook, hookdeck): their server is the session's real
HTTP receiver (tests/servers/http_receiver.py), each harness on a path of its own; a
failure is the receiver answering a status (503 retried, 400 dead-lettered)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections import Counter
from typing import Any

from outpost.destinations.base import Kind
from tests.contract.harnesses.base import Harness
from tests.servers.http_receiver import Receiver

CODES = {Kind.RETRY: "503", Kind.PERMANENT: "400"}
STATUS = {Kind.RETRY: 503, Kind.PERMANENT: 400}


class HTTPHarness(Harness):
    """What both HTTP types share: one receiver path, failures by status."""

    batching: dict[str, Any] = {}  # HTTP has no batch call: each record is its own POST
    codes = CODES

    def __init__(self, receiver: Receiver, path: str):
        self.receiver = receiver
        self.where = path
        self._failed: Counter[str] = Counter()

    def received(self, expect: int) -> list[tuple[str, bytes]]:
        return [(r.event_id, r.body) for r in self.receiver.delivered(self.where, expect)]

    def fail(self, kind: Kind) -> None:
        self.receiver.answer(self.where, STATUS[kind], body=b"no")

    def heal(self) -> None:
        self.receiver.heal(self.where)

    def fail_some_records(self, keys: list[str]) -> None:
        """The first POST of every third event is answered 503 (alone: no batch call)."""
        for key in keys[::3]:
            self.receiver.answer(self.where, 503, times=1, event_ids=frozenset({key}))
            self._failed[key] += 1

    def failed_records(self) -> Counter[str]:
        return self._failed

    def _signed_by(self, candidates: list[str], header: str, body: bytes, b64: bool) -> str:
        """Which candidate secret made the first signature of `header`."""
        first = header.split("=", 1)[-1].split(",")[0]
        for secret in candidates:
            mac = hmac.new(secret.encode(), body, hashlib.sha256).digest()
            if first == (base64.b64encode(mac).decode() if b64 else mac.hex()):
                return secret
        return "?"


class WebhookHarness(HTTPHarness):
    type = "webhook"
    bad_values = [
        ("config.url", "ftp://example.com/x"),
        ("config.custom_headers", '{"Host": "evil.example"}'),
        ("credentials.previous_secret_invalid_at", "yesterday"),
    ]
    SECRETS = ("whsec_first-secret-0001", "whsec_rotated-secret-0002")

    def __init__(self, receiver: Receiver):
        super().__init__(receiver, receiver.path())

    def body(self, **config: Any) -> dict[str, Any]:
        return {
            "type": "webhook",
            "topics": ["orders"],
            "config": {"url": self.receiver.url + self.where, **config},
            "credentials": self.credentials(),
        }

    def credentials(self, rotated: bool = False) -> dict[str, Any]:
        return {"secret": self.SECRETS[1 if rotated else 0]}

    def identities(self) -> list[str]:
        return [
            self._signed_by(list(self.SECRETS), r.headers["x-outpost-signature"], r.body, False)
            for r in self.receiver.delivered(self.where)
        ]

    def identity(self, credentials: dict[str, Any]) -> str:
        return str(credentials["secret"])


def hookdeck_token(source: str, key: str) -> str:
    return base64.b64encode(f"{source}:{key}".encode()).decode()


class HookdeckHarness(HTTPHarness):
    """The receiver stands in for https://hkdk.events: the provider's URL is pointed at
    it, and a token's source id is the path."""

    type = "hookdeck"
    bad_values = [("credentials.token", "not a token")]

    def __init__(self, receiver: Receiver):
        self.source = f"src_{uuid.uuid4().hex[:10]}"
        super().__init__(receiver, f"/{self.source}")
        self.tokens = [hookdeck_token(self.source, k) for k in ("key-one", "key-two")]

    def body(self, **config: Any) -> dict[str, Any]:
        return {
            "type": "hookdeck",
            "topics": ["orders"],
            "config": dict(config),
            "credentials": self.credentials(),
        }

    def credentials(self, rotated: bool = False) -> dict[str, Any]:
        return {"token": self.tokens[1 if rotated else 0]}

    def identities(self) -> list[str]:
        return [
            self._signed_by(self.tokens, r.headers["x-hookdeck-signature"], r.body, True)
            for r in self.receiver.delivered(self.where)
        ]

    def identity(self, credentials: dict[str, Any]) -> str:
        return str(credentials["token"])
