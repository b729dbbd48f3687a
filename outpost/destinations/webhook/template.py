"""The part of Go's text/template that Outpost's webhook settings use, so its
DESTINATIONS_WEBHOOK_* templates work here unchanged: literal text and `{{ ... }}`
actions naming a field (`.Body`, `.EventID`, `.Topic`, `.Timestamp.Unix`, the
secret template's `.RandomHex`/`.RandomBase64`/`.RandomAlphanumeric`), a list joined
(`.Signatures | join ","`) or one element of it (`index .Signatures 0`). Anything else
is refused when the template is compiled (at start-up), never at a send."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Values = Mapping[str, Any]
Part = Callable[[Values], str]

_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)
_FIELD = re.compile(r"\.([A-Za-z]+)(?:\.(Unix))?")
_JOIN = re.compile(r'\.([A-Za-z]+)\s*\|\s*join\s+("(?:[^"\\]|\\.)*")')
_INDEX = re.compile(r"index\s+\.([A-Za-z]+)\s+(\d+)")

CONTENT_FIELDS = frozenset({"Body", "EventID", "Topic", "Timestamp"})
HEADER_FIELDS = frozenset({"EventID", "Topic", "Timestamp", "Signatures"})
SECRET_FIELDS = frozenset({"RandomHex", "RandomBase64", "RandomAlphanumeric"})
LISTS = frozenset({"Signatures"})


class Template:
    def __init__(self, source: str, fields: frozenset[str]):
        self.source = source
        self.parts: list[Part] = compile_parts(source, fields)

    def render(self, values: Values) -> str:
        return "".join(part(values) for part in self.parts)


def _literal(text: str) -> Part:
    return lambda _values: text


def compile_parts(source: str, fields: frozenset[str]) -> list[Part]:
    parts: list[Part] = []
    at = 0
    for action in _ACTION.finditer(source):
        literal = source[at : action.start()]
        parts.append(_literal(literal))
        parts.append(_action(action.group(1), fields))
        at = action.end()
    rest = source[at:]
    if "{{" in rest or "}}" in rest:
        raise ValueError(f"unbalanced braces in {source!r}")
    parts.append(_literal(rest))
    return parts


def _action(expr: str, fields: frozenset[str]) -> Part:
    if m := _JOIN.fullmatch(expr):
        name, sep = m.group(1), json.loads(m.group(2))
        _known(name, fields, want_list=True)
        return lambda v: sep.join(v[name])
    if m := _INDEX.fullmatch(expr):
        name, i = m.group(1), int(m.group(2))
        _known(name, fields, want_list=True)
        return lambda v: v[name][i] if i < len(v[name]) else ""
    if m := _FIELD.fullmatch(expr):
        name, unix = m.group(1), m.group(2)
        _known(name, fields, want_list=False)
        if (name == "Timestamp") != bool(unix):
            raise ValueError(f"{{{{{expr}}}}}: the timestamp is written .Timestamp.Unix")
        return lambda v: str(v[name])
    raise ValueError(
        f"{{{{{expr}}}}} is not supported (fields: {', '.join(sorted(fields))}; "
        'lists: .Signatures | join ",", index .Signatures 0)'
    )


def _known(name: str, fields: frozenset[str], want_list: bool) -> None:
    if name not in fields:
        raise ValueError(f".{name} is not a field here (fields: {', '.join(sorted(fields))})")
    if (name in LISTS) != want_list:
        raise ValueError(f".{name} is {'a list' if name in LISTS else 'not a list'}")


def check(source: str, fields: Sequence[str]) -> None:
    """Raise ValueError saying what is wrong with a template (settings use it)."""
    compile_parts(source, frozenset(fields))
