"""The webhook's signing secrets over a destination's life, as Outpost keeps them: one
generated at create when none is given; only the admin may set them; `rotate_secret`
(anyone who may update the destination) makes the current secret the previous one, which
keeps signing until `previous_secret_invalid_at` (24 hours unless given)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from outpost.destinations.webhook.config import SECRET_KEYS
from outpost.errors import ValidationFailed

ROTATION_WINDOW = timedelta(hours=24)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1", "on", "yes"))


def _in_24h() -> str:
    return (datetime.now(UTC) + ROTATION_WINDOW).strftime("%Y-%m-%dT%H:%M:%SZ")


def prepare(
    merged: dict[str, Any],
    sent: dict[str, Any],
    current: dict[str, Any] | None,
    admin: bool,
    new_secret: Callable[[], str],
) -> dict[str, Any]:
    if _truthy(sent.get("rotate_secret")):
        creds = _rotated(sent, current, new_secret)
    else:
        creds = _kept(merged, current) if not admin else _given(merged)
        if current is None and not creds:
            creds = {"secret": new_secret()}
    if creds.get("previous_secret") and not creds.get("previous_secret_invalid_at"):
        creds["previous_secret_invalid_at"] = _in_24h()
    return creds


def _rotated(
    sent: dict[str, Any], current: dict[str, Any] | None, new_secret: Callable[[], str]
) -> dict[str, Any]:
    if current is None:
        raise ValidationFailed(
            ["credentials.rotate_secret: only an existing destination's secret can be rotated"]
        )
    if not current.get("secret"):
        raise ValidationFailed(["credentials.secret is required to rotate it"])
    return {
        "secret": new_secret(),
        "previous_secret": current["secret"],
        "previous_secret_invalid_at": sent.get("previous_secret_invalid_at") or _in_24h(),
    }


def _given(merged: dict[str, Any]) -> dict[str, Any]:
    """The admin sets any of them; other keys are dropped, as Outpost does."""
    return {k: merged[k] for k in SECRET_KEYS if merged.get(k)}


def _kept(merged: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
    """A tenant may send the values back unchanged, never new ones."""
    current = current or {}
    changed = [k for k in SECRET_KEYS if merged.get(k) and merged.get(k) != current.get(k)]
    if changed:
        why = "only the admin may set it (rotate with rotate_secret)"
        raise ValidationFailed([f"credentials.{k}: {why}" for k in changed])
    return {k: current[k] for k in SECRET_KEYS if current.get(k)}


def signing_keys(credentials: dict[str, Any], now: datetime) -> list[str]:
    """The secrets that sign now: the current one, then the previous one until its
    `previous_secret_invalid_at`."""
    keys = [credentials["secret"]] if credentials.get("secret") else []
    previous, until = (
        credentials.get("previous_secret"),
        credentials.get("previous_secret_invalid_at"),
    )
    if previous and until:
        try:
            ends = datetime.fromisoformat(str(until).replace("Z", "+00:00"))
        except ValueError:
            return keys
        if now < ends:
            keys.append(previous)
    return keys


def shown(credentials: dict[str, Any], now: datetime) -> dict[str, Any]:
    """What a response shows: all of them, less a previous secret that signs no more."""
    if credentials.get("previous_secret") and len(signing_keys(credentials, now)) < 2:
        return {k: v for k, v in credentials.items() if not k.startswith("previous_secret")}
    return credentials
