"""The services every process shares, built once from settings (`Deps.build`) and passed
down: the API and the Flow Service reach them through `DEPS`, the worker and the source
reader are handed them. Below the surfaces and processes, above queue/store/destinations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web
from redis.asyncio import Redis

from outpost.auth import Tokens
from outpost.crypto import Cipher
from outpost.destinations.azure_servicebus.provider import ServiceBusProvider
from outpost.destinations.base import DestinationType
from outpost.destinations.endpoints import EndpointPolicy
from outpost.destinations.kinesis.provider import KinesisProvider
from outpost.destinations.rabbitmq.provider import RabbitMQProvider
from outpost.destinations.registry import DestinationCache, Registry
from outpost.ingest import Ingest
from outpost.queue.keys import Keys
from outpost.queue.streams import Queue
from outpost.settings import Settings
from outpost.store.flows import FlowStore
from outpost.store.history import History
from outpost.store.sources import SourceState
from outpost.store.tenants import Store


def build_registry(settings: Settings, extra: Sequence[DestinationType] = ()) -> Registry:
    """Every destination type this deployment delivers to, configured from settings;
    `extra` types are added by whoever builds the services (tests add `memory`)."""
    return Registry(
        [
            KinesisProvider(
                metadata_in_payload=settings.destinations_aws_kinesis_metadata_in_payload,
                timeout=settings.delivery_timeout_seconds,
                max_connections=settings.delivery_max_concurrency,
            ),
            RabbitMQProvider(
                timeout=settings.delivery_timeout_seconds,
                endpoints=EndpointPolicy(settings.destinations_allow_private_endpoints),
            ),
            ServiceBusProvider(
                timeout=settings.delivery_timeout_seconds,
                endpoints=EndpointPolicy(settings.destinations_allow_private_endpoints),
            ),
            *extra,
        ],
        filter_max_depth=settings.filter_max_depth,
        filter_max_bytes=settings.filter_max_bytes,
    )


@dataclass
class Deps:
    """Everything the surfaces and the processes share: built once by the runtime from
    settings and a Redis client, passed down; opens no connection itself."""

    settings: Settings
    redis: Redis
    keys: Keys
    cipher: Cipher
    registry: Registry
    store: Store
    queue: Queue
    destinations: DestinationCache
    history: History
    tokens: Tokens
    endpoints: EndpointPolicy
    flows: FlowStore
    sources: SourceState
    ingest: Ingest

    @classmethod
    def build(
        cls, settings: Settings, redis: Redis, extra_types: Sequence[DestinationType] = ()
    ) -> Deps:
        keys = Keys(settings.deployment_id)
        cipher = Cipher(settings.aes_encryption_secret, settings.aes_encryption_secret_previous)
        registry = build_registry(settings, extra_types)
        store = Store(redis, keys, cipher, settings.max_destinations_per_tenant)
        queue = Queue(
            redis,
            keys,
            settings.delivery_partitions,
            settings.event_retention_seconds,
            settings.attempts_max_per_destination,
            settings.log_max_per_tenant,
            settings.log_max_total,
        )
        destinations = DestinationCache(registry, cipher)
        return cls(
            settings=settings,
            redis=redis,
            keys=keys,
            cipher=cipher,
            registry=registry,
            store=store,
            queue=queue,
            destinations=destinations,
            history=History(redis, keys),
            tokens=Tokens(settings.api_jwt_secret, settings.api_jwt_ttl_seconds),
            endpoints=EndpointPolicy(settings.destinations_allow_private_endpoints),
            flows=FlowStore(redis, keys, cipher),
            sources=SourceState(redis, keys),
            ingest=Ingest(store, queue, destinations, registry),
        )


DEPS = web.AppKey("deps", Deps)
