"""A bad environment meets a first user as one sentence on stderr and exit code 2: the real
CLI as a subprocess, with a fresh environment, never a traceback."""

import socket
import subprocess
from subprocess import PIPE

import pytest
from pydantic import ValidationError

from outpost.dev import devstack
from outpost.settings import Settings
from tests.test_processes import OUTPOST, service_env


def one_line(run: subprocess.CompletedProcess) -> str:
    """The single stderr line of a run that must have exited 2."""
    err = run.stderr.decode()
    assert "Traceback" not in err + run.stdout.decode()
    lines = [line for line in err.splitlines() if line.strip()]
    assert run.returncode == 2, err
    assert len(lines) == 1, err
    return lines[0]


def outpost(command, env, *args):
    return subprocess.run([*OUTPOST, command, *args], env=env, capture_output=True, timeout=60)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("notaurl", "must be a redis://, rediss:// or unix:// URL (no scheme)"),
        ("http://user:hunter2@x", "must be a redis://, rediss:// or unix:// URL (scheme 'http')"),
        ("redis://h:port/0", "not a valid Redis URL: Port could not be cast"),
    ],
)
def test_invalid_redis_url(url, expected):
    run = outpost("api", service_env(url, devstack.free_port()))
    line = one_line(run)
    assert line.startswith(f"outpost: config error: REDIS_URL: {expected}")
    assert "hunter2" not in line  # a URL may hold a password: never echoed


def test_redis_unreachable_at_start_api_worker_and_all_alike():
    port = devstack.free_port()  # nothing listens there
    env = service_env(f"redis://127.0.0.1:{port}/0", devstack.free_port())
    procs = {
        cmd: subprocess.Popen([*OUTPOST, cmd], env=env, stdout=PIPE, stderr=PIPE)
        for cmd in ("api", "worker", "all")
    }
    for cmd, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        run = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        assert one_line(run) == (
            f"outpost: cannot reach Redis at 127.0.0.1:{port} (connection refused)"
        ), cmd


def test_api_port_in_use(redis_server):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = outpost("api", service_env(redis_server.redis_url, port))
    assert one_line(run) == (
        f"outpost: cannot listen on 127.0.0.1:{port} "
        "(address already in use; set API_PORT or stop what uses it)"
    )


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("API_JWT_SECRET", "j" * 31, "must be at least 32 bytes"),
        ("AES_ENCRYPTION_SECRET", "a" * 15, "must be at least 16 bytes"),
    ],
)
def test_short_secrets(name, value, expected):
    env = service_env("redis://127.0.0.1:1/0", devstack.free_port(), **{name: value})
    line = one_line(outpost("worker", env))
    assert line.startswith(f"outpost: config error: {name}: {expected}")
    assert value not in line


def test_aes_secret_minimum_is_16_bytes_for_the_current_key_only():
    with pytest.raises(ValidationError, match="at least 16 bytes"):
        Settings(aes_encryption_secret="é" * 7 + "x")  # 8 characters, 15 bytes
    assert Settings(aes_encryption_secret="é" * 8).aes_encryption_secret == "é" * 8
    # an old, shorter key stays readable so it can be rotated away
    old = Settings(aes_encryption_secret="n" * 16, aes_encryption_secret_previous="short")
    assert old.aes_encryption_secret_previous == ["short"]


def test_tail_unknown_stream(moto):
    run = outpost("tail", service_env("", 1), "nope", "--endpoint", moto.url)
    assert one_line(run) == f"outpost: stream 'nope' does not exist at {moto.url}"


def test_tail_without_an_endpoint(tmp_path):
    run = outpost("tail", service_env("", 1), "my-stream", "--state-dir", str(tmp_path))
    assert one_line(run).startswith("outpost: tail found no running `make run`")
