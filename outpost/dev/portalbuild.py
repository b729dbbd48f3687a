"""Build the tenant portal's bundle: `python -m outpost.dev.portalbuild` (`make portal`).

npm installs the locked packages (`outpost/api/portal/package-lock.json`: preact, htm,
esbuild) once into a cache folder named after the lock file's digest (~/.cache/outpost-node,
or OUTPOST_NODE_CACHE), never into the repository; esbuild bundles `src/main.js` into
`static/portal.js`, minified, whose first line records the sources' digest
(`outpost.api.portal.sources_digest`). The service never needs node: the bundle is
committed and shipped in the wheel."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from outpost.api.portal import HERE, STATIC, sources_digest

CACHE = Path(os.environ.get("OUTPOST_NODE_CACHE", Path.home() / ".cache" / "outpost-node"))
BANNER = "/* outpost tenant portal; sources sha256 {digest}; built by `make portal` */"


def banner(digest: str) -> str:
    return BANNER.format(digest=digest)


def install(cache: Path = CACHE) -> Path:
    """The locked node_modules, installed once per lock file; its folder."""
    lock = (HERE / "package-lock.json").read_bytes()
    root = cache / f"portal-{hashlib.sha256(lock).hexdigest()[:16]}"
    if not (root / "node_modules" / ".bin" / "esbuild").exists():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is not installed: the portal bundle needs node and npm")
        root.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(HERE / name, root / name)
        # --ignore-scripts: esbuild's postinstall is an optimisation; its binary comes from
        # the locked @esbuild/<platform> package either way
        cmd = [npm, "ci", "--no-audit", "--no-fund", "--silent", "--ignore-scripts"]
        subprocess.run(cmd, cwd=root, check=True, capture_output=True, timeout=600)
    return root / "node_modules"


def build(out: Path = STATIC / "portal.js", cache: Path = CACHE) -> Path:
    """Bundle the sources into `out` (the committed file by default)."""
    modules = install(cache)
    env = {**os.environ, "NODE_PATH": str(modules)}
    cmd = [
        str(modules / ".bin" / "esbuild"),
        "src/main.js",
        "--bundle",
        "--minify",
        "--format=iife",
        "--target=es2020",
    ]
    done = subprocess.run(cmd, cwd=HERE, env=env, check=True, capture_output=True, timeout=120)
    out.write_bytes(banner(sources_digest()).encode() + b"\n" + done.stdout)
    return out


if __name__ == "__main__":
    try:
        print(build())
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        sys.exit(f"portal build failed: {exc} {detail.decode(errors='replace')}")
