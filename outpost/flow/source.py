"""The Kinesis source reader: every enabled flow's stream, read into the tenant's pipeline.

For each enabled flow, each shard is read by one reader across all processes (a lease in
Redis that a crashed process loses after `lease_ms`). The first read starts at
TRIM_HORIZON (`reset: earliest`) or at the flow's creation time (`reset: latest`, as
AT_TIMESTAMP, so a restart before the first record misses nothing); later reads start
AFTER_SEQUENCE_NUMBER of the checkpoint. A closed shard is drained before its children.
Each record becomes an event whose id is derived from (flow, stream, shard, sequence
number), so a re-read after a crash is deduplicated by publish; the checkpoint moves only
after the events are in Redis. Records that are not valid JSON (or not valid xdm) are kept
as failed records and never block the shard. At most 5 GetRecords calls/s per shard.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError

from outpost import exactjson
from outpost.deps import Deps
from outpost.destinations.aws.redirects import NoRedirectSession
from outpost.errors import DomainError
from outpost.flow.connectors import guard, kinesis_client
from outpost.models import Event

log = structlog.get_logger("outpost.source")
SHARD_END = "SHARD_END"
MIN_CALL_INTERVAL = 0.2  # Kinesis allows 5 GetRecords calls/s per shard


class LeaseLost(Exception):
    """Another reader holds the shard now; this one stops without moving the checkpoint."""


@dataclass(frozen=True)
class Plan:
    """What one flow reads and where its events go."""

    org: str
    sandbox: str
    flow_id: str
    stream: str
    data_type: str
    reset: str
    topic: str
    created_ms: int
    auth: dict[str, Any]


def event_for(plan: Plan, shard_id: str, record: dict[str, Any]) -> Event | str:
    """The event for one record, or why it failed."""
    try:
        doc = exactjson.loads(record["Data"])  # every number keeps its digits
    except (ValueError, RecursionError):
        return "not valid JSON"
    if plan.data_type == "xdm":
        if not isinstance(doc, dict) or "header" not in doc or "body" not in doc:
            return "not valid xdm: an object with header and body is required"
        doc = doc["body"]
    if not isinstance(doc, dict):
        return "the data must be a JSON object"
    seq = record["SequenceNumber"]
    digest = hashlib.sha256(f"{plan.flow_id}\0{plan.stream}\0{shard_id}\0{seq}".encode())
    arrived = record.get("ApproximateArrivalTimestamp") or datetime.now(UTC)
    return Event(
        id=f"kin_{digest.hexdigest()[:40]}",
        tenant_id=plan.org,
        topic=plan.topic,
        time=arrived if arrived.tzinfo else arrived.replace(tzinfo=UTC),
        data=doc,
        metadata={
            "source-stream": plan.stream,
            "source-shard-id": shard_id,
            "source-sequence-number": seq,
            "source-partition-key": record.get("PartitionKey", ""),
        },
    )


class SourceReader:
    def __init__(
        self,
        deps: Deps,
        owner: str | None = None,
        lease_ms: int = 10_000,
        poll_seconds: float = 1.0,
        discover_seconds: float = 2.0,
        batch: int = 1000,
    ):
        self.deps = deps
        self.owner = owner or uuid.uuid4().hex
        self.lease_ms = lease_ms
        self.poll = poll_seconds
        self.discover = discover_seconds
        self.batch = batch
        self._stopping = asyncio.Event()
        self._flows: dict[str, asyncio.Task[None]] = {}
        self.state = deps.sources

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        log.info("source_reader_started", owner=self.owner)
        try:
            while not self._stopping.is_set():
                try:
                    await self._reconcile()
                except (OSError, ConnectionError) as exc:
                    log.warning("source_discovery_failed", error=str(exc))
                await self._sleep(self.discover)
        finally:
            for task in self._flows.values():
                task.cancel()
            await asyncio.gather(*self._flows.values(), return_exceptions=True)

    async def _sleep(self, seconds: float) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _reconcile(self) -> None:
        """Start a runner for each enabled flow; stop those of disabled or deleted flows."""
        wanted = {}
        for org, sandbox, fid in await self.deps.flows.flow_ids():
            plan = await self.plan(org, sandbox, fid)
            if plan is not None:
                wanted[fid] = plan
        for fid in set(self._flows) - set(wanted):
            self._flows.pop(fid).cancel()
        for fid, plan in wanted.items():
            if fid not in self._flows or self._flows[fid].done():
                self._flows[fid] = asyncio.create_task(self._run_flow(plan))

    async def plan(self, org: str, sandbox: str, fid: str) -> Plan | None:
        flows = self.deps.flows
        flow = await flows.get("flows", org, sandbox, fid)
        if flow is None or flow.get("state") != "enabled":
            return None
        source = await flows.get("sourceConnections", org, sandbox, flow["sourceConnectionIds"][0])
        target = await flows.get("targetConnections", org, sandbox, flow["targetConnectionIds"][0])
        base = source and await flows.get("connections", org, sandbox, source["baseConnectionId"])
        if not (source and target and base):
            return None
        return Plan(
            org,
            sandbox,
            fid,
            source["params"]["stream"],
            source["params"].get("dataType", "raw"),
            source["params"].get("reset", "latest"),
            target["params"]["topic"],
            int(flow["createdAt"]),
            base["auth"]["params"],
        )

    # -- one flow ---------------------------------------------------------------------------
    async def _run_flow(self, plan: Plan) -> None:
        shards: dict[str, asyncio.Task[None]] = {}
        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(kinesis_client(plan.auth, _READ_CONFIG))
            try:
                while not self._stopping.is_set():
                    if not await self._endpoint_allowed(plan):
                        return  # shards stop; the next discovery checks again
                    try:
                        await self._start_shards(plan, client, shards)
                    except (ClientError, BotoCoreError, OSError) as exc:
                        log.warning("source_describe_failed", flow_id=plan.flow_id, error=str(exc))
                    await self._sleep(self.discover)
            finally:
                for task in shards.values():
                    task.cancel()
                await asyncio.gather(*shards.values(), return_exceptions=True)

    async def _endpoint_allowed(self, plan: Plan) -> bool:
        """The SSRF guard at each discovery round: the policy or DNS may have changed."""
        try:
            await guard(self.deps.endpoints, plan.auth)
        except DomainError as exc:
            log.warning("source_endpoint_forbidden", flow_id=plan.flow_id, error=exc.message)
            return False
        return True

    async def _start_shards(
        self, plan: Plan, client: Any, running: dict[str, asyncio.Task[None]]
    ) -> None:
        shards = await describe_shards(client, plan.stream)
        present = {s["ShardId"] for s in shards}
        checkpoints = await self.state.checkpoints(plan.flow_id)
        done = {sid for sid, seq in checkpoints.items() if seq == SHARD_END}
        for shard in shards:
            sid = shard["ShardId"]
            parents = {shard.get("ParentShardId"), shard.get("AdjacentParentShardId")}
            parents = {p for p in parents if p and p in present}
            if sid in done or not parents <= done:
                continue  # finished, or a parent still has records to give first
            if sid in running and not running[sid].done():
                continue
            if await self.state.lease(plan.flow_id, sid, self.owner, self.lease_ms):
                running[sid] = asyncio.create_task(self._read_shard(plan, client, shard))

    # -- one shard --------------------------------------------------------------------------
    async def _read_shard(self, plan: Plan, client: Any, shard: dict[str, Any]) -> None:
        sid = shard["ShardId"]
        ending = shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
        position: str | None = await self._checkpoint_of(plan, sid)
        try:
            iterator = await self._iterator(plan, client, sid)
            while iterator and not self._stopping.is_set():
                if not await self.state.lease(plan.flow_id, sid, self.owner, self.lease_ms):
                    log.warning("source_lease_lost", flow_id=plan.flow_id, shard_id=sid)
                    return
                started = time.monotonic()
                try:
                    page = await client.get_records(ShardIterator=iterator, Limit=self.batch)
                except ClientError as exc:
                    iterator = await self._recover(plan, client, sid, exc)
                    continue
                records = page.get("Records", [])
                if records:
                    await self._deliver(plan, sid, records)
                    position = records[-1]["SequenceNumber"]
                iterator = page.get("NextShardIterator")
                if iterator is None or (not records and _past(position, ending)):
                    await self._mark(plan, sid, SHARD_END, 0, 0, 0)
                    log.info("source_shard_drained", flow_id=plan.flow_id, shard_id=sid)
                    return
                pause = self.poll if not records else MIN_CALL_INTERVAL
                await self._sleep(max(0.0, pause - (time.monotonic() - started)))
        except LeaseLost:
            log.warning("source_lease_lost", flow_id=plan.flow_id, shard_id=sid)
        except (ClientError, BotoCoreError, OSError) as exc:  # retried at the next discovery
            log.warning("source_shard_failed", flow_id=plan.flow_id, shard_id=sid, error=str(exc))
        finally:
            await self.state.release(plan.flow_id, sid, self.owner)

    async def _checkpoint_of(self, plan: Plan, sid: str) -> str | None:
        return await self.state.checkpoint_of(plan.flow_id, sid)

    async def _iterator(self, plan: Plan, client: Any, sid: str) -> str | None:
        seq = await self._checkpoint_of(plan, sid)
        kwargs: dict[str, Any] = {"StreamName": plan.stream, "ShardId": sid}
        if seq is not None:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=seq)
        elif plan.reset == "earliest":
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        else:  # latest: from the flow's creation on, the same after any restart
            kwargs.update(
                ShardIteratorType="AT_TIMESTAMP",
                Timestamp=datetime.fromtimestamp(plan.created_ms / 1000, UTC),
            )
        result: str | None = (await client.get_shard_iterator(**kwargs)).get("ShardIterator")
        return result

    async def _recover(self, plan: Plan, client: Any, sid: str, exc: ClientError) -> str | None:
        code = exc.response.get("Error", {}).get("Code", "")
        log.warning("source_get_records_failed", flow_id=plan.flow_id, shard_id=sid, code=code)
        await self._sleep(1.0 if code != "ExpiredIteratorException" else 0)
        return await self._iterator(plan, client, sid)

    async def _deliver(self, plan: Plan, sid: str, records: list[dict[str, Any]]) -> None:
        """Publish every record, keep failed ones, then move the checkpoint: in that order,
        so a crash in between re-reads (and deduplicates) rather than skips."""
        published = failed = 0
        for record in records:
            event = event_for(plan, sid, record)
            if isinstance(event, str):
                failed += 1
                await self._keep_failed(plan, sid, record, event)
                continue
            try:
                await self.deps.ingest.publish(event)
                published += 1
            except DomainError as exc:  # the tenant is gone: nothing to publish into
                failed += 1
                await self._keep_failed(plan, sid, record, exc.message)
        last = records[-1]["SequenceNumber"]
        await self._mark(plan, sid, last, len(records), published, failed)

    async def _mark(
        self,
        plan: Plan,
        sid: str,
        position: str,
        read: int,
        published: int,
        failed: int,
    ) -> None:
        counts = (read, published, failed)
        if not await self.state.checkpoint(plan.flow_id, sid, self.owner, position, counts):
            raise LeaseLost(sid)

    async def _keep_failed(self, plan: Plan, sid: str, record: dict[str, Any], reason: str) -> None:
        data = record["Data"][:1024].decode("utf-8", errors="replace")
        await self.state.keep_failed(
            plan.flow_id,
            {
                "shard_id": sid,
                "sequence_number": record["SequenceNumber"],
                "reason": reason,
                "data": data,
            },
        )


def _past(position: str | None, ending: str | None) -> bool:
    """A closed shard read to its ending sequence number is drained, even on servers that
    keep handing out iterators for it."""
    if ending is None:
        return False
    return int(position or 0) >= int(ending)


# a longer read timeout than connection tests: the reader polls for as long as it runs
# (kinesis-local, for one, can take seconds to answer under load)
_READ_CONFIG = AioConfig(
    connect_timeout=5,
    read_timeout=30,
    retries={"total_max_attempts": 2},
    http_session_cls=NoRedirectSession,  # a tenant's endpoint may not redirect us
)


async def describe_shards(client: Any, stream: str) -> list[dict[str, Any]]:
    """Every shard, with DescribeStream (the permission the seed's users grant), paged."""
    shards: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"StreamName": stream}
    while True:
        desc = (await client.describe_stream(**kwargs))["StreamDescription"]
        shards += desc["Shards"]
        if not desc.get("HasMoreShards") or not desc["Shards"]:
            return shards
        kwargs["ExclusiveStartShardId"] = shards[-1]["ShardId"]
