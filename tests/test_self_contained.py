"""The repository stands alone: no tracked file refers to a path outside it (a sibling
checkout, the machine it was developed on). A fresh clone must test and run as it is."""

import os
import posixpath
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
# This file spells the paths it looks for in pieces, so that it does not match itself.
MACHINE_PATH = re.compile("/wo" + "rk/")
SIBLING = re.compile(r"\.\./shared\b")  # the old sibling folder, from any depth
UP = re.compile(r"(?<![\w.\-])((?:\.\./)+[\w.\-/]*)")
PARENTS = re.compile(r"__file__.*?\.parents\[(\d+)\]")
PARENT_CHAIN = re.compile(r"__file__\)?(?:\.resolve\(\))?((?:\.parent)+)\b")


def tracked_files() -> list[str]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        return [f for f in out.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: walk the tree
        found = []
        for folder, dirs, files in os.walk(ROOT):
            dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
            found += [str(Path(folder, f).relative_to(ROOT)) for f in files if f != ".git"]
        return found


def escapes(rel_file: str, target: str) -> bool:
    """Whether `target`, relative to `rel_file`'s folder, lies above the repository root."""
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(rel_file), target))
    return joined == ".." or joined.startswith("../")


def problems_in(rel_file: str, text: str) -> list[str]:
    depth = len(Path(rel_file).parent.parts)  # folders between the root and the file
    found = []
    for n, line in enumerate(text.splitlines(), 1):
        where = f"{rel_file}:{n}: {line.strip()[:100]}"
        if MACHINE_PATH.search(line):
            found.append(f"{where} (a path on the development machine)")
        if SIBLING.search(line) or any(escapes(rel_file, m) for m in UP.findall(line)):
            found.append(f"{where} (a relative path above the repository)")
        ups = [int(k) for k in PARENTS.findall(line)]
        ups += [m.count(".parent") - 1 for m in PARENT_CHAIN.findall(line)]
        if any(k > depth for k in ups):
            found.append(f"{where} (climbs above the repository from __file__)")
    return found


def test_no_tracked_file_refers_outside_the_repository():
    found = []
    for rel in tracked_files():
        data = (ROOT / rel).read_bytes() if (ROOT / rel).is_file() else b""
        if b"\0" not in data:
            found += problems_in(rel, data.decode("utf-8", errors="replace"))
    assert not found, "\n".join(found)


def test_the_checks_catch_each_way_out():
    """The patterns above, on lines that do and do not leave the repository."""
    up, here = ".." + "/", "Path(__" + "file__).resolve()"
    bad = [
        ("tests/x.py", f'P = {here}.parents[2] / "sha' + 'red"'),  # in pieces, as above
        ("tests/x.py", f"P = {here}.parent.parent.parent"),
        ("README.md", f"see [seed]({up}shared/seeds/)"),
        ("tests/x.py", f'open("{up}{up}outpost/x")'),
        ("tests/contract/x.py", f'open("{up}shared/seeds")'),
        ("Makefile", "cat " + "/wo" + "rk/shared/x"),
    ]
    good = [
        ("tests/x.py", f"ROOT = {here}.parent.parent"),
        ("tests/x.py", f"ROOT = {here}.parents[1]"),
        ("tests/contract/README.md", f"[the test]({up}test_contract.py)"),
        ("README.md", "| `PUT .../{dest}/enable` |"),
    ]
    assert all(problems_in(f, line) for f, line in bad), [
        (f, line) for f, line in bad if not problems_in(f, line)
    ]
    assert not any(problems_in(f, line) for f, line in good)
