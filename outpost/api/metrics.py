"""`/metrics/events` and `/metrics/attempts`: time buckets and dimensions computed from our
own event and attempt logs. Reading is bounded by `ROW_LIMIT` log entries per query
(`metadata.truncated` says when that cut the answer); the aggregation is pure."""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from multidict import MultiMapping

from outpost.errors import Forbidden, ValidationFailed
from outpost.models import iso, parse_iso

ROW_LIMIT = 100_000
EVENT_MEASURES = {"count", "rate"}
EVENT_DIMENSIONS = {"tenant_id", "topic", "destination_id"}
ATTEMPT_MEASURES = {
    "count",
    "successful_count",
    "failed_count",
    "error_rate",
    "first_attempt_count",
    "retry_count",
    "manual_retry_count",
    "avg_attempt_number",
    "rate",
    "successful_rate",
    "failed_rate",
}
ATTEMPT_DIMENSIONS = {
    "tenant_id",
    "destination_id",
    "destination_type",
    "topic",
    "status",
    "code",
    "manual",
    "attempt_number",
}
_GRANULARITY = re.compile(r"^(\d+)([smhdwM])$")
_UNIT_MAX = {"s": 60, "m": 60, "h": 24, "d": 31, "w": 4, "M": 12}
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def listed(query: MultiMapping[str], name: str) -> list[str]:
    """`name=a&name=b`, `name=a,b`, `name[0]=a&name[1]=b` or `name[]=a` (as Outpost: the
    parts trimmed, empty ones dropped)."""
    values = [
        v for k, v in query.items() if k == name or re.fullmatch(rf"{re.escape(name)}\[\d*\]", k)
    ]
    return [part.strip() for v in values for part in v.split(",") if part.strip()]


def _utc(raw: str) -> datetime:
    """A date-time; without an offset (e.g. YYYY-MM-DD) it is UTC, so comparing it with an
    offset one cannot fail."""
    moment = parse_iso(raw)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_query(
    query: MultiMapping[str], measures_ok: set[str], dims_ok: set[str]
) -> dict[str, Any]:
    problems = []
    try:
        start, end = _utc(query["time[start]"]), _utc(query["time[end]"])
    except (KeyError, ValueError):
        start = end = datetime.now(UTC)
        problems.append("time[start] and time[end] are required RFC 3339 date-times")
    measures, dims = listed(query, "measures"), listed(query, "dimensions")
    if not measures:
        problems.append("measures is required (at least one)")
    problems += [
        f"measures: {m!r} is not one of {sorted(measures_ok)}"
        for m in measures
        if m not in measures_ok
    ]
    problems += [
        f"dimensions: {d!r} is not one of {sorted(dims_ok)}" for d in dims if d not in dims_ok
    ]
    granularity = query.get("granularity") or None  # empty: omitted, as Outpost
    if granularity is not None and bucket_size(granularity) is None:
        problems.append("granularity must be <number><unit>, units s m h d w M")
    filters = {d: set(listed(query, f"filters[{d}]")) for d in dims_ok}
    if problems:
        raise ValidationFailed(problems)
    if end <= start:
        raise ValidationFailed(["time[end] must be after time[start]"])
    return {
        "start": start,
        "end": end,
        "measures": measures,
        "dimensions": dims,
        "granularity": granularity,
        "filters": {k: v for k, v in filters.items() if v},
    }


def bucket_size(granularity: str) -> tuple[int, str] | None:
    m = _GRANULARITY.fullmatch(granularity)
    if not m or not 1 <= int(m.group(1)) <= _UNIT_MAX[m.group(2)]:
        return None
    return int(m.group(1)), m.group(2)


def bucket_of(t: datetime, n: int, unit: str) -> datetime:
    if unit == "M":
        months = t.year * 12 + t.month - 1
        months -= months % n
        return datetime(months // 12, months % 12 + 1, 1, tzinfo=UTC)
    size = n * _UNIT_SECONDS[unit]
    return datetime.fromtimestamp(t.timestamp() // size * size, UTC)


def _seconds(start: datetime, n: int, unit: str) -> float:
    if unit == "M":
        nxt = bucket_of(start + timedelta(days=31 * n), n, unit)
        return (nxt - start).total_seconds()
    return float(n * _UNIT_SECONDS[unit])


def aggregate(rows: Iterable[dict[str, Any]], q: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows (each with `time` and dimension values) → data points. Pure."""
    size = bucket_size(q["granularity"]) if q["granularity"] else None
    groups: dict[tuple[Any, ...], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in rows:
        if any(str(row.get(k)) not in v for k, v in q["filters"].items()):
            continue
        bucket = bucket_of(row["time"], *size) if size else None
        key = (bucket, *(str(row.get(d, "")) for d in q["dimensions"]))
        acc = groups[key]
        acc["count"] += 1
        if "status" in row:
            ok = row["status"] == "success"
            acc["successful"] += ok
            acc["failed"] += not ok
            acc["first"] += row["attempt_number"] == "1"
            acc["manual"] += row["manual"] == "true"
            acc["retry"] += row["attempt_number"] != "1" and row["manual"] != "true"
            acc["attempt_sum"] += int(row["attempt_number"])
    span = (q["end"] - q["start"]).total_seconds()
    points = []
    for key, acc in sorted(groups.items(), key=lambda kv: tuple(str(k) for k in kv[0])):
        begins = key[0] if isinstance(key[0], datetime) else None
        dims = list(key[1:])
        seconds = _seconds(begins, *size) if size and begins else span
        point: dict[str, Any] = {
            "dimensions": dict(zip(q["dimensions"], dims, strict=True)),
            "metrics": {m: _measure(m, acc, seconds) for m in q["measures"]},
        }
        if begins is not None:
            point["time_bucket"] = iso(begins)
        points.append(point)
    return points


def _measure(name: str, acc: dict[str, float], seconds: float) -> float | int:
    count = acc["count"]
    values: dict[str, float | int] = {
        "count": int(count),
        "successful_count": int(acc["successful"]),
        "failed_count": int(acc["failed"]),
        "error_rate": round(acc["failed"] / count, 6) if count else 0.0,
        "first_attempt_count": int(acc["first"]),
        "retry_count": int(acc["retry"]),
        "manual_retry_count": int(acc["manual"]),
        "avg_attempt_number": round(acc["attempt_sum"] / count, 6) if count else 0.0,
        "rate": round(count / seconds, 6),
        "successful_rate": round(acc["successful"] / seconds, 6),
        "failed_rate": round(acc["failed"] / seconds, 6),
    }
    return values[name]


def response(
    points: list[dict[str, Any]], q: dict[str, Any], started: float, truncated: bool
) -> dict[str, Any]:
    return {
        "data": points,
        "metadata": {
            "granularity": q["granularity"],
            "query_time_ms": int((time.monotonic() - started) * 1000),
            "row_count": len(points),
            "row_limit": ROW_LIMIT,
            "truncated": truncated,
        },
    }


def scope(q: dict[str, Any], own_tenant: str | None) -> str | None:
    """The one tenant a query reads, if any; a tenant token may not ask about tenants."""
    if own_tenant is not None:
        if "tenant_id" in q["dimensions"] or "tenant_id" in q["filters"]:
            raise Forbidden("tenant_id dimensions and filters need the admin API key")
        q["filters"]["tenant_id"] = {own_tenant}
        return own_tenant
    tenants = q["filters"].get("tenant_id", set())
    return next(iter(tenants)) if len(tenants) == 1 else None
