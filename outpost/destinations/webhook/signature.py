"""Outpost's webhook signature scheme: HMAC (sha256 or sha1) with each signing secret
over the content template, encoded (hex or base64), the signatures written into the
header template. Defaults as Outpost's: content `{{.Body}}`, header
`v0={{.Signatures | join ","}}`, hex, hmac-sha256; a secret is the HMAC key as it is
stored (`whsec_...` included)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass

from outpost.destinations.webhook.template import (
    CONTENT_FIELDS,
    HEADER_FIELDS,
    SECRET_FIELDS,
    Template,
)

DEFAULT_CONTENT = "{{.Body}}"
DEFAULT_HEADER = 'v0={{.Signatures | join ","}}'
DEFAULT_SECRET = "whsec_{{.RandomHex}}"
_ALGORITHMS = {"hmac-sha256": hashlib.sha256, "hmac-sha1": hashlib.sha1}
_ALPHANUMERIC = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Signed:
    """What one request's signature covers."""

    event_id: str
    topic: str
    timestamp: int  # the event's time, Unix seconds (as the timestamp header)
    body: bytes


class Scheme:
    def __init__(
        self,
        content: str = DEFAULT_CONTENT,
        header: str = DEFAULT_HEADER,
        encoding: str = "hex",
        algorithm: str = "hmac-sha256",
        secret_template: str = DEFAULT_SECRET,
    ):
        self.content = Template(content, CONTENT_FIELDS)
        self.header = Template(header, HEADER_FIELDS)
        self.secret_template = Template(secret_template, SECRET_FIELDS)
        self.encoding = encoding
        self.digest = _ALGORITHMS[algorithm]

    def sign(self, keys: list[str], what: Signed) -> str:
        """The signature header's value: one signature per key, newest key first."""
        fields = {
            "EventID": what.event_id,
            "Topic": what.topic,
            "Timestamp": what.timestamp,
            "Body": what.body.decode("utf-8", "surrogateescape"),
        }
        if self.content.source == DEFAULT_CONTENT:  # the body as it is: no round trip
            content = what.body
        else:
            content = self.content.render(fields).encode("utf-8", "surrogateescape")
        signatures = [self._mac(key, content) for key in keys]
        return self.header.render({**fields, "Signatures": signatures})

    def _mac(self, key: str, content: bytes) -> str:
        digest = hmac.new(key.encode(), content, self.digest).digest()
        if self.encoding == "base64":
            return base64.b64encode(digest).decode()
        return digest.hex()

    def new_secret(self) -> str:
        raw = secrets.token_bytes(32)
        return self.secret_template.render(
            {
                "RandomHex": raw.hex(),
                "RandomBase64": base64.b64encode(raw).decode(),
                "RandomAlphanumeric": "".join(secrets.choice(_ALPHANUMERIC) for _ in range(32)),
            }
        )
