"""S3's harness: a bucket on moto behind the fault proxy; what arrived is every object in
the bucket (its event id from its metadata, its content)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from outpost.destinations.base import Kind
from tests.contract.harnesses.aws import AWSHarness, moto_client


class S3Harness(AWSHarness):
    type = "aws_s3"
    batching: dict[str, Any] = {}  # S3 has no batch write: send_batch sends one by one
    codes = {Kind.RETRY: "throughput_exceeded", Kind.PERMANENT: "bucket_not_found"}
    bad_values = [
        ("config.bucket", "no spaces allowed"),
        ("config.region", "mars-1"),
        ("config.key_template", "data.["),
        ("config.storage_class", "COLD"),
        ("config.endpoint", "ftp://x"),
        ("credentials.key", " "),
    ]

    def __init__(self, server_url: str):
        super().__init__(server_url)
        self.s3 = moto_client("s3", server_url)
        self.bucket = f"c-{uuid.uuid4().hex[:12]}"
        self.s3.create_bucket(Bucket=self.bucket)

    def body(self, **config: Any) -> dict[str, Any]:
        return {
            "type": self.type,
            "topics": ["orders"],
            "config": {
                "bucket": self.bucket,
                "region": "us-east-1",
                "endpoint": self.proxy.url,
                **config,
            },
            "credentials": self.credentials(),
        }

    def objects(self, expect: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Every object (key, metadata, content type, storage class, bytes)."""
        deadline = time.monotonic() + timeout
        while True:
            listed = self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])
            if len(listed) >= expect or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        out = []
        for item in listed:
            got = self.s3.get_object(Bucket=self.bucket, Key=item["Key"], ChecksumMode="ENABLED")
            out.append({**got, "Key": item["Key"], "Data": got["Body"].read()})
        return out

    def received(self, expect: int) -> list[tuple[str, bytes]]:
        return [(o["Metadata"]["event-id"], o["Data"]) for o in self.objects(expect)]
