"""EventBridge's harness: a bus on moto behind the fault proxy, with a rule that sends
every entry of source `outpost` to an SQS queue. What arrived: the events moto routed to
that queue; their bytes are the Detail the proxy saw moto accept for the same event
(moto re-serializes the detail it routes), checked equal to what moto routed as JSON."""

from __future__ import annotations

import json
import uuid
from typing import Any

from outpost.destinations.base import Kind
from tests.contract.harnesses.aws import AWSHarness, moto_client
from tests.contract.harnesses.sqs import drain


class EventBridgeHarness(AWSHarness):
    type = "aws_eventbridge"
    codes = {Kind.RETRY: "throughput_exceeded", Kind.PERMANENT: "event_bus_not_found"}
    bad_values = [
        ("config.region", "mars"),
        ("config.endpoint", "ftp://x"),
        ("config.event_bus_name", "no spaces allowed"),
        ("config.batch_linger_ms", -1),
    ]

    def __init__(self, server_url: str, source: str = "outpost"):
        super().__init__(server_url)
        self.bus = f"c-{uuid.uuid4().hex[:12]}"
        self.sqs, events = moto_client("sqs", server_url), moto_client("events", server_url)
        self.queue_url = self.sqs.create_queue(QueueName=self.bus)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        events.create_event_bus(Name=self.bus)
        pattern = json.dumps({"source": [source]})
        events.put_rule(Name="all", EventBusName=self.bus, EventPattern=pattern)
        target = {"Id": "queue", "Arn": arn["Attributes"]["QueueArn"]}
        events.put_targets(Rule="all", EventBusName=self.bus, Targets=[target])
        self._seen: list[dict[str, Any]] = []  # the events moto routed, read so far

    def body(self, **config: Any) -> dict[str, Any]:
        return {
            "type": self.type,
            "topics": ["orders"],
            "config": {
                "event_bus_name": self.bus,
                "region": "us-east-1",
                "endpoint": self.proxy.url,
                **config,
            },
            "credentials": self.credentials(),
        }

    def routed(self, expect: int) -> list[dict[str, Any]]:
        """The EventBridge events moto delivered to the rule's queue."""
        got = drain(self.sqs, self.queue_url, expect - len(self._seen))
        self._seen += [json.loads(m["Body"]) for m in got]
        return list(self._seen)

    def received(self, expect: int) -> list[tuple[str, bytes]]:
        out = []
        for event in self.routed(expect):
            eid = event["detail"]["metadata"]["event-id"]
            detail = self.proxy.accepted[eid]
            assert json.loads(detail) == event["detail"]
            out.append((eid, detail))
        return out
