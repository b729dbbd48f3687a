"""The services every process shares, built once from settings (`Deps.build`) and passed
down: the API and the Flow Service reach them through `DEPS`, the worker and the source
reader are handed them. Below the surfaces and processes, above queue/store/destinations."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web
from redis.asyncio import Redis

from outpost.auth import Tokens
from outpost.crypto import Cipher
from outpost.destinations.aws.roles import Roles
from outpost.destinations.azure_servicebus.provider import ServiceBusProvider
from outpost.destinations.base import DestinationType
from outpost.destinations.endpoints import EndpointPolicy
from outpost.destinations.eventbridge.provider import EventBridgeProvider
from outpost.destinations.gcp_pubsub.provider import PubSubProvider
from outpost.destinations.hookdeck.provider import HookdeckProvider
from outpost.destinations.kafka.provider import KafkaProvider
from outpost.destinations.kinesis.provider import KinesisProvider
from outpost.destinations.rabbitmq.provider import RabbitMQProvider
from outpost.destinations.registry import DestinationCache, Registry
from outpost.destinations.s3.provider import S3Provider
from outpost.destinations.sqs.provider import SQSProvider
from outpost.destinations.webhook.format import Style
from outpost.destinations.webhook.provider import WebhookProvider
from outpost.destinations.webhook.signature import Scheme
from outpost.ingest import Ingest
from outpost.queue.calls import is_cluster
from outpost.queue.durable import ReplicaWait
from outpost.queue.keys import Keys
from outpost.queue.streams import Queue
from outpost.settings import Settings
from outpost.store.flows import FlowStore
from outpost.store.history import History
from outpost.store.runs import RunStore
from outpost.store.sources import SourceState
from outpost.store.tenants import Store
from outpost.telemetry import Telemetry
from outpost.tracing import Tracing


def build_registry(settings: Settings, extra: Sequence[DestinationType] = ()) -> Registry:
    """Every destination type this deployment delivers to, configured from settings;
    `extra` types are added by whoever builds the services (tests add `memory`)."""
    roles = Roles(  # one AssumeRole cache for every AWS type
        duration=settings.aws_role_session_duration_seconds,
        roles_only=settings.aws_roles_only,
        principal_arn=settings.aws_role_principal_arn,
    )
    return Registry(
        [
            KinesisProvider(
                metadata_in_payload=settings.destinations_aws_kinesis_metadata_in_payload,
                timeout=settings.delivery_timeout_seconds,
                max_connections=settings.delivery_max_concurrency,
                connect_timeout=settings.delivery_connect_timeout_seconds,
                roles=roles,
            ),
            *aws_types(settings, roles),
            *http_types(settings),
            KafkaProvider(
                timeout=settings.delivery_timeout_seconds,
                policy=EndpointPolicy(settings.destinations_allow_private_endpoints),
            ),
            PubSubProvider(
                timeout=settings.delivery_timeout_seconds,
                policy=EndpointPolicy(settings.destinations_allow_private_endpoints),
            ),
            RabbitMQProvider(timeout=settings.delivery_timeout_seconds),
            ServiceBusProvider(
                timeout=settings.delivery_timeout_seconds,
                policy=EndpointPolicy(settings.destinations_allow_private_endpoints),
            ),
            *extra,
        ],
        filter_max_depth=settings.filter_max_depth,
        filter_max_bytes=settings.filter_max_bytes,
    )


def aws_types(settings: Settings, roles: Roles) -> list[DestinationType]:
    """aws_sqs, aws_s3, aws_eventbridge: aiobotocore clients per credentials, each with a
    connection pool sized like the worker."""
    sized = (
        settings.delivery_timeout_seconds,
        settings.delivery_max_concurrency,
        settings.delivery_connect_timeout_seconds,
    )
    return [
        SQSProvider(*sized, roles=roles),
        S3Provider(*sized, roles=roles),
        EventBridgeProvider(settings.destinations_aws_eventbridge_source, *sized, roles=roles),
    ]


def http_types(settings: Settings) -> list[DestinationType]:
    """webhook and hookdeck: one HTTP session each, sized like the worker."""
    timeout, connections = settings.delivery_timeout_seconds, settings.delivery_max_concurrency
    max_body = settings.destinations_webhook_max_response_body_bytes
    scheme = Scheme(
        content=settings.destinations_webhook_signature_content_template,
        header=settings.destinations_webhook_signature_header_template,
        encoding=settings.destinations_webhook_signature_encoding,
        algorithm=settings.destinations_webhook_signature_algorithm,
        secret_template=settings.destinations_webhook_signing_secret_template,
    )
    return [
        WebhookProvider(
            EndpointPolicy(settings.destinations_allow_private_endpoints),
            scheme,
            Style(
                settings.destinations_webhook_header_prefix.strip(),
                tuple(settings.webhook_header_names().items()),
                settings.destinations_webhook_timestamp_format == "rfc3339",
            ),
            timeout,
            connections,
            max_body,
            settings.delivery_connect_timeout_seconds,
        ),
        HookdeckProvider(
            settings.destinations_hookdeck_url,
            timeout,
            connections,
            max_body,
            settings.destinations_hookdeck_api_url,
            settings.delivery_connect_timeout_seconds,
        ),
    ]


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
    runs: RunStore
    ingest: Ingest
    telemetry: Telemetry
    tracing: Tracing

    @classmethod
    def build(
        cls,
        settings: Settings,
        redis: Redis,
        extra_types: Sequence[DestinationType] = (),
        tracing: Tracing | None = None,
        telemetry: Telemetry | None = None,
    ) -> Deps:
        """`tracing`: else as the OTEL_* variables say (off unless they ask); `telemetry`:
        the metrics the Redis client already counts its errors into, else new ones."""
        keys = Keys(settings.deployment_id, spread=is_cluster(redis))
        cipher = Cipher(settings.aes_encryption_secret, settings.aes_encryption_secret_previous)
        registry = build_registry(settings, extra_types)
        store = Store(
            redis, keys, cipher, settings.max_destinations_per_tenant, settings.delivery_partitions
        )
        queue = _queue(settings, redis, keys)
        destinations = DestinationCache(registry, cipher)
        telemetry = telemetry or Telemetry(per_tenant=settings.metrics_per_tenant)
        tracing = tracing or Tracing.from_env(os.environ)
        return cls(
            settings=settings,
            redis=redis,
            keys=keys,
            cipher=cipher,
            registry=registry,
            store=store,
            queue=queue,
            destinations=destinations,
            history=History(redis, keys, settings.delivery_partitions),
            tokens=Tokens(settings.api_jwt_secret, settings.api_jwt_ttl_seconds),
            endpoints=EndpointPolicy(settings.destinations_allow_private_endpoints),
            flows=FlowStore(redis, keys, cipher),
            sources=SourceState(
                redis, keys, settings.flow_run_window_seconds, settings.event_retention_seconds
            ),
            runs=RunStore(redis, keys, int(settings.flow_run_window_seconds * 1000)),
            ingest=Ingest(store, queue, destinations, registry, telemetry, tracing),
            telemetry=telemetry,
            tracing=tracing,
        )


DEPS = web.AppKey("deps", Deps)


def _queue(settings: Settings, redis: Redis, keys: Keys) -> Queue:
    return Queue(
        redis,
        keys,
        settings.delivery_partitions,
        settings.event_retention_seconds,
        settings.attempts_max_per_destination,
        settings.log_max_per_tenant,
        settings.log_max_total,
        ReplicaWait(settings.redis_wait_replicas, settings.redis_wait_timeout_ms),
        settings.delivery_ordering_lanes,
    )
