"""RabbitMQ's harness: a topic exchange of its own on the session's real broker, reached
through a TCP proxy, and a queue bound to it that a consumer (in the harness's own
thread, see tests/servers/rabbitmq.py) drains into `messages`.

Failures are the broker's own: a deleted exchange (NOT_FOUND: permanent), a stopped
broker (the proxy refuses connections: retried), and for partial batch failures a queue
capped with `x-overflow: reject-publish`, which makes the broker nack the publishes that
find it full while its consumer drains it one message at a time (each nacked record is
retried alone). Who published each message and how often each record was published
(nacked attempts included) come from the broker's firehose tracer."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from outpost.destinations.base import Kind
from tests.contract.harnesses.base import Harness
from tests.servers.rabbitmq import BrokerSide, RabbitServer, TcpProxy

TRACE_EXCHANGE = "amq.rabbitmq.trace"


class RabbitMQHarness(Harness):
    type = "rabbitmq"
    codes = {Kind.RETRY: "connection_refused", Kind.PERMANENT: "exchange_not_found"}
    bad_values = [
        ("config.server_url", "amqp://broker:5672"),
        ("config.exchange", "événements"),
        ("config.tls", "maybe"),
        ("credentials.password", "  "),
    ]

    def __init__(self, server: RabbitServer):
        self.server = server
        self.exchange = f"c-{uuid.uuid4().hex[:12]}"
        self.side = BrokerSide()
        self.proxy = TcpProxy(server.port)
        self.messages: list[AbstractIncomingMessage] = []
        self.traces: list[dict[str, Any]] = []  # the firehose's publish.<exchange> headers
        self.connection: AbstractConnection | None = None
        self.channel: AbstractChannel | None = None
        self.deleted = False  # the exchange, by fail(PERMANENT)

    async def start(self) -> RabbitMQHarness:
        self.side.run(self._start())
        return self

    async def _start(self) -> None:
        await self.proxy.up()
        self.connection = await aio_pika.connect(self.server.amqp_url())
        self.channel = await self.connection.channel()
        await self.channel.set_qos(prefetch_count=1)  # one at a time: a capped queue fills
        trace = await self.channel.declare_queue(exclusive=True)
        await trace.bind(TRACE_EXCHANGE, f"publish.{self.exchange}")
        await trace.consume(self._traced, no_ack=True)
        await self._declare(arguments=None)

    async def _declare(self, arguments: dict[str, Any] | None) -> None:
        assert self.channel is not None
        exchange = await self.channel.declare_exchange(self.exchange, "topic")
        queue = await self.channel.declare_queue(exclusive=True, arguments=arguments)
        await queue.bind(exchange, "#")
        await queue.consume(self._received)

    async def _received(self, message: AbstractIncomingMessage) -> None:
        self.messages.append(message)
        await message.ack()

    async def _traced(self, message: AbstractIncomingMessage) -> None:
        self.traces.append(dict(message.headers))

    # -- what the suite asks ---------------------------------------------------------
    def body(self, **config: Any) -> dict[str, Any]:
        return {
            "type": "rabbitmq",
            "topics": ["orders"],
            "config": {
                "server_url": f"127.0.0.1:{self.proxy.port}",
                "exchange": self.exchange,
                **config,
            },
            "credentials": self.credentials(),
        }

    def credentials(self, rotated: bool = False) -> dict[str, Any]:
        user = "rotated" if rotated else "outpost"
        return {"username": user, "password": self.server.users[user]}

    def received(self, expect: int) -> list[tuple[str, bytes]]:
        _wait_for(lambda: len(self.messages) >= expect)
        return [(str(m.headers["event-id"]), m.body) for m in self.messages]

    def identities(self) -> list[str]:
        self._settle_traces()
        return [str(t["user"]) for t in self.traces]

    def identity(self, credentials: dict[str, Any]) -> str:
        return str(credentials["username"])

    def fail(self, kind: Kind) -> None:
        if kind is Kind.RETRY:
            self.side.run(self.proxy.down())
        else:
            self.side.run(self._delete_exchange())

    async def _delete_exchange(self) -> None:
        assert self.channel is not None
        await self.channel.exchange_delete(self.exchange)
        self.deleted = True

    def heal(self) -> None:
        self.side.run(self._heal())

    async def _heal(self) -> None:
        if self.proxy.server is None:
            await self.proxy.up()
        if self.deleted:  # the exchange again, with a fresh queue bound to it
            await self._declare(arguments=None)
            self.deleted = False

    def fail_some_records(self, keys: list[str]) -> None:
        """The exchange's queue is replaced by one that holds 10 ready messages at most and
        nacks publishes beyond that; its consumer takes one message at a time."""
        self.side.run(self._capped())

    async def _capped(self) -> None:
        assert self.channel is not None
        await self.channel.exchange_delete(self.exchange)  # the old queue's binding goes too
        await self._declare(arguments={"x-max-length": 10, "x-overflow": "reject-publish"})

    def failed_records(self) -> Counter[str]:
        """Records published more than once: each extra publish was a nack."""
        self._settle_traces()
        published = Counter(str(t["properties"]["headers"]["event-id"]) for t in self.traces)
        return Counter({key: n - 1 for key, n in published.items() if n > 1})

    def _settle_traces(self) -> None:
        """Trace messages trail the publishes: wait until none has come for 0.3 s."""
        seen, quiet_since = -1, time.monotonic()
        while time.monotonic() - quiet_since < 0.3:
            if len(self.traces) != seen:
                seen, quiet_since = len(self.traces), time.monotonic()
            time.sleep(0.02)

    async def close(self) -> None:
        self.side.run(self._close())
        self.side.stop()

    async def _close(self) -> None:
        await self.proxy.down()
        if self.connection is not None:
            await self.connection.close()


def _wait_for(done: Any, timeout: float = 20.0) -> None:
    """Messages arrive in the harness's thread; a little time for the last ones."""
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.05)  # and for any extra copy to show itself
