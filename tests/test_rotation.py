"""Rotating AES_ENCRYPTION_SECRET: read with old keys, `outpost rotate-key` re-encrypts."""

import asyncio
import json
import os
import subprocess
import sys

import pytest

from outpost.crypto import Cipher, DecryptionFailed
from outpost.deps import Deps
from outpost.runtime import create_app
from tests.conftest import ADMIN_KEY, AUTH, kinesis_body, make_settings

OLD, NEW = "the-old-aes-secret", "the-new-aes-secret"


async def stored_blob(redis, deps, dest_id):
    return json.loads(await redis.hget(deps.keys.destinations("acme"), dest_id))["credentials"]


async def test_rotation_end_to_end(aiohttp_client, redis, redis_server):
    old = make_settings(redis_server.redis_url, aes_encryption_secret=OLD)
    old_deps = Deps.build(old, redis)
    c = await aiohttp_client(create_app(old, old_deps, run_promoter=False))
    await c.put("/api/v1/tenants/acme", headers=AUTH)
    r = await c.post(
        "/api/v1/tenants/acme/destinations",
        headers=AUTH,
        json=kinesis_body("s", "http://127.0.0.1:1"),
    )
    dest = (await r.json())["id"]
    before = await stored_blob(redis, old_deps, dest)

    # step 1: deploy the new key with the old one as "previous": everything still reads
    both = make_settings(
        redis_server.redis_url, aes_encryption_secret=NEW, aes_encryption_secret_previous=[OLD]
    )
    both_deps = Deps.build(both, redis)
    assert (await both_deps.store.get_destination("acme", dest)).credentials["key"]
    # step 2: re-encrypt
    assert await both_deps.store.reencrypt_all() == (1, 0)
    after = await stored_blob(redis, both_deps, dest)
    assert after != before
    # step 3: drop the old key: the new one alone reads it, the old one no longer does
    assert Cipher(NEW).decrypt(after, f"acme/{dest}")["secret"].startswith("wJalr")
    with pytest.raises(DecryptionFailed):
        Cipher(OLD).decrypt(after, f"acme/{dest}")
    new_only = make_settings(redis_server.redis_url, aes_encryption_secret=NEW)
    c2 = await aiohttp_client(create_app(new_only, Deps.build(new_only, redis), False))
    r = await c2.get(f"/api/v1/tenants/acme/destinations/{dest}", headers=AUTH)
    assert r.status == 200 and (await r.json())["credentials"]["secret"] == "wJal******"


async def test_rotate_key_command(aiohttp_client, redis, redis_server):
    old = make_settings(redis_server.redis_url, aes_encryption_secret=OLD)
    c = await aiohttp_client(create_app(old, Deps.build(old, redis), run_promoter=False))
    await c.put("/api/v1/tenants/acme", headers=AUTH)
    for _ in range(3):
        await c.post(
            "/api/v1/tenants/acme/destinations",
            headers=AUTH,
            json=kinesis_body("s", "http://127.0.0.1:1"),
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    env.update(
        {
            "API_KEY": ADMIN_KEY,
            "REDIS_URL": redis_server.redis_url,
            "AES_ENCRYPTION_SECRET": NEW,
            "AES_ENCRYPTION_SECRET_PREVIOUS": OLD,
        }
    )
    run = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "outpost", "rotate-key"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "re-encrypted 3 destination(s)" in run.stdout
    assert OLD not in run.stdout + run.stderr and NEW not in run.stdout + run.stderr
    new_only = Deps.build(make_settings(redis_server.redis_url, aes_encryption_secret=NEW), redis)
    assert len(await new_only.store.list_destinations("acme")) == 3
