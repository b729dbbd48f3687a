"""`outpost all` as a real process on 127.0.0.1 with a private redis-server, for the
tests that drive the service through Hookdeck's official SDKs (tests/test_sdk*.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from outpost.dev import devstack
from tests.conftest import ADMIN_KEY, AES_SECRET


@contextmanager
def outpost_all(**env: str) -> Iterator[str]:
    """The API's base URL (…/api/v1) while the service runs; `env` adds settings."""
    redis = devstack.redis_server().start()
    port = devstack.free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REDIS_"))}
    environ.update(
        {
            "API_KEY": ADMIN_KEY,
            "AES_ENCRYPTION_SECRET": AES_SECRET,
            "API_JWT_SECRET": "s" * 40,
            "REDIS_URL": redis.redis_url,
            "API_HOST": "127.0.0.1",
            "API_PORT": str(port),
            "LOG_LEVEL": "error",
            "DESTINATIONS_ALLOW_PRIVATE_ENDPOINTS": "true",
            **env,
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "outpost", "all"], env=environ, stderr=subprocess.DEVNULL
    )
    try:
        devstack.wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}/api/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        redis.stop()
