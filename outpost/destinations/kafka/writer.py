"""Producers: one idempotent aiokafka producer (acks=all) per connection (brokers, TLS,
SASL mechanism, credentials, topic, linger), started on first use and shared by every send
of that connection; a PATCH of the credentials makes a new one on the next send.

An idempotent aiokafka producer retries a batch the broker refused with a retriable error
until it lands, never giving up by itself, and a batch the broker rejected leaves a gap in
the partition's sequence that fails every later batch. So a producer is retired (a fresh
producer id next time) after any failed message: at once, failing what it still holds,
when a send outlived the delivery timeout; after flushing otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka import errors as kafka
from aiokafka.conn import create_conn
from aiokafka.helpers import create_ssl_context
from aiokafka.structs import RecordMetadata

from outpost.destinations.endpoints import EndpointPolicy, ForbiddenEndpoint
from outpost.destinations.kafka.config import DEFAULT_BATCH_LINGER_MS, parse_brokers
from outpost.destinations.kafka.format import Record
from outpost.errors import PermanentError
from outpost.models import Destination

CACHE_SIZE = 64
BATCH_BYTES = 512 * 1024
MECHANISM = {"plain": "PLAIN", "scram-sha-256": "SCRAM-SHA-256", "scram-sha-512": "SCRAM-SHA-512"}


class Producers:
    def __init__(self, timeout: float, policy: EndpointPolicy | None = None):
        self.timeout = timeout
        self.policy = policy or EndpointPolicy()
        self._cache: OrderedDict[str, asyncio.Task[AIOKafkaProducer]] = OrderedDict()
        self._retiring: set[asyncio.Task[None]] = set()
        self._stopping: set[AIOKafkaProducer] = set()
        self._tls: ssl.SSLContext | None = None

    async def send(
        self, record: Record, destination: Destination, batched: bool
    ) -> Coroutine[Any, Any, RecordMetadata]:
        """Hand one message to its producer (the endpoint guard first); returns what
        waits for the broker's answer. One deadline (the delivery timeout) covers starting
        the producer, handing the message over and the broker's answer."""
        deadline = asyncio.get_running_loop().time() + self.timeout
        async with asyncio.timeout_at(deadline):
            key, producer = await self.producer(destination, batched)
        try:
            async with asyncio.timeout_at(deadline):
                await self.check_brokers(producer)
                sent = await producer.send(
                    destination.config["topic"],
                    record.data,
                    key=record.key.encode(),
                    headers=list(record.headers),
                )
        except TimeoutError:  # no metadata or no buffer space in time
            self.retire(key, producer, at_once=True)
            raise
        return self._result(key, producer, sent, deadline)

    async def _result(
        self,
        key: str,
        producer: AIOKafkaProducer,
        sent: asyncio.Future[RecordMetadata],
        deadline: float,
    ) -> RecordMetadata:
        try:
            async with asyncio.timeout_at(deadline):
                return await sent
        except TimeoutError:
            self.retire(key, producer, at_once=True)
            raise
        except BaseException:
            self.retire(key, producer, at_once=False)
            raise

    async def producer(self, destination: Destination, batched: bool) -> tuple[str, Any]:
        key = cache_key(destination, batched)
        task = self._cache.get(key)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = asyncio.ensure_future(self._start(destination, batched))
            self._cache[key] = task
            self._evict()
        self._cache.move_to_end(key)
        try:
            return key, await asyncio.shield(task)
        except BaseException:
            if self._cache.get(key) is task:
                del self._cache[key]
            raise

    async def _start(self, destination: Destination, batched: bool) -> AIOKafkaProducer:
        cfg, creds = destination.config, destination.credentials
        brokers = parse_brokers(cfg["brokers"])
        await self.check_hosts(brokers)
        linger = cfg.get("batch_linger_ms")
        options: dict[str, Any] = {
            "bootstrap_servers": brokers,
            "client_id": "outpost",
            "acks": "all",
            "enable_idempotence": True,
            # below our own deadline, so the client says why (no metadata, no topic) first
            "request_timeout_ms": int(self.timeout * 800),
            "linger_ms": (DEFAULT_BATCH_LINGER_MS if linger is None else linger) if batched else 0,
            # a batching destination's partition batches may fill a whole request (1 MiB)
            "max_batch_size": BATCH_BYTES if batched else 16384,
            "security_protocol": "SASL_SSL" if cfg.get("tls") == "true" else "SASL_PLAINTEXT",
            "ssl_context": self.tls() if cfg.get("tls") == "true" else None,
            "sasl_mechanism": MECHANISM[cfg["sasl_mechanism"]],
            "sasl_plain_username": creds["username"],
            "sasl_plain_password": creds["password"],
        }
        producer = AIOKafkaProducer(**options)
        try:
            async with asyncio.timeout(self.timeout):
                await producer.start()
        except kafka.KafkaConnectionError as exc:
            await producer.stop()
            raise exc from await why_not(options)
        except BaseException:
            await producer.stop()
            raise
        return producer

    def tls(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = create_ssl_context()
        return self._tls

    async def check_hosts(self, brokers: list[str]) -> None:
        """The endpoint guard, for the brokers a tenant named and those the cluster
        advertises (a broker's metadata could send us anywhere)."""
        for broker in brokers:
            try:
                await self.policy.check(f"kafka://{broker}", at_send=True)
            except ForbiddenEndpoint as exc:
                raise PermanentError("endpoint_forbidden", f"broker {broker}: {exc}") from None

    async def check_brokers(self, producer: AIOKafkaProducer) -> None:
        if self.policy.allow_private:
            return
        advertised = producer.client.cluster.brokers()
        await self.check_hosts([f"{b.host}:{b.port}" for b in advertised])

    def retire(self, key: str, producer: AIOKafkaProducer, at_once: bool) -> None:
        task = self._cache.get(key)
        if task is not None and _started(task) and task.result() is producer:
            del self._cache[key]
        if producer in self._stopping:  # the other messages of a failed batch
            return
        self._stopping.add(producer)
        stopping = asyncio.ensure_future(self._stop(producer, at_once))
        self._retiring.add(stopping)
        stopping.add_done_callback(self._retiring.discard)

    async def _stop(self, producer: AIOKafkaProducer, at_once: bool) -> None:
        if not at_once:
            try:
                async with asyncio.timeout(self.timeout):
                    await producer.flush()
            except TimeoutError:
                pass
        # what is still held would be retried for ever: it fails now (and is retried by
        # the worker, with a fresh producer id, on its schedule)
        producer._message_accumulator.fail_all(kafka.KafkaTimeoutError("producer retired"))
        with contextlib.suppress(Exception):  # its last errors belong to no send
            await producer.stop()
        self._stopping.discard(producer)

    def _evict(self) -> None:
        while len(self._cache) > CACHE_SIZE:
            _, task = self._cache.popitem(last=False)
            if _started(task):
                self.retire("", task.result(), at_once=False)

    async def close(self) -> None:
        for key, task in list(self._cache.items()):
            if _started(task):
                self.retire(key, task.result(), at_once=False)
            else:
                task.cancel()
        self._cache.clear()
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)


def _started(task: asyncio.Task[AIOKafkaProducer]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is None


def cache_key(destination: Destination, batched: bool) -> str:
    cfg, creds = destination.config, destination.credentials
    parts = [cfg["brokers"], cfg.get("tls") or "", cfg["sasl_mechanism"], cfg["topic"]]
    parts += [creds["username"], creds["password"], str(batched), str(cfg.get("batch_linger_ms"))]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


async def why_not(options: dict[str, Any]) -> BaseException | None:
    """aiokafka says only "Unable to bootstrap": one connection of our own to the first
    broker finds out what it met (a refused SASL login, a refused connection, TLS)."""
    host, _, port = options["bootstrap_servers"][0].rpartition(":")
    keys = ["client_id", "request_timeout_ms", "ssl_context", "security_protocol"]
    keys += ["sasl_mechanism", "sasl_plain_username", "sasl_plain_password"]
    try:
        conn = await create_conn(host.strip("[]"), int(port), **{k: options[k] for k in keys})
    except BaseException as exc:
        return exc
    conn.close()
    return None
