"""Stream explore for a Kinesis destination, with its own credentials (its role, if any):
the streams they can see (ListStreams) and a preview of a stream's latest records, each
decoded as JSON when it is JSON. Read-only and bounded: at most `MAX_SHARDS` shards, each
read from `LOOKBACK` ago (AT_TIMESTAMP) for at most `MAX_READS` GetRecords calls."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from outpost.destinations.kinesis.writer import Writer
from outpost.models import Destination

MAX_SHARDS = 16
MAX_READS = 4
LOOKBACK = 24 * 3600.0  # seconds: Kinesis's shortest retention
MAX_PREVIEW = 100


async def streams(writer: Writer, destination: Destination) -> list[dict[str, Any]]:
    target = await writer.target(destination)
    answer = await writer.http.call(target, "ListStreams", b'{"Limit": 100}')
    out = []
    for s in answer.get("StreamSummaries") or []:
        out.append(
            {
                "name": s.get("StreamName"),
                "arn": s.get("StreamARN"),
                "status": s.get("StreamStatus"),
                "mode": (s.get("StreamModeDetails") or {}).get("StreamMode"),
            }
        )
    if not out:  # servers that answer only the names
        out = [{"name": n} for n in answer.get("StreamNames") or []]
    return out


async def preview(
    writer: Writer, destination: Destination, stream: str, limit: int
) -> list[dict[str, Any]]:
    """The latest `limit` records of `stream` (in the destination's region and account),
    newest last."""
    target = await writer.target(destination)
    member = {"StreamARN": stream} if stream.startswith("arn:") else {"StreamName": stream}

    async def call(op: str, body: dict[str, Any]) -> dict[str, Any]:
        return await writer.http.call(target, op, json.dumps(body).encode())

    shards = (await call("ListShards", member)).get("Shards") or []
    found: list[dict[str, Any]] = []
    since = time.time() - LOOKBACK
    for shard in shards[:MAX_SHARDS]:
        it = (
            await call(
                "GetShardIterator",
                {
                    **member,
                    "ShardId": shard["ShardId"],
                    "ShardIteratorType": "AT_TIMESTAMP",
                    "Timestamp": since,
                },
            )
        ).get("ShardIterator")
        for _ in range(MAX_READS):
            if not it:
                break
            page = await call("GetRecords", {"ShardIterator": it, "Limit": 1000})
            found.extend(decoded(r, shard["ShardId"]) for r in page.get("Records") or [])
            if not page.get("MillisBehindLatest"):
                break
            it = page.get("NextShardIterator")
    found.sort(key=lambda r: (r["arrived"] or 0, r["sequence_number"]))
    return found[-limit:]


def decoded(record: dict[str, Any], shard: str) -> dict[str, Any]:
    raw = base64.b64decode(record.get("Data") or "")
    out: dict[str, Any] = {
        "shard_id": shard,
        "sequence_number": record.get("SequenceNumber"),
        "partition_key": record.get("PartitionKey"),
        "arrived": record.get("ApproximateArrivalTimestamp"),
        "bytes": len(raw),
    }
    try:
        out["json"] = json.loads(raw)
    except ValueError:
        out["text"] = raw.decode("utf-8", "replace")[:4096]
    return out
