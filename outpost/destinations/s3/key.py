"""S3 object keys from JMESPath templates, as Outpost's aws_s3 provider makes them: the
template is evaluated on `{data, metadata, time}` (`time`: the event time in UTC, split
into fields) and its result written as Go's `fmt` would. Pure; the template's cost is
bounded like the Kinesis partition-key template's (it runs once per event)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from outpost.destinations.kinesis.partition_key import check_cost, compile_template
from outpost.errors import PermanentError

DEFAULT_KEY_TEMPLATE = "join('', [time.rfc3339_nano, '_', metadata.\"event-id\", '.json'])"
MAX_KEY_BYTES = 1024  # S3's limit, in UTF-8 bytes


def compile_key_template(template: str) -> ParsedResult:
    """Compiled and bounded; raises ValueError naming the problem (create/update)."""
    compiled = compile_template(template)
    check_cost(compiled)
    return compiled


def time_fields(when: datetime) -> dict[str, str]:
    utc = when.astimezone(UTC)
    second = utc.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{utc.microsecond:06d}".rstrip("0")  # Go's RFC3339Nano drops zeros
    return {
        "year": f"{utc.year:04d}",
        "month": f"{utc.month:02d}",
        "day": f"{utc.day:02d}",
        "hour": f"{utc.hour:02d}",
        "minute": f"{utc.minute:02d}",
        "second": f"{utc.second:02d}",
        "date": utc.strftime("%Y-%m-%d"),
        "datetime": second,
        "unix": str(int(utc.timestamp())),
        "rfc3339": second + "Z",
        "rfc3339_nano": second + (f".{fraction}" if fraction else "") + "Z",
    }


def object_key(expression: ParsedResult, document: dict[str, Any]) -> str:
    """The key for one event; a template that fails, yields null or an empty string, or a
    key past 1024 bytes is a permanent failure (every attempt would do the same)."""
    try:
        value = expression.search(document)
    except JMESPathError as exc:
        raise PermanentError("key_template_error", f"key template failed: {exc}") from None
    if value is None:
        raise PermanentError("key_template_error", "key template produced nil result")
    key = go_text(value)
    if not key:
        raise PermanentError("key_template_error", "key template produced empty string")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise PermanentError(
            "key_too_long", f"object key is {len(key.encode())} bytes; S3 allows {MAX_KEY_BYTES}"
        )
    return key


def go_text(value: Any) -> str:
    """Go's `%v` of a decoded JSON value (numbers are float64 there, `%g` shortest)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return go_float(float(value))
    if value is None:
        return "<nil>"
    if isinstance(value, list):
        return "[" + " ".join(go_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_text(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def go_float(value: float) -> str:
    """Go's `%g` with the shortest precision: the exponent form below 1e-4 and from 1e6
    (`1e+06`, `1.234567e+06`), else plain digits."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    exp = len(text) + int(exponent) - 1
    prefix = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return f"{prefix}0.{'0' * (-exp - 1)}{text}"
    if len(text) <= exp + 1:
        return prefix + text + "0" * (exp + 1 - len(text))
    return f"{prefix}{text[: exp + 1]}.{text[exp + 1 :]}"
