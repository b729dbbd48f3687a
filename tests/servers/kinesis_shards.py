"""A Kinesis endpoint that enforces per-shard write limits (outpost.dev.kinesis_shards),
its own process on 127.0.0.1, started once per session; `shard_endpoint` resets its one
stream (2 shards of 1,000 records/s and 1 MiB/s) for each test."""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from outpost.dev import devstack


class ShardEndpoint:
    def __init__(self, server: devstack.Server):
        self.server = server
        self.url = server.url

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def reset(self, shards: int = 2, records_per_s: int = 1000) -> None:
        self._call("POST", "/reset", {"shards": shards, "records_per_s": records_per_s})

    def fail(self, key: str, times: int) -> None:
        """The next `times` records of partition key `key` fail (InternalFailure)."""
        self._call("POST", "/faults", {"key": key, "times": times})

    def records(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/records")
        return result

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/stats")
        return result

    def split(self, shard_id: str, new_start: int) -> None:
        body = {"ShardToSplit": shard_id, "NewStartingHashKey": str(new_start)}
        req = urllib.request.Request(
            self.url,
            data=json.dumps(body).encode(),
            headers={"X-Amz-Target": "Kinesis_20131202.SplitShard"},
            method="POST",
        )
        urllib.request.urlopen(req, timeout=10).close()


@pytest.fixture(scope="session")
def shard_endpoint_server() -> Iterator[devstack.Server]:
    port = devstack.free_port()
    argv = [sys.executable, "-m", "outpost.dev.kinesis_shards", str(port)]
    server = devstack.Server(argv, port).start()
    yield server
    server.stop()


@pytest.fixture
def shard_endpoint(shard_endpoint_server: devstack.Server) -> ShardEndpoint:
    endpoint = ShardEndpoint(shard_endpoint_server)
    endpoint.reset()
    return endpoint
