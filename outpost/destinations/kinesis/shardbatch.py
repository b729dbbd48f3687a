"""Shard-aware PutRecords batching for one stream (one target and stream name).

Each record's shard is predicted from the stream's shard map (ListShards, listed again
when it is old, when a result lands on another shard than predicted, and after errors);
records queue per shard and leave as that shard's token bucket allows, so the stream's
per-shard limits are kept here instead of being hit and retried. A call goes out at once
while fewer than `MAX_INFLIGHT` are under way (an idle stream sends each record as it
comes); under load the records gather until a call returns, so batches grow with the load
(adaptive linger, never a fixed wait). Results are per entry: a throttled entry backs off
its shard's bucket and fails alone (the delivery retries it), as does every other failed
entry; the rest are delivered.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from outpost.destinations.aws import sigv4
from outpost.destinations.kinesis import shards as sh
from outpost.destinations.kinesis.aggregate import Aggregate
from outpost.destinations.kinesis.config import (
    MAX_BATCH_BYTES,
    MAX_BATCH_RECORDS,
    MAX_RECORD_BYTES,
)
from outpost.destinations.kinesis.format import Record
from outpost.errors import RetryableError

MAX_INFLIGHT = 4  # PutRecords calls under way per stream
THROTTLE_BACKOFF_S = 0.1  # a throttled shard's pause (its bucket is emptied too)
MAP_RETRY_S = 5.0  # after a failed ListShards
FIRST_MAP_WAIT_S = 0.5  # a new stream's first records wait this long at most for its map
# a shard at its limit is written every MIN_PACE_S at least (a call of ~20 records a
# shard), never a call per token as they trickle in
MIN_PACE_S = 0.02


Bucket = sh.TokenBucket | None


@dataclass(slots=True)
class Entry:
    record: Record
    waiter: asyncio.Future[dict[str, Any]]
    size: int
    shard: str | None


Unit = tuple[Record, list[Entry]]  # one PutRecords entry: a record, or an aggregate of several


class StreamBatcher:
    def __init__(
        self,
        http: sigv4.KinesisHTTP,
        target: sigv4.Target,
        stream: str,
        aggregation: bool = False,
    ):
        self.http, self.target, self.stream = http, target, stream
        self.aggregation = aggregation
        self.pending: dict[str | None, deque[Entry]] = {}
        self.buckets: dict[str, sh.TokenBucket] = {}
        self.map: sh.ShardMap | None = None
        self.max_records = MAX_BATCH_RECORDS
        self.inflight = 0
        self.queued = 0
        self._map_next = 0.0
        self._wake = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def add(self, record: Record, max_records: int) -> asyncio.Future[dict[str, Any]]:
        return self.add_many([record], max_records)[0]

    def add_many(
        self, records: list[Record], max_records: int
    ) -> list[asyncio.Future[dict[str, Any]]]:
        """The records into their shards' queues; a future per record."""
        new_future, shard_map = asyncio.get_running_loop().create_future, self.map
        waiters: list[asyncio.Future[dict[str, Any]]] = []
        for record in records:
            waiter: asyncio.Future[dict[str, Any]] = new_future()
            size = len(record.data) + len(record.partition_key.encode())
            shard = None
            if shard_map is not None:
                shard = shard_map.shard_for(sh.hash_key(record.partition_key, record.hash_key))
            queue = self.pending.get(shard)
            if queue is None:
                queue = self.pending[shard] = deque()
            queue.append(Entry(record, waiter, size, shard))
            waiters.append(waiter)
        self.queued += len(records)
        self.max_records = min(self.max_records, max_records)
        self._wake.set()
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._run())
        return waiters

    async def _run(self) -> None:
        if self.map is None and not self._map_next:  # the stream's first records wait
            self._map_next = time.monotonic() + MAP_RETRY_S  # a moment for the shard map
            await asyncio.wait({self._spawn(self._list())}, timeout=FIRST_MAP_WAIT_S)
        while self.queued:
            self._wake.clear()
            self._list_if_due()
            delay = None
            if self.inflight < MAX_INFLIGHT:
                taken_at = time.monotonic()
                batch, delay = self._take(taken_at)
                if batch:
                    self.inflight += 1
                    self._spawn(self._send(batch, taken_at))
                    continue
            if delay is not None:  # shards at their limit: gather a burst's worth, not one
                await asyncio.sleep(max(delay, MIN_PACE_S))
                continue
            await self._wake.wait()

    def _take(self, now: float) -> tuple[list[Unit], float | None]:
        """The next batch: from every shard's queue what its bucket allows now, within
        PutRecords' limits; else how long until a bucket allows the next record."""
        units: list[Unit] = []
        size, delay = 0, None
        for shard in list(self.pending):
            queue, bucket = self.pending[shard], self.buckets.get(shard) if shard else None
            if self.aggregation and shard is not None:
                size, wait, full = self._aggregated(queue, bucket, now, units, size)
            else:
                size, wait, full = self._plain(queue, bucket, now, units, size)
            if wait is not None:
                delay = wait if delay is None else min(delay, wait)
            if not queue:
                del self.pending[shard]
            if full:
                break
        return units, (None if units else delay)

    def _head(self, queue: deque[Entry]) -> Entry | None:
        """The queue's first entry still wanted (a delivery that gave up is never sent)."""
        while queue and queue[0].waiter.done():
            queue.popleft()
            self.queued -= 1
        return queue[0] if queue else None

    def _pop(self, queue: deque[Entry]) -> Entry:
        self.queued -= 1
        return queue.popleft()

    def _plain(
        self, queue: deque[Entry], bucket: Bucket, now: float, units: list[Unit], size: int
    ) -> tuple[int, float | None, bool]:
        """Entries of one shard's queue, one record each: (batch bytes, wait, full)."""
        while len(units) < self.max_records:
            entry = self._head(queue)
            if entry is None:
                return size, None, False
            if size + entry.size > MAX_BATCH_BYTES:
                return size, None, True
            if bucket is not None and not bucket.take(1, entry.size, now):
                return size, bucket.wait(1, entry.size, now), False
            units.append((entry.record, [self._pop(queue)]))
            size += entry.size
        return size, None, True

    def _aggregated(
        self, queue: deque[Entry], bucket: Bucket, now: float, units: list[Unit], size: int
    ) -> tuple[int, float | None, bool]:
        """Entries of one shard's queue gathered into aggregated records (KPL format)."""
        while len(units) < self.max_records:
            if size + MAX_RECORD_BYTES > MAX_BATCH_BYTES:
                return size, None, True
            agg, wait = Aggregate(), None
            members: list[Entry] = []
            while (entry := self._head(queue)) is not None:
                record = entry.record
                if not agg.fits(record.partition_key, record.data):
                    break
                cost = agg.cost(record.partition_key, record.data)
                if bucket is not None and not bucket.take(0 if members else 1, cost, now):
                    wait = bucket.wait(0 if members else 1, cost, now)
                    break
                agg.add(record.partition_key, record.data)
                members.append(self._pop(queue))
            if not members:
                if entry is None or wait is not None:
                    return size, wait, False
                # too big to aggregate: it goes alone, as a plain record
                if bucket is not None and not bucket.take(1, entry.size, now):
                    return size, bucket.wait(1, entry.size, now), False
                units.append((entry.record, [self._pop(queue)]))
                size += entry.size
                continue
            first = members[0].record
            key = str(sh.hash_key(first.partition_key, first.hash_key))
            units.append((Record(agg.encode(), first.partition_key, key), members))
            size += agg.size + len(first.partition_key.encode())
            if wait is not None:
                return size, wait, False
        return size, None, True

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _send(self, units: list[Unit], taken_at: float) -> None:
        """One PutRecords call (`inflight` was counted when it was spawned)."""
        body = sigv4.put_records_body(
            self.stream,
            [(record.data, record.partition_key) for record, _ in units],
            [record.hash_key for record, _ in units],
        )
        try:
            resp = await self.http.call(self.target, "PutRecords", body)
            self._arrived({entries[0].shard for _, entries in units}, taken_at)
            results = put_records_results(resp, len(units))
            for (_, entries), result in zip(units, results, strict=True):
                self._settle(entries, result, len(units))
        except Exception as exc:
            if self.map is not None:
                self.map.stale = True  # a stream error may be a reshard: list again
            _fail([e for _, entries in units for e in entries], exc)
        finally:
            self.inflight -= 1
            _fail([e for _, entries in units for e in entries], stopped())
            self._wake.set()

    def _arrived(self, shards: set[str | None], taken_at: float) -> None:
        now = time.monotonic()
        for shard in shards:
            if shard in self.buckets:
                self.buckets[shard].arrived(taken_at, now)

    def _settle(self, entries: list[Entry], result: dict[str, Any], n: int) -> None:
        """One PutRecords entry's result, for the user record(s) it carried."""
        code, landed, shard = result.get("ErrorCode"), result.get("ShardId"), entries[0].shard
        if code == "ProvisionedThroughputExceededException" and shard:
            self.buckets[shard].back_off(THROTTLE_BACKOFF_S)
        if self.map is not None and shard and landed not in (None, shard):
            self.map.stale = True  # predicted wrong: the shards changed
        if code:
            _fail(entries, record_error(result))
            return
        answer = {
            "shard_id": landed,
            "sequence_number": result.get("SequenceNumber"),
            "batch_size": n,
        }
        if self.aggregation and len(entries) > 1:
            answer["aggregated"] = len(entries)
        for entry in entries:
            if not entry.waiter.done():
                entry.waiter.set_result({**answer, "partition_key": entry.record.partition_key})

    # -- the shard map --------------------------------------------------------------------
    def _list_if_due(self) -> None:
        now = time.monotonic()
        due = self.map.due(now) if self.map is not None else now >= self._map_next
        if due and now >= self._map_next:
            self._map_next = now + MAP_RETRY_S  # one listing at a time, and not too often
            self._spawn(self._list())

    async def _list(self) -> None:
        entries: list[dict[str, Any]] = []
        request: dict[str, Any] = {sigv4.stream_member(self.stream): self.stream}
        try:
            while True:
                body = json.dumps(request).encode()
                resp = await self.http.call(self.target, "ListShards", body)
                entries.extend(resp.get("Shards") or [])
                if not resp.get("NextToken"):
                    break
                request = {"NextToken": resp["NextToken"]}
            shard_map = sh.ShardMap.from_list_shards(entries)
        except Exception:  # no ListShards (permission, emulator): batch without buckets
            return
        if not shard_map.shards:
            return
        self.map = shard_map
        for shard in shard_map.shards:
            self.buckets.setdefault(shard.shard_id, sh.TokenBucket())
        unmapped = self.pending.pop(None, None)  # queued before the map was known
        for entry in unmapped or ():
            key = sh.hash_key(entry.record.partition_key, entry.record.hash_key)
            entry.shard = shard_map.shard_for(key)
            self.pending.setdefault(entry.shard, deque()).append(entry)

    async def close(self) -> None:
        while self.queued and self._pump is not None and not self._pump.done():
            await asyncio.wait({self._pump}, timeout=1.0)
        if self._pump is not None:
            self._pump.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _fail(entries: list[Entry], exc: BaseException) -> None:
    for entry in entries:
        if not entry.waiter.done():
            entry.waiter.set_exception(exc)


def put_records_results(resp: dict[str, Any], sent: int) -> list[dict[str, Any]]:
    """The per-record results of a PutRecords answer, checked: one object per record sent,
    and a FailedRecordCount (when given) equal to the entries with an ErrorCode. Any other
    shape fails the whole batch as retryable: we cannot tell which record landed."""
    results = resp.get("Records")
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise RetryableError("server_error", "PutRecords answered malformed Records")
    if len(results) != sent:
        raise RetryableError(
            "server_error", f"PutRecords answered {len(results)} results for {sent} records"
        )
    failed = sum(1 for r in results if r.get("ErrorCode"))
    count = resp.get("FailedRecordCount", failed)
    if isinstance(count, bool) or not isinstance(count, int) or count != failed:
        raise RetryableError(
            "server_error",
            f"PutRecords answered FailedRecordCount {str(count)[:20]!r} "
            f"with {failed} failed records",
        )
    return results


def stopped() -> RetryableError:
    return RetryableError("server_error", "the PutRecords call ended without an answer")


def record_error(result: dict[str, Any]) -> ClientError:
    """One record of a PutRecords call failed (throttled, internal or KMS failure): the
    error answer of that record alone, so only it is retried."""
    code = str(result.get("ErrorCode"))
    message = str(result.get("ErrorMessage") or code)
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 200}},
        "PutRecords",
    )


class Batches:
    """The stream batchers of one writer, by target and stream name."""

    def __init__(self, http: sigv4.KinesisHTTP):
        self._http = http
        self._streams: dict[tuple[int, str, bool], StreamBatcher] = {}

    def add(
        self,
        target: sigv4.Target,
        stream: str,
        record: Record,
        max_records: int,
        aggregation: bool = False,
    ) -> asyncio.Future[dict[str, Any]]:
        return self.add_many(target, stream, [record], max_records, aggregation)[0]

    def add_many(
        self,
        target: sigv4.Target,
        stream: str,
        records: list[Record],
        max_records: int,
        aggregation: bool = False,
    ) -> list[asyncio.Future[dict[str, Any]]]:
        key = (id(target), stream, aggregation)
        batcher = self._streams.get(key)
        if batcher is None or batcher.target is not target:
            batcher = StreamBatcher(self._http, target, stream, aggregation)
            self._streams[key] = batcher
        return batcher.add_many(records, max_records)

    async def close(self) -> None:
        await asyncio.gather(*(b.close() for b in self._streams.values()))
        self._streams.clear()
