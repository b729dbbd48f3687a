"""A streaming flow's runs (`/runs`): one per window (FLOW_RUN_WINDOW_SECONDS, hourly by
default), counted by the source readers as records flow (store/sources.py), never by
scanning. A run whose window has ended is closed once, across all processes, and
notified: an operator event (`flow.run.success` / `flow.run.failed`, the alerts' channel)
and an entry listed by `GET /runs/notifications`."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from outpost.delivery.alerts import Alerts
from outpost.deps import DEPS, Deps
from outpost.errors import Invalid, NotFound
from outpost.flow.scope import _scope

SUCCESS, FAILED, IN_PROGRESS = "success", "failed", "inProgress"
# the error codes of failed records (a run counts its failed records per code)
NOT_JSON = "SOURCE-1001-400"
NOT_XDM = "SOURCE-1002-400"
NOT_OBJECT = "SOURCE-1003-400"
PUBLISH_REFUSED = "SOURCE-1004-404"
BAD_ROW = "SOURCE-1005-400"
TOO_BIG = "SOURCE-1006-413"
BAD_PARQUET = "SOURCE-1007-400"
ERROR_CODES = {
    BAD_ROW: "a delimited row whose field count differs from the header's",
    TOO_BIG: "too big to read: a line over 1 MiB, or a JSON array over 16 MiB",
    NOT_JSON: "not valid JSON",
    NOT_XDM: "not valid xdm: an object with header and body is required",
    NOT_OBJECT: "the data must be a JSON object",
    PUBLISH_REFUSED: "the event could not be published (the tenant or its routing)",
    BAD_PARQUET: "not readable as parquet: a corrupt file or part of one, or a value",
}


def run_id(flow_id: str, window: int) -> str:
    return f"{flow_id}.{window}"


def status_of(counts: dict[str, Any], now_ms: int) -> str:
    """inProgress while the window lasts; then failed if any record failed, else success."""
    if counts["windowEnd"] > now_ms:
        return IN_PROGRESS
    return FAILED if counts["failed"] else SUCCESS


def run_view(flow: dict[str, Any], counts: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """A run as Flow Service shows it: epoch milliseconds, counts and errors with codes."""
    status = status_of(counts, now_ms)
    errors = [
        {"code": code, "message": ERROR_CODES.get(code, code), "recordCount": n}
        for code, n in sorted(counts["errors"].items())
    ]
    return {
        "id": run_id(flow["id"], counts["window"]),
        "flowId": flow["id"],
        "imsOrgId": flow["imsOrgId"],
        "sandboxName": flow["sandboxName"],
        "createdAt": counts["started"],
        "updatedAt": counts["last"],
        "status": status,
        "startTime": counts["window"],
        "endTime": counts["windowEnd"],
        "metrics": {
            "durationSummary": {
                "startedAtUTC": counts["started"],
                "completedAtUTC": counts["last"] if status != IN_PROGRESS else None,
            },
            "recordSummary": {
                "inputRecordCount": counts["input"],
                "outputRecordCount": counts["output"],
                "failedRecordCount": counts["failed"],
            },
            "statusSummary": {"status": status, "errors": errors},
        },
    }


async def runs_of(deps: Deps, flow: dict[str, Any], now_ms: int) -> list[dict[str, Any]]:
    windows = await deps.runs.windows(flow["id"])
    return [run_view(flow, c, now_ms) for c in await deps.runs.runs(flow["id"], windows)]


async def get_run(request: web.Request) -> web.Response:
    deps, s = request.app[DEPS], await _scope(request)
    flow_id, _, window = request.match_info["id"].rpartition(".")
    flow = await deps.flows.get("flows", s.org, s.sandbox, flow_id) if flow_id else None
    if flow is None or not window.isdigit():
        raise NotFound("run", "no such run in this org and sandbox")
    found = await deps.runs.runs(flow_id, [int(window)])
    if not found:
        raise NotFound("run", "no such run in this org and sandbox")
    return web.json_response({"items": [run_view(flow, found[0], _now_ms())]})


async def list_notifications(request: web.Request) -> web.Response:
    """The latest run notifications of the org's sandbox, newest first (`limit` ≤ 100)."""
    deps, s = request.app[DEPS], await _scope(request)
    try:
        limit = min(max(int(request.query.get("limit", "100")), 1), 100)
    except ValueError:
        raise Invalid("limit must be an integer from 1 to 100") from None
    items = await deps.runs.notifications(s.org, s.sandbox, limit)
    return web.json_response({"items": [_note_view(n) for n in items]})


def _note_view(note: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = dict(note)
    for key in ("createdAt", "inputRecordCount", "outputRecordCount", "failedRecordCount"):
        if key in out:
            out[key] = int(out[key])
    return out


async def close_runs(deps: Deps, alerts: Alerts | None, flow: dict[str, Any]) -> int:
    """Close the flow's ended runs and notify about each: listed, and an operator event."""
    now = _now_ms()
    closed = await deps.runs.close_ended(flow["id"], now)
    for counts in closed:
        run = run_view(flow, counts, now)
        summary = run["metrics"]["recordSummary"]
        topic = f"flow.run.{run['status']}"
        note = {"topic": topic, "flowId": flow["id"], "runId": run["id"], "createdAt": now}
        await deps.runs.notify(flow["imsOrgId"], flow["sandboxName"], {**note, **summary})
        if alerts is not None:
            alerts.operator_event(topic, flow["imsOrgId"], {**note, **summary})
    return len(closed)


def _now_ms() -> int:
    return int(time.time() * 1000)
