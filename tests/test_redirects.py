"""Issue 14 item 11: a delivery never follows an HTTP redirect. A local endpoint answers
PutRecord / PutRecords with 307 to a second local server that records whether it was hit:
the attempt fails permanently (`redirect_refused`, dead-lettered at once: a Kinesis
endpoint that redirects is misconfigured or hostile, and retrying cannot change that),
nothing of the second server reaches the attempt log, and the second server is never
contacted."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web
from botocore.exceptions import ClientError

from outpost.errors import Invalid
from outpost.flow import connectors
from outpost.flow.connectors import kinesis_client
from outpost.flow.source import _READ_CONFIG, describe_shards
from outpost.runtime import build_worker
from tests.test_delivery import publish, setup_destination

SECRET_BODY = "internal-secret-from-the-redirect-target"


class Local:
    """An aiohttp server on 127.0.0.1 answering every request with `handler`."""

    def __init__(self, handler):
        self.handler = handler
        self.hits = 0
        self.ops: list[str] = []  # the Kinesis operation of each request (X-Amz-Target)
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _any(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        self.ops.append(request.headers.get("X-Amz-Target", "").rpartition(".")[2])
        await request.read()
        return await self.handler(request)

    async def __aenter__(self) -> Local:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.mark.parametrize("config", [{}, {"batching": True, "batch_linger_ms": 10}])
async def test_delivery_does_not_follow_redirects(client, deps, config):
    async def secret(request):
        return web.json_response({"ShardId": "s", "SequenceNumber": "1", "leak": SECRET_BODY})

    async with Local(secret) as target:

        async def redirect(request):
            raise web.HTTPTemporaryRedirect(target.url + "/")

        async with Local(redirect) as redirector:
            dest = await setup_destination(client, "s", redirector.url, config=config)
            await publish(client, id="evt_1", data={})
            await build_worker(deps, deps.settings).run_until_empty(limit=20)
    # one attempt: permanent, not retried (the batched writer also asks for the stream's
    # shards and record limit first; those are refused the same way)
    assert [op for op in redirector.ops if op.startswith("PutRecord")] == [
        "PutRecords" if config else "PutRecord"
    ]
    assert target.hits == 0
    [attempt] = await deps.queue.attempts("acme", dest["id"])
    assert attempt["status"] == "failed" and attempt["code"] == "redirect_refused"
    assert SECRET_BODY not in json.dumps(attempt)
    [dead] = await deps.queue.dead_letters("acme")
    assert dead["code"] == "redirect_refused"


# -- the Flow Service: the guard again at each use, not only at create ----------------------
async def test_flow_connection_refused_at_use_once_the_guard_applies(client, deps):
    """A connection created while private endpoints were allowed; then the guard is on
    (as after a DNS change to a private address): test, explore and the source reader
    refuse it and never contact it."""
    from outpost.destinations.endpoints import EndpointPolicy
    from tests.test_source import BASE, H, make_flow, reader_for

    async def kinesis_like(request):
        return web.json_response({"StreamNames": ["s"], "HasMoreStreams": False})

    async with Local(kinesis_like) as endpoint:
        await client.put("/api/v1/tenants/acme", headers=H)
        await make_flow(client, endpoint.url, "s")
        r = await client.get(f"{BASE}/connections", headers=H)
        [conn] = (await r.json())["items"]
        deps.endpoints = EndpointPolicy(allow_private=False)  # 127.0.0.1 is private
        for op in ("test", "explore?objectType=root"):
            r = await client.get(f"{BASE}/connections/{conn['id']}/{op}", headers=H)
            body = await r.json()
            assert r.status == 400, body
            message = body["report"]["detailed-message"]
            assert "auth.params.endpoint" in message and "non-public" in message
        reader = reader_for(deps)
        task = asyncio.create_task(reader.run())
        await asyncio.sleep(1.0)  # five discovery rounds
        reader.stop()
        await asyncio.wait_for(task, 10)
        assert endpoint.hits == 0


@pytest.mark.parametrize("call", ["test", "explore", "source"])
async def test_flow_aws_clients_do_not_follow_redirects(deps, call):
    """The AWS clients made for a tenant's connection (aiobotocore) never follow a 3xx:
    the redirect target is never contacted, whatever the guard says of the first hop."""

    async def secret(request):
        return web.json_response({"StreamNames": ["leaked"], "HasMoreStreams": False})

    async with Local(secret) as target:

        async def redirect(request):
            raise web.HTTPTemporaryRedirect(target.url + "/")

        async with Local(redirect) as endpoint:
            params = {"accessKeyId": "a", "secretKey": "b", "region": "us-east-1"}
            params["endpoint"] = endpoint.url
            if call == "test":
                ok = await connectors.test(connectors.KINESIS, params, deps.endpoints)
                assert ok is False
            elif call == "explore":
                with pytest.raises(Invalid):
                    await connectors.explore(
                        connectors.KINESIS, params, "root", None, deps.endpoints
                    )
            else:
                async with kinesis_client(params, _READ_CONFIG) as client:
                    with pytest.raises(ClientError):
                        await describe_shards(client, "s")
            assert endpoint.hits >= 1 and target.hits == 0
