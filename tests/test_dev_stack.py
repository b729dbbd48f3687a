"""`make run` as a newcomer meets it: nothing configured, paste the printed curls, see the
record on the local stream; Ctrl-C stops everything it started."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from outpost.dev import devstack

OUTPOST = [sys.executable, "-m", "outpost"]


def clean_env(**extra):
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REDIS_", "API_", "AES_"))
    }
    return {**env, **extra}


def read_banner(proc, timeout=60.0):
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError("dev stack exited early:\n" + "".join(lines))
        lines.append(line)
        if line.startswith("Ctrl-C"):
            return "".join(lines)
    raise TimeoutError("no banner")


def printed_curls(banner):
    """Each printed curl command, with its continuation lines."""
    commands, current = [], None
    for line in banner.splitlines():
        stripped = line.strip()
        if stripped.startswith("curl "):
            current = [stripped]
            commands.append(current)
        elif current is not None and line.startswith("    "):
            current.append(stripped)
        else:
            current = None
    return [" ".join(c) for c in commands]


def port_open(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def assert_quiet_shutdown(log_text):
    """Every line a JSON log line at info level (no traceback, warning or error), and the
    service did log its shutdown (so this sees the logs at all)."""
    entries = [json.loads(line) for line in log_text.splitlines() if line.strip()]
    assert any(e["event"] == "shutting_down" for e in entries)
    loud = [e for e in entries if e["level"] != "info" or "redis_unavailable" in str(e)]
    assert loud == []


@pytest.mark.skipif(not devstack.shutil.which("curl"), reason="the banner prints curl commands")
def test_make_run_newcomer_flow(tmp_path):
    port = devstack.free_port()
    state = tmp_path / "state"
    log_path = tmp_path / "stderr.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [*OUTPOST, "dev", "--state-dir", str(state)],
            env=clean_env(API_PORT=str(port), LOG_FORMAT="json"),
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            start_new_session=True,  # its own process group, as a terminal's job is
        )
    try:
        banner = read_banner(proc)
        assert f"http://127.0.0.1:{port}/api/v1" in banner
        key = re.search(r"admin key: (\S+)", banner).group(1)
        ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", banner.split("\n\n")[0])]
        assert len(ports) == 2 and all(port_open(p) for p in ports)  # redis + moto
        curls = printed_curls(banner)
        assert len(curls) == 3 and all(key in c for c in curls)
        for command in curls:
            run = subprocess.run(
                ["sh", "-c", command + " -s -f"], capture_output=True, text=True, timeout=30
            )
            assert run.returncode == 0, (command, run.stdout, run.stderr)
        deadline, out = time.monotonic() + 20, ""
        while time.monotonic() < deadline and '"order_id' not in out:
            out = subprocess.run(
                [*OUTPOST, "tail", "my-stream", "--state-dir", str(state)],
                env=clean_env(),
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout
            time.sleep(0.2)
        assert '\\"order_id\\":\\"123\\"' in out and '\\"source\\":\\"checkout-service\\"' in out
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: SIGINT to the whole process group
        code = proc.wait(timeout=30)
        rest = proc.stdout.read()
        proc.stdout.close()
    assert code == 0
    assert not any(port_open(p) for p in ports)  # the servers it started are stopped
    assert not (state / "stack.json").exists()
    assert "Traceback" not in rest and "error" not in rest.lower()
    # the service stopped before the servers it uses: no Redis errors on the way down
    assert_quiet_shutdown(log_path.read_text())


def test_configured_services_are_used_and_nothing_started(tmp_path, redis_server, moto):
    port = devstack.free_port()
    devstack.create_stream(moto.url, "my-stream")
    proc = subprocess.Popen(
        [*OUTPOST, "dev", "--state-dir", str(tmp_path)],
        env=clean_env(
            API_PORT=str(port),
            REDIS_URL=redis_server.redis_url,
            AWS_ENDPOINT_URL=moto.url,
            LOG_LEVEL="warning",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        banner = read_banner(proc)
        assert "private redis-server" not in banner and "moto server" not in banner
        assert f"127.0.0.1:{port}" in banner
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        proc.stdout.close()


def test_hangup_stops_the_servers_it_started(tmp_path):
    """Its servers sit in their own process group (out of Ctrl-C's way): a closed terminal
    (SIGHUP to `outpost dev` alone) must still stop them, not orphan them."""
    proc = subprocess.Popen(
        [*OUTPOST, "dev", "--state-dir", str(tmp_path)],
        env=clean_env(API_PORT=str(devstack.free_port()), LOG_LEVEL="warning"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        banner = read_banner(proc)
        ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", banner.split("\n\n")[0])]
        assert len(ports) == 2 and all(port_open(p) for p in ports)
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:  # SIGINT, not kill: it stops the servers on its way out
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        proc.stdout.close()
    assert not any(port_open(p) for p in ports)
