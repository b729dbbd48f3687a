"""The Google Pub/Sub emulator (the Google Cloud CLI component, Java) for the session, and
a gRPC proxy before it that notes who published (the service account in the bearer JWT)
and fails Publish calls on demand. Both on 127.0.0.1, started and stopped here.

The emulator is installed on these machines with the Google Cloud CLI; where it is not,
the fixture fails saying how to install it (it does not skip)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.api_core.exceptions import DeadlineExceeded
from google.cloud import pubsub_v1
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

from outpost.dev import devstack

EMULATOR = Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator")
PROJECT = "outpost-test"
PUBLISH = "/google.pubsub.v1.Publisher/Publish"


def emulator_binary() -> str:
    found = os.environ.get("PUBSUB_EMULATOR_BIN") or (str(EMULATOR) if EMULATOR.exists() else "")
    found = found or shutil.which("cloud-pubsub-emulator") or ""
    if not found:
        raise RuntimeError(
            f"the Pub/Sub emulator is missing (looked for {EMULATOR} and PUBSUB_EMULATOR_BIN): "
            "install the Google Cloud CLI with its component, e.g. "
            "`apt-get install google-cloud-cli-pubsub-emulator`"
        )
    if not shutil.which("java"):
        raise RuntimeError("the Pub/Sub emulator needs Java 11+: `apt-get install default-jre`")
    return found


def service_account(email: str) -> dict[str, str]:
    """A service account key of our own (a fresh RSA key): the emulator checks nothing,
    the proxy reads who signed."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": email.split("@")[0],
        "private_key": pem.decode(),
        "client_email": email,
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


class Proxy(grpc.GenericRpcHandler):
    """Relays every unary call to the emulator. `identities`: the JWT issuer of each
    Publish; `fail_with`: a status every Publish gets; `fail_next`: how many more Publish
    calls fail (UNAVAILABLE), their messages' event ids counted in `refused`."""

    def __init__(self, upstream: str):
        self.channel = grpc.insecure_channel(upstream)
        self.identities: list[str] = []
        self.fail_with: grpc.StatusCode | None = None
        self.fail_next = 0
        self.refused: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.server = grpc.server(ThreadPoolExecutor(8))
        self.server.add_generic_rpc_handlers([self])
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def service(self, details: Any) -> Any:
        method, metadata = details.method, list(details.invocation_metadata)

        def relay(request: bytes, context: grpc.ServicerContext) -> bytes:
            if method == PUBLISH:
                self._publish(request, dict(metadata), context)
            call: Callable[..., bytes] = self.channel.unary_unary(method)
            try:
                return call(request, metadata=[(k, v) for k, v in metadata if k != "authorization"])
            except grpc.RpcError as exc:  # the emulator's answer, as it gave it
                context.abort(exc.code(), exc.details())
                raise

        return grpc.unary_unary_rpc_method_handler(relay)

    def _publish(self, request: bytes, metadata: dict[str, str], context: Any) -> None:
        with self.lock:
            self.identities.append(issuer(metadata.get("authorization", "")))
            if self.fail_with is not None:
                context.abort(self.fail_with, "injected by the test proxy")
            if self.fail_next > 0:
                self.fail_next -= 1
                sent = pubsub_v1.types.PublishRequest.deserialize(request)
                self.refused.update(m.attributes["event-id"] for m in sent.messages)
                context.abort(grpc.StatusCode.UNAVAILABLE, "injected by the test proxy")

    def heal(self) -> None:
        self.fail_with, self.fail_next = None, 0


def issuer(authorization: str) -> str:
    """The `iss` of a bearer JWT (unverified: the test only asks who signed)."""
    if not authorization.startswith("Bearer "):
        return ""
    payload = authorization.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["iss"])


class PubSubServer:
    def __init__(self) -> None:
        port = devstack.free_port()
        argv = [emulator_binary(), "--host=127.0.0.1", f"--port={port}"]
        self.emulator = devstack.Server(argv, port)
        self.host = f"127.0.0.1:{port}"
        self.proxy = Proxy(self.host)
        self.publisher: Any = None
        self.subscriber: Any = None

    def start(self) -> PubSubServer:
        self.emulator.start(timeout=60)
        self.proxy.server.start()
        self.publisher = pubsub_v1.PublisherClient(
            transport=PublisherGrpcTransport(channel=grpc.insecure_channel(self.host))
        )
        self.subscriber = pubsub_v1.SubscriberClient(
            transport=SubscriberGrpcTransport(channel=grpc.insecure_channel(self.host))
        )
        return self

    def stop(self) -> None:
        self.proxy.server.stop(None)
        self.proxy.channel.close()
        if self.publisher is not None:
            self.publisher.stop()
            self.publisher.transport.close()
            self.subscriber.close()
        self.emulator.stop()

    @property
    def proxy_address(self) -> str:
        return f"127.0.0.1:{self.proxy.port}"

    def create_topic(self, topic: str) -> str:
        """The topic and a subscription that sees everything published to it from now."""
        self.publisher.create_topic(name=f"projects/{PROJECT}/topics/{topic}")
        sub = f"projects/{PROJECT}/subscriptions/{topic}-all"
        self.subscriber.create_subscription(name=sub, topic=f"projects/{PROJECT}/topics/{topic}")
        return sub

    def delete_topic(self, topic: str) -> None:
        self.publisher.delete_topic(topic=f"projects/{PROJECT}/topics/{topic}")
        self.subscriber.delete_subscription(
            subscription=f"projects/{PROJECT}/subscriptions/{topic}-all"
        )

    def read(self, subscription: str, expect: int, timeout: float = 15.0) -> list[Any]:
        """Every message the subscription holds (acknowledged as read), once at least
        `expect` are there or `timeout` passed, then one more pull for late copies."""
        found: list[Any] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                got = self.subscriber.pull(
                    subscription=subscription, max_messages=1000, timeout=1.0
                )
            except DeadlineExceeded:
                got = None
            if got is not None and got.received_messages:
                found += [m.message for m in got.received_messages]
                ids = [m.ack_id for m in got.received_messages]
                self.subscriber.acknowledge(subscription=subscription, ack_ids=ids)
            elif len(found) >= expect or time.monotonic() > deadline:
                return found
            else:
                time.sleep(0.1)


@pytest.fixture(scope="session")
def pubsub_server() -> Iterator[PubSubServer]:
    server = PubSubServer().start()
    yield server
    server.stop()
