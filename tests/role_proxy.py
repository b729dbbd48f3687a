"""A recording proxy in front of moto for the role tests: it forwards every STS and Kinesis
call and notes who signed it (the access key id of its SigV4 Authorization header) and,
for AssumeRole, the parameters (RoleArn, RoleSessionName, ExternalId). moto does not
enforce trust policies, so a role in `deny` is answered as STS answers a role whose trust
policy does not name the caller or whose ExternalId differs: 403 AccessDenied."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from aiohttp import ClientSession, web

SKIP = {"host", "content-length", "transfer-encoding", "connection"}
DENIED = (
    '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
    "<Type>Sender</Type><Code>AccessDenied</Code><Message>User: {who} is not authorized to "
    "perform: sts:AssumeRole on resource: {role}</Message></Error>"
    "<RequestId>c0ffee</RequestId></ErrorResponse>"
)


@dataclass
class Call:
    op: str
    key: str  # the access key id that signed it
    params: dict[str, str] = field(default_factory=dict)


class RoleProxy:
    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.calls: list[Call] = []
        self.deny: set[str] = set()
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ops(self, op: str) -> list[Call]:
        return [c for c in self.calls if c.op == op]

    async def start(self) -> RoleProxy:
        self._session = ClientSession()
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        if self._runner:
            await self._runner.cleanup()
        if self._session:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        found = re.search(r"Credential=([^/]+)/", request.headers.get("Authorization", ""))
        key = found.group(1) if found else ""
        target = request.headers.get("X-Amz-Target", "")
        params: dict[str, str] = {}
        if target:
            op = target.rsplit(".", 1)[-1]
            doc = json.loads(body or b"{}")
            params = {k: str(doc[k]) for k in ("StreamARN", "StreamName") if k in doc}
        else:  # STS's query protocol: a form body
            params = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            op = params.get("Action", request.method)
        self.calls.append(Call(op, key, params))
        if op == "AssumeRole" and params.get("RoleArn") in self.deny:
            text = DENIED.format(who=key, role=params["RoleArn"])
            return web.Response(text=text, status=403, content_type="text/xml")
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in SKIP}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=body, headers=headers
        ) as up:
            answer = await up.read()
            return web.Response(body=answer, status=up.status, content_type=up.content_type)
