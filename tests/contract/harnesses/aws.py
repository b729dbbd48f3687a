"""What the SQS, S3 and EventBridge harnesses share: the fault proxy of tests/aws_proxy.py
in front of the session's moto server, who signed each send, and boto3 clients that read
what moto holds (straight from moto, not through the proxy)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import boto3
from botocore.config import Config

from outpost.destinations.base import Kind
from tests.aws_proxy import AWSProxy
from tests.conftest import FAKE_CREDS
from tests.contract.harnesses.base import Harness
from tests.contract.harnesses.kinesis import ROTATED_AWS


def moto_client(service: str, url: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=FAKE_CREDS["key"],
        aws_secret_access_key=FAKE_CREDS["secret"],
        config=Config(s3={"addressing_style": "path"}),
    )


class AWSHarness(Harness):
    batching = {"batching": True, "batch_linger_ms": 10}

    def __init__(self, server_url: str):
        self.server_url = server_url
        self.proxy = AWSProxy(server_url)

    async def start(self) -> AWSHarness:
        await self.proxy.start()
        return self

    def credentials(self, rotated: bool = False) -> dict[str, Any]:
        return dict(ROTATED_AWS if rotated else FAKE_CREDS)

    def identities(self) -> list[str]:
        return list(self.proxy.keys)

    def identity(self, credentials: dict[str, Any]) -> str:
        return str(credentials["key"])

    def fail(self, kind: Kind) -> None:
        self.proxy.fail = "retry" if kind is Kind.RETRY else "permanent"

    def heal(self) -> None:
        self.proxy.fail = None

    def fail_some_records(self, keys: list[str]) -> None:
        """Every third event's first send fails alone (throttled), then passes."""
        self.proxy.fail_once = set(keys[::3])

    def failed_records(self) -> Counter[str]:
        return self.proxy.failed

    async def close(self) -> None:
        await self.proxy.close()
