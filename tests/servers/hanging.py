"""A server that accepts connections and never answers: the endpoint of a destination
whose sends hang until the client's own timeout."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest


class HangingServer:
    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []  # accepted and never answered
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> HangingServer:
        self._thread.start()
        return self

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed: stop
                return
            self.held.append(conn)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.sock.close()
        self._thread.join(timeout=5)
        for conn in self.held:
            conn.close()


@pytest.fixture(scope="session")
def hanging_endpoint() -> Iterator[HangingServer]:
    server = HangingServer().start()
    yield server
    server.stop()
