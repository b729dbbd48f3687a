"""A private RabbitMQ broker (Debian's rabbitmq-server, installed by `make test`) for the
session: AMQP, Erlang distribution and epmd on free 127.0.0.1 ports, its node name,
database, logs and cookie under a temporary directory, no plugins. Users, permissions and
the firehose tracer (which says which user published each message) are set at boot from
files, so no slow `rabbitmqctl` call is needed. The fixture stops the broker (SIGTERM to
its process group) and its epmd.

Also here, for the tests that drive the broker: `BrokerSide`, an event loop of its own in
a thread (so a synchronous harness can wait for messages while the test's loop runs the
worker), and `TcpProxy`, a forwarder that can refuse connections like a stopped broker."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import pytest

from outpost.dev.devstack import free_port, wait_for_port

BIN = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
EPMD = "epmd"
# who may log in: the admin the tests use, the user rotated credentials name, and one
# without any permission (its logins are refused access to the vhost)
USERS = {"outpost": "outpost-secret", "rotated": "rotated-secret-2", "nobody": "nobody-secret"}
T = TypeVar("T")
PR_SET_PDEATHSIG = 1


def _password_hash(password: str) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def _definitions() -> dict[str, Any]:
    return {
        "users": [
            {
                "name": name,
                "password_hash": _password_hash(password),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": ["administrator"] if name == "outpost" else [],
            }
            for name, password in USERS.items()
        ],
        "vhosts": [{"name": "/"}],
        "permissions": [
            {"user": user, "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}
            for user in ("outpost", "rotated")
        ],
    }


def _stop_with_parent() -> None:
    """Linux: the broker's script gets SIGTERM (and stops the broker) if the test process
    dies without its teardown (killed by a timeout), instead of outliving it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class RabbitServer:
    port: int
    home: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    users: dict[str, str] = field(default_factory=lambda: dict(USERS))

    @property
    def server_url(self) -> str:
        """Outpost's `config.server_url` form: host:port."""
        return f"127.0.0.1:{self.port}"

    def amqp_url(self, user: str = "outpost") -> str:
        return f"amqp://{user}:{self.users[user]}@127.0.0.1:{self.port}/"

    def start(self, timeout: float = 90.0) -> RabbitServer:
        log = open(self.home / "server.log", "wb")  # noqa: SIM115 - the broker writes it
        self.proc = subprocess.Popen(
            [str(BIN)],
            env=self.env,
            cwd=self.home,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole
            preexec_fn=_stop_with_parent,
        )
        log.close()
        try:
            wait_for_port(self.port, self.proc, timeout)
            # in a thread: the fixture may be set up from inside a running event loop
            with ThreadPoolExecutor(1) as pool:
                pool.submit(asyncio.run, self._ready(time.monotonic() + timeout)).result()
        except Exception:
            self.stop()
            raise
        return self

    async def _ready(self, deadline: float) -> None:
        """The port opens once the listeners start; a login proves the users are loaded."""
        while True:
            try:
                connection = await aio_pika.connect(self.amqp_url(), timeout=5)
                await connection.close()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)  # the broker stops cleanly on TERM
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(  # the epmd our broker started on its own port
                [EPMD, "-kill"], env=self.env, capture_output=True, timeout=10, check=False
            )
        shutil.rmtree(self.home, ignore_errors=True)


def rabbit_server() -> RabbitServer:
    home = Path(tempfile.mkdtemp(prefix="outpost-rabbit-"))
    port, dist, epmd = free_port(), free_port(), free_port()
    (home / "enabled_plugins").write_text("[].\n")
    (home / "definitions.json").write_text(json.dumps(_definitions()))
    (home / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = 127.0.0.1:{port}\n"
        "loopback_users = none\n"
        f"load_definitions = {home / 'definitions.json'}\n"
        "log.console = false\n"
        "log.file.level = warning\n"
    )
    # the firehose on "/" from boot; Erlang distribution on loopback only
    (home / "advanced.config").write_text(
        '[{rabbit, [{trace_vhosts, [<<"/">>]}]},\n'
        " {kernel, [{inet_dist_use_interface, {127,0,0,1}}]}].\n"
    )
    env = {
        **os.environ,
        "HOME": str(home),  # the Erlang cookie lives here
        "RABBITMQ_NODENAME": f"outpost-{uuid.uuid4().hex[:8]}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist),
        "ERL_EPMD_PORT": str(epmd),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
        "RABBITMQ_LOG_BASE": str(home / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
        "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(home / "advanced.config"),
    }
    return RabbitServer(port, home, env)


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[RabbitServer]:
    if not BIN.exists():
        pytest.fail(
            f"{BIN} is missing: `make test` installs Debian's rabbitmq-server "
            "(.ci/install-rabbitmq); run it, or that script, as root"
        )
    server = rabbit_server().start()
    yield server
    server.stop()


class BrokerSide:
    """An event loop in a thread of its own: what a test does to the broker (declare,
    consume, refuse connections) runs there, called synchronously from the test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class TcpProxy:
    """Forwards 127.0.0.1:port to the broker; `down()` drops every connection and stops
    listening (a client then sees connection refused), `up()` listens again."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self.server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )

    async def down(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self.writers |= {writer, up_writer}
        await asyncio.gather(
            _pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True
        )
        self.writers -= {writer, up_writer}


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.transport.abort()
