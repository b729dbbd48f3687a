"""Our Redis connection: the client, what "Redis is down" means, and the start-up checks
(a bad environment becomes one sentence on stderr and exit code 2: `StartupError`'s
message is that sentence; `cli.main` prints it as `outpost: <message>`).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.connection import parse_url
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    NoPermissionError,
    NoScriptError,
    OutOfMemoryError,
    RedisClusterException,
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


@dataclass(frozen=True)
class RedisConfig:
    """How every process reaches Redis (runtime.redis_config builds it from the settings;
    tests and benches pass a bare URL). The URL's own user and password win over
    `username`/`password`; `tls` (or a rediss:// URL) turns TLS on, verifying the server's
    certificate against `ca_file` (the system's CAs when empty) unless `verify` is off."""

    url: str
    cluster: bool = False
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    verify: bool = True
    username: str = ""
    password: str = field(default="", repr=False)

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.url.startswith("rediss://")

    @property
    def user(self) -> str:
        """The ACL user we log in as ("default" without one)."""
        return str(parse_url(self.url).get("username") or self.username or "default")

    def client_url(self) -> str:
        if self.tls and self.url.startswith("redis://"):
            return "rediss://" + self.url.removeprefix("redis://")
        return self.url

    def options(self) -> dict[str, Any]:
        """The client's keyword arguments for TLS and the ACL user (never the URL's)."""
        out: dict[str, Any] = {}
        if self.username:
            out["username"] = self.username
        if self.password:
            out["password"] = self.password
        if self.uses_tls:
            out["ssl_cert_reqs"] = "required" if self.verify else "none"
            out["ssl_check_hostname"] = self.verify
            out["ssl_ca_certs"] = self.ca_file or None
            out["ssl_certfile"] = self.cert_file or None
            out["ssl_keyfile"] = self.key_file or None
        return out


def as_config(redis: RedisConfig | str) -> RedisConfig:
    return redis if isinstance(redis, RedisConfig) else RedisConfig(redis)


def redis_address(url: str) -> str:
    """host:port (or the socket path) of a Redis URL, without its password."""
    options = parse_url(url)
    if "path" in options:
        return str(options["path"])
    return f"{options.get('host', 'localhost')}:{options.get('port', 6379)}"


def redis_reason(exc: BaseException, user: str = "") -> str:
    """Why Redis did not answer, in a few words (`user`: the ACL user we tried)."""
    exc = _unwrapped(exc)
    if isinstance(exc, AuthenticationError):
        return _auth_reason(str(exc), user)
    if isinstance(exc, NoPermissionError):
        return f"user {user or 'default'} lacks a right: {_first_line(exc)}"
    if isinstance(exc, BusyLoadingError):
        return "it is still loading its data"
    if redis_full(exc):
        return "out of memory (maxmemory reached)"
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return _tls_reason(seen)
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, socket.gaierror):
            return "unknown host"
        if isinstance(seen, FileNotFoundError):
            return "no such socket"
        if isinstance(seen, TimeoutError | RedisTimeoutError):
            return "timed out"
        seen = seen.__cause__ or seen.__context__
    text = _first_line(exc)
    if "SSL" in text or "certificate" in text:  # redis-py keeps only the text of some
        return _tls_reason(text)
    if "Connection closed by server" in text or "Connection reset" in text:
        return "the server closed the connection: does it want TLS? set REDIS_TLS_ENABLED"
    return text


def _unwrapped(exc: BaseException) -> BaseException:
    """The node's own error inside a cluster client's "cannot be connected"."""
    while isinstance(exc, RedisClusterException) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__).rstrip(".")


def _auth_reason(text: str, user: str) -> str:
    if "NOAUTH" in text or "without authentication" in text.lower():
        return "it needs a password: set REDIS_PASSWORD (and REDIS_USERNAME for an ACL user)"
    if user and user != "default":
        return f"authentication failed for user {user} (wrong password, or the user is off)"
    return "authentication failed: check the password in REDIS_URL / REDIS_PASSWORD"


def _tls_reason(exc: ssl.SSLError | str) -> str:
    """Certificate problems in words; the rest as OpenSSL says them."""
    text = str(exc) if isinstance(exc, str) else (exc.reason or str(exc))
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or "?"
        return f"TLS handshake failed: certificate verify failed ({why}; check REDIS_TLS_CA_FILE)"
    upper = text.upper()
    if "CERTIFICATE_VERIFY_FAILED" in upper:
        return "TLS handshake failed: certificate verify failed (check REDIS_TLS_CA_FILE)"
    if "CERTIFICATE_REQUIRED" in upper or "PEER DID NOT RETURN A CERTIFICATE" in upper:
        return (
            "TLS handshake failed: the server wants a client certificate "
            "(REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE)"
        )
    if "WRONG_VERSION_NUMBER" in upper or "RECORD_LAYER" in upper:
        return "TLS handshake failed: the server does not speak TLS on this port"
    return f"TLS handshake failed: {text.lower().replace('_', ' ')}"


async def check_redis(redis: RedisConfig | str, wait: float = REDIS_WAIT_SECONDS) -> None:
    """Ping Redis (every node of a cluster: the client maps them first) until it answers
    or `wait` seconds pass; StartupError if it never does. A refusal (a password, a
    right, a certificate) is raised at once: waiting will not help."""
    config = as_config(redis)
    deadline = time.monotonic() + wait
    client = connect_redis(config, 2, socket_timeout=2.0, connect_timeout=2.0, retries=0)
    try:
        while True:
            try:
                await client.ping()
                return
            except (RedisError, RedisClusterException, OSError) as exc:
                if _refused(exc) or time.monotonic() >= deadline:
                    raise _unreachable(config, exc) from None
            await asyncio.sleep(0.2)
    finally:
        await client.aclose()


def _refused(exc: BaseException) -> bool:
    """A refusal (a password, a right, a certificate, not a cluster), not a node that is
    still starting."""
    if "Cluster mode is not enabled" in str(exc):
        return True
    if isinstance(_unwrapped(exc), ResponseError | AuthenticationError):
        return True
    return redis_reason(exc).startswith("TLS handshake failed")


def _unreachable(config: RedisConfig, exc: BaseException) -> StartupError:
    where = redis_address(config.url)
    if "Cluster mode is not enabled" in str(exc):
        return StartupError(
            f"Redis at {where} is not a cluster (REDIS_CLUSTER_ENABLED=true), or user "
            f"{config.user} may not run CLUSTER SLOTS"
        )
    reason = redis_reason(exc, config.user)
    if isinstance(
        _unwrapped(exc), ResponseError | AuthenticationError
    ):  # it answered, with a refusal
        return StartupError(f"Redis at {where} refused us ({reason})")
    return StartupError(f"cannot reach Redis at {where} ({reason})")


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
    redis: RedisConfig | str,
    max_connections: int = 128,
    *,
    socket_timeout: float = SOCKET_TIMEOUT,
    connect_timeout: float = CONNECT_TIMEOUT,
    on_error: Callable[[], None] = _ignore,
    retries: int = 5,
) -> Redis:
    """The one Redis client of every process: redis.asyncio.Redis, or RedisCluster when
    the config says cluster (it speaks the same commands, routes each by its keys and
    follows MOVED/ASK), both with the config's TLS and ACL user.

    It reconnects and retries a command whose connection broke (Redis restarted or failed
    over). Repeating our writes is safe: publish is a SET NX claim, acks and retry entries
    are idempotent; at worst an attempt is recorded twice.

    A command waits at most `socket_timeout` for its answer (a frozen Redis fails the
    request instead of holding it; it must exceed the worker's 1 s blocking read) and is
    then not resent: Redis may still be running it, and resending slow batches to a
    struggling Redis only adds load. Refusals (out of memory, script errors) are answers,
    never resent either."""
    config = as_config(redis)
    backoff = ExponentialBackoff(cap=2.0, base=0.05)
    common: dict[str, Any] = {
        "max_connections": max_connections,
        "health_check_interval": 30,
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        **config.options(),
    }
    if config.cluster:
        # per node; a failed-over slot is found again (CLUSTER SLOTS) and retried
        cluster = RedisCluster.from_url(
            config.client_url(),
            require_full_coverage=True,
            retry=Retry(backoff, retries=retries),
            **common,
        )
        return cast(Redis, cluster)  # the layers type against Redis's command API
    return Redis.from_url(
        config.client_url(),
        retry=CountingRetry(
            backoff, retries=retries, supported_errors=(RedisConnectionError,), on_error=on_error
        ),
        retry_on_timeout=False,
        **common,
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
