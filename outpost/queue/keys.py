"""Every Redis key the service uses, in one place.

Keys of one tenant share the hash tag `{t:<tenant>}` and each delivery partition has its
own `{p:<n>}` (on a Redis Cluster `{p:<n>:<k>}`: `partition_tag` spreads them over the
slots), so that on Redis Cluster a tenant's keys and a partition's keys each sit in
one slot. A destination's delivery lane (its task stream) sits in the partition its
(tenant, destination) hashes to, beside that partition's index of lanes with work and its
bell, so one script call that queues a task touches one slot's keys for it.
`DEPLOYMENT_ID` prefixes everything, so deployments can share a Redis.

Every id that comes from outside (deployment, tenant, destination, event, attempt, flow,
sandbox, resource kind) goes into a key through `enc`: percent-encoding of `%` and of every
character outside `[A-Za-z0-9_.-]` (UTF-8 bytes, upper-case hex). An encoded id holds no
`:`, `{` or `}`, so the `:` separators of a key always split it the same way (no two ids,
and no two kinds of key, share a key: event `X:attempts` is not event `X`'s attempts) and
no id can open or close a hash tag. An id made only of safe characters is its own
encoding, so the keys of every id the API accepted before without `:` are unchanged.
"""

from __future__ import annotations

import re
from functools import cache
from itertools import count
from urllib.parse import unquote

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

GROUP = "outpost-workers"
SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_ALL_SAFE = re.compile(r"[A-Za-z0-9_.\-]*")  # the hot path: one C-level match per id
_ATTEMPT_PARTITION = re.compile(r"att_(\d{1,5})_[0-9a-f]+\Z")  # Keys.attempt_id


SPREAD = 1024  # the most delivery partitions (DELIVERY_PARTITIONS): see partition_tag


@cache
def partition_tag(n: int) -> str:
    """The hash tag of partition `n` on a Redis Cluster (inside its braces): `p:<n>`, or
    `p:<n>:<k>` with the smallest `k` that puts it in its slot range. Partition n's range
    is the bit-reversed n (10 bits) times 16 slots, 16 wide: partitions 0..P-1 then lie
    evenly over the 16,384 slots for any P (a power of two exactly, others nearly), so a
    cluster whose masters split the slots evenly splits the partitions evenly too
    (`{p:<n>}` alone put 10 of 16 partitions in the first third of the slots)."""
    width = REDIS_CLUSTER_HASH_SLOTS // SPREAD
    start = int(f"{n % SPREAD:010b}"[::-1], 2) * width
    for k in count():
        tag = f"p:{n}" if k == 0 else f"p:{n}:{k}"
        if start <= key_slot(tag.encode()) < start + width:
            return tag
    raise AssertionError("unreachable")  # (count() does not end)


def _plain_tag(n: int) -> str:
    return f"p:{n}"


def enc(raw: str) -> str:
    """An id as it appears inside a key: injective, no `:` `{` `}`; safe ids unchanged."""
    if _ALL_SAFE.fullmatch(raw):
        return raw
    return "".join(c if c in SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in raw)


class Keys:
    def __init__(self, deployment_id: str = "", spread: bool = False):
        """`spread`: partition tags spread over the slots (`partition_tag`; on a Redis
        Cluster); otherwise `{p:<n>}` (a single node: its keys as they always were)."""
        self.prefix = f"{enc(deployment_id)}:" if deployment_id else ""
        self._tag = partition_tag if spread else _plain_tag

    def tenants(self) -> str:
        """Sorted set (all scores 0) of `<created_ms>:<tenant id>`, ordered by lex."""
        return f"{self.prefix}tenants"

    def tenant(self, tenant_id: str) -> str:
        return f"{self.prefix}{{t:{enc(tenant_id)}}}:tenant"

    def tenant_generation(self, tenant_id: str) -> str:
        """The tenant id's last generation (a counter kept across deletes): a tenant
        created again after a delete is a new generation, so older tokens are refused."""
        return f"{self.prefix}{{t:{enc(tenant_id)}}}:generation"

    def tenant_pattern(self, tenant_id: str) -> str:
        """A SCAN pattern for every key of the tenant (an encoded id holds no glob
        character, so it matches this tenant's keys only)."""
        return f"{self.prefix}{{t:{enc(tenant_id)}}}:*"

    def destinations(self, tenant_id: str) -> str:
        return f"{self.prefix}{{t:{enc(tenant_id)}}}:destinations"

    def event(self, tenant_id: str, event_id: str) -> str:
        return f"{self.prefix}{{t:{enc(tenant_id)}}}:event:{enc(event_id)}"

    def event_owners(self, event_id: str, n: int | None = None) -> str:
        """Set of tenant ids that published an event with this id (admin lookups), in
        partition `n` (crc32 of the id: Lanes.owners_partition), so one call writes the
        owners of a batch's events of one partition. Without `n`: the key of before."""
        if n is None:
            return f"{self.prefix}{{e:{enc(event_id)}}}:owners"
        return f"{self.prefix}{{{self._tag(n)}}}:owners:{enc(event_id)}"

    def events_index(self, tenant_id: str) -> str:
        """Sorted set, score = event time ms: a tenant's event ids."""
        return f"{self.prefix}{{t:{enc(tenant_id)}}}:events"

    def outbox(self, tenant_id: str) -> str:
        """Sorted set, score = publish time ms: the tenant's events stored but not yet
        known to be queued in their lanes (queue/outbox.py), each member a JSON
        `{e, r, ms, ttl}` (event id, destination ids, event time, retention)."""
        return f"{self.prefix}{{t:{enc(tenant_id)}}}:outbox"

    def attempt(self, attempt_id: str) -> str:
        """One attempt's record (JSON, with its tenant). An attempt id names the partition
        whose step wrote it (`att_<n>_<random>`, `attempt_id`): the record sits under that
        partition's tag, written in the same script call that acks the task. An id of
        before (`att_<random>`) keeps its untagged key."""
        n = _ATTEMPT_PARTITION.match(attempt_id)
        if n is None:
            return f"{self.prefix}attempt:{enc(attempt_id)}"
        return f"{self.prefix}{{{self._tag(int(n.group(1)))}}}:attempt:{enc(attempt_id)}"

    @staticmethod
    def attempt_id(n: int, random_hex: str) -> str:
        """A new attempt's id, in partition `n` (see `attempt`)."""
        return f"att_{n}_{random_hex}"

    def attempts(self, tenant_id: str, destination_id: str) -> str:
        """Sorted set of a destination's attempt ids, score = attempt time ms."""
        return f"{self.prefix}{{t:{enc(tenant_id)}}}:attempts:{enc(destination_id)}"

    def tenant_attempts(self, tenant_id: str) -> str:
        return f"{self.prefix}{{t:{enc(tenant_id)}}}:attempts"

    def event_attempts(self, tenant_id: str, event_id: str) -> str:
        return f"{self.prefix}{{t:{enc(tenant_id)}}}:event:{enc(event_id)}:attempts"

    def dead_letters(self, tenant_id: str) -> str:
        return f"{self.prefix}{{t:{enc(tenant_id)}}}:dead"

    def failures(self, tenant_id: str, destination_id: str) -> str:
        """Consecutive failed attempts of a destination (reset by a success)."""
        return f"{self.prefix}{{t:{enc(tenant_id)}}}:failures:{enc(destination_id)}"

    def publish_rate(self, tenant_id: str, second: int) -> str:
        return f"{self.prefix}{{t:{enc(tenant_id)}}}:rate:{second}"

    def flow_resources(self, org: str, sandbox: str, kind: str) -> str:
        """Flow Service resources of one kind (connections, sourceConnections, ...) in one
        org (tenant) and sandbox: a hash of id → JSON."""
        return f"{self.prefix}{{t:{enc(org)}}}:fs:{enc(sandbox)}:{enc(kind)}"

    def flow_index(self) -> str:
        """Set of `org/sandbox/flow id` of every flow, for the source readers."""
        return f"{self.prefix}fs:flows"

    def flow_notifications(self, org: str, sandbox: str) -> str:
        """Stream of the run notifications of one org's sandbox (the latest kept)."""
        return f"{self.prefix}{{t:{enc(org)}}}:fsn:{enc(sandbox)}"

    def flow_state(self, flow_id: str, what: str) -> str:
        """A flow's reader state: `lease:<shard>`, `checkpoints`, `metrics`, `failed`,
        its runs: `run:<window start ms>`, `runs`, `runs_open`."""
        return f"{self.prefix}{{f:{enc(flow_id)}}}:{what}"

    def partition(self, n: int) -> str:
        """A partition's task stream of before the lanes: read until empty after an upgrade."""
        return f"{self.prefix}{{{self._tag(n)}}}:tasks"

    def lane(self, n: int, tenant_id: str, destination_id: str) -> str:
        """A destination's delivery lane: the stream of its tasks (consumer group GROUP),
        in partition `n` (Queue.partition_number of the pair)."""
        return f"{self.prefix}{{{self._tag(n)}}}:lane:{enc(tenant_id)}:{enc(destination_id)}"

    def lane_pattern(self, tenant_id: str) -> str:
        """A SCAN pattern for every lane of the tenant, in any partition."""
        return f"{self.prefix}{{p:*}}:lane:{enc(tenant_id)}:*"

    def ordered_lane(self, n: int, bucket: int, tenant_id: str, destination_id: str) -> str:
        """One of an ordered destination's sub-lanes (`config.ordering`): the stream of the
        tasks whose ordering key falls in `bucket`, in the destination's partition `n`,
        read by one worker at a time (its lease) and never through the consumer group."""
        return (
            f"{self.prefix}{{{self._tag(n)}}}:olane:{bucket}:{enc(tenant_id)}:{enc(destination_id)}"
        )

    def ordered_lane_pattern(self, tenant_id: str) -> str:
        """A SCAN pattern for every ordered sub-lane of the tenant, in any partition."""
        return f"{self.prefix}{{p:*}}:olane:*:{enc(tenant_id)}:*"

    def ordered_lanes(self, n: int) -> str:
        """Set of partition `n`'s ordered sub-lanes that hold tasks."""
        return f"{self.prefix}{{{self._tag(n)}}}:olanes"

    def lane_lease(self, ordered_lane: str) -> str:
        """Who reads an ordered sub-lane now: the owning worker's name (SET NX PX)."""
        return ordered_lane.replace("}:olane:", "}:olease:", 1)

    def lane_state(self, ordered_lane: str) -> str:
        """An ordered sub-lane's hash: `until` (ms: its head waits for its retry until
        then) and `a:<entry id>` (the attempt a head retried in place is at)."""
        return ordered_lane.replace("}:olane:", "}:ostate:", 1)

    def lanes_of(self, stream: str) -> str | None:
        """The index of lanes of the partition a lane (or an ordered sub-lane) sits in;
        None for a stream that is neither (a partition stream of before the lanes)."""
        tag_end = stream.find("}", len(self.prefix)) + 1
        if not tag_end:
            return None
        if stream.startswith(":lane:", tag_end):
            return f"{stream[:tag_end]}:lanes"
        if stream.startswith(":olane:", tag_end):
            return f"{stream[:tag_end]}:olanes"
        return None

    def state_of(self, stream: str) -> str | None:
        """An ordered sub-lane's state hash (`lane_state`); None for any other stream."""
        tag_end = stream.find("}", len(self.prefix)) + 1
        if not tag_end or not stream.startswith(":olane:", tag_end):
            return None
        return self.lane_state(stream)

    @staticmethod
    def lane_owner(lane: str) -> tuple[str, str]:
        """(tenant id, destination id) of a lane key (the ids decoded again)."""
        tenant, destination = lane.rsplit(":", 2)[1:]
        return unquote(tenant), unquote(destination)

    def lanes(self, n: int) -> str:
        """Set of partition `n`'s lanes that hold tasks (queued or in flight)."""
        return f"{self.prefix}{{{self._tag(n)}}}:lanes"

    def bell(self, n: int) -> str:
        """Stream rung when a lane of partition `n` gets its first task: a worker waiting
        on the lanes it knows wakes and looks for the new one."""
        return f"{self.prefix}{{{self._tag(n)}}}:bell"

    def retries(self, n: int) -> str:
        """Sorted set of partition `n`'s retries (score = when ms), members JSON tasks of
        lanes of this partition: promoting one is one call on this partition's slot."""
        return f"{self.prefix}{{{self._tag(n)}}}:retries"

    def admin_events(self, n: int) -> str:
        """Partition `n`'s share of the admin listing of every event: a sorted set of
        `tenant/event` (score = event time ms) of the tenants whose home partition is `n`
        (Lanes.home); the listing merges the partitions (scatter-gather)."""
        return f"{self.prefix}{{{self._tag(n)}}}:events"

    def admin_attempts(self, n: int) -> str:
        """Partition `n`'s share of the admin listing of every attempt: attempt ids of
        its lanes' tasks (score = attempt time ms)."""
        return f"{self.prefix}{{{self._tag(n)}}}:attempts"

    def outboxes(self, n: int) -> str:
        """Set of the tenants of home partition `n` that have published: the outbox
        sweep looks in their outboxes (queue/outbox.py)."""
        return f"{self.prefix}{{{self._tag(n)}}}:outboxes"

    @staticmethod
    def partition_of(key: str) -> int | None:
        """`n` of a key under a partition's hash tag (`{p:<n>}` or `{p:<n>:<k>}`,
        `partition_tag`; None for any other key)."""
        start = key.find("{p:")
        if start < 0:
            return None
        end = key.find("}", start)
        return int(key[start + 3 : end].partition(":")[0])
