"""JSON that keeps every number as it was written: a published event's numbers reach its
destinations, the event log and the API with the publisher's digits. Pure.

orjson is fast, but it reads an integer past 64 bits as a float and writes none, and it
keeps a float only in its shortest form: `1.10` comes back `1.1`, `1e5` as `100000.0`,
`0.1000000000000000055511151231257827` as `0.1`, `-0` as `0`, and `1e400` is refused.

- `loads` (any JSON text: a request body, a source record): orjson when the text holds no
  number orjson could rewrite (no fraction, exponent, 19-digit run or -0 anywhere, found
  at C speed); otherwise the stdlib parser, with each float orjson would rewrite kept as
  an `ExactFloat` (a float that carries its text) and each integer past 64 bits as an
  `ExactInt`.
- `dumps`: orjson, writing an ExactFloat's text and an ExactInt's digits as they are;
  what orjson will not write otherwise (an int past 64 bits made elsewhere, nesting past
  its 254 levels) goes through an iterative writer.
- `dumps_stored` / `loads_stored` (what we keep in Redis and read on every delivery): the
  writer knows whether it wrote such a number and then starts the text with a space (still
  JSON); the reader parses every other text with orjson alone, at its full speed.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson


class ExactFloat(float):
    """A JSON number a float cannot carry as written: it compares as the nearest float
    (filters, partition-key templates; `1e400` as infinity) and is written as its text."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> ExactFloat:
        number = super().__new__(cls, text)
        number.text = text
        return number

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__

    def __reduce__(self) -> tuple[type[ExactFloat], tuple[str]]:  # copy and pickle keep the text
        return (ExactFloat, (self.text,))


class ExactInt(int):
    """An integer past 64 bits, which orjson will not write: an int in every other way."""

    __slots__ = ()


_INT_RANGE = (-(2**63), 2**64 - 1)  # what orjson reads and writes as an integer
_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_NEGATIVE_ZERO = re.compile(rb"-0(?![0-9.eE])")
_FRACTION_OR_EXPONENT = re.compile(rb"0[.eE]")
_MARK = b" "  # leads a stored text holding a number orjson would rewrite


def loads(raw: bytes | str) -> Any:
    """Parse JSON keeping every number's digits. Raises ValueError (malformed, NaN or
    Infinity, bad UTF-8) or RecursionError (nested past the stdlib parser's reach)."""
    text = raw.encode() if isinstance(raw, str) else raw
    shape = text.translate(_DIGITS)  # every digit a 0: a number's shape is a plain search
    ints = b"0" * 19 in shape or _NEGATIVE_ZERO.search(text) is not None
    if not ints and not _FRACTION_OR_EXPONENT.search(shape):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # say why in the stdlib parser's words (and a depth as RecursionError)
    return _careful(text, ints)


def loads_stored(raw: bytes | str) -> Any:
    """Parse a text `dumps_stored` wrote (orjson unless it is marked)."""
    text = raw.encode() if isinstance(raw, str) else raw
    return _careful(text, ints=True) if text[:1] == _MARK else orjson.loads(text)


def _careful(text: bytes, ints: bool) -> Any:
    """The stdlib parser: a float orjson would rewrite becomes an ExactFloat; with `ints`
    (the text has a 19-digit run or a -0: a hook on every integer costs), an integer past
    64 bits an ExactInt and -0 an ExactFloat. Strings too are looked at for what may be a
    number (a time such as 10:30:00.123 counts): a false alarm only costs this parse."""
    decoder = _WITH_INTS if ints else _DECODER
    return decoder.decode(text.decode(json.detect_encoding(text), "surrogatepass"))


def _float(text: str) -> float:
    number = float(text)
    return number if orjson.dumps(number) == text.encode() else ExactFloat(text)


def _int(text: str) -> int | float:
    if text == "-0":
        return ExactFloat(text)
    number = int(text)
    return number if _INT_RANGE[0] <= number <= _INT_RANGE[1] else ExactInt(number)


def _not_json(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


# built once: json.loads with hooks builds a decoder (and its scanner) on every call
_DECODER = json.JSONDecoder(parse_float=_float, parse_constant=_not_json)
_WITH_INTS = json.JSONDecoder(parse_float=_float, parse_int=_int, parse_constant=_not_json)


def dumps(value: Any) -> bytes:
    """Compact JSON, UTF-8, key order and every number's digits kept."""
    try:
        return orjson.dumps(value, default=_fragment, option=orjson.OPT_PASSTHROUGH_SUBCLASS)
    except orjson.JSONEncodeError:  # an int past 64 bits, not an ExactInt; deep nesting
        return _write(value)


def dumps_stored(value: Any) -> bytes:
    """`dumps`, marked (a leading space) when it holds a number orjson would rewrite, so
    that `loads_stored` parses it carefully and every other text at orjson's speed."""
    seen = _Seen()
    try:
        text = orjson.dumps(value, default=seen, option=orjson.OPT_PASSTHROUGH_SUBCLASS)
    except orjson.JSONEncodeError:  # an int past 64 bits, not an ExactInt; deep nesting
        return _MARK + _write(value)
    return _MARK + text if seen.exact else text


class _Seen:
    """orjson's `default` that also notes whether it wrote an ExactFloat or ExactInt."""

    __slots__ = ("exact",)

    def __init__(self) -> None:
        self.exact = False

    def __call__(self, value: Any) -> orjson.Fragment:
        fragment = _fragment(value)
        self.exact = True
        return fragment


def _fragment(value: Any) -> orjson.Fragment:
    """orjson's `default`: it is handed every subclass of str, int, dict and list
    (OPT_PASSTHROUGH_SUBCLASS, for ExactInt); any but ours goes to the iterative writer."""
    if isinstance(value, ExactFloat):
        return orjson.Fragment(value.text)
    if isinstance(value, ExactInt):
        return orjson.Fragment(int.__repr__(value))
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class _Piece(bytes):
    """Punctuation queued between the values of a container (never a value)."""


def _write(value: Any) -> bytes:
    """What orjson will not write (integers past 64 bits, nesting past 254 levels),
    written without recursion; raises TypeError for what is not JSON."""
    out: list[bytes] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if type(item) is _Piece:
            out.append(item)
        elif isinstance(item, dict):
            queued: list[Any] = []
            for key, member in item.items():
                if not isinstance(key, str):
                    raise TypeError(f"a key must be a string, not {type(key).__name__}")
                queued += [_Piece((b"," if queued else b"") + orjson.dumps(key) + b":"), member]
            stack += reversed([_Piece(b"{"), *queued, _Piece(b"}")])
        elif isinstance(item, list | tuple):
            queued = []
            for member in item:
                queued += [_Piece(b","), member] if queued else [member]
            stack += reversed([_Piece(b"["), *queued, _Piece(b"]")])
        elif isinstance(item, int) and not isinstance(item, bool):
            out.append(str(int(item)).encode())
        else:
            out.append(orjson.dumps(item, default=_fragment))
    return b"".join(out)
