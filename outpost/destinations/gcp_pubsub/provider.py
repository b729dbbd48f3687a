"""The GCP Pub/Sub destination type: the thin class the registry and the worker use. Its
parts: `config` (what it accepts), `format` (messages, pure), `writer` (the threaded
publisher clients, awaited without blocking the loop), `errors` (what a failure means)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any

from outpost.destinations.base import DestinationType, Failure, Result
from outpost.destinations.endpoints import EndpointPolicy
from outpost.destinations.gcp_pubsub import errors
from outpost.destinations.gcp_pubsub import format as fmt
from outpost.destinations.gcp_pubsub.config import (
    DEFAULT_BATCH_RECORDS,
    SCHEMA,
    endpoint_address,
    service_account_problem,
)
from outpost.destinations.gcp_pubsub.format import Record
from outpost.destinations.gcp_pubsub.writer import Publishers, chunks, settle
from outpost.errors import ValidationFailed
from outpost.models import Destination, Event


class PubSubProvider(DestinationType):
    schema = SCHEMA

    def __init__(self, timeout: float = 5.0, policy: EndpointPolicy | None = None):
        self.publishers = Publishers(timeout, policy)

    def validate(
        self, config: dict[str, Any], credentials: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """As Outpost: without an endpoint (an emulator), the key must be key JSON."""
        cfg, creds = super().validate(config, credentials)
        if not cfg.get("endpoint"):
            problem = service_account_problem(creds["service_account_json"])
            if problem:
                raise ValidationFailed([problem])
        return cfg, creds

    def target(self, config: dict[str, Any]) -> str:
        return f"{config.get('project_id', '')}/{config.get('topic', '')}"

    def target_url(self, config: dict[str, Any]) -> str | None:
        return (
            "https://console.cloud.google.com/cloudpubsub/topic/detail/"
            f"{config.get('topic', '')}?project={config.get('project_id', '')}"
        )

    def endpoints(self, config: dict[str, Any]) -> list[tuple[str, str]]:
        found = endpoint_address(config["endpoint"]) if config.get("endpoint") else None
        return [("endpoint", f"grpc://{found[0]}:{found[1]}")] if found else []

    def format(self, event: Event, destination: Destination) -> Record:
        return fmt.record(event, destination)

    async def send(self, record: Record, destination: Destination) -> Result:
        [message_id] = await self.publishers.publish([record], destination)
        return answer(message_id, destination, None)

    def batching(self, destination: Destination) -> bool:
        return bool(destination.config.get("batching"))

    async def send_batch(
        self, records: Sequence[Record], destination: Destination
    ) -> list[Awaitable[Result]]:
        """The records in Publish calls of at most `batch_max_records` messages and
        10 MB, sent at once; one awaitable per message (a call fails its messages alone)."""
        limit = destination.config.get("batch_max_records") or DEFAULT_BATCH_RECORDS
        groups = chunks(records, limit)
        calls = [asyncio.ensure_future(self.publishers.publish(g, destination)) for g in groups]
        sent = await settle(calls, [len(g) for g in groups])
        return [_answered(s, destination, len(records)) for s in sent]

    def classify(self, exc: BaseException) -> Failure:
        return errors.classify(exc)

    async def close(self) -> None:
        await self.publishers.close()


def answer(message_id: str, destination: Destination, batch_size: int | None) -> Result:
    cfg = destination.config
    out: Result = {"message_id": message_id, "topic": cfg["topic"], "project": cfg["project_id"]}
    if batch_size is not None:
        out["batch_size"] = batch_size
    return out


async def _answered(sent: Awaitable[str], destination: Destination, batch_size: int) -> Result:
    return answer(await sent, destination, batch_size)
