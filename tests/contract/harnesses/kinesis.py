"""Kinesis's harness: a stream on the real server (moto or kinesis-local) behind the
fault proxy of tests/faults.py."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from typing import Any

from aiohttp import web

from outpost.destinations.base import Kind
from outpost.dev import devstack
from tests.conftest import FAKE_CREDS
from tests.contract.harnesses.base import Harness
from tests.faults import KinesisProxy

ROTATED_AWS = {"key": "AKIAI44QH8DHBEXAMPLE", "secret": "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"}


class RecordingProxy(KinesisProxy):
    """The fault proxy, also noting the access key each call was signed with."""

    def __init__(self, upstream: str, **options: Any):
        super().__init__(upstream, **options)
        self.keys: list[str] = []

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        op = request.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
        if op in ("PutRecord", "PutRecords"):
            found = re.search(r"Credential=([^/]+)/", request.headers.get("Authorization", ""))
            self.keys.append(found.group(1) if found else "")
        return await super()._forward(request)


class KinesisHarness(Harness):
    """A stream on the real server (moto or kinesis-local) behind the fault proxy."""

    type = "aws_kinesis"
    batching = {"batching": True, "batch_linger_ms": 10}
    codes = {Kind.RETRY: "throughput_exceeded", Kind.PERMANENT: "validation_error"}
    bad_values = [
        ("config.stream_name", "no spaces allowed"),
        ("config.region", "mars-1"),
        ("config.endpoint", "ftp://x"),
        ("config.partition_key_template", "data.["),
        ("config.batch_max_records", 501),
        ("credentials.secret", "  "),
    ]

    def __init__(self, server_url: str):
        self.server_url = server_url
        self.stream = f"c-{uuid.uuid4().hex[:12]}"
        self.proxy: RecordingProxy | None = None
        devstack.create_stream(server_url, self.stream, shards=2)

    async def start(self) -> KinesisHarness:
        self.proxy = await RecordingProxy(self.server_url, seed=5).start()
        return self

    def body(self, **config: Any) -> dict[str, Any]:
        assert self.proxy is not None
        return {
            "type": "aws_kinesis",
            "topics": ["orders"],
            "config": {
                "stream_name": self.stream,
                "region": "us-east-1",
                "endpoint": self.proxy.url,
                **config,
            },
            "credentials": self.credentials(),
        }

    def credentials(self, rotated: bool = False) -> dict[str, Any]:
        return dict(ROTATED_AWS if rotated else FAKE_CREDS)

    def received(self, expect: int) -> list[tuple[str, bytes]]:
        records = devstack.read_stream(self.server_url, self.stream, expect=expect)
        return [(r["PartitionKey"], r["Data"]) for r in records]

    def identities(self) -> list[str]:
        assert self.proxy is not None
        return list(self.proxy.keys)

    def identity(self, credentials: dict[str, Any]) -> str:
        return str(credentials["key"])

    def fail(self, kind: Kind) -> None:
        assert self.proxy is not None
        if kind is Kind.RETRY:
            self.proxy.throttle = 1.0  # ProvisionedThroughputExceededException
        else:
            self.proxy.reject_marker = b'"PartitionKey"'  # ValidationException, every call

    def heal(self) -> None:
        assert self.proxy is not None
        self.proxy.throttle, self.proxy.reject_marker = 0.0, None

    def fail_some_records(self, keys: list[str]) -> None:
        assert self.proxy is not None
        self.proxy.record_throttle = 0.3

    def failed_records(self) -> Counter[str]:
        assert self.proxy is not None
        return self.proxy.throttled_keys

    async def close(self) -> None:
        if self.proxy is not None:
            await self.proxy.close()
