"""Credentials at rest: AES-256-GCM, key derived from `AES_ENCRYPTION_SECRET`.

Each ciphertext is bound to the record it belongs to (associated data), so an encrypted
blob copied onto another tenant's destination does not decrypt.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from outpost.errors import OutpostError

NONCE_BYTES = 12


class DecryptionFailed(OutpostError):
    pass


class Cipher:
    """Encrypts with `secret`; decrypts with it or any of `previous` (key rotation)."""

    def __init__(self, secret: str, previous: list[str] | tuple[str, ...] = ()):
        if not secret:
            raise ValueError("an encryption secret is required")
        self._aead = _aead(secret)
        self._readers = [self._aead, *(_aead(s) for s in previous if s)]

    def encrypt(self, value: dict[str, Any], bound_to: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, json.dumps(value).encode(), bound_to.encode())
        return base64.b64encode(nonce + sealed).decode()

    def decrypt(self, blob: str, bound_to: str) -> dict[str, Any]:
        raw = base64.b64decode(blob)
        for aead in self._readers:
            try:
                plain = aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], bound_to.encode())
            except InvalidTag:
                continue
            result: dict[str, Any] = json.loads(plain)
            return result
        raise DecryptionFailed("credentials could not be decrypted with any configured key")


def _aead(secret: str) -> AESGCM:
    return AESGCM(hashlib.sha256(secret.encode()).digest())


def mask(secret: str) -> str:
    """`abcd******` for long secrets; short ones are masked whole."""
    if len(secret) < 8:
        return "*" * 8
    return secret[:4] + "*" * 6
