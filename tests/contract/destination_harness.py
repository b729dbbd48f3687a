"""One harness per destination type for the conformance suite (test_destinations.py): how
to point a destination at the real local server of that type, read back what arrived,
and make that server fail. Adding a type = one class here, one entry in HARNESSES."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from typing import Any

from aiohttp import web

from outpost.destinations.base import Kind
from outpost.destinations.memory.provider import MemoryDestination
from outpost.dev import devstack
from outpost.models import Destination
from tests.conftest import FAKE_CREDS
from tests.faults import KinesisProxy

ROTATED_AWS = {"key": "AKIAI44QH8DHBEXAMPLE", "secret": "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"}


class Harness:
    """What the suite needs from a type. `codes`: the attempt code each injected failure
    kind ends with."""

    type: str
    codes: dict[Kind, str]
    bad_values: list[tuple[str, Any]]  # ("config.x" | "credentials.x", a value refused)

    def body(self, **config: Any) -> dict[str, Any]:
        raise NotImplementedError

    def credentials(self, rotated: bool = False) -> dict[str, Any]:
        raise NotImplementedError

    def received(self, expect: int) -> list[tuple[str, bytes]]:
        """(ordering key, record bytes) of everything the server holds."""
        raise NotImplementedError

    def identities(self) -> list[str]:
        """Who each send authenticated as, in order."""
        raise NotImplementedError

    def identity(self, credentials: dict[str, Any]) -> str:
        raise NotImplementedError

    def fail(self, kind: Kind) -> None:
        """Every send fails with `kind` until `heal()`."""
        raise NotImplementedError

    def heal(self) -> None:
        raise NotImplementedError

    def fail_some_records(self, keys: list[str]) -> None:
        """Some records of a batch call fail alone (which is up to the type)."""
        raise NotImplementedError

    def failed_records(self) -> Counter[str]:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class MemoryHarness(Harness):
    type = "memory"
    codes = {Kind.RETRY: "throughput_exceeded", Kind.PERMANENT: "validation_error"}
    bad_values = [("config.name", "Not A Name!"), ("credentials.token", " ")]

    def __init__(self, provider: MemoryDestination):
        self.provider = provider
        self.name = f"bin-{uuid.uuid4().hex[:8]}"
        self._failed: Counter[str] = Counter()

    def body(self, **config: Any) -> dict[str, Any]:
        return {
            "type": "memory",
            "topics": ["orders"],
            "config": {"name": self.name, **config},
            "credentials": self.credentials(),
        }

    def credentials(self, rotated: bool = False) -> dict[str, Any]:
        return {"token": "rotated-token-0002" if rotated else "first-token-0001"}

    def received(self, expect: int) -> list[tuple[str, bytes]]:
        return [(d.key, d.data) for d in self.provider.received[self.name]]

    def identities(self) -> list[str]:
        return [d.token for d in self.provider.received[self.name]]

    def identity(self, credentials: dict[str, Any]) -> str:
        return str(credentials["token"])

    def fail(self, kind: Kind) -> None:
        self.provider.fail_next(kind, self.codes[kind], times=1000)

    def heal(self) -> None:
        self.provider._fail_calls.clear()

    def fail_some_records(self, keys: list[str]) -> None:
        for key in keys[::3]:
            self.provider.fail_record(key, Kind.RETRY, self.codes[Kind.RETRY])
            self._failed[key] += 1

    def failed_records(self) -> Counter[str]:
        return self._failed


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


def same_version(dest: Destination) -> Destination:
    """A second parse of the same stored destination (nothing compiled yet)."""
    return Destination(**{**dest.__dict__, "compiled": {}})
