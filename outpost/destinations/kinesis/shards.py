"""Which shard a record lands on, and how fast each shard may be written.

Kinesis puts a record on the open shard whose hash key range holds the MD5 of its
partition key (read as a 128-bit big-endian integer), or its ExplicitHashKey when given.
`ShardMap` holds the open shards of one stream from ListShards; `TokenBucket` paces one
shard's records and bytes so that no rolling second ever takes more than the shard's limit:
the bucket (refilled at `rate`, holding at most `burst`) spreads the sends, and a log of
the last second's takes holds every rolling second to WINDOW_SHARE of the limit. Kinesis
counts a record from when it arrives, later than its take: when a call's answer comes, its
takes are logged again at that time (`arrived`), so the log forgets them no sooner than
Kinesis does (a log that forgot them a second after the take let the next second's records
in while Kinesis still counted a 1 MiB record, and they were throttled, under load).
"""

from __future__ import annotations

import bisect
import hashlib
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# per shard, provisioned and on-demand streams alike (on-demand scales by adding shards)
SHARD_RECORDS_PER_S = 1000
SHARD_BYTES_PER_S = 1024 * 1024
WINDOW_SHARE = 0.98  # of the limit, at most, in any rolling second (a one-second log)
RATE_SHARE = 0.93  # the bucket's refill per second, plus ...
BURST_SHARE = 0.05  # ... what it holds: within WINDOW_SHARE, so the bucket alone keeps
# the bound for records of ordinary size; the log keeps it for records bigger than the
# burst. A log-only limiter sends in bursts that arrive bunched (throttled, measured)
MAP_TTL_S = 60.0  # a shard map is listed again at least this often


def hash_key(partition_key: str, explicit_hash_key: str | None = None) -> int:
    """The 128-bit hash key Kinesis routes a record by."""
    if explicit_hash_key:
        return int(explicit_hash_key)
    return int.from_bytes(hashlib.md5(partition_key.encode()).digest(), "big")


@dataclass(frozen=True)
class Shard:
    shard_id: str
    start: int
    end: int


class ShardMap:
    """The open shards of one stream, by hash key range (from ListShards' answer)."""

    def __init__(self, shards: Iterable[Shard], listed_at: float | None = None):
        self.shards = sorted(shards, key=lambda s: s.start)
        self._starts = [s.start for s in self.shards]
        self.listed_at = time.monotonic() if listed_at is None else listed_at
        self.stale = False

    @classmethod
    def from_list_shards(cls, entries: Iterable[dict[str, Any]]) -> ShardMap:
        """Open shards only: a closed shard (after a split or merge) has an
        EndingSequenceNumber and takes no more records."""
        shards = [
            Shard(
                e["ShardId"],
                int(e["HashKeyRange"]["StartingHashKey"]),
                int(e["HashKeyRange"]["EndingHashKey"]),
            )
            for e in entries
            if not e.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
        ]
        return cls(shards)

    def shard_for(self, key: int) -> str | None:
        i = bisect.bisect_right(self._starts, key) - 1
        if i < 0 or key > self.shards[i].end:
            return None  # a gap: the map is mid-reshard; the caller lists again
        return self.shards[i].shard_id

    def due(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return self.stale or now - self.listed_at > MAP_TTL_S


@dataclass
class TokenBucket:
    """Tokens for one shard's records and bytes. `take(records, size)` succeeds only when
    both are available and the last rolling second has room for them; `wait(...)` says
    how long until it will. A record bigger than the burst (up to 1 MiB) waits for a full
    bucket and is then let through (the bucket owes)."""

    records_per_s: float = SHARD_RECORDS_PER_S * RATE_SHARE
    bytes_per_s: float = SHARD_BYTES_PER_S * RATE_SHARE
    burst_records: float = SHARD_RECORDS_PER_S * BURST_SHARE
    burst_bytes: float = SHARD_BYTES_PER_S * BURST_SHARE
    window_records: float = SHARD_RECORDS_PER_S * WINDOW_SHARE
    window_bytes: float = SHARD_BYTES_PER_S * WINDOW_SHARE
    records: float = field(init=False)
    size: float = field(init=False)
    at: float = field(default_factory=time.monotonic)
    paused_until: float = 0.0
    log: deque[tuple[float, int, int]] = field(default_factory=deque)
    logged_records: int = 0  # taken in the last second
    logged_bytes: int = 0

    def __post_init__(self) -> None:
        self.records, self.size = self.burst_records, self.burst_bytes

    def _refill(self, now: float) -> None:
        dt = max(0.0, now - self.at)
        self.at = now
        self.records = min(self.burst_records, self.records + dt * self.records_per_s)
        self.size = min(self.burst_bytes, self.size + dt * self.bytes_per_s)
        while self.log and self.log[0][0] <= now - 1.0:
            _, records, size = self.log.popleft()
            self.logged_records -= records
            self.logged_bytes -= size

    def take(self, records: int, size: int, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        self._refill(now)
        if now < self.paused_until or records > self.records:
            return False
        if self.logged_records + records > self.window_records:
            return False
        if self.logged_bytes + size > self.window_bytes and (self.log or size <= self.window_bytes):
            return False  # (a record bigger than the window goes in a second of its own)
        if size > self.size and not (self.size >= self.burst_bytes < size):
            return False
        self.records -= records
        self.size -= size
        self.log.append((now, records, size))
        self.logged_records += records
        self.logged_bytes += size
        return True

    def wait(self, records: int, size: int, now: float | None = None) -> float:
        """Seconds until `take(records, size)` can succeed (0 when it can now)."""
        now = time.monotonic() if now is None else now
        self._refill(now)
        need_r = min(records, self.burst_records) - self.records
        need_b = min(size, self.burst_bytes) - self.size
        refill = max(0.0, need_r / self.records_per_s, need_b / self.bytes_per_s)
        excess_r = self.logged_records + records - self.window_records
        excess_b = self.logged_bytes + min(size, self.window_bytes) - self.window_bytes
        if size > self.window_bytes and self.log:
            excess_b = self.logged_bytes  # waits for a second of its own
        window = 0.0
        for at, taken_r, taken_b in self.log:  # the oldest leave the rolling second first
            if excess_r <= 0 and excess_b <= 0:
                break
            excess_r -= taken_r
            excess_b -= taken_b
            window = at + 1.0 - now
        return max(refill, window, self.paused_until - now)

    def arrived(self, taken_at: float, now: float | None = None) -> None:
        """The call that carried the takes made at `taken_at` was answered: they count from
        now. (Takes of one moment sit together in the log; moved to its end, now being the
        latest time, the log stays in time order.)"""
        now = time.monotonic() if now is None else now
        moved = [entry for entry in self.log if entry[0] == taken_at]
        if not moved:
            return
        kept = [entry for entry in self.log if entry[0] != taken_at]
        self.log = deque(kept)
        self.log.extend((now, records, size) for _, records, size in moved)

    def back_off(self, seconds: float, now: float | None = None) -> None:
        """The shard answered ProvisionedThroughputExceeded: nothing for it for a while,
        and an empty bucket after."""
        now = time.monotonic() if now is None else now
        self._refill(now)
        self.records = self.size = 0.0
        self.paused_until = max(self.paused_until, now + seconds)
