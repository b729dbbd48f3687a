"""Destinations: the registry of types, create/update rules, storage and masking.

What is the same for every type lives here: the generic fields, sealing credentials at
rest, masking the sensitive ones in responses. A type is a `base.DestinationType`."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from outpost.codec import unseal
from outpost.crypto import Cipher, mask
from outpost.destinations.base import DestinationType, problems
from outpost.errors import ValidationFailed
from outpost.filters import bounds as filter_bounds
from outpost.filters import problems as filter_problems
from outpost.models import (
    DeliveryOverrides,
    Destination,
    DestinationCreate,
    DestinationUpdate,
    iso,
    utcnow,
)


class Registry:
    def __init__(
        self,
        providers: Iterable[DestinationType],
        filter_max_depth: int = 16,
        filter_max_bytes: int = 16 * 1024,
    ):
        self._by_type = {p.type: p for p in providers}
        self.filter_limits = (filter_max_depth, filter_max_bytes)

    def get(self, type_: str) -> DestinationType:
        return self._by_type[type_]

    def __contains__(self, type_: str) -> bool:
        return type_ in self._by_type

    def all(self) -> list[DestinationType]:
        return list(self._by_type.values())

    async def close(self) -> None:
        for p in self._by_type.values():
            await p.close()

    # -- create / update ------------------------------------------------------------
    def create(self, tenant_id: str, body: Any, new_id: str, admin: bool = True) -> Destination:
        """Validate a create body, naming every bad field at once (generic and typed).
        `admin`: the caller holds the admin key (a type may let only the admin set some
        credentials)."""
        if not isinstance(body, dict):
            raise ValidationFailed(["body must be a JSON object"])
        found: list[str] = []
        try:
            req = DestinationCreate.model_validate(body)
        except ValidationError as exc:
            found = problems(exc)
        type_ = body.get("type")
        provider = self.get(type_) if isinstance(type_, str) and type_ in self else None
        if isinstance(type_, str) and provider is None:
            found.append(self._unsupported(type_))
        config_creds = None
        if provider is not None:
            try:
                sent = body.get("credentials") or {}
                creds = provider.prepare_credentials(sent, sent, None, admin)
                config_creds = provider.validate(body.get("config") or {}, creds)
            except ValidationFailed as exc:
                found.extend(exc.data)
        if found or provider is None or config_creds is None:
            raise ValidationFailed(list(dict.fromkeys(found)))
        _check_filter(req.filter, self.filter_limits)
        return _new_destination(req, tenant_id, new_id, *config_creds)

    def update(self, dest: Destination, body: Any, admin: bool = True) -> Destination:
        try:
            req = DestinationUpdate.model_validate(body)
        except ValidationError as exc:
            raise ValidationFailed(problems(exc)) from None
        if req.type is not None and req.type != dest.type:
            raise ValidationFailed([f"type cannot change (is {dest.type})"])
        provider = self.get(dest.type)
        sent = req.model_fields_set
        config = merge_patch(dest.config, req.config) if req.config else dest.config
        creds = dest.credentials
        if req.credentials:
            merged = merge_patch(creds, _unmasked(req.credentials, creds))
            creds = provider.prepare_credentials(merged, req.credentials, creds, admin)
        config, creds = provider.validate(config, creds)
        updated = Destination(
            id=dest.id,
            tenant_id=dest.tenant_id,
            type=dest.type,
            topics=req.topics if req.topics is not None else dest.topics,
            config=config,
            credentials=creds,
            created_at=dest.created_at,
            updated_at=iso(utcnow()),
            disabled_at=(
                _past_time(req.disabled_at, "disabled_at")
                if "disabled_at" in sent
                else dest.disabled_at
            ),
            delivery_metadata=_merge_map(
                dest.delivery_metadata, req.delivery_metadata, "delivery_metadata" in sent
            ),
            metadata=_merge_map(dest.metadata, req.metadata, "metadata" in sent),
            filter=(req.filter or None) if "filter" in sent else dest.filter,
            **_delivery_fields(dest, req),
        )
        _check_filter(updated.filter, self.filter_limits)
        return updated

    def _unsupported(self, type_: str) -> str:
        known = ", ".join(sorted(self._by_type))
        return f"type: unsupported destination type {type_!r} (supported: {known})"

    # -- storage and responses ------------------------------------------------------
    def to_response(self, dest: Destination) -> dict[str, Any]:
        provider = self.get(dest.type)
        sensitive = provider.schema.masked
        creds = {
            k: (mask(v) if k in sensitive and isinstance(v, str) else v)
            for k, v in provider.shown_credentials(dest.credentials).items()
        }
        return {
            "id": dest.id,
            "type": dest.type,
            "topics": dest.topics,
            "config": dest.config,
            "credentials": creds,
            "delivery_metadata": dest.delivery_metadata,
            "metadata": dest.metadata,
            "filter": dest.filter,
            "deliver_missed_on_enable": dest.deliver_missed_on_enable,
            "delivery_overrides": dest.overrides,
            "disabled_at": dest.disabled_at,
            "created_at": dest.created_at,
            "updated_at": dest.updated_at,
            "target": provider.target(dest.config),
            "target_url": provider.target_url(dest.config),
        }

    def type_schemas(self) -> list[dict[str, Any]]:
        return [p.schema.as_json() for p in self.all()]


class DestinationCache:
    """Parsed destinations keyed by their stored bytes. An update changes the bytes, so a
    PATCH (e.g. rotated credentials) is seen on the very next read with no invalidation."""

    def __init__(self, registry: Registry, cipher: Cipher, size: int = 4096):
        self.registry = registry
        self.cipher = cipher
        self.size = size
        self._items: OrderedDict[bytes, Destination] = OrderedDict()

    def parse(self, raw: bytes) -> Destination:
        dest = self._items.get(raw)
        if dest is None:
            dest = unseal(raw, self.cipher)
            self._items[raw] = dest
            if len(self._items) > self.size:
                self._items.popitem(last=False)
        return dest


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7396 JSON merge patch: null deletes, objects merge recursively."""
    out = dict(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_patch(out[key], value)
        else:
            out[key] = value
    return out


def _merge_map(
    current: dict[str, str] | None, patch: dict[str, str | None] | None, sent: bool
) -> dict[str, str] | None:
    if not sent:
        return current
    if patch is None:
        return None
    merged = merge_patch(current or {}, patch)
    return merged or None


def _unmasked(sent: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """A credential sent back exactly as we showed it (masked) keeps its stored value."""
    return {
        k: v
        for k, v in sent.items()
        if not (isinstance(v, str) and k in current and v == mask(str(current[k])))
    }


def _new_destination(
    req: DestinationCreate,
    tenant_id: str,
    new_id: str,
    config: dict[str, Any],
    creds: dict[str, Any],
) -> Destination:
    """The destination a create body describes, its typed config and credentials checked;
    the optional timestamps are checked here (the filter by the registry)."""
    created = _past_time(req.created_at, "created_at") or iso(utcnow())
    updated = _past_time(req.updated_at, "updated_at") or created
    return Destination(
        id=req.id or new_id,
        tenant_id=tenant_id,
        type=req.type,
        topics=req.topics,
        config=config,
        credentials=creds,
        created_at=created,
        updated_at=updated,
        disabled_at=_past_time(req.disabled_at, "disabled_at"),
        delivery_metadata=req.delivery_metadata,
        metadata=req.metadata,
        filter=req.filter or None,
        deliver_missed_on_enable=req.deliver_missed_on_enable,
        overrides=_overrides(req.delivery_overrides),
    )


def _delivery_fields(dest: Destination, req: DestinationUpdate) -> dict[str, Any]:
    """An update's `deliver_missed_on_enable` and `delivery_overrides` (null clears)."""
    opted = req.deliver_missed_on_enable
    return {
        "deliver_missed_on_enable": dest.deliver_missed_on_enable if opted is None else opted,
        "overrides": (
            _overrides(req.delivery_overrides)
            if "delivery_overrides" in req.model_fields_set
            else dest.overrides
        ),
    }


def _overrides(req: DeliveryOverrides | None) -> dict[str, Any] | None:
    """The fields that were set; none set is no override."""
    return (req.model_dump(exclude_none=True) or None) if req is not None else None


def _check_filter(flt: dict[str, Any] | None, limits: tuple[int, int]) -> None:
    """Its size first: `problems` walks it recursively."""
    found = (filter_bounds(flt, *limits) or filter_problems(flt)) if flt else []
    if found:
        raise ValidationFailed(found)


def _past_time(value: datetime | None, field: str) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValidationFailed([f"{field}: must carry a time zone (e.g. 2024-01-01T00:00:00Z)"])
    if value > utcnow():
        raise ValidationFailed([f"{field}: must not be in the future"])
    return iso(value)


__all__ = ["DestinationCache", "DestinationType", "Registry", "merge_patch", "problems"]
