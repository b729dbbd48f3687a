"""A SASL front for the test Kafka broker, and the tests' fault injection.

Tansu (the broker the tests run, tests/servers/kafka.py) authenticates only users it keeps
in storage, which its memory store cannot be given before authentication is on. Outpost's
kafka type always authenticates, so the broker runs without authentication behind this
front, which it advertises as its own address: every client connection does its SASL
exchange (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) here, then its requests are relayed to the
broker in order. The front also
- notes who each Produce request came from (`identities`),
- fails Produce requests on demand: all of them (`produce_error`) or some partitions
  (`fail_partitions`: partition -> how many more times), noting the keys it refused,
- asks for new producer ids in the form Tansu's memory store answers (InitProducerId v0
  as v3; real brokers answer both).
With a TLS context it serves TLS (the broker behind it stays plain text). It runs on its
own event loop in a thread, so tests may block on a consumer. Test-only."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from scramp import ScramException, ScramMechanism

from tests.servers import kafka_wire as wire

SCRAM = ("SCRAM-SHA-256", "SCRAM-SHA-512")
MECHANISMS = ["PLAIN", *SCRAM]
UNKNOWN_SERVER_ERROR = -1


class Front:
    def __init__(self, users: dict[str, str], tls: ssl.SSLContext | None = None):
        self.users = dict(users)
        self.tls = tls
        self.upstream: tuple[str, int] = ("127.0.0.1", 0)
        self.port = 0
        self.identities: list[str] = []
        self.produce_error: int | None = None
        self.fail_partitions: dict[int, int] = {}
        self.refused_keys: Counter[str] = Counter()
        self.loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> Front:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self.loop).result(10)
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def heal(self) -> None:
        self.produce_error, self.fail_partitions = None, {}

    def scram(self, mechanism: str, seen: list[str]) -> Any:
        """A SCRAM server exchange; `seen` gets the user name the client gave."""
        m = ScramMechanism(mechanism)

        def auth(username: str) -> tuple[bytes, bytes, bytes, int]:
            seen.append(username)
            if username not in self.users:
                raise ScramException("unknown user")
            info: tuple[bytes, bytes, bytes, int] = m.make_auth_info(
                self.users[username], iteration_count=4096
            )
            return info

        return m.make_server(auth)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(self, reader, writer)
        try:
            await session.run()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            await session.close()


class Session:
    """One client connection: SASL here, then every request relayed in order."""

    def __init__(self, front: Front, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.front, self.reader, self.writer = front, reader, writer
        self.user: str | None = None
        self.mechanism = ""
        self.scram: Any = None
        self.seen: list[str] = []
        self.answers: asyncio.Queue[asyncio.Future[bytes] | None] = asyncio.Queue()
        self.relayed: asyncio.Queue[asyncio.Future[bytes]] = asyncio.Queue()
        self.up_reader: asyncio.StreamReader | None = None
        self.up_writer: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        self.tasks.append(asyncio.create_task(self._answer_in_order()))
        while True:
            payload = await read_frame(self.reader)
            h = wire.header(payload)
            if self.user is None and h.api_key not in (
                wire.API_VERSIONS,
                wire.SASL_HANDSHAKE,
                wire.SASL_AUTHENTICATE,
            ):
                return  # as a broker does: nothing but SASL before authentication
            if h.api_key == wire.SASL_HANDSHAKE:
                self._local(self._handshake(h, payload))
            elif h.api_key == wire.SASL_AUTHENTICATE:
                answer, ok = self._authenticate(h, payload)
                self._local(answer)
                if not ok:
                    await self.answers.join()
                    return
            elif h.api_key == wire.INIT_PRODUCER_ID and h.version < 2:
                await self._relay(wire.init_pid_v3(h, payload), wire.init_pid_answer_v0)
            elif h.api_key == wire.PRODUCE and h.version in range(3, 9):
                await self._produce(payload)
            else:
                await self._relay(payload)

    # -- SASL --------------------------------------------------------------------------
    def _handshake(self, h: wire.Header, payload: bytes) -> bytes:
        self.mechanism = wire.Reader(payload, h.body_at).string() or ""
        return wire.handshake_answer(h, MECHANISMS, self.mechanism in MECHANISMS)

    def _authenticate(self, h: wire.Header, payload: bytes) -> tuple[bytes, bool]:
        token = wire.Reader(payload, h.body_at).bytes_() or b""
        if self.mechanism == "PLAIN":
            _, user, password = ([*token.split(b"\x00"), b"", b""])[:3]
            name = user.decode(errors="replace")
            if self.front.users.get(name) != password.decode(errors="replace"):
                return wire.authenticate_answer(h, "Invalid username or password", b""), False
            self.user = name
            return wire.authenticate_answer(h, None, b""), True
        try:
            return self._scram_step(h, token), True
        except ScramException:
            return wire.authenticate_answer(h, "Invalid username or password", b""), False

    def _scram_step(self, h: wire.Header, token: bytes) -> bytes:
        if self.scram is None:
            self.scram = self.front.scram(self.mechanism, self.seen)
            self.scram.set_client_first(token.decode())
            return wire.authenticate_answer(h, None, self.scram.get_server_first().encode())
        self.scram.set_client_final(token.decode())
        self.user = self.seen[-1]
        return wire.authenticate_answer(h, None, self.scram.get_server_final().encode())

    # -- Produce, and its faults -------------------------------------------------------
    async def _produce(self, payload: bytes) -> None:
        p = wire.produce(payload)
        self.front.identities.append(self.user or "")
        failing: dict[str, list[bytes]] = {}
        passing: list[tuple[str, list[tuple[int, bytes]]]] = []
        for name, parts in p.topics:
            keep = []
            for partition, records in parts:
                error = self._fault(partition)
                if error is None:
                    keep.append((partition, records))
                    continue
                self.front.refused_keys.update(wire.record_keys(records))
                failing.setdefault(name, []).append(
                    wire.partition_answer(p.header.version, partition, error)
                )
            if keep:
                passing.append((name, keep))
        if not failing:
            await self._relay(payload)
        elif not passing:
            self._local(wire.produce_answer(p.header.version, failing, p.header.correlation))
        else:
            merge = _merger(p.header.version, p.header.correlation, failing)
            await self._relay(wire.produce_request(p, passing), merge)

    def _fault(self, partition: int) -> int | None:
        if self.front.produce_error is not None:
            return self.front.produce_error
        left = self.front.fail_partitions.get(partition, 0)
        if left <= 0:
            return None
        self.front.fail_partitions[partition] = left - 1
        return UNKNOWN_SERVER_ERROR

    # -- relaying ----------------------------------------------------------------------
    def _local(self, answer: bytes) -> None:
        done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        done.set_result(answer)
        self.answers.put_nowait(done)

    async def _relay(
        self, payload: bytes, transform: Callable[[bytes], bytes] | None = None
    ) -> None:
        if self.up_writer is None:
            self.up_reader, self.up_writer = await asyncio.open_connection(*self.front.upstream)
            self.tasks.append(asyncio.create_task(self._read_upstream()))
        answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.relayed.put_nowait(answer)
        out: asyncio.Future[bytes] = answer
        if transform is not None:
            out = asyncio.ensure_future(_then(answer, transform))
        self.answers.put_nowait(out)
        self.up_writer.write(wire.frame(payload))
        await self.up_writer.drain()

    async def _read_upstream(self) -> None:
        assert self.up_reader is not None
        while True:
            payload = await read_frame(self.up_reader)
            (await self.relayed.get()).set_result(payload)

    async def _answer_in_order(self) -> None:
        while True:
            answer = await self.answers.get()
            try:
                assert answer is not None
                self.writer.write(wire.frame(await answer))
                await self.writer.drain()
            finally:
                self.answers.task_done()

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for w in (self.writer, self.up_writer):
            if w is not None:
                w.close()


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    size = int.from_bytes(await reader.readexactly(4), "big")
    return await reader.readexactly(size)


async def _then(answer: asyncio.Future[bytes], transform: Callable[[bytes], bytes]) -> bytes:
    return transform(await answer)


def _merger(version: int, correlation: int, failing: dict[str, list[bytes]]) -> Any:
    def merge(upstream: bytes) -> bytes:
        answers = wire.produce_answers(version, upstream)
        for name, parts in failing.items():
            answers.setdefault(name, []).extend(parts)
        return wire.produce_answer(version, answers, correlation)

    return merge
