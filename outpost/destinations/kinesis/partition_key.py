"""Partition keys from JMESPath templates. Pure: compiled once, evaluated per record."""

from __future__ import annotations

from typing import Any

import jmespath
from jmespath import functions
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from outpost import exactjson
from outpost.errors import PermanentError

MAX_KEY_CHARS = 256
# A template is evaluated at publish, on the API's event loop, for every event: its cost
# must be linear in the event. Nodes that multiply what flows through them (projections,
# flattens, multiselects, filters) compound: `data[].[@,@]` repeated 16 times builds
# 2^16 copies of `data` (seconds, megabytes). These bounds keep every template to a
# few passes over the event.
MAX_TEMPLATE_NODES = 64
MAX_TEMPLATE_DEPTH = 16
MAX_TEMPLATE_FANOUT = 3
FANOUT = {
    "projection",
    "value_projection",
    "filter_projection",
    "flatten",
    "multi_select_list",
    "multi_select_dict",
}


# jmespath's type stubs leave out the two type-check hooks overridden below
_Base: Any = functions.Functions


class _Functions(_Base):
    """jmespath's functions, with an ExactFloat or ExactInt (a number kept with its
    published digits) taken as the number it is (jmespath checks types by class name),
    and to_string writing numbers as they were published."""

    EXACT = (exactjson.ExactFloat.__name__, exactjson.ExactInt.__name__)

    def _get_allowed_pytypes(self, types: Any) -> tuple[list[str], list[Any]]:
        allowed, subtypes = super()._get_allowed_pytypes(types)
        return (
            [*allowed, *self.EXACT] if "float" in allowed else allowed,
            [(*sub, *self.EXACT) if "float" in sub else sub for sub in subtypes],
        )

    def _convert_to_jmespath_type(self, pyobject: str) -> str:
        if pyobject in self.EXACT:
            return "number"
        return str(super()._convert_to_jmespath_type(pyobject))

    @functions.signature({"types": []})
    def _func_to_string(self, arg: Any) -> str:
        return arg if isinstance(arg, str) else exactjson.dumps(arg).decode()


OPTIONS = jmespath.Options(custom_functions=_Functions())


def compile_template(template: str) -> ParsedResult:
    """Compile a template; raises ValueError with the parser's reason on bad syntax."""
    if not template.strip():
        raise ValueError("must not be blank")
    try:
        return jmespath.compile(template)
    except JMESPathError as exc:
        raise ValueError(f"is not a valid JMESPath expression: {exc}") from None
    except RecursionError:  # the parser recurses per nesting level: `((((...` overflows it
        raise ValueError(f"is nested too deep (at most {MAX_TEMPLATE_DEPTH} levels)") from None


def check_cost(expression: ParsedResult) -> None:
    """Raises ValueError saying which bound a compiled template exceeds (create/update)."""
    nodes = fanout = depth = 0
    stack = [(expression.parsed, 1)]
    while stack:
        node, level = stack.pop()
        nodes, depth = nodes + 1, max(depth, level)
        fanout += node.get("type") in FANOUT
        stack += [(c, level + 1) for c in node.get("children", []) if isinstance(c, dict)]
    if fanout > MAX_TEMPLATE_FANOUT:
        raise ValueError(
            f"has {fanout} projections, flattens, filters and multiselects (at most "
            f"{MAX_TEMPLATE_FANOUT}): each multiplies the work per event"
        )
    if depth > MAX_TEMPLATE_DEPTH:
        raise ValueError(f"is nested too deep: {depth} levels (at most {MAX_TEMPLATE_DEPTH})")
    if nodes > MAX_TEMPLATE_NODES:
        raise ValueError(f"is too complex: {nodes} expression nodes (at most {MAX_TEMPLATE_NODES})")


def check_template(value: str | None) -> str | None:
    """A config's template field (the Kinesis partition key, Kafka's message key): blank
    means none; otherwise it must compile and stay within the cost bounds."""
    if value in (None, ""):
        return None
    assert value is not None
    check_cost(compile_template(value))
    return value


def partition_key(expression: ParsedResult | None, document: dict[str, Any], event_id: str) -> str:
    """The key for one record.

    No template, or a null/empty result → the event id. Strings as they are; numbers and
    booleans as their JSON text; objects and lists as compact JSON. Over 256 characters is
    a permanent failure (Kinesis would reject it on every attempt).
    """
    if expression is None:
        return event_id
    try:
        value = expression.search(document, options=OPTIONS)
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
    return exactjson.dumps(value).decode()  # a number: the digits it was published with
