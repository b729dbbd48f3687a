"""The AWS S3 destination type (Outpost's `aws_s3`): one PutObject per event (S3 has no
batch write, so no batched path). Its parts: `config`, `key` (object keys from the
template), `format` (objects, pure), `aws.clients` (aiobotocore clients per credentials),
`aws.errors` (what a failure means)."""

from __future__ import annotations

from typing import Any

from outpost.destinations.aws.client_type import AwsClientType
from outpost.destinations.aws.clients import Identity
from outpost.destinations.base import Result
from outpost.destinations.s3 import format as fmt
from outpost.destinations.s3.config import SCHEMA
from outpost.destinations.s3.format import CONTENT_TYPE, S3Object
from outpost.models import Destination, Event


def identity(config: dict[str, Any], keys: tuple[str, str, str | None]) -> Identity:
    """Path-style addressing with a custom endpoint (as Outpost: LocalStack, moto)."""
    endpoint = config.get("endpoint")
    return Identity("s3", config["region"], endpoint, *keys, path_style=bool(endpoint))


class S3Provider(AwsClientType):
    schema = SCHEMA

    def target(self, config: dict[str, Any]) -> str:
        return f"{config.get('bucket', '')} in {config.get('region', '')}"

    def target_url(self, config: dict[str, Any]) -> str | None:
        bucket, region = config.get("bucket"), config.get("region")
        return f"https://s3.console.aws.amazon.com/s3/buckets/{bucket}?region={region}"

    def format(self, event: Event, destination: Destination) -> S3Object:
        return fmt.s3_object(event, destination)

    async def send(self, record: S3Object, destination: Destination) -> Result:
        client = await self.clients.get(
            identity(destination.config, await self.roles.keys(destination))
        )
        bucket = destination.config["bucket"]
        await client.put_object(
            Bucket=bucket,
            Key=record.key,
            Body=record.data,
            Metadata=record.metadata,
            StorageClass=record.storage_class,
            ContentType=CONTENT_TYPE,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=record.checksum_sha256,
        )
        return {"bucket": bucket, "key": record.key}

    def role_permissions(self, destination: Destination) -> tuple[list[str], str]:
        return ["s3:PutObject"], f"arn:aws:s3:::{destination.config['bucket']}/*"
