"""The API's response shapes, as pydantic models: the source of the OpenAPI document's
schemas. Tests validate real responses against the generated document, so a handler that
drifts from these shapes fails."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


DateTime = Field(json_schema_extra={"format": "date-time"})


class ErrorResponse(_Shape):
    status: int
    message: str
    data: list[str] | dict[str, Any] | None


class SuccessResponse(_Shape):
    success: bool


class WorkerHealth(_Shape):
    status: Literal["healthy", "failed"]


class Health(_Shape):
    status: Literal["healthy", "failed"]
    timestamp: str = DateTime
    workers: dict[str, WorkerHealth]


class SeekPagination(_Shape):
    order_by: str
    dir: Literal["asc", "desc"]
    limit: int
    next: str | None
    prev: str | None


class Tenant(_Shape):
    id: str
    destinations_count: int
    topics: list[str]
    metadata: dict[str, str] | None
    created_at: str = DateTime
    updated_at: str = DateTime
    event_retention_seconds: int | None = None  # shown when the tenant has its own


class TenantPage(_Shape):
    models: list[Tenant]
    pagination: SeekPagination
    count: int


class TenantToken(_Shape):
    token: str
    tenant_id: str


class MetricsDataPoint(_Shape):
    time_bucket: str | None = DateTime
    dimensions: dict[str, str]
    metrics: dict[str, float | int]


class MetricsMetadata(_Shape):
    granularity: str | None
    query_time_ms: int
    row_count: int
    row_limit: int
    truncated: bool


class MetricsResponse(_Shape):
    data: list[MetricsDataPoint]
    metadata: MetricsMetadata


class PublishBatchItem(_Shape):
    status: int
    id: str | None = None
    duplicate: bool | None = None
    destination_ids: list[str] | None = None
    message: str | None = None
    data: list[str] | dict[str, Any] | None = None


class PublishBatchResult(_Shape):
    accepted: int
    results: list[PublishBatchItem]


class PortalRedirect(_Shape):
    redirect_url: str
    tenant_id: str


class DeliveryOverrides(_Shape):
    retry_limit: int | None = None
    retry_schedule: list[float] | None = None
    timeout_seconds: float | None = None


class Destination(_Shape):
    id: str
    type: str
    topics: Literal["*"] | list[str]
    config: dict[str, Any]
    credentials: dict[str, Any]
    delivery_metadata: dict[str, str] | None
    metadata: dict[str, str] | None
    filter: dict[str, Any] | None
    deliver_missed_on_enable: bool
    delivery_overrides: DeliveryOverrides | None
    disabled_at: str | None = DateTime
    created_at: str = DateTime
    updated_at: str = DateTime
    target: str
    target_url: str | None


class PublishResponse(_Shape):
    id: str
    duplicate: bool
    destination_ids: list[str]


class Event(_Shape):
    id: str
    tenant_id: str
    matched_destination_ids: list[str]
    topic: str
    time: str = DateTime
    metadata: dict[str, str] | None
    data: dict[str, Any]


class EventPage(_Shape):
    models: list[Event]
    pagination: SeekPagination


class Attempt(_Shape):
    id: str
    tenant_id: str
    status: Literal["success", "failed"]
    time: str = DateTime
    code: str
    response_data: dict[str, Any] | None = None  # only with include=response_data
    attempt_number: int
    manual: bool
    event_id: str
    destination_id: str
    event: dict[str, Any] | None = None
    destination: Destination | None = None


class AttemptPage(_Shape):
    models: list[Attempt]
    pagination: SeekPagination


class DeadLetter(_Shape):
    id: str
    event_id: str
    destination_id: str
    attempt_number: int
    manual: bool
    code: str
    message: str
    time: str = DateTime


class DeadLetterPage(_Shape):
    models: list[DeadLetter]
    pagination: SeekPagination


class Undelivered(_Shape):
    event_id: str
    destination_id: str
    status: Literal["dead_lettered", "missed", "failed", "pending"]
    event_time: str | None = DateTime  # None: the event expired
    topic: str | None
    attempts: int
    code: str | None
    dead_letter_id: str | None
    since: str | None = DateTime


class UndeliveredPage(_Shape):
    models: list[Undelivered]
    truncated: bool


class ReplayResult(_Shape):
    replayed: int
    expired: int


class Skipped(_Shape):
    id: str
    event_id: str
    destination_id: str
    reason: str


class RedriveResult(_Shape):
    redriven: int
    skipped: list[Skipped]


class SchemaField(BaseModel):
    key: str
    type: str
    label: str
    required: bool
    sensitive: bool
    description: str | None = None
    pattern: str | None = None
    minlength: int | None = None
    maxlength: int | None = None


class SetupLink(_Shape):
    href: str
    cta: str


class DestinationType(_Shape):
    type: str
    label: str
    description: str
    icon: str
    instructions: str
    config_fields: list[SchemaField]
    credential_fields: list[SchemaField]
    setup_link: SetupLink | None = None  # a managed-setup flow (hookdeck); absent if none


class PreflightCheck(BaseModel):
    """One check: its name, whether it passed, what it found (more detail per check)."""

    model_config = ConfigDict(extra="allow")
    name: str
    ok: bool
    message: str


class PreflightResult(_Shape):
    ok: bool
    checks: list[PreflightCheck]
    ms: float


class AWSTrustPolicy(_Shape):
    role_arn: str
    external_id: str
    principal: str
    trust_policy: dict[str, Any]
    permissions_policy: dict[str, Any]


class Explored(BaseModel):
    """A stream explore: the streams the credentials see, or a stream's latest records."""

    model_config = ConfigDict(extra="allow")
    ok: bool
    message: str
    streams: list[dict[str, Any]] | None = None
    records: list[dict[str, Any]] | None = None
