"""The shape of the code: no long functions, no long files in outpost/.

The rule, measured with `ast`:
- a function's length is its body's lines, from the first statement after the docstring
  to the last line of the function (the signature, decorators and docstring are not
  counted; comments and blank lines inside the body are). Over MAX_FUNCTION_LINES fails.
  Nested functions count in their enclosing function and on their own.
- a file's length is its number of lines. Over MAX_FILE_LINES fails.
- data tables are exempt: a function whose whole body (after the docstring) is one
  `return` of a dict, list, tuple or set display holds data, not steps. Module-level
  table literals are not functions; they count towards their file's length.

The target is ~40 lines a function and ~400 a file; the hard lines below leave a little
room so that a one-line change next to the limit is not a refactoring.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "outpost"
MAX_FUNCTION_LINES = 40
MAX_FILE_LINES = 420

# Files other branches are rewriting right now: a split here would collide with theirs.
# The lead empties this after merging them; a path here that fits the limits again fails
# test_pending_files_exist_and_are_still_over_a_limit, so the list cannot go stale.
PENDING: set[str] = set()  # files another branch is splitting right now (none)

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _code(fn: FunctionNode) -> list[ast.stmt]:
    """The body without its docstring."""
    body = fn.body
    first = body[0]
    docstring = (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    )
    return body[1:] if docstring and len(body) > 1 else body


def body_lines(fn: FunctionNode) -> int:
    code = _code(fn)
    assert fn.end_lineno is not None
    return fn.end_lineno - code[0].lineno + 1


def is_data_table(fn: FunctionNode) -> bool:
    code = _code(fn)
    return (
        len(code) == 1
        and isinstance(code[0], ast.Return)
        and isinstance(code[0].value, ast.Dict | ast.List | ast.Tuple | ast.Set)
    )


def long_functions(source: str, name: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, FunctionNode) and not is_data_table(node):
            lines = body_lines(node)
            if lines > MAX_FUNCTION_LINES:
                found.append(f"{name}:{node.lineno} {node.name}: {lines} lines")
    return found


def test_no_function_is_longer_than_the_limit() -> None:
    found = []
    for path in _sources():
        if _name(path) not in PENDING:
            found += long_functions(path.read_text(), _name(path))
    assert not found, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(found)


def test_no_file_is_longer_than_the_limit() -> None:
    found = [
        f"{_name(p)}: {n} lines"
        for p in _sources()
        if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES and _name(p) not in PENDING
    ]
    assert not found, f"files over {MAX_FILE_LINES} lines:\n" + "\n".join(found)


def test_pending_files_exist_and_are_still_over_a_limit() -> None:
    """Each PENDING entry is still a file that breaks a rule; once its branch is merged
    and it fits, it must leave the list."""
    for name in PENDING:
        path = ROOT / name
        assert path.exists(), f"{name} is gone: remove it from PENDING"
        source = path.read_text()
        over = len(source.splitlines()) > MAX_FILE_LINES or long_functions(source, name)
        assert over, f"{name} fits the limits now: remove it from PENDING"


# -- the measure itself, on small examples (so that the rule above can fail) -----------
LONG = "def f():\n    '''doc'''\n" + "    x = 1\n" * (MAX_FUNCTION_LINES + 1)
FITS = "def f():\n    '''doc\n    more doc'''\n" + "    x = 1\n" * MAX_FUNCTION_LINES
TABLE = "def f():\n    return {\n" + "        'k': 1,\n" * 60 + "    }\n"
NOT_A_TABLE = "def f():\n    y = 2\n    return {\n" + "        'k': y,\n" * 60 + "    }\n"
NESTED = "async def outer():\n    def inner():\n" + "        x = 1\n" * 45 + "    return inner\n"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (LONG, ["m.py:1 f: 41 lines"]),
        (FITS, []),
        (TABLE, []),
        (NOT_A_TABLE, ["m.py:1 f: 63 lines"]),
        (NESTED, ["m.py:1 outer: 47 lines", "m.py:2 inner: 45 lines"]),
    ],
)
def test_the_measure(source: str, expected: list[str]) -> None:
    assert long_functions(source, "m.py") == expected


HANDLERS = ["outpost/api/routes", "outpost/flow/handlers.py", "outpost/flow/checks.py"]
HANDLERS += ["outpost/flow/scope.py"]


def redis_reaches(source: str, name: str) -> list[str]:
    """Attribute reads of `.redis` or `.keys` (the Redis client, the key names): a handler
    asks the store or the queue, it never runs a Redis command or names a key itself."""
    return [
        f"{name}:{node.lineno} .{node.attr}"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute) and node.attr in ("redis", "keys")
    ]


def test_handlers_never_touch_redis() -> None:
    found = []
    for entry in HANDLERS:
        target = ROOT / entry
        for path in sorted(target.rglob("*.py")) if target.is_dir() else [target]:
            found += redis_reaches(path.read_text(), _name(path))
    assert not found, "handlers reaching Redis:\n" + "\n".join(found)


def test_the_redis_check_sees_a_handler_that_runs_a_command() -> None:
    bad = "async def h(request):\n    return await request.app[DEPS].redis.get('x')\n"
    keyed = "def h(deps):\n    return deps.keys.event('t', 'e')\n"
    good = "async def h(deps):\n    return await deps.history.events_page(None, req, keep)\n"
    assert redis_reaches(bad, "x") == ["x:2 .redis"]
    assert redis_reaches(keyed, "x") == ["x:2 .keys"]
    assert redis_reaches(good, "x") == []
