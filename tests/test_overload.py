"""Overload: beyond API_MAX_INFLIGHT_PUBLISHES publishes in progress, one more is answered
503 + Retry-After at once; every 202 still means the event is in Redis."""

import asyncio
import time
from typing import Any

from outpost.deps import Deps
from outpost.runtime import create_app
from tests.conftest import AUTH, make_settings

SLOW = 1.0  # each group commit of the slowed store


async def test_publishes_beyond_the_limit_are_shed_at_once(aiohttp_client, redis_server, redis):
    settings = make_settings(redis_server.redis_url, api_max_inflight_publishes=5)
    deps = Deps.build(settings, redis)
    stored = deps.queue.publish_many

    async def slowed(items: Any) -> Any:
        await asyncio.sleep(SLOW)
        return await stored(items)

    deps.queue.publish_many = slowed  # type: ignore[method-assign]
    client = await aiohttp_client(create_app(settings, deps, run_promoter=False))
    assert (await client.put("/api/v1/tenants/acme", headers=AUTH)).status == 201

    async def one(i: int) -> tuple[int, str | None, dict[str, Any], float]:
        started = time.monotonic()
        body = {"id": f"e{i}", "tenant_id": "acme", "topic": "orders", "data": {"i": i}}
        async with client.post("/api/v1/publish", json=body, headers=AUTH) as resp:
            answer = await resp.json()
            return resp.status, resp.headers.get("Retry-After"), answer, time.monotonic() - started

    async with asyncio.timeout(30):
        results = await asyncio.gather(*(one(i) for i in range(40)))
    try:
        statuses = [r[0] for r in results]
        assert set(statuses) <= {202, 503}, statuses
        shed = [r for r in results if r[0] == 503]
        accepted = [r[2]["id"] for r in results if r[0] == 202]
        assert shed and len(accepted) >= 5
        for _, retry_after, body, _took in shed:
            assert retry_after == "1" and "API_MAX_INFLIGHT_PUBLISHES" in body["message"]
        # answered without waiting behind the accepted ones: each shed answer came before
        # the first accepted one, which waited out the slowed store (a relative check: the
        # client and the server share one loop on a shared machine)
        fastest_accepted = min(r[3] for r in results if r[0] == 202)
        assert max(r[3] for r in shed) < fastest_accepted, (shed, fastest_accepted)
        assert fastest_accepted >= SLOW
        assert None not in await deps.queue.load_events("acme", accepted)
    finally:
        await deps.registry.close()
