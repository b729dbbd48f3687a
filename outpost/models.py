"""The domain's data: tenants, destinations, events, delivery tasks. No I/O here."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    StringConstraints,
    WithJsonSchema,
)

ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
StrMap = dict[str, str]


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime) -> str:
    """RFC 3339 in UTC with milliseconds and a `Z`."""
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class TenantUpsert(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metadata: StrMap | None = None
    # the tenant's own EVENT_RETENTION_SECONDS (at most the deployment's); absent: kept as
    # it is, null: the deployment's again
    event_retention_seconds: Annotated[int, Field(ge=60)] | None = None


class PublishRequest(BaseModel):
    """Outpost's publish body."""

    model_config = ConfigDict(extra="ignore")
    id: Id | None = None
    tenant_id: Id
    destination_id: Id | None = None
    topic: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    eligible_for_retry: bool = True
    time: datetime | None = None
    metadata: StrMap | None = None
    data: dict[str, Any]


class RedriveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    destination_id: Id | None = None
    event_ids: Annotated[list[Id], Field(min_length=1, max_length=1000)] | None = None


class ReplayRequest(BaseModel):
    """`POST .../destinations/{id}/replay`: queue again what the destination missed (its
    dead letters: failed for good, or kept while it was disabled) whose event time is in
    [since, until)."""

    model_config = ConfigDict(extra="forbid")
    since: datetime
    until: datetime | None = None


class RetryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_id: Id
    destination_id: Id
    tenant_id: Id | None = None


def _check_topics(value: Any) -> list[str] | str:
    if value == "*":
        return "*"
    if isinstance(value, list) and value and all(isinstance(t, str) and t.strip() for t in value):
        return list(dict.fromkeys(value))
    raise ValueError('must be "*" or a non-empty list of topic names')


class PublishBatch(RootModel[list[PublishRequest]]):
    """`POST /publish/batch`: up to 1,000 publish requests (each answered on its own)."""


Topics = Annotated[
    Any,
    AfterValidator(_check_topics),
    WithJsonSchema(
        {
            "oneOf": [
                {"type": "string", "enum": ["*"]},
                {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
            ]
        }
    ),
]


class DeliveryOverrides(BaseModel):
    """A destination's own retry limit / schedule and send timeout; the operator's bounds
    (DESTINATION_MAX_RETRY_LIMIT, DESTINATION_MAX_TIMEOUT_SECONDS) are checked by the API.
    Unset fields take the deployment's settings."""

    model_config = ConfigDict(extra="forbid")
    retry_limit: Annotated[int, Field(ge=0)] | None = None
    retry_schedule: Annotated[list[Annotated[float, Field(gt=0)]], Field(max_length=100)] | None = (
        None
    )
    timeout_seconds: Annotated[float, Field(gt=0)] | None = None


class DestinationCreate(BaseModel):
    """The type-independent part of a create body; `config`/`credentials` are checked by
    the destination type's own models."""

    model_config = ConfigDict(extra="forbid")
    id: Id | None = None
    type: str
    topics: Topics
    config: dict[str, Any] = {}
    credentials: dict[str, Any] = {}
    delivery_metadata: StrMap | None = None
    metadata: StrMap | None = None
    disabled_at: datetime | None = None
    filter: dict[str, Any] | None = None
    deliver_missed_on_enable: bool = False
    delivery_overrides: DeliveryOverrides | None = None
    created_at: datetime | None = None  # import overrides (admin only)
    updated_at: datetime | None = None


class DestinationUpdate(BaseModel):
    """PATCH body. Maps merge per RFC 7396 (a null value deletes a key)."""

    model_config = ConfigDict(extra="forbid")
    type: str | None = None
    topics: Topics | None = None
    config: dict[str, Any] | None = None
    credentials: dict[str, Any] | None = None
    delivery_metadata: dict[str, str | None] | None = None
    metadata: dict[str, str | None] | None = None
    disabled_at: datetime | None = None
    filter: dict[str, Any] | None = None  # full replacement; null or {} clears
    deliver_missed_on_enable: bool | None = None
    delivery_overrides: DeliveryOverrides | None = None  # full replacement; null clears


@dataclass
class Destination:
    """A tenant's destination with its credentials in clear (only ever in memory)."""

    id: str
    tenant_id: str
    type: str
    topics: list[str] | str
    config: dict[str, Any]
    credentials: dict[str, Any]
    created_at: str
    updated_at: str
    disabled_at: str | None = None
    delivery_metadata: dict[str, str] | None = None
    metadata: dict[str, str] | None = None
    filter: dict[str, Any] | None = None
    # events published while it was disabled are delivered when it is enabled again
    deliver_missed_on_enable: bool = False
    # DeliveryOverrides' fields that were set (retry_limit, retry_schedule, timeout_seconds)
    overrides: dict[str, Any] | None = None
    # provider-specific compiled state (e.g. a JMESPath expression); not stored
    compiled: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None

    def matches(self, topic: str | None) -> bool:
        if every_topic(self.topics):
            return True
        return topic is not None and any(topic_matches(t, topic) for t in self.topics)


def every_topic(topics: list[str] | str) -> bool:
    """`"*"` and `["*"]` both mean every topic (Outpost reads `"*"` as `["*"]`)."""
    return topics == "*" or topics == ["*"]


def topic_matches(pattern: str, topic: str) -> bool:
    """A topic entry; `*` inside it matches any run of characters but a line break
    (TOPICS_ALLOW_WILDCARDS). Linear, no backtracking: the literal parts between the stars
    must appear in order, the first as a prefix and the last as a suffix, and the leftmost
    place of each middle part is always the best one (it leaves the most room after it
    and the shortest run for the star before it)."""
    if "*" not in pattern:
        return pattern == topic
    first, *middle, last = pattern.split("*")
    end = len(topic) - len(last)
    if end < len(first) or not topic.startswith(first) or not topic.endswith(last):
        return False
    pos = len(first)
    for part in middle:
        at = topic.find(part, pos, end)
        if at < 0 or "\n" in topic[pos:at]:
            return False
        pos = at + len(part)
    return "\n" not in topic[pos:end]


@dataclass(frozen=True)
class Event:
    id: str
    tenant_id: str
    topic: str
    time: datetime
    data: dict[str, Any]
    metadata: dict[str, str] = field(default_factory=dict)
    eligible_for_retry: bool = True
    destination_id: str | None = None
    # carried with the stored event, never shown (queue/items.py encodes them): the publish
    # span's W3C traceparent ("" = not traced) and when the event was stored (Unix seconds)
    traceparent: str = field(default="", compare=False)
    published_at: float = field(default=0.0, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "destination_id": self.destination_id,
            "topic": self.topic,
            "time": iso(self.time),
            "eligible_for_retry": self.eligible_for_retry,
            "metadata": self.metadata,
            "data": self.data,
        }

    @classmethod
    def from_json(
        cls, raw: dict[str, Any], traceparent: str = "", published_at: float = 0.0
    ) -> Event:
        return cls(
            traceparent=traceparent,
            published_at=published_at,
            id=raw["id"],
            tenant_id=raw["tenant_id"],
            topic=raw.get("topic") or "",
            time=parse_iso(raw["time"]),
            data=raw["data"],
            metadata=raw.get("metadata") or {},
            eligible_for_retry=raw.get("eligible_for_retry", True),
            destination_id=raw.get("destination_id"),
        )


@dataclass(frozen=True, slots=True)
class OrderedBy:
    """A route's lane key for a destination that delivers in order per key
    (`config.ordering`): its tasks go to the sub-lane of `key` (queue/ordered.py). A
    plain string key routes to the destination's one lane."""

    key: str


@dataclass(frozen=True)
class Task:
    """One delivery of one event to one destination; what the partition streams carry."""

    tenant_id: str
    event_id: str
    destination_id: str
    attempt: int = 1
    manual: bool = False
    key: str = ""  # its ordering key, in an ordered sub-lane (queued there beside `fields`)

    def fields(self) -> dict[str, str]:
        return {
            "t": self.tenant_id,
            "e": self.event_id,
            "d": self.destination_id,
            "a": str(self.attempt),
            "m": "1" if self.manual else "0",
        }

    @classmethod
    def from_fields(cls, f: dict[str, str]) -> Task:
        return cls(f["t"], f["e"], f["d"], int(f.get("a", "1")), f.get("m") == "1", f.get("k", ""))

    @classmethod
    def from_entry(cls, f: dict[bytes, bytes]) -> Task:
        """`from_fields` of a stream entry as Redis answers it (bytes): only these decoded."""
        get = f.get
        return cls(
            *(f[b"t"].decode(), f[b"e"].decode(), f[b"d"].decode()),
            int(get(b"a", b"1")),
            get(b"m") == b"1",
            get(b"k", b"").decode(),
        )


ID_BLOCK = 256  # ids drawn per system call
_ids: list[str] = []


def new_event_id() -> str:
    """`evt_` and 96 random bits (24 hex digits), from os.urandom in blocks of ID_BLOCK
    ids: one system call per block, not one per event."""
    if not _ids:
        block = os.urandom(12 * ID_BLOCK).hex()
        _ids.extend(f"evt_{block[i : i + 24]}" for i in range(0, len(block), 24))
    return _ids.pop()


# a forked child must not hand out its parent's ids
os.register_at_fork(after_in_child=_ids.clear)
