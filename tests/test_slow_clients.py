"""Slow and many clients against a running `outpost api`: a client trickling its headers
or its body is cut off after API_HEADER_TIMEOUT_SECONDS / API_BODY_TIMEOUT_SECONDS, and
beyond API_MAX_CONNECTIONS a new connection is answered 503 at once and closed."""

import contextlib
import json
import signal
import socket
import subprocess
import time

import pytest

from outpost.dev import devstack
from tests.conftest import ADMIN_KEY
from tests.test_processes import OUTPOST, service_env, wait_healthy


@pytest.fixture
def api_port(tmp_path):
    """An `outpost api` with short read timeouts and a cap of 3 connections."""
    server = devstack.redis_server().start()
    port = devstack.free_port()
    env = service_env(
        server.redis_url,
        port,
        API_HEADER_TIMEOUT_SECONDS="1",
        API_BODY_TIMEOUT_SECONDS="1",
        API_MAX_CONNECTIONS="3",
    )
    with (tmp_path / "stderr.log").open("wb") as log_file:
        proc = subprocess.Popen([*OUTPOST, "api"], env=env, stderr=log_file)
    try:
        wait_healthy(port, proc)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        server.stop()


def connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.settimeout(0.2)
    return sock


def trickle(sock, data, limit=6.0, until_answer=False):
    """Send `data` one byte per 0.1 s until the server closes the connection (or answers,
    with `until_answer`; or `limit` seconds pass); (seconds it took, what it answered)."""
    started, answer = time.monotonic(), b""
    for byte in data:
        if time.monotonic() - started > limit:
            break
        try:
            sock.sendall(bytes([byte]))
        except OSError:  # closed by the server
            break
        with contextlib.suppress(TimeoutError):
            chunk = sock.recv(65536)
            answer += chunk
            if not chunk or until_answer:
                break
    return time.monotonic() - started, answer


def test_a_client_trickling_its_headers_is_closed(api_port):
    with connect(api_port) as sock:
        took, answer = trickle(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: a" * 100)
    assert took < 4, f"still open after {took:.1f} s"
    assert b"200" not in answer


def test_a_client_trickling_its_body_gets_408(api_port):
    body = json.dumps({"tenant_id": "acme", "topic": "orders", "data": {"x": "y" * 200}})
    head = (
        f"POST /api/v1/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with connect(api_port) as sock:
        sock.sendall(head.encode())
        took, answer = trickle(sock, body.encode(), until_answer=True)
        # then aiohttp reads on for at most its lingering time (10 s) and closes
    assert took < 4, f"no answer after {took:.1f} s"
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"API_BODY_TIMEOUT_SECONDS" in answer


def read_all(sock, limit=5.0):
    deadline, out = time.monotonic() + limit, b""
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        out += chunk
    return out


def test_connections_beyond_the_cap_are_answered_503_and_closed(api_port):
    held = [connect(api_port) for _ in range(3)]
    try:
        time.sleep(0.3)  # the server has taken them
        with connect(api_port) as extra:
            answer = read_all(extra)
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
        assert b"Retry-After: 1" in answer and b"API_MAX_CONNECTIONS" in answer
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)  # the server saw them go
    with connect(api_port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_all(sock).startswith(b"HTTP/1.1 200")
