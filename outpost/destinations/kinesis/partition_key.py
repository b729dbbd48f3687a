"""Partition keys from JMESPath templates. Pure: compiled once, evaluated per record."""

from __future__ import annotations

import json
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from outpost.errors import PermanentError

MAX_KEY_CHARS = 256


def compile_template(template: str) -> ParsedResult:
    """Compile a template; raises ValueError with the parser's reason on bad syntax."""
    if not template.strip():
        raise ValueError("must not be blank")
    try:
        return jmespath.compile(template)
    except JMESPathError as exc:
        raise ValueError(f"is not a valid JMESPath expression: {exc}") from None


def partition_key(expression: ParsedResult | None, document: dict[str, Any], event_id: str) -> str:
    """The key for one record.

    No template, or a null/empty result → the event id. Strings as they are; numbers and
    booleans as their JSON text; objects and lists as compact JSON. Over 256 characters is
    a permanent failure (Kinesis would reject it on every attempt).
    """
    if expression is None:
        return event_id
    try:
        value = expression.search(document)
    except JMESPathError as exc:  # runtime errors, e.g. a function given the wrong type
        raise PermanentError(
            "partition_key_error", f"partition key template failed: {exc}"
        ) from None
    key = _as_text(value)
    if not key:
        return event_id
    if len(key) > MAX_KEY_CHARS:
        raise PermanentError(
            "partition_key_too_long",
            f"partition key is {len(key)} characters; Kinesis allows {MAX_KEY_CHARS}",
        )
    return key


def _as_text(value: Any) -> str:
    if value is None or value == [] or value == {}:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
