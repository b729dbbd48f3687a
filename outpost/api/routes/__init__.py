"""The API's one route table: (method, path, handler, access). Access is public | admin |
tenant | any (see outpost/auth.py); the app, the access middleware and the OpenAPI document
are all built from this table."""

from __future__ import annotations

from typing import Any

from outpost.api.docs import docs_page
from outpost.api.openapi import openapi_json
from outpost.api.routes.catalog import destination_type, destination_types, healthz, topics
from outpost.api.routes.destinations import (
    create_destination,
    delete_destination,
    disable_destination,
    enable_destination,
    get_destination,
    list_destinations,
    update_destination,
)
from outpost.api.routes.events import (
    attempt_metrics,
    event_metrics,
    get_attempt,
    get_destination_attempt,
    get_event,
    list_attempts,
    list_destination_attempts,
    list_events,
)
from outpost.api.routes.preflight import (
    aws_trust_policy,
    explore_records,
    explore_streams,
    test_destination,
)
from outpost.api.routes.publish import publish, publish_batch
from outpost.api.routes.replay import list_undelivered, replay_destination
from outpost.api.routes.retries import list_dead_letters, redrive_dead_letters, retry
from outpost.api.routes.tenants import (
    delete_tenant,
    get_tenant,
    list_tenants,
    tenant_portal,
    tenant_token,
    upsert_tenant,
)

# (method, path, handler, access): access is public | admin | tenant | any (see auth.py)
ROUTES: list[tuple[str, str, Any, str]] = [
    ("GET", "/healthz", healthz, "public"),
    ("GET", "/openapi.json", openapi_json, "public"),
    ("GET", "/docs", docs_page, "public"),
    ("GET", "/tenants", list_tenants, "any"),
    ("PUT", "/tenants/{tenant_id}", upsert_tenant, "tenant"),
    ("GET", "/tenants/{tenant_id}", get_tenant, "tenant"),
    ("DELETE", "/tenants/{tenant_id}", delete_tenant, "tenant"),
    ("GET", "/tenants/{tenant_id}/token", tenant_token, "admin"),
    ("GET", "/tenants/{tenant_id}/portal", tenant_portal, "admin"),
    ("GET", "/tenants/{tenant_id}/destinations", list_destinations, "tenant"),
    ("POST", "/tenants/{tenant_id}/destinations", create_destination, "tenant"),
    ("GET", "/tenants/{tenant_id}/destinations/{destination_id}", get_destination, "tenant"),
    ("PATCH", "/tenants/{tenant_id}/destinations/{destination_id}", update_destination, "tenant"),
    ("DELETE", "/tenants/{tenant_id}/destinations/{destination_id}", delete_destination, "tenant"),
    (
        "PUT",
        "/tenants/{tenant_id}/destinations/{destination_id}/enable",
        enable_destination,
        "tenant",
    ),
    (
        "PUT",
        "/tenants/{tenant_id}/destinations/{destination_id}/disable",
        disable_destination,
        "tenant",
    ),
    (
        "POST",
        "/tenants/{tenant_id}/destinations/{destination_id}/test",
        test_destination,
        "tenant",
    ),
    (
        "GET",
        "/tenants/{tenant_id}/destinations/{destination_id}/aws-trust-policy",
        aws_trust_policy,
        "tenant",
    ),
    (
        "GET",
        "/tenants/{tenant_id}/destinations/{destination_id}/streams",
        explore_streams,
        "tenant",
    ),
    (
        "GET",
        "/tenants/{tenant_id}/destinations/{destination_id}/streams/{stream}/records",
        explore_records,
        "tenant",
    ),
    (
        "GET",
        "/tenants/{tenant_id}/destinations/{destination_id}/undelivered",
        list_undelivered,
        "tenant",
    ),
    (
        "POST",
        "/tenants/{tenant_id}/destinations/{destination_id}/replay",
        replay_destination,
        "tenant",
    ),
    ("POST", "/publish", publish, "admin"),
    ("POST", "/publish/batch", publish_batch, "admin"),
    ("POST", "/retry", retry, "any"),
    ("GET", "/events", list_events, "any"),
    ("GET", "/events/{event_id}", get_event, "any"),
    ("GET", "/attempts", list_attempts, "any"),
    ("GET", "/attempts/{attempt_id}", get_attempt, "any"),
    (
        "GET",
        "/tenants/{tenant_id}/destinations/{destination_id}/attempts",
        list_destination_attempts,
        "tenant",
    ),
    (
        "GET",
        "/tenants/{tenant_id}/destinations/{destination_id}/attempts/{attempt_id}",
        get_destination_attempt,
        "tenant",
    ),
    ("GET", "/tenants/{tenant_id}/dead-letters", list_dead_letters, "tenant"),
    ("POST", "/tenants/{tenant_id}/dead-letters/redrive", redrive_dead_letters, "tenant"),
    ("GET", "/metrics/events", event_metrics, "any"),
    ("GET", "/metrics/attempts", attempt_metrics, "any"),
    ("GET", "/destination-types", destination_types, "any"),
    ("GET", "/destination-types/{type}", destination_type, "any"),
    ("GET", "/topics", topics, "any"),
]
