"""How a destination is kept at rest: JSON with its credentials sealed (AES-GCM, bound to
its tenant and id, so a sealed blob moved to another destination does not open). Pure:
the store writes what `seal` gives and the delivery side reads with `unseal`."""

from __future__ import annotations

import json

from outpost.crypto import Cipher
from outpost.models import Destination


def _aad(dest: Destination) -> str:
    return f"{dest.tenant_id}/{dest.id}"


def seal(dest: Destination, cipher: Cipher) -> str:
    return json.dumps(
        {
            "id": dest.id,
            "tenant_id": dest.tenant_id,
            "type": dest.type,
            "topics": dest.topics,
            "config": dest.config,
            "credentials": cipher.encrypt(dest.credentials, _aad(dest)),
            "delivery_metadata": dest.delivery_metadata,
            "metadata": dest.metadata,
            "filter": dest.filter,
            "deliver_missed_on_enable": dest.deliver_missed_on_enable,
            "overrides": dest.overrides,
            "created_at": dest.created_at,
            "updated_at": dest.updated_at,
            "disabled_at": dest.disabled_at,
        }
    )


def unseal(raw: str | bytes, cipher: Cipher) -> Destination:
    d = json.loads(raw)
    dest = Destination(
        id=d["id"],
        tenant_id=d["tenant_id"],
        type=d["type"],
        topics=d["topics"],
        config=d["config"],
        credentials={},
        created_at=d["created_at"],
        updated_at=d["updated_at"],
        disabled_at=d.get("disabled_at"),
        delivery_metadata=d.get("delivery_metadata"),
        metadata=d.get("metadata"),
        filter=d.get("filter"),
        deliver_missed_on_enable=d.get("deliver_missed_on_enable", False),
        overrides=d.get("overrides"),
    )
    dest.credentials = cipher.decrypt(d["credentials"], _aad(dest))
    return dest
