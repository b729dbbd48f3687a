"""A sick Kinesis endpoint on 127.0.0.1, for the timeout and circuit-breaker tests: one
TCP server (its own event loop in a thread, started once per session) whose behaviour a
test switches with `mode`:

- "hang": accepts the connection and never answers a byte;
- "trickle": answers a 200 head with a long Content-Length, then one body byte every
  `TRICKLE_EVERY` seconds, never finishing;
- "forward": pipes the connection to the upstream (the session's moto server), i.e. the
  endpoint has healed and answers like Kinesis.

`unaccepting` is a second server that never accepts: its listen queue is full, so a
client's connect hangs (the SYN is dropped) until the client gives up.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from outpost.dev import devstack

TRICKLE_EVERY = 0.2
HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\n"
    b"Content-Length: 1000000\r\n\r\n"
)


class StallingEndpoint:
    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.mode = "hang"
        self.connections = 0  # accepted while hanging or trickling: each is one send
        self.forwarded = 0  # requests piped to the upstream
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> StallingEndpoint:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0), self.loop
        ).result(10)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

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

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mode = self.mode
        try:
            if mode == "forward":
                await self._forward(reader, writer)
                return
            self.connections += 1
            if mode == "trickle":
                await reader.readuntil(b"\r\n\r\n")
                writer.write(HEAD)
                while True:
                    await writer.drain()
                    await asyncio.sleep(TRICKLE_EVERY)
                    writer.write(b" ")
            await reader.read()  # hang: read until the client gives up
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client gave up, or the server is stopping
        finally:
            writer.close()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, count: bool) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    if count:
                        self.forwarded += data.count(b"POST /")
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))


class UnacceptingEndpoint:
    """A listening socket whose accept queue is full and never drained: connects hang."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self._fillers = []
        for _ in range(3):  # fill the queue (backlog 0 holds one; the kernel may take two)
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            self._fillers.append(filler)

    def stop(self) -> None:
        for s in [*self._fillers, self.sock]:
            s.close()


@pytest.fixture(scope="session")
def stalling_server(moto: devstack.Server) -> Iterator[StallingEndpoint]:
    parts = urlsplit(moto.url)
    server = StallingEndpoint((parts.hostname or "127.0.0.1", parts.port or 80)).start()
    yield server
    server.stop()


@pytest.fixture
def stalling(stalling_server: StallingEndpoint) -> StallingEndpoint:
    """The session's stalling endpoint, hanging and with its counters at zero."""
    stalling_server.mode = "hang"
    stalling_server.connections = stalling_server.forwarded = 0
    return stalling_server


@pytest.fixture(scope="session")
def unaccepting() -> Iterator[UnacceptingEndpoint]:
    server = UnacceptingEndpoint()
    yield server
    server.stop()
