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
import contextlib
import json
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from outpost.destinations.aws import sigv4
from outpost.destinations.kinesis import shards as sh
from outpost.destinations.kinesis.config import MAX_BATCH_BYTES, MAX_BATCH_RECORDS
from outpost.destinations.kinesis.format import Record
from outpost.errors import RetryableError

MAX_INFLIGHT = 4  # PutRecords calls under way per stream
THROTTLE_BACKOFF_S = 0.25  # a throttled shard's pause
MAP_RETRY_S = 5.0  # after a failed ListShards


@dataclass(slots=True)
class Entry:
    record: Record
    waiter: asyncio.Future[dict[str, Any]]
    size: int
    shard: str | None


class StreamBatcher:
    def __init__(self, http: sigv4.KinesisHTTP, target: sigv4.Target, stream: str):
        self.http, self.target, self.stream = http, target, stream
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
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        size = len(record.data) + len(record.partition_key.encode())
        shard = None
        if self.map is not None:
            shard = self.map.shard_for(sh.hash_key(record.partition_key, record.hash_key))
        self.pending.setdefault(shard, deque()).append(Entry(record, waiter, size, shard))
        self.queued += 1
        self.max_records = min(self.max_records, max_records)
        self._wake.set()
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._run())
        return waiter

    async def _run(self) -> None:
        if self.map is None and not self._map_next:  # the stream's first records
            self._map_next = time.monotonic() + MAP_RETRY_S
            await self._list()
        while self.queued:
            self._wake.clear()
            self._list_if_due()
            delay = None
            if self.inflight < MAX_INFLIGHT:
                batch, delay = self._take(time.monotonic())
                if batch:
                    self._spawn(self._send(batch))
                    continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def _take(self, now: float) -> tuple[list[Entry], float | None]:
        """The next batch: from every shard's queue what its bucket allows now, within
        PutRecords' limits; else how long until a bucket allows the next record."""
        batch: list[Entry] = []
        size, delay = 0, None
        for shard in list(self.pending):
            queue, bucket = self.pending[shard], self.buckets.get(shard) if shard else None
            while queue and len(batch) < self.max_records:
                entry = queue[0]
                if entry.waiter.done():  # its delivery gave up (deadline): never sent
                    queue.popleft()
                    self.queued -= 1
                    continue
                if size + entry.size > MAX_BATCH_BYTES:
                    return batch, None
                if bucket is not None and not bucket.take(1, entry.size, now):
                    wait = bucket.wait(1, entry.size, now)
                    delay = wait if delay is None else min(delay, wait)
                    break
                batch.append(queue.popleft())
                self.queued -= 1
                size += entry.size
            if not queue:
                del self.pending[shard]
        return batch, (None if batch else delay)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[Entry]) -> None:
        self.inflight += 1
        body = sigv4.put_records_body(
            self.stream,
            [(e.record.data, e.record.partition_key) for e in batch],
            [e.record.hash_key for e in batch],
        )
        try:
            resp = await self.http.call(self.target, "PutRecords", body)
            self._settle(batch, put_records_results(resp, len(batch)))
        except Exception as exc:
            if self.map is not None:
                self.map.stale = True  # a stream error may be a reshard: list again
            for entry in batch:
                if not entry.waiter.done():
                    entry.waiter.set_exception(exc)
        finally:
            self.inflight -= 1
            for entry in batch:
                if not entry.waiter.done():
                    entry.waiter.set_exception(stopped())
            self._wake.set()

    def _settle(self, batch: list[Entry], results: list[dict[str, Any]]) -> None:
        n, now = len(batch), time.monotonic()
        for entry, result in zip(batch, results, strict=True):
            code = result.get("ErrorCode")
            if code == "ProvisionedThroughputExceededException" and entry.shard:
                self.buckets[entry.shard].back_off(THROTTLE_BACKOFF_S, now)
            landed = result.get("ShardId")
            if self.map is not None and entry.shard and landed not in (None, entry.shard):
                self.map.stale = True  # predicted wrong: the shards changed
            if entry.waiter.done():
                continue
            if code:
                entry.waiter.set_exception(record_error(result))
            else:
                entry.waiter.set_result(
                    {
                        "shard_id": result.get("ShardId"),
                        "sequence_number": result.get("SequenceNumber"),
                        "partition_key": entry.record.partition_key,
                        "batch_size": n,
                    }
                )

    # -- the shard map --------------------------------------------------------------------
    def _list_if_due(self) -> None:
        now = time.monotonic()
        due = self.map.due(now) if self.map is not None else now >= self._map_next
        if due and now >= self._map_next:
            self._map_next = now + MAP_RETRY_S  # one listing at a time, and not too often
            self._spawn(self._list())

    async def _list(self) -> None:
        entries: list[dict[str, Any]] = []
        request: dict[str, Any] = {"StreamName": self.stream}
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
        self._streams: dict[tuple[int, str], StreamBatcher] = {}

    def add(
        self, target: sigv4.Target, stream: str, record: Record, max_records: int
    ) -> asyncio.Future[dict[str, Any]]:
        key = (id(target), stream)
        batcher = self._streams.get(key)
        if batcher is None or batcher.target is not target:
            batcher = self._streams[key] = StreamBatcher(self._http, target, stream)
        return batcher.add(record, max_records)

    def stream(self, target: sigv4.Target, stream: str) -> StreamBatcher | None:
        return self._streams.get((id(target), stream))

    async def close(self) -> None:
        await asyncio.gather(*(b.close() for b in self._streams.values()))
        self._streams.clear()
