"""Publish calls on Google's asyncio Pub/Sub client (`pubsub_v1.PublisherAsyncClient`,
grpc.aio): one client per endpoint and service account, built on first use (a PATCH of
the key makes a new one on the next send). `publish` sends one Publish call for the
messages it is given (at most `batch_max_records` and 10 MB per call); each call is tried
once per attempt (`retry=None`): the worker's schedule does the retrying. The threaded
batching `PublisherClient` is not used: it takes attributes as keyword arguments, and
Outpost's `topic` attribute collides with its own `topic` parameter.

Where it connects (`config.endpoint`): none -> Google, TLS, the service account; an
`https://` URL -> that host, TLS, the service account; `host:port` -> an emulator, plain
text and no credentials as in Outpost, except on a loopback address, where the service
account's self-signed JWT is sent (gRPC's local credentials: it never leaves the machine),
so a local server can see who published."""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import grpc
from google.api_core.client_options import ClientOptions
from google.auth import exceptions as auth
from google.auth.transport import grpc as auth_grpc
from google.auth.transport.requests import Request
from google.oauth2 import service_account
from google.pubsub_v1 import PublisherAsyncClient, PubsubMessage
from google.pubsub_v1.services.publisher.transports import PublisherGrpcAsyncIOTransport

from outpost.destinations.endpoints import EndpointPolicy, ForbiddenEndpoint
from outpost.destinations.gcp_pubsub.config import endpoint_address
from outpost.destinations.gcp_pubsub.format import Record
from outpost.errors import PermanentError
from outpost.models import Destination

SCOPE = "https://www.googleapis.com/auth/pubsub"
CACHE_SIZE = 64


class Publishers:
    def __init__(self, timeout: float, policy: EndpointPolicy | None = None):
        self.timeout = timeout
        self.policy = policy or EndpointPolicy()
        self._cache: OrderedDict[str, PublisherAsyncClient] = OrderedDict()

    async def publish(self, records: Sequence[Record], destination: Destination) -> list[str]:
        """One Publish call; the message ids, in order."""
        cfg = destination.config
        await self.check(cfg.get("endpoint"))
        client = await self.client(destination)
        messages = [PubsubMessage(data=r.data, attributes=dict(r.attributes)) for r in records]
        answer = await client.publish(
            topic=f"projects/{cfg['project_id']}/topics/{cfg['topic']}",
            messages=messages,
            retry=None,
            timeout=self.timeout,
        )
        return list(answer.message_ids)

    async def check(self, endpoint: str | None) -> None:
        found = endpoint_address(endpoint) if endpoint else None
        if found is None:
            return
        try:
            await self.policy.check(f"grpc://{found[0]}:{found[1]}", at_send=True)
        except ForbiddenEndpoint as exc:
            raise PermanentError("endpoint_forbidden", str(exc)) from None

    async def client(self, destination: Destination) -> PublisherAsyncClient:
        key = cache_key(destination)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        client = build(destination)
        self._cache[key] = client
        while len(self._cache) > CACHE_SIZE:
            _, old = self._cache.popitem(last=False)
            await old.transport.close()
        return client

    async def close(self) -> None:
        clients = list(self._cache.values())
        self._cache.clear()
        for client in clients:
            await client.transport.close()


def cache_key(destination: Destination) -> str:
    parts = [destination.config.get("endpoint") or ""]
    parts.append(destination.credentials["service_account_json"])
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def build(destination: Destination) -> PublisherAsyncClient:
    endpoint = destination.config.get("endpoint")
    found = endpoint_address(endpoint) if endpoint else None
    if found is None or found[2]:  # Google, or a TLS endpoint: the service account
        creds = credentials(destination.credentials["service_account_json"])
        options = ClientOptions(api_endpoint=f"{found[0]}:{found[1]}") if found else None
        return PublisherAsyncClient(credentials=creds, client_options=options)
    host, port, _ = found
    creds = None
    if loopback(host):
        try:
            creds = credentials(destination.credentials["service_account_json"])
        except auth.GoogleAuthError:
            creds = None  # an emulator takes any credentials, or none
    channel = emulator_channel(f"{host}:{port}", creds)
    return PublisherAsyncClient(transport=PublisherGrpcAsyncIOTransport(channel=channel))


def credentials(raw: str) -> Any:
    try:
        return service_account.Credentials.from_service_account_info(
            json.loads(raw), scopes=[SCOPE], always_use_jwt_access=True
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise auth.MalformedError(f"not a usable service account key: {exc}") from None


def emulator_channel(target: str, creds: Any) -> grpc.aio.Channel:
    if creds is None:
        return grpc.aio.insecure_channel(target)
    plugin = auth_grpc.AuthMetadataPlugin(creds, Request())
    channel_creds = grpc.composite_channel_credentials(
        grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP),
        grpc.metadata_call_credentials(plugin),
    )
    return grpc.aio.secure_channel(target, channel_creds)


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
