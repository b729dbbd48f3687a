"""Our Redis connection: the client, what "Redis is down" means, and the start-up checks
(a bad environment becomes one sentence on stderr and exit code 2: `StartupError`'s
message is that sentence; `cli.main` prints it as `outpost: <message>`).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.connection import parse_url
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    NoScriptError,
    OutOfMemoryError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from outpost.errors import Unavailable

# Redis going away is expected (restarts, failover): wait and go on, never crash a loop.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)
# how long a starting process waits for Redis (still starting beside it, loading its AOF)
REDIS_WAIT_SECONDS = 3.0
# defaults of REDIS_SOCKET_TIMEOUT_SECONDS / REDIS_CONNECT_TIMEOUT_SECONDS
SOCKET_TIMEOUT = 5.0
CONNECT_TIMEOUT = 2.0
# Redis at its maxmemory (noeviction) refuses writes: in our words, never Redis's text
FULL_MESSAGE = "storage is full: nothing was accepted, retry later"
_OOM = "OOM command not allowed"


class StartupError(Exception):
    """The environment does not let the process start; printed without a traceback."""


def redis_address(url: str) -> str:
    """host:port (or the socket path) of a Redis URL, without its password."""
    options = parse_url(url)
    if "path" in options:
        return str(options["path"])
    return f"{options.get('host', 'localhost')}:{options.get('port', 6379)}"


def redis_reason(exc: BaseException) -> str:
    """Why Redis did not answer, in a few words."""
    if isinstance(exc, AuthenticationError):
        return "authentication failed: check the password in REDIS_URL / REDIS_PASSWORD"
    if isinstance(exc, BusyLoadingError):
        return "it is still loading its data"
    if redis_full(exc):
        return "out of memory (maxmemory reached)"
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, socket.gaierror):
            return "unknown host"
        if isinstance(seen, FileNotFoundError):
            return "no such socket"
        if isinstance(seen, TimeoutError | RedisTimeoutError):
            return "timed out"
        seen = seen.__cause__ or seen.__context__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.rstrip(".")


async def check_redis(url: str, wait: float = REDIS_WAIT_SECONDS) -> None:
    """Ping Redis until it answers or `wait` seconds pass; StartupError if it never does."""
    deadline = time.monotonic() + wait
    client = Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=2.0)
    try:
        while True:
            try:
                await client.ping()
                return
            except (ResponseError, AuthenticationError) as exc:  # waiting will not help
                raise _unreachable(url, exc) from None
            except (RedisError, OSError) as exc:
                if time.monotonic() >= deadline:
                    raise _unreachable(url, exc) from None
            await asyncio.sleep(0.2)
    finally:
        await client.aclose()


def _unreachable(url: str, exc: BaseException) -> StartupError:
    if isinstance(exc, ResponseError | AuthenticationError):  # it answered, with a refusal
        return StartupError(f"Redis at {redis_address(url)} refused us ({redis_reason(exc)})")
    return StartupError(f"cannot reach Redis at {redis_address(url)} ({redis_reason(exc)})")


class CountingRetry(Retry):
    """redis-py's retry policy, telling `on_error` of each command that failed for good
    (its connection, a timeout or a refusal: the metrics' Redis errors). redis-py copies it
    into each connection; `on_error` is a plain function, shared by the copies."""

    def __init__(self, *args: Any, on_error: Callable[[], None], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.on_error = on_error

    async def call_with_retry(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().call_with_retry(*args, **kwargs)
        except NoScriptError:  # redis-py loads the script and sends it again
            raise
        except (*REDIS_DOWN, ResponseError):
            self.on_error()
            raise


def _ignore() -> None:
    pass


def connect_redis(
    url: str,
    max_connections: int = 128,
    *,
    socket_timeout: float = SOCKET_TIMEOUT,
    connect_timeout: float = CONNECT_TIMEOUT,
    on_error: Callable[[], None] = _ignore,
) -> Redis:
    """A client that reconnects and retries a command whose connection broke (Redis
    restarted or failed over). Repeating our writes is safe: publish is a SET NX claim,
    acks and retry entries are idempotent; at worst an attempt is recorded twice.

    A command waits at most `socket_timeout` for its answer (a frozen Redis fails the
    request instead of holding it; it must exceed the worker's 1 s blocking read) and is
    then not resent: Redis may still be running it, and resending slow batches to a
    struggling Redis only adds load. Refusals (out of memory, script errors) are answers,
    never resent either."""
    return Redis.from_url(
        url,
        max_connections=max_connections,
        health_check_interval=30,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        retry=CountingRetry(
            ExponentialBackoff(cap=2.0, base=0.05),
            retries=5,
            supported_errors=(RedisConnectionError,),
            on_error=on_error,
        ),
        retry_on_timeout=False,
    )


def redis_full(exc: BaseException) -> bool:
    """Redis refused a write for memory: a command's OOM, or a script's write refused."""
    return isinstance(exc, OutOfMemoryError) or (
        isinstance(exc, ResponseError) and _OOM in str(exc)
    )


def step_failed(reply: bytes) -> Unavailable:
    """One step of a batched script failed (its 'ERR ...' reply): Redis's own text, except
    a full Redis, which is said in our words."""
    text = reply.decode(errors="replace")
    if _OOM in text:
        return Unavailable(FULL_MESSAGE)
    return Unavailable(f"the event could not be stored ({text})")
