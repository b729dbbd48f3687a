"""A small Kinesis endpoint that enforces per-shard write limits, for tests and
`make bench` (`python -m outpost.dev.kinesis_shards PORT [SHARDS] [RECORDS_PER_S]`).

Shards split the 128-bit hash key space evenly; a record goes to the open shard holding
the MD5 of its partition key (or its ExplicitHashKey), as in Kinesis. Each shard takes at
most RECORDS_PER_S records and 1 MiB in any rolling second: an entry past either is
answered ProvisionedThroughputExceededException. Speaks ListShards, PutRecord,
PutRecords and SplitShard; `GET /records` lists what was accepted, in order; `GET /stats`
the accepted and throttled counts and each shard's busiest rolling second; `POST /faults`
`{"key": K, "times": N}` fails the next N records of partition key K (InternalFailure).
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BYTES_PER_S = 1024 * 1024
HASH_MAX = 2**128 - 1
THROTTLED = "ProvisionedThroughputExceededException"


@dataclass
class Shard:
    shard_id: str
    start: int
    end: int
    parent: str | None = None
    closed: bool = False
    window: deque[tuple[float, int]] = field(default_factory=deque)
    records: int = 0
    size: int = 0
    busiest: int = 0  # most records in any rolling second

    def admit(self, size: int, now: float, records_per_s: int) -> bool:
        while self.window and self.window[0][0] <= now - 1.0:
            _, old = self.window.popleft()
            self.records -= 1
            self.size -= old
        if self.records + 1 > records_per_s or self.size + size > BYTES_PER_S:
            return False
        self.window.append((now, size))
        self.records += 1
        self.size += size
        self.busiest = max(self.busiest, self.records)
        return True


class Stream:
    def __init__(self, shards: int, records_per_s: int):
        self.records_per_s = records_per_s
        step = (HASH_MAX + 1) // shards
        self.shards = [
            Shard(
                f"shardId-{i:012d}", i * step, HASH_MAX if i == shards - 1 else (i + 1) * step - 1
            )
            for i in range(shards)
        ]
        self.accepted: list[dict[str, Any]] = []
        self.throttled = 0
        self.faults: dict[str, int] = {}  # partition key -> its next records that fail

    def route(self, entry: dict[str, Any]) -> Shard:
        key = entry.get("ExplicitHashKey")
        h = (
            int(key)
            if key
            else int.from_bytes(hashlib.md5(entry["PartitionKey"].encode()).digest())
        )
        return next(s for s in self.shards if not s.closed and s.start <= h <= s.end)

    def put(self, entry: dict[str, Any], now: float) -> dict[str, Any]:
        shard = self.route(entry)
        data = base64.b64decode(entry["Data"])
        if self.faults.get(entry["PartitionKey"], 0) > 0:
            self.faults[entry["PartitionKey"]] -= 1
            return {"ErrorCode": "InternalFailure", "ErrorMessage": "injected failure"}
        if not shard.admit(
            len(data) + len(entry["PartitionKey"].encode()), now, self.records_per_s
        ):
            self.throttled += 1
            return {"ErrorCode": THROTTLED, "ErrorMessage": f"Rate exceeded for {shard.shard_id}"}
        seq = str(len(self.accepted) + 1).zfill(20)
        self.accepted.append({"ShardId": shard.shard_id, "SequenceNumber": seq, **entry, "at": now})
        return {"ShardId": shard.shard_id, "SequenceNumber": seq}

    def split(self, shard_id: str, new_start: int) -> None:
        parent = next(s for s in self.shards if s.shard_id == shard_id and not s.closed)
        parent.closed = True
        n = len(self.shards)
        self.shards += [
            Shard(f"shardId-{n:012d}", parent.start, new_start - 1, parent.shard_id),
            Shard(f"shardId-{n + 1:012d}", new_start, parent.end, parent.shard_id),
        ]

    def list_shards(self) -> list[dict[str, Any]]:
        out = []
        for s in self.shards:
            seq: dict[str, str] = {"StartingSequenceNumber": "0"}
            if s.closed:
                seq["EndingSequenceNumber"] = "9" * 20
            out.append(
                {
                    "ShardId": s.shard_id,
                    **({"ParentShardId": s.parent} if s.parent else {}),
                    "HashKeyRange": {"StartingHashKey": str(s.start), "EndingHashKey": str(s.end)},
                    "SequenceNumberRange": seq,
                }
            )
        return out


def app(shards: int = 2, records_per_s: int = 1000) -> web.Application:
    streams = {"": Stream(shards, records_per_s)}  # one stream, whatever its name

    async def kinesis(request: web.Request) -> web.Response:
        op = request.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
        body = json.loads(await request.read())
        now, stream = time.monotonic(), streams[""]
        try:
            out = _operation(stream, op, body, now)
        except LookupError as exc:
            return _error("UnknownOperationException", str(exc))
        if "ErrorCode" in out:  # a PutRecord past its shard's limit (or failed on purpose)
            return _error(out["ErrorCode"], out["ErrorMessage"])
        return web.json_response(out, content_type="application/x-amz-json-1.1")

    async def records(request: web.Request) -> web.Response:
        return web.json_response(streams[""].accepted)

    async def stats(request: web.Request) -> web.Response:
        stream = streams[""]
        busiest = {s.shard_id: s.busiest for s in stream.shards}
        first, last = (
            (stream.accepted[0]["at"], stream.accepted[-1]["at"]) if stream.accepted else (0, 0)
        )
        return web.json_response(
            {
                "accepted": len(stream.accepted),
                "throttled": stream.throttled,
                "busiest": busiest,
                "seconds": last - first,  # from the first record accepted to the last
            }
        )

    application = web.Application(client_max_size=16 * 1024 * 1024)
    application.router.add_post("/reset", _reset(streams, shards, records_per_s))
    application.router.add_get("/records", records)
    application.router.add_post("/faults", _faults(streams))
    application.router.add_get("/stats", stats)
    application.router.add_post("/{tail:.*}", kinesis)
    return application


def _faults(streams: dict[str, Stream]) -> Any:
    async def faults(request: web.Request) -> web.Response:
        body = await request.json()
        streams[""].faults[str(body["key"])] = int(body["times"])
        return web.json_response({})

    return faults


def _reset(streams: dict[str, Stream], shards: int, records_per_s: int) -> Any:
    async def reset(request: web.Request) -> web.Response:
        body = await request.json()
        streams[""] = Stream(body.get("shards", shards), body.get("records_per_s", records_per_s))
        return web.json_response({})

    return reset


def _operation(stream: Stream, op: str, body: dict[str, Any], now: float) -> dict[str, Any]:
    if op == "PutRecords":
        results = [stream.put(e, now) for e in body["Records"]]
        failed = sum(1 for r in results if "ErrorCode" in r)
        return {"FailedRecordCount": failed, "Records": results}
    if op == "PutRecord":
        return stream.put(body, now)
    if op == "ListShards":
        return {"Shards": stream.list_shards()}
    if op == "SplitShard":
        stream.split(body["ShardToSplit"], int(body["NewStartingHashKey"]))
        return {}
    raise LookupError(f"unknown operation {op!r}")


def _error(code: str, message: str) -> web.Response:
    return web.json_response(
        {"__type": code, "message": message},
        status=400,
        headers={"x-amzn-ErrorType": code},
        content_type="application/x-amz-json-1.1",
    )


if __name__ == "__main__":
    port, *rest = (int(a) for a in sys.argv[1:])
    web.run_app(app(*rest), host="127.0.0.1", port=port, print=None, access_log=None)
