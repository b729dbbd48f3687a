"""The process's Prometheus metrics: one registry per `Deps`, passed down, rendered at
`/metrics` of the API and of the probe port (HEALTH_PORT).

Labels are bounded: destination type (the registry's closed list), outcome code class
(the closed tables of destinations/*/errors.py, a number's digits after its first folded:
`http_503` -> `http_5xx`; at most MAX_CODES distinct), route template, partition number.
Tenant ids only with METRICS_PER_TENANT. Counters are bumped where an event passes once
(publish, an attempt's settled outcome, an alert); the queue's sizes are gauges a periodic
refresh sets (delivery/gauges.py), never a scrape's own Redis calls."""

from __future__ import annotations

import re
from bisect import bisect_left
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["CONTENT_TYPE", "Telemetry", "code_class"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
MAX_CODES = 64  # distinct code classes kept per process; more are counted as "other"
# publish -> delivered: from milliseconds to the retry schedule's hours
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200)
ATTEMPT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
THROTTLE_CODES = frozenset({"throughput_exceeded"})  # aws/errors.py's throttled rows
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
_DIGITS = re.compile(r"(?<=\d)\d")  # all but the first digit of a number
_CODE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def observe_many(histogram: Any, amount: float, count: int) -> None:
    """`count` observations of `amount` at once (a batch's attempts share their time):
    prometheus-client's own steps of `observe` (the sum; the first bucket whose bound the
    amount is within), each taking the count; one by one for any other kind of child."""
    bounds = getattr(histogram, "_upper_bounds", None)
    if bounds is None or count == 1:
        for _ in range(count):
            histogram.observe(amount)
        return
    histogram._sum.inc(amount * count)
    histogram._buckets[bisect_left(bounds, amount)].inc(count)


def code_class(code: str, known: set[str] | None = None) -> str:
    """A failure code as a bounded label value: digits folded to `x`, anything not a
    short snake_case word (or beyond MAX_CODES distinct ones in `known`) is "other"."""
    folded = _DIGITS.sub("x", code)
    if not _CODE.match(folded):
        return "other"
    if known is not None and folded not in known:
        if len(known) >= MAX_CODES:
            return "other"
        known.add(folded)
    return folded


class Telemetry:
    """Every metric the service exports, on its own registry (so tests and processes
    never share one by accident)."""

    def __init__(self, per_tenant: bool = False):
        self.registry = r = CollectorRegistry(auto_describe=False)
        self.per_tenant = per_tenant
        tenant = ("tenant",) if per_tenant else ()
        typed = ("destination_type", *tenant)
        self._codes: set[str] = set()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.published = Counter(
            "outpost_events_published", "Events stored by publish", tenant, registry=r
        )
        self.queued = Counter(
            "outpost_tasks_published", "Delivery tasks queued by publish", typed, registry=r
        )
        self.delivered = Counter(
            "outpost_deliveries_delivered", "Attempts that delivered", typed, registry=r
        )
        self.failed = Counter(
            "outpost_deliveries_failed",
            "Attempts that failed, by outcome code class",
            ("destination_type", "code_class", *tenant),
            registry=r,
        )
        self.retried = Counter(
            "outpost_deliveries_retried",
            "Failed attempts put on the retry schedule",
            typed,
            registry=r,
        )
        self.dead = Counter(
            "outpost_deliveries_dead_lettered", "Tasks kept as dead letters", typed, registry=r
        )
        self.held = Counter(
            "outpost_deliveries_held", "Tasks held unsent (circuit open)", typed, registry=r
        )
        self._histograms(r)
        self._gauges(r)

    def _histograms(self, r: CollectorRegistry) -> None:
        self.latency = Histogram(
            "outpost_delivery_latency_seconds",
            "From publish to delivered (retries included)",
            ("destination_type",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.attempt = Histogram(
            "outpost_attempt_duration_seconds",
            "One attempt, from its start to its outcome",
            ("destination_type",),
            buckets=ATTEMPT_BUCKETS,
            registry=r,
        )
        self.requests = Histogram(
            "outpost_http_request_duration_seconds",
            "HTTP requests by route template and status class",
            ("method", "route", "status_class"),
            buckets=ATTEMPT_BUCKETS,
            registry=r,
        )

    def _gauges(self, r: CollectorRegistry) -> None:
        self.inflight = Gauge(
            "outpost_deliveries_in_flight", "Attempts under way in this process", registry=r
        )
        self.queue_depth = Gauge(
            "outpost_queue_depth",
            "Tasks in a partition (queued or in flight)",
            ("partition",),
            registry=r,
        )
        self.queue_age = Gauge(
            "outpost_queue_oldest_age_seconds",
            "Age of a partition's oldest task",
            ("partition",),
            registry=r,
        )
        self.retry_size = Gauge(
            "outpost_retry_scheduled", "Tasks waiting on the retry schedule", registry=r
        )
        self.dead_size = Gauge(
            "outpost_dead_letters", "Dead letters kept (every tenant)", registry=r
        )
        self.redis_errors = Counter(
            "outpost_redis_errors", "Redis commands that failed", registry=r
        )
        self.throttles = Counter(
            "outpost_aws_throttles", "Attempts AWS throttled", ("destination_type",), registry=r
        )
        self.alerts = Counter(
            "outpost_alerts",
            "Operator alerts raised (sent when OPERATOR_EVENTS_HTTP_URL is set)",
            ("alert",),
            registry=r,
        )

    def render(self) -> bytes:
        """The exposition text of every metric."""
        return generate_latest(self.registry)

    def names(self) -> set[str]:
        """Every sample name exported (counters' `_total`, histograms' `_bucket`...)."""
        return {
            family.name + suffix
            for family in self.registry.collect()
            for suffix in _SUFFIXES.get(family.type, ("",))
        }

    def _t(self, tenant_id: str) -> tuple[str, ...]:
        return (tenant_id,) if self.per_tenant else ()

    def of(self, metric: Any, *values: str) -> Any:
        """The metric's child for these label values (a dict lookup once made: the hot
        paths skip prometheus-client's locked `labels()`)."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values) if values else metric
        return child

    def on_publish(self, tenant_id: str, types: list[str], events: int = 1) -> None:
        """`events` events stored, each with a task queued for each destination type in
        `types` (a batch counts its events alike once)."""
        tenant = self._t(tenant_id)
        self.of(self.published, *tenant).inc(events)
        for dtype in types:
            self.of(self.queued, dtype, *tenant).inc(events)

    def on_outcome(
        self,
        dtype: str,
        tenant_id: str,
        status: str,
        code: str,
        *,
        retry: bool,
        dead: bool,
        count: int = 1,
    ) -> None:
        """`count` attempts' like outcome, counted once each (held tasks were not sent): a
        batch counts its like outcomes in one call."""
        tenant = self._t(tenant_id)
        if status == "success":
            self.of(self.delivered, dtype, *tenant).inc(count)
        elif status == "held":
            self.of(self.held, dtype, *tenant).inc(count)
            return
        else:
            self.of(self.failed, dtype, code_class(code, self._codes), *tenant).inc(count)
            if code in THROTTLE_CODES:
                self.of(self.throttles, dtype).inc(count)
        if retry:
            self.of(self.retried, dtype, *tenant).inc(count)
        if dead:
            self.of(self.dead, dtype, *tenant).inc(count)
