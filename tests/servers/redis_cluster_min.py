"""A minimal real Redis Cluster for the ops tests (migration to a cluster, WAIT on a
cluster, the start-up check): 3 masters + 3 replicas of Debian's redis-server 7 on free
127.0.0.1 ports, joined by `redis-cli --cluster create`, stopped by the fixture.
(The layout work brings a fuller cluster fixture; the two are to be unified.)"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from outpost.dev import devstack

SERVER, CLI = "/usr/bin/redis-server", "/usr/bin/redis-cli"


@dataclass
class MinCluster:
    folder: Path
    nodes: list[devstack.Server] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Any node: the client maps the rest."""
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def start(self, masters: int = 3, replicas: int = 1) -> MinCluster:
        for _ in range(masters * (1 + replicas)):
            port = _cluster_port()
            home = self.folder / str(port)
            home.mkdir()
            argv = [SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(home)]
            argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            argv += ["--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no"]
            self.nodes.append(devstack.Server(argv, port).start())
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run(
            [CLI, "--cluster", "create", *addresses, "--cluster-replicas", str(replicas)],
            input=b"yes\n",
            capture_output=True,
            check=True,
            timeout=60,
        )
        self._settled(masters * replicas)
        return self

    def _settled(self, replicas: int, timeout: float = 30.0) -> None:
        """Until every node says the cluster is ok and the masters see their replicas."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            infos = []
            for node in self.nodes:
                with redis.Redis(port=node.port) as client:
                    infos.append((client.cluster("info"), client.info("replication")))
            ok = all(_state(info) == "ok" for info, _ in infos)
            online = sum(_online(r) for _, r in infos)
            if ok and online >= replicas:
                return
            time.sleep(0.2)
        raise TimeoutError("the cluster did not settle")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_cluster_min() -> Iterator[MinCluster]:
    if shutil.which(SERVER) is None or shutil.which(CLI) is None:
        pytest.fail(f"{SERVER} / {CLI} missing: run .ci/install-redis (make test does)")
    cluster = MinCluster(Path(tempfile.mkdtemp(prefix="outpost-cluster-")))
    try:
        cluster.start()
    except Exception:
        cluster.stop()
        raise
    yield cluster
    cluster.stop()


def _state(info: object) -> str:
    """cluster_state of a CLUSTER INFO answer (redis-py parses it into a dict)."""
    if isinstance(info, dict):
        return str(info.get("cluster_state", ""))
    text = info.decode() if isinstance(info, bytes) else str(info)
    return "ok" if "cluster_state:ok" in text else ""


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free and valid too."""
    for _ in range(200):
        port = devstack.free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def _online(replication: dict[str, object]) -> int:
    """Replicas a master's INFO replication lists as online (synced, streaming)."""
    return sum(
        1
        for key, value in replication.items()
        if key.startswith("slave") and isinstance(value, dict) and value.get("state") == "online"
    )
