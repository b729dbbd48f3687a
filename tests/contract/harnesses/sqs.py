"""SQS's harness: a queue on moto behind the fault proxy; what arrived is read back from
the queue (and deleted, so a later read still returns it from here)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from outpost.destinations.base import Kind
from tests.contract.harnesses.aws import AWSHarness, moto_client


class SQSHarness(AWSHarness):
    type = "aws_sqs"
    codes = {Kind.RETRY: "throughput_exceeded", Kind.PERMANENT: "queue_not_found"}
    bad_values = [
        ("config.queue_url", "not a url"),
        ("config.endpoint", "ftp://x"),
        ("config.batch_linger_ms", 20_000),
        ("credentials.secret", "  "),
    ]

    def __init__(self, server_url: str):
        super().__init__(server_url)
        self.sqs = moto_client("sqs", server_url)
        self.queue_url = self.sqs.create_queue(QueueName=f"c-{uuid.uuid4().hex[:12]}")["QueueUrl"]
        self._seen: list[dict[str, Any]] = []  # messages read so far

    def body(self, **config: Any) -> dict[str, Any]:
        return {
            "type": self.type,
            "topics": ["orders"],
            "config": {"queue_url": self.queue_url, "endpoint": self.proxy.url, **config},
            "credentials": self.credentials(),
        }

    def received(self, expect: int) -> list[tuple[str, bytes]]:
        self._seen += drain(self.sqs, self.queue_url, expect - len(self._seen))
        return [(event_id(m), m["Body"].encode()) for m in self._seen]


def event_id(message: dict[str, Any]) -> str:
    return str(json.loads(message["MessageAttributes"]["metadata"]["StringValue"])["event-id"])


def drain(sqs: Any, queue_url: str, expect: int, timeout: float = 10.0) -> list[Any]:
    """Messages read (and deleted) until `expect` arrived or `timeout`; then one more
    empty read, so a duplicate that came with them is seen too."""
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    while True:
        got = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", [])
        for m in got:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
        out += got
        if not got and (len(out) >= expect or time.monotonic() > deadline):
            return out
        if not got:
            time.sleep(0.05)
