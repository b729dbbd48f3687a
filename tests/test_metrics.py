"""/metrics/events and /metrics/attempts: pure aggregation, then through the API after real
deliveries."""

from datetime import UTC, datetime

import pytest
from multidict import MultiDict

from outpost.api import metrics
from outpost.errors import ValidationFailed
from tests.conftest import AUTH, kinesis_body


def q(**extra):
    base = {"time[start]": "2026-01-01T00:00:00Z", "time[end]": "2026-01-02T00:00:00Z"}
    return MultiDict({**base, **extra})


def t(h, m=0):
    return datetime(2026, 1, 1, h, m, tzinfo=UTC)


ROWS = [
    {
        "time": t(0, 5),
        "destination_id": "d1",
        "status": "success",
        "code": "ok",
        "manual": "false",
        "attempt_number": "1",
    },
    {
        "time": t(0, 30),
        "destination_id": "d1",
        "status": "failed",
        "code": "timeout",
        "manual": "false",
        "attempt_number": "1",
    },
    {
        "time": t(0, 40),
        "destination_id": "d1",
        "status": "success",
        "code": "ok",
        "manual": "false",
        "attempt_number": "2",
    },
    {
        "time": t(1, 10),
        "destination_id": "d2",
        "status": "success",
        "code": "ok",
        "manual": "true",
        "attempt_number": "1",
    },
]


def test_attempt_aggregation_by_hour_and_destination():
    query = metrics.parse_query(
        q(
            granularity="1h",
            measures="count,error_rate,retry_count,avg_attempt_number,"
            "manual_retry_count,failed_rate",
            dimensions="destination_id",
        ),
        metrics.ATTEMPT_MEASURES,
        metrics.ATTEMPT_DIMENSIONS,
    )
    points = metrics.aggregate(ROWS, query)
    assert points == [
        {
            "time_bucket": "2026-01-01T00:00:00.000Z",
            "dimensions": {"destination_id": "d1"},
            "metrics": {
                "count": 3,
                "error_rate": 0.333333,
                "retry_count": 1,
                "avg_attempt_number": 1.333333,
                "manual_retry_count": 0,
                "failed_rate": round(1 / 3600, 6),
            },
        },
        {
            "time_bucket": "2026-01-01T01:00:00.000Z",
            "dimensions": {"destination_id": "d2"},
            "metrics": {
                "count": 1,
                "error_rate": 0.0,
                "retry_count": 0,
                "avg_attempt_number": 1.0,
                "manual_retry_count": 1,
                "failed_rate": 0.0,
            },
        },
    ]


def test_no_granularity_is_one_row_and_rate_is_over_the_range():
    query = metrics.parse_query(
        q(**{"measures[0]": "count", "measures[1]": "rate", "filters[status]": "success"}),
        metrics.ATTEMPT_MEASURES,
        metrics.ATTEMPT_DIMENSIONS,
    )
    [point] = metrics.aggregate(ROWS, query)
    assert point == {"dimensions": {}, "metrics": {"count": 3, "rate": round(3 / 86400, 6)}}


def test_calendar_month_buckets():
    assert metrics.bucket_of(datetime(2026, 5, 17, tzinfo=UTC), 3, "M") == datetime(
        2026, 4, 1, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"measures": "count", "time[start]": "yesterday"},
        {"measures": "speed"},
        {"measures": "count", "granularity": "2y"},
        {"measures": "count", "granularity": "61s"},
        {"measures": "count", "dimensions": "colour"},
        {},
    ],
)
def test_bad_queries(bad):
    query = MultiDict(
        {"time[start]": "2026-01-01T00:00:00Z", "time[end]": "2026-01-02T00:00:00Z", **bad}
    )
    with pytest.raises(ValidationFailed):
        metrics.parse_query(query, metrics.ATTEMPT_MEASURES, metrics.ATTEMPT_DIMENSIONS)


async def test_metrics_through_the_api(client, deps, worker, moto, moto_stream):
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    await client.put("/api/v1/tenants/globex", headers=AUTH)
    good = await (
        await client.post(
            "/api/v1/tenants/acme/destinations",
            headers=AUTH,
            json=kinesis_body(moto_stream, moto.url),
        )
    ).json()
    bad = await (
        await client.post(
            "/api/v1/tenants/acme/destinations",
            headers=AUTH,
            json=kinesis_body("missing", moto.url),
        )
    ).json()
    for n, (tenant, topic) in enumerate([("acme", "orders")] * 3 + [("globex", "orders")]):
        await client.post(
            "/api/v1/publish",
            headers=AUTH,
            json={
                "tenant_id": tenant,
                "topic": topic,
                "id": f"e{n}",
                "eligible_for_retry": False,
                "time": "2026-03-03T10:00:00Z",
                "data": {},
            },
        )
    await worker.run_until_empty()
    rng = "time[start]=2026-03-03T00:00:00Z&time[end]=2026-03-04T00:00:00Z"
    r = await client.get(
        f"/api/v1/metrics/events?{rng}&measures=count&dimensions=tenant_id", headers=AUTH
    )
    body = await r.json()
    assert {(p["dimensions"]["tenant_id"], p["metrics"]["count"]) for p in body["data"]} == {
        ("acme", 3),
        ("globex", 1),
    }
    assert body["metadata"]["truncated"] is False and body["metadata"]["row_limit"] > 0
    r = await client.get(
        f"/api/v1/metrics/events?{rng}&measures=count&dimensions="
        "destination_id&filters[tenant_id]=acme",
        headers=AUTH,
    )
    per_dest = {
        p["dimensions"]["destination_id"]: p["metrics"]["count"] for p in (await r.json())["data"]
    }
    assert per_dest == {good["id"]: 3, bad["id"]: 3}
    now = datetime.now(UTC)
    arng = f"time[start]={now.year - 1}-01-01T00:00:00Z&time[end]={now.year + 1}-01-01T00:00:00Z"
    r = await client.get(
        f"/api/v1/metrics/attempts?{arng}&measures=count,error_rate,"
        "successful_count&dimensions=destination_id,destination_type",
        headers=AUTH,
    )
    by_dest = {p["dimensions"]["destination_id"]: p for p in (await r.json())["data"]}
    assert by_dest[good["id"]]["metrics"] == {"count": 3, "error_rate": 0.0, "successful_count": 3}
    assert by_dest[bad["id"]]["metrics"]["error_rate"] == 1.0
    assert by_dest[bad["id"]]["dimensions"]["destination_type"] == "aws_kinesis"
    token = {"Authorization": f"Bearer {deps.tokens.issue('globex')}"}
    r = await client.get(f"/api/v1/metrics/events?{rng}&measures=count", headers=token)
    assert [p["metrics"]["count"] for p in (await r.json())["data"]] == [1]  # its own only
    r = await client.get(
        f"/api/v1/metrics/events?{rng}&measures=count&dimensions=tenant_id", headers=token
    )
    assert r.status == 403
    r = await client.get("/api/v1/metrics/attempts?measures=count", headers=AUTH)
    assert r.status == 422
