"""Kinesis writes: PutRecord for one record, PutRecords for the records `shardbatch`
gathers per stream and shard, on `sigv4`'s lean signed path. Failures are raised as they
come (botocore `ClientError`s, network errors); `aws.errors.classify` says what they
mean."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from typing import Any

from outpost.destinations.aws import sigv4
from outpost.destinations.aws.errors import classify
from outpost.destinations.aws.roles import Roles
from outpost.destinations.base import Kind
from outpost.destinations.kinesis.config import ABSOLUTE_MAX_RECORD_BYTES, MAX_RECORD_BYTES
from outpost.destinations.kinesis.format import Record
from outpost.destinations.kinesis.shardbatch import (
    Batches,
    put_records_results,
    record_error,
)
from outpost.destinations.kinesis.shards import MAP_TTL_S
from outpost.models import Destination

__all__ = ["Writer", "put_records_results", "record_error", "stream_id"]

CLIENT_CACHE_SIZE = 256
LIMIT_RETRY_S = 5.0  # a stream's record size that could not be read is asked again after


class Writer:
    """One HTTP session, the endpoint URL and signer per (region, endpoint, credentials)
    LRU-cached, and the batcher."""

    def __init__(self, timeout: float, max_connections: int, connect_timeout: float | None = None):
        self.http = sigv4.KinesisHTTP(timeout, max_connections, connect_timeout)
        self.batches = Batches(self.http)
        self.targets: OrderedDict[str, sigv4.Target] = OrderedDict()
        self._endpoints: dict[tuple[str, str], str] = {}
        self.roles = Roles()  # the signing keys: static, or an assumed role's (aws.roles)
        # each stream's maximum record size (bytes) and when it was learned, beside the
        # shard maps: (region, endpoint, stream) -> (limit, monotonic time)
        self.limits: dict[tuple[str, str, str], tuple[asyncio.Future[int | None], float]] = {}

    async def put_record(
        self, record: Record, destination: Destination, after: str | None = None
    ) -> dict[str, Any]:
        """PutRecord; `after`: its SequenceNumberForOrdering."""
        target = await self.target(destination)
        stream = stream_id(destination)
        body = sigv4.put_record_body(stream, record.data, record.partition_key, after)
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

    async def record_limit(self, destination: Destination, target: sigv4.Target) -> int | None:
        """The stream's MaxRecordSizeInKiB in bytes (DescribeStreamSummary, learned again
        every MAP_TTL_S; concurrent sends share one call): 1 MiB, the limit every stream
        allows, when the stream does not say or may not be asked (denied, emulator); None
        when the call failed for now (throttled, 5xx, network: asked again after
        LIMIT_RETRY_S)."""
        cfg, now = destination.config, time.monotonic()
        key = (cfg["region"], cfg.get("endpoint") or "", stream_id(destination))
        hit = self.limits.get(key)
        if hit is not None and hit[0].done() and hit[0].result() is None:
            ttl = LIMIT_RETRY_S
        else:
            ttl = MAP_TTL_S
        if hit is None or now - hit[1] > ttl:
            task = asyncio.ensure_future(self._describe_limit(target, key[2]))
            hit = self.limits[key] = (task, now)
        return await asyncio.shield(hit[0])

    async def _describe_limit(self, target: sigv4.Target, stream: str) -> int | None:
        body = json.dumps({sigv4.stream_member(stream): stream}).encode()
        try:
            answer = await self.http.call(target, "DescribeStreamSummary", body)
        except Exception as exc:
            return None if classify(exc).kind is Kind.RETRY else MAX_RECORD_BYTES
        kib = answer.get("StreamDescriptionSummary", {}).get("MaxRecordSizeInKiB")
        if not isinstance(kib, int) or isinstance(kib, bool):
            return MAX_RECORD_BYTES
        return max(MAX_RECORD_BYTES, min(kib * 1024, ABSOLUTE_MAX_RECORD_BYTES))

    async def close(self) -> None:
        await self.roles.close()
        self.targets.clear()
        await self.batches.close()
        await self.http.close()


def stream_id(destination: Destination) -> str:
    """The stream as calls name it: its ARN when given (StreamARN), else its name."""
    return str(destination.config.get("stream_arn") or destination.config["stream_name"])
