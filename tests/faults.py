"""Fault injection for the fault tests: a proxy in front of a real Kinesis endpoint that
can throttle a share of PutRecord calls or go away entirely, and event counting."""

from __future__ import annotations

import base64
import json
import random
from collections import Counter
from typing import Any

from aiohttp import ClientSession, web

THROTTLED = {
    "__type": "ProvisionedThroughputExceededException",
    "message": "Rate exceeded for shard (injected)",
}


class KinesisProxy:
    """Forwards every request to `upstream`; `throttle` is the share of PutRecord calls
    answered with ProvisionedThroughputExceededException instead."""

    def __init__(
        self,
        upstream: str,
        throttle: float = 0.0,
        seed: int = 7,
        reject_marker: bytes | None = None,
        record_throttle: float = 0.0,
        record_kib: dict[str, int] | None = None,
    ):
        # stream name -> the MaxRecordSizeInKiB DescribeStreamSummary answers (moto omits it)
        self.record_kib = record_kib or {}
        # share of the records of each PutRecords call failed alone (not forwarded),
        # as Kinesis does when a shard is over its limit
        self.record_throttle = record_throttle
        self.batches: list[tuple[int, int]] = []  # PutRecords calls: (records, bytes)
        self.throttled_keys: Counter[str] = Counter()
        self.upstream = upstream.rstrip("/")
        self.throttle = throttle
        self.reject_marker = reject_marker  # PutRecords containing it get ValidationException
        self.rand = random.Random(seed)
        self.calls: Counter[str] = Counter()
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> KinesisProxy:
        self._session = self._session or ClientSession()
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        """Stop listening (connections are refused) but keep the port for a restart."""
        if self._runner:
            await self._runner.cleanup()
            self._runner = None

    async def close(self) -> None:
        await self.stop()
        if self._session:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        target = request.headers.get("X-Amz-Target", "")
        op = target.rsplit(".", 1)[-1]
        self.calls[op] += 1
        if op == "PutRecord" and self.rand.random() < self.throttle:
            self.calls["throttled"] += 1
            return web.json_response(
                THROTTLED, status=400, content_type="application/x-amz-json-1.1"
            )
        body = await request.read()
        if op == "PutRecord" and self.reject_marker and self.reject_marker in body:
            self.calls["rejected"] += 1
            return web.json_response(
                {"__type": "ValidationException", "message": "injected"},
                status=400,
                content_type="application/x-amz-json-1.1",
            )
        if op == "PutRecords":
            return await self._put_records(request, json.loads(body))
        status, answer, ctype = await self._upstream(request, body)
        if op == "DescribeStreamSummary" and status == 200:
            answer = self._with_record_size(json.loads(body), answer)
        return web.Response(body=answer, status=status, content_type=ctype)

    def _with_record_size(self, doc: dict[str, Any], answer: bytes) -> bytes:
        name = str(doc.get("StreamName") or doc.get("StreamARN", "")).rsplit("/", 1)[-1]
        if name not in self.record_kib:
            return answer
        summary = json.loads(answer)
        summary["StreamDescriptionSummary"]["MaxRecordSizeInKiB"] = self.record_kib[name]
        return json.dumps(summary).encode()

    async def _upstream(self, request: web.Request, body: bytes) -> tuple[int, bytes, str]:
        assert self._session is not None
        skip = {"host", "content-length"}
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=body, headers=headers
        ) as up:
            return up.status, await up.read(), up.content_type

    async def _put_records(self, request: web.Request, doc: dict[str, Any]) -> web.Response:
        records = doc["Records"]
        size = sum(len(base64.b64decode(r["Data"])) + len(r["PartitionKey"]) for r in records)
        self.batches.append((len(records), size))
        failed = [self.rand.random() < self.record_throttle for _ in records]
        keep = [r for r, f in zip(records, failed, strict=True) if not f]
        answers: list[dict[str, Any]] = []
        if keep:
            status, raw, ctype = await self._upstream(
                request, json.dumps({**doc, "Records": keep}).encode()
            )
            if status != 200:
                return web.Response(body=raw, status=status, content_type=ctype)
            answers = json.loads(raw)["Records"]
        merged, it = [], iter(answers)
        for record, f in zip(records, failed, strict=True):
            if f:
                self.throttled_keys[record["PartitionKey"]] += 1
                merged.append(
                    {"ErrorCode": THROTTLED["__type"], "ErrorMessage": THROTTLED["message"]}
                )
            else:
                merged.append(next(it))
        return web.json_response(
            {"FailedRecordCount": sum(failed), "Records": merged},
            content_type="application/x-amz-json-1.1",
        )


def tally(published: list[str], records: list[dict[str, Any]]) -> dict[str, int]:
    """published / delivered (distinct) / missing / duplicates, keyed on the partition
    key (the event id by default)."""
    seen = Counter(r["PartitionKey"] for r in records)
    wanted = set(published)
    delivered = len(wanted & set(seen))
    return {
        "published": len(wanted),
        "delivered": delivered,
        "missing": len(wanted) - delivered,
        "duplicates": sum(n - 1 for k, n in seen.items() if k in wanted),
    }
