"""The AWS SQS destination type (Outpost's `aws_sqs`): SendMessage for one event, and
SendMessageBatch (10 messages, 256 KiB per call) for destinations with `config.batching`,
each message failing alone. Its parts: `config`, `format` (messages, pure), `aws.clients`
(aiobotocore clients per credentials), `destinations.batcher`, `aws.errors` (what a failure means).
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any
from urllib.parse import quote_plus, urlparse

from outpost.destinations.aws import errors
from outpost.destinations.aws.auth import resource_arn
from outpost.destinations.aws.client_type import AwsClientType
from outpost.destinations.aws.clients import Identity
from outpost.destinations.aws.fields import DEFAULT_BATCH_LINGER_MS
from outpost.destinations.aws.roles import Roles
from outpost.destinations.base import Result
from outpost.destinations.batcher import Answer, Batcher
from outpost.destinations.sqs import format as fmt
from outpost.destinations.sqs.config import (
    DEFAULT_REGION,
    MAX_BATCH_BYTES,
    MAX_BATCH_ENTRIES,
    SCHEMA,
    aws_region,
)
from outpost.destinations.sqs.format import Message
from outpost.errors import RetryableError
from outpost.models import Destination, Event

OPERATION = "SendMessageBatch"


def identity(config: dict[str, Any], keys: tuple[str, str, str | None]) -> Identity:
    """As Outpost: the region from an AWS queue URL, the calls to `endpoint` if given,
    else to the queue URL's own host (`endpoints` hands that one to the guard)."""
    queue_url = str(config["queue_url"])
    parsed = urlparse(queue_url)
    endpoint = config.get("endpoint") or f"{parsed.scheme}://{parsed.netloc}"
    region = aws_region(queue_url) or DEFAULT_REGION
    return Identity("sqs", region, endpoint, *keys)


class SQSProvider(AwsClientType):
    schema = SCHEMA

    def __init__(
        self,
        timeout: float = 5.0,
        max_connections: int = 64,
        connect_timeout: float | None = None,
        roles: Roles | None = None,
    ):
        super().__init__(timeout, max_connections, connect_timeout, roles)
        self.batches: Batcher[Message] = Batcher(
            self._send_entries, MAX_BATCH_ENTRIES, MAX_BATCH_BYTES
        )

    def endpoints(self, config: dict[str, Any]) -> list[tuple[str, str]]:
        """Where the calls go: `endpoint`, else the queue URL's host (checked by the
        endpoint guard at create, update and every send)."""
        endpoint = config.get("endpoint")
        return [("endpoint", endpoint)] if endpoint else [("queue_url", str(config["queue_url"]))]

    def target(self, config: dict[str, Any]) -> str:
        return str(config.get("queue_url", ""))

    def target_url(self, config: dict[str, Any]) -> str | None:
        """The queue in the AWS console, for AWS queue URLs only (as Outpost)."""
        queue_url = str(config.get("queue_url", ""))
        region = aws_region(queue_url)
        if region is None or not (urlparse(queue_url).hostname or "").startswith("sqs."):
            return None
        return (
            f"https://{region}.console.aws.amazon.com/sqs/v3/home?region={region}"
            f"#/queues/{quote_plus(queue_url, safe='')}"
        )

    def format(self, event: Event, destination: Destination) -> Message:
        return fmt.message(event, destination)

    async def send(self, record: Message, destination: Destination) -> Result:
        if self.batching(destination):
            [result] = await self.send_batch([record], destination)
            return await result
        client = await self.clients.get(
            identity(destination.config, await self.roles.keys(destination))
        )
        resp = await client.send_message(
            QueueUrl=destination.config["queue_url"],
            MessageBody=record.data.decode(),
            MessageAttributes=record.attributes(),
        )
        return {"message_id": resp.get("MessageId")}

    def batching(self, destination: Destination) -> bool:
        return bool(destination.config.get("batching"))

    async def send_batch(
        self, records: Sequence[Message], destination: Destination
    ) -> list[Awaitable[Result]]:
        """The messages join their queue's open SendMessageBatch (other callers' messages
        for the same queue and credentials included); one future per message."""
        cfg = destination.config
        who = identity(cfg, await self.roles.keys(destination))
        client = await self.clients.get(who)
        linger = cfg.get("batch_linger_ms")
        linger = (DEFAULT_BATCH_LINGER_MS if linger is None else linger) / 1000
        key, context = (who.cache_key(), cfg["queue_url"]), (client, cfg["queue_url"])
        return [self.batches.add(key, context, m, m.size, linger) for m in records]

    async def _send_entries(self, context: Any, messages: Sequence[Message]) -> list[Answer]:
        client, queue_url = context
        entries = [
            {"Id": str(i), "MessageBody": m.data.decode(), "MessageAttributes": m.attributes()}
            for i, m in enumerate(messages)
        ]
        resp = await client.send_message_batch(QueueUrl=queue_url, Entries=entries)
        done = {e.get("Id"): e for e in resp.get("Successful") or []}
        failed = {e.get("Id"): e for e in resp.get("Failed") or []}
        return [_answer(str(i), done, failed) for i in range(len(messages))]

    def role_permissions(self, destination: Destination) -> tuple[list[str], str]:
        queue_url = str(destination.config["queue_url"])
        parts = urlparse(queue_url).path.strip("/").split("/")
        region = aws_region(queue_url) or DEFAULT_REGION
        arn = resource_arn("sqs", region, destination, parts[-1])
        if len(parts) == 2 and parts[0].isdigit():  # the queue's own account
            arn = f"arn:aws:sqs:{region}:{parts[0]}:{parts[1]}"
        return ["sqs:SendMessage"], arn


def _answer(entry: str, done: dict[Any, Any], failed: dict[Any, Any]) -> Answer:
    if entry in done:
        return {"message_id": done[entry].get("MessageId")}
    if entry in failed:
        f = failed[entry]
        return errors.entry_error(
            OPERATION,
            str(f.get("Code") or ""),
            str(f.get("Message") or ""),
            bool(f.get("SenderFault")),
        )
    return RetryableError("server_error", f"{OPERATION} answered nothing for entry {entry}")
