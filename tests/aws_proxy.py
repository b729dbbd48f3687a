"""Fault injection for the SQS, S3 and EventBridge tests: a proxy in front of the real moto
server that forwards every call, notes who signed each send, and on demand answers a
send with an AWS error (every send, or the first send of chosen events alone: one entry
of a batch call, or one PutObject) the way the service would.

A "send" is SendMessage, SendMessageBatch (SQS, JSON protocol), PutEvents (EventBridge,
JSON 1.1) or an object PUT (S3, REST-XML). The event of an entry is found in what Outpost
sends: the SQS `metadata` attribute, the EventBridge Detail's `metadata`, S3's
`x-amz-meta-event-id`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from aiohttp import ClientSession, web

JSON_SENDS = {"SendMessage", "SendMessageBatch", "PutEvents"}
# the AWS error each service answers for a kind of failure: (status, code)
ERRORS = {
    "sqs": {"retry": (400, "RequestThrottled"), "permanent": (400, "QueueDoesNotExist")},
    "events": {
        "retry": (400, "ThrottlingException"),
        "permanent": (400, "ResourceNotFoundException"),
    },
    "s3": {"retry": (503, "SlowDown"), "permanent": (404, "NoSuchBucket")},
}
SKIP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}
SKIP_ANSWER = SKIP_HEADERS | {"content-encoding", "date", "server", "content-type"}


def operation(request: web.Request) -> str:
    target = request.headers.get("X-Amz-Target", "")
    if target:
        return target.rsplit(".", 1)[-1]
    parts = request.path.strip("/").split("/", 1)
    if request.method == "PUT" and len(parts) == 2 and parts[1]:
        return "PutObject"
    return request.method


def service(op: str) -> str:
    return {"PutEvents": "events", "PutObject": "s3"}.get(op, "sqs")


def entry_event(op: str, entry: dict[str, Any]) -> str:
    """The event id of one SQS message or EventBridge entry, from its metadata."""
    if op == "PutEvents":
        return str(json.loads(entry["Detail"])["metadata"]["event-id"])
    meta = entry.get("MessageAttributes", {}).get("metadata", {}).get("StringValue", "{}")
    return str(json.loads(meta).get("event-id", ""))


class AWSProxy:
    """`fail` = "retry" | "permanent" | None: every send answered with that error.
    `fail_once`: event ids whose next send fails alone (throttled), then they pass."""

    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.fail: str | None = None
        self.fail_once: set[str] = set()
        self.failed: Counter[str] = Counter()  # event id -> sends failed alone
        self.keys: list[str] = []  # the access key of each send, in order
        self.accepted: dict[str, bytes] = {}  # event id -> the EventBridge Detail accepted
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> AWSProxy:
        self._session = ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        if self._runner:
            await self._runner.cleanup()
        if self._session:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        op, body = operation(request), await request.read()
        if op not in JSON_SENDS and op != "PutObject":
            return await self._forward(request, body)
        found = re.search(r"Credential=([^/]+)/", request.headers.get("Authorization", ""))
        self.keys.append(found.group(1) if found else "")
        if self.fail:
            return error(service(op), *ERRORS[service(op)][self.fail])
        if op == "PutObject":
            if self._fails_once(request.headers.get("x-amz-meta-event-id", "")):
                return error("s3", *ERRORS["s3"]["retry"])
            return await self._forward(request, body)
        return await self._json_send(request, op, json.loads(body))

    def _fails_once(self, event_id: str) -> bool:
        if event_id in self.fail_once:
            self.fail_once.discard(event_id)
            self.failed[event_id] += 1
            return True
        return False

    async def _json_send(self, request: web.Request, op: str, doc: dict[str, Any]) -> web.Response:
        if op == "SendMessage":
            if self._fails_once(entry_event(op, doc)):
                return error("sqs", *ERRORS["sqs"]["retry"])
            return await self._forward(request, json.dumps(doc).encode())
        key = "Entries"
        entries = doc[key]
        failed = [self._fails_once(entry_event(op, e)) for e in entries]
        keep = [e for e, f in zip(entries, failed, strict=True) if not f]
        answer: dict[str, Any] = {}
        if keep:
            status, raw, headers = await self._upstream(request, json.dumps({**doc, key: keep}))
            if status != 200:
                return web.Response(body=raw, status=status, headers=headers)
            answer = json.loads(raw)
        merged = merge(op, entries, failed, answer)
        if op == "PutEvents":
            for entry, result in zip(entries, merged["Entries"], strict=True):
                if result.get("EventId"):
                    self.accepted[entry_event(op, entry)] = entry["Detail"].encode()
        ctype = request.headers.get("Content-Type", "application/x-amz-json-1.0")
        return web.Response(body=json.dumps(merged), headers={"Content-Type": ctype})

    async def _forward(self, request: web.Request, body: bytes) -> web.Response:
        status, raw, headers = await self._upstream(request, body)
        return web.Response(body=raw, status=status, headers=headers)

    async def _upstream(
        self, request: web.Request, body: bytes | str
    ) -> tuple[int, bytes, dict[str, str]]:
        assert self._session is not None
        sent = {k: v for k, v in request.headers.items() if k.lower() not in SKIP_HEADERS}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=body, headers=sent
        ) as up:
            headers = {k: v for k, v in up.headers.items() if k.lower() not in SKIP_ANSWER}
            headers["Content-Type"] = up.headers.get("Content-Type", "application/octet-stream")
            return up.status, await up.read(), headers


def merge(
    op: str,
    entries: list[dict[str, Any]],
    failed: list[bool],
    answer: dict[str, Any],
) -> dict[str, Any]:
    """The batch answer as the service gives it: upstream's for the forwarded entries,
    a throttling error for each entry failed here."""
    if op == "PutEvents":
        results = iter(answer.get("Entries", []))
        out = [
            {"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded (injected)"}
            if f
            else next(results)
            for f in failed
        ]
        return {"FailedEntryCount": sum(1 for r in out if r.get("ErrorCode")), "Entries": out}
    errors = [
        {"Id": e["Id"], "SenderFault": False, "Code": "RequestThrottled", "Message": "injected"}
        for e, f in zip(entries, failed, strict=True)
        if f
    ]
    return {
        "Successful": answer.get("Successful", []),
        "Failed": [*answer.get("Failed", []), *errors],
    }


def error(kind: str, status: int, code: str) -> web.Response:
    message = f"{code} (injected)"
    if kind == "s3":
        xml = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
        xml += f"<Message>{message}</Message></Error>"
        return web.Response(body=xml, status=status, content_type="application/xml")
    ctype = "application/x-amz-json-1.1" if kind == "events" else "application/x-amz-json-1.0"
    body = json.dumps({"__type": code, "message": message})
    return web.Response(body=body, status=status, headers={"Content-Type": ctype})
