"""Kinesis writes: PutRecord for one record, PutRecords for the records a `Batcher`
gathers, on `sigv4`'s lean signed path. Failures are raised as they come (botocore
`ClientError`s, network errors); `aws.errors.classify` says what they mean."""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from outpost.destinations.aws import sigv4
from outpost.destinations.aws.roles import Roles
from outpost.destinations.kinesis.config import MAX_BATCH_BYTES
from outpost.destinations.kinesis.format import Record
from outpost.errors import RetryableError
from outpost.models import Destination

CLIENT_CACHE_SIZE = 256


class Writer:
    """One HTTP session, the endpoint URL and signer per (region, endpoint, credentials)
    LRU-cached, and the batcher."""

    def __init__(self, timeout: float, max_connections: int, connect_timeout: float | None = None):
        self.http = sigv4.KinesisHTTP(timeout, max_connections, connect_timeout)
        self.batches = Batcher(self.http)
        self.targets: OrderedDict[str, sigv4.Target] = OrderedDict()
        self._endpoints: dict[tuple[str, str], str] = {}
        self.roles = Roles()  # the signing keys: static, or an assumed role's (aws.roles)

    async def put_record(self, record: Record, destination: Destination) -> dict[str, Any]:
        target = await self.target(destination)
        body = sigv4.put_record_body(stream_id(destination), record.data, record.partition_key)
        resp = await self.http.call(target, "PutRecord", body)
        return {
            "shard_id": resp.get("ShardId"),
            "sequence_number": resp.get("SequenceNumber"),
            "partition_key": record.partition_key,
        }

    async def target(self, destination: Destination) -> sigv4.Target:
        cfg = destination.config
        key, secret, session = await self.roles.keys(destination)
        ident = "\0".join([cfg["region"], cfg.get("endpoint") or "", key, secret, session or ""])
        cache_key = hashlib.sha256(ident.encode()).hexdigest()
        hit = self.targets.get(cache_key)
        if hit is not None:
            self.targets.move_to_end(cache_key)
            return hit
        where = (cfg["region"], cfg.get("endpoint") or "")
        url = self._endpoints.get(where)
        if url is None:
            url = await sigv4.resolve_endpoint(cfg["region"], cfg.get("endpoint"))
            self._endpoints[where] = url
        target = sigv4.target(url, cfg["region"], key, secret, session)
        self.targets[cache_key] = target
        while len(self.targets) > CLIENT_CACHE_SIZE:
            self.targets.popitem(last=False)
        return target

    async def close(self) -> None:
        await self.roles.close()
        self.targets.clear()
        await self.batches.close()
        await self.http.close()


def stream_id(destination: Destination) -> str:
    """The stream as calls name it: its ARN when given (StreamARN), else its name."""
    return str(destination.config.get("stream_arn") or destination.config["stream_name"])


@dataclass
class _Batch:
    target: sigv4.Target
    stream: str
    linger: float
    records: list[Record] = field(default_factory=list)
    waiters: list[asyncio.Future[dict[str, Any]]] = field(default_factory=list)
    size: int = 0
    timer: asyncio.TimerHandle | None = None


class Batcher:
    """Gathers records bound for one stream (same endpoint and credentials) into PutRecords
    calls: a batch is sent when it has `max_records`, when the next record would take it
    past 5 MiB, or `linger` seconds after its first record. Every record's sender waits
    for its own result: shard and sequence number, or the error of its record alone."""

    def __init__(self, http: sigv4.KinesisHTTP):
        self._http = http
        self._open: dict[tuple[int, str], _Batch] = {}
        self._sending: set[asyncio.Task[None]] = set()

    def add(
        self, target: sigv4.Target, stream: str, record: Record, max_records: int, linger: float
    ) -> asyncio.Future[dict[str, Any]]:
        key = (id(target), stream)
        size = len(record.data) + len(record.partition_key.encode())
        batch = self._open.get(key)
        if batch is not None and batch.size + size > MAX_BATCH_BYTES:
            self._flush(key)
            batch = None
        if batch is None:
            batch = self._open[key] = _Batch(target, stream, linger)
            loop = asyncio.get_running_loop()
            batch.timer = loop.call_later(linger, self._flush, key)
        done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        batch.records.append(record)
        batch.waiters.append(done)
        batch.size += size
        if len(batch.records) >= max_records:
            self._flush(key)
        return done

    def _flush(self, key: tuple[int, str]) -> None:
        batch = self._open.pop(key, None)
        if batch is None:
            return
        if batch.timer is not None:
            batch.timer.cancel()
        task = asyncio.create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: _Batch) -> None:
        body = sigv4.put_records_body(
            batch.stream, [(r.data, r.partition_key) for r in batch.records]
        )
        try:
            resp = await self._http.call(batch.target, "PutRecords", body)
            self._settle(batch, put_records_results(resp, len(batch.records)))
        except Exception as exc:
            for waiter in batch.waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
        finally:  # no sender ever waits on a batch that is over, whatever happened
            for waiter in batch.waiters:
                if not waiter.done():
                    waiter.set_exception(_stopped())

    @staticmethod
    def _settle(batch: _Batch, results: list[dict[str, Any]]) -> None:
        n = len(batch.records)
        for record, waiter, result in zip(batch.records, batch.waiters, results, strict=True):
            if waiter.done():
                continue
            if result.get("ErrorCode"):
                waiter.set_exception(record_error(result))
            else:
                waiter.set_result(
                    {
                        "shard_id": result.get("ShardId"),
                        "sequence_number": result.get("SequenceNumber"),
                        "partition_key": record.partition_key,
                        "batch_size": n,
                    }
                )

    async def close(self) -> None:
        for key in list(self._open):
            self._flush(key)
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)


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


def _stopped() -> RetryableError:
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
