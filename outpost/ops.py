"""Moving a deployment to another Redis (a cluster, a managed one): `outpost drain` waits
until nothing is queued, in flight or waiting to be retried; `outpost migrate-redis` copies
the data at rest (tenants, destinations, Flow Service connections and flows) key by key
(DUMP on the source, RESTORE on the node owning the key's slot on the target).

What is copied is named by the key layout (queue/keys.py), never listed by hand here:
each kind is one of its functions with every id a `*` (SCAN patterns)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from outpost.queue.connection import RedisConfig, check_redis, connect_redis
from outpost.queue.keys import Keys, enc
from outpost.queue.sizes import outboxed, read_sizes

_ANY = "\x00any\x00"  # an id that stands for every id: its encoding becomes `*`
SCAN_COUNT = 1000


def copied_patterns(keys: Keys) -> list[str]:
    """SCAN patterns of the keys migrate-redis copies: tenants and their generation,
    destinations, Flow Service resources and run notifications, the flow index and each
    flow's reader state (checkpoints, runs; not its shard leases, which expire)."""
    star = enc(_ANY)
    kinds = [
        keys.tenants(),
        keys.tenant(_ANY),
        keys.tenant_generation(_ANY),
        keys.destinations(_ANY),
        keys.flow_resources(_ANY, _ANY, _ANY),
        keys.flow_notifications(_ANY, _ANY),
        keys.flow_index(),
        keys.flow_state(_ANY, _ANY),
    ]
    return [kind.replace(star, "*").replace(_ANY, "*") for kind in kinds]  # some unencoded


def skipped(keys: Keys, key: str) -> bool:
    """A key a pattern matched that is not data at rest: a source reader's shard lease."""
    lease = keys.flow_state(_ANY, "lease:").replace(enc(_ANY), "*") + "*"
    return fnmatchcase(key, lease)


@dataclass
class Depth:
    queued: int  # tasks queued or in flight, in every partition
    retrying: int
    dead_letters: int
    # outbox entries (a publish call's stored events, or a redriven dead letter) not yet
    # known to be in a lane (the promoter's sweep moves them)
    outboxed: int = 0

    @property
    def drained(self) -> bool:
        return self.queued == 0 and self.retrying == 0 and self.outboxed == 0

    def line(self) -> str:
        return (
            f"queued or in flight: {self.queued}, waiting to be retried: {self.retrying}, "
            f"outbox entries not yet in a lane: {self.outboxed}, "
            f"dead letters (kept, not drained): {self.dead_letters}"
        )


async def depth(redis: Redis, keys: Keys, partitions: int) -> Depth:
    sizes = await read_sizes(redis, keys, partitions)
    owed = await outboxed(redis, keys, partitions)
    return Depth(sum(sizes.depth.values()), sizes.retries, sizes.dead_letters, owed)


async def drain(
    redis: Redis,
    keys: Keys,
    partitions: int,
    wait: bool,
    give_up_after: float,
    say: Callable[[str], None] = print,
    poll: float = 1.0,
) -> bool:
    """Report the queue's depth; with `wait`, again every `poll` seconds until it is
    drained or `give_up_after` seconds pass. True when drained."""
    deadline = time.monotonic() + give_up_after
    while True:
        now = await depth(redis, keys, partitions)
        say(now.line())
        if now.drained:
            say("drained: nothing queued, in flight or waiting to be retried")
            return True
        if not wait or time.monotonic() >= deadline:
            return False
        await asyncio.sleep(poll)


@dataclass
class Copied:
    keys: int = 0
    existing: int = 0  # already on the target (kept: run with replace to overwrite)
    gone: int = 0  # deleted on the source between SCAN and DUMP


async def migrate(
    source: Redis, target: Redis, keys: Keys, replace_existing: bool = False
) -> Copied:
    """Copy every key of `copied_patterns` from `source` to `target` with its TTL."""
    done = Copied()
    for pattern in copied_patterns(keys):
        batch: list[bytes] = []
        async for raw in source.scan_iter(match=pattern, count=SCAN_COUNT):
            if not skipped(keys, raw.decode()):
                batch.append(raw)
            if len(batch) >= SCAN_COUNT:
                await _copy(source, target, batch, replace_existing, done)
                batch = []
        await _copy(source, target, batch, replace_existing, done)
    return done


async def _copy(
    source: Redis, target: Redis, names: list[bytes], replace_existing: bool, done: Copied
) -> None:
    if not names:
        return
    pipe = source.pipeline(transaction=False)
    for name in names:
        pipe.dump(name)
        pipe.pttl(name)
    answers = await pipe.execute()
    put = target.pipeline(transaction=False)
    sent: list[bytes] = []
    for name, (blob, ttl) in zip(names, _pairs(answers), strict=True):
        if blob is None:  # expired or deleted since the SCAN
            done.gone += 1
            continue
        put.restore(name, max(int(ttl), 0), blob, replace=replace_existing)
        sent.append(name)
    for reply in await put.execute(raise_on_error=False):
        if isinstance(reply, ResponseError) and "BUSYKEY" in str(reply):
            done.existing += 1
        elif isinstance(reply, Exception):
            raise reply
        else:
            done.keys += 1


def _pairs(answers: list[Any]) -> Iterator[tuple[Any, Any]]:
    it = iter(answers)
    return zip(it, it, strict=True)


async def migrate_between(
    base: RedisConfig, source_url: str, target_url: str, target_cluster: bool
) -> tuple[RedisConfig, RedisConfig]:
    """The two ends' configs (the TLS files of the settings apply to both; each URL says
    its own user and password), checked to answer."""
    source = replace(base, url=source_url, cluster=False, username="", password="")
    target = replace(base, url=target_url, cluster=target_cluster, username="", password="")
    await check_redis(source)
    await check_redis(target)
    return source, target


async def run_migrate(
    base: RedisConfig, keys: Keys, urls: tuple[str, str], cluster: bool, replace_existing: bool
) -> Copied:
    source_cfg, target_cfg = await migrate_between(base, urls[0], urls[1], cluster)
    source, target = connect_redis(source_cfg), connect_redis(target_cfg)
    try:
        return await migrate(source, target, keys, replace_existing)
    finally:
        await source.aclose()
        await target.aclose()
