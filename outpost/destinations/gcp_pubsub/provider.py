"""The GCP Pub/Sub destination type: the thin class the registry and the worker use. Its
parts: `config` (what it accepts), `format` (messages, pure), `writer` (the threaded
publisher clients, awaited without blocking the loop), `errors` (what a failure means)."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

from outpost.destinations.base import DestinationType, Failure, Result
from outpost.destinations.batcher import Answer, Batcher
from outpost.destinations.endpoints import EndpointPolicy
from outpost.destinations.gcp_pubsub import format as fmt
from outpost.destinations.gcp_pubsub.config import (
    DEFAULT_BATCH_LINGER_MS,
    DEFAULT_BATCH_RECORDS,
    MAX_BATCH_BYTES,
    MAX_BATCH_RECORDS,
    SCHEMA,
    endpoint_address,
    service_account_problem,
)
from outpost.destinations.gcp_pubsub.format import Record
from outpost.destinations.lazy import Lazy
from outpost.errors import RetryableError, ValidationFailed
from outpost.models import Destination, Event

if TYPE_CHECKING:
    from outpost.destinations.gcp_pubsub.writer import Publishers


class PubSubProvider(DestinationType):
    schema = SCHEMA

    def __init__(self, timeout: float = 5.0, policy: EndpointPolicy | None = None):
        self._publishers = Lazy(lambda: _publishers(timeout, policy))
        self.batcher: Batcher[Record] = Batcher(_publish, MAX_BATCH_RECORDS, MAX_BATCH_BYTES)

    @property
    def publishers(self) -> Publishers:
        """Google's client libraries (about 50 MiB with grpc) load at the first send
        (`destinations.lazy`)."""
        return self._publishers.get()

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

        key = f"{id(client)}/{cfg['project_id']}/{cfg['topic']}"
        context = (self.publishers, destination)
        sent = [self.batcher.add(key, context, r, r.size, linger, limit) for r in records]
        return [_answered(s, destination) for s in sent]

    def classify(self, exc: BaseException) -> Failure:
        from outpost.destinations.gcp_pubsub import errors  # Google's exception types

        return errors.classify(exc)

    async def close(self) -> None:
        await self.batcher.close()
        await self._publishers.close()


def _publishers(timeout: float, policy: EndpointPolicy | None) -> Publishers:
    from outpost.destinations.gcp_pubsub.writer import Publishers  # Google's libraries

    return Publishers(timeout, policy)


def answer(message_id: str, destination: Destination, batch_size: int | None) -> Result:
    cfg = destination.config
    out: Result = {"message_id": message_id, "topic": cfg["topic"], "project": cfg["project_id"]}
    if batch_size is not None:
        out["batch_size"] = batch_size
    return out


async def _publish(
    context: tuple[Publishers, Destination], records: Sequence[Record]
) -> list[Answer]:
    """One Publish call; a record its answer has no message id for is retried."""
    publishers, destination = context
    ids = (await publishers.publish(list(records), destination))[: len(records)]
    missing = range(len(records) - len(ids))
    fewer = [RetryableError("server_error", "Publish answered fewer message ids") for _ in missing]
    return [*({"message_id": i} for i in ids), *fewer]


async def _answered(sent: Awaitable[Result], destination: Destination) -> Result:
    done = await sent
    return answer(done["message_id"], destination, done["batch_size"])
