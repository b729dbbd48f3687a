"""The GCP Pub/Sub destination type: the thin class the registry and the worker use. Its
parts: `config` (what it accepts), `format` (messages, pure), `writer` (the threaded
publisher clients, awaited without blocking the loop), `errors` (what a failure means)."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

from outpost.destinations.base import DestinationType, Failure, Result
from outpost.destinations.endpoints import EndpointPolicy
from outpost.destinations.gcp_pubsub import format as fmt
from outpost.destinations.gcp_pubsub.batcher import Batcher
from outpost.destinations.gcp_pubsub.config import (
    DEFAULT_BATCH_LINGER_MS,
    DEFAULT_BATCH_RECORDS,
    SCHEMA,
    endpoint_address,
    service_account_problem,
)
from outpost.destinations.gcp_pubsub.format import Record
from outpost.errors import ValidationFailed
from outpost.models import Destination, Event

if TYPE_CHECKING:
    from outpost.destinations.gcp_pubsub.writer import Publishers


class PubSubProvider(DestinationType):
    schema = SCHEMA

    def __init__(self, timeout: float = 5.0, policy: EndpointPolicy | None = None):
        self._options = (timeout, policy)
        self._publishers: Publishers | None = None
        self.batcher = Batcher()

    @property
    def publishers(self) -> Publishers:
        """Google's client libraries (about 50 MiB with grpc) load at the first send, not
        in every process that builds the registry (the API, the source reader)."""
        if self._publishers is None:
            from outpost.destinations.gcp_pubsub.writer import Publishers

            self._publishers = Publishers(*self._options)
        return self._publishers

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
        """The records join their topic's open batch (with other callers' records for the
        same client and topic), sent as one Publish call; one awaitable per record."""
        cfg = destination.config
        client = await self.publishers.client(destination)
        await self.publishers.check(cfg.get("endpoint"))
        limit = cfg.get("batch_max_records") or DEFAULT_BATCH_RECORDS
        linger = cfg.get("batch_linger_ms")
        linger = (DEFAULT_BATCH_LINGER_MS if linger is None else linger) / 1000

        async def publish(batch: list[Record]) -> list[str]:
            return await self.publishers.publish(batch, destination)

        key = f"{id(client)}/{cfg['project_id']}/{cfg['topic']}"
        sent = [self.batcher.add(key, r, publish, limit, linger) for r in records]
        return [_answered(s, destination) for s in sent]

    def classify(self, exc: BaseException) -> Failure:
        from outpost.destinations.gcp_pubsub import errors  # Google's exception types

        return errors.classify(exc)

    async def close(self) -> None:
        await self.batcher.close()
        if self._publishers is not None:
            await self._publishers.close()


def answer(message_id: str, destination: Destination, batch_size: int | None) -> Result:
    cfg = destination.config
    out: Result = {"message_id": message_id, "topic": cfg["topic"], "project": cfg["project_id"]}
    if batch_size is not None:
        out["batch_size"] = batch_size
    return out


async def _answered(sent: Awaitable[tuple[str, int]], destination: Destination) -> Result:
    message_id, batch_size = await sent
    return answer(message_id, destination, batch_size)
