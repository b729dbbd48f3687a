"""What a Flow Service body must be, per kind (connections, source and target connections,
flows): the fields, the connection spec's JSON Schemas, the endpoints (SSRF guard) and
the ids it refers to. Each check answers the names of the secret parameters to seal."""

from __future__ import annotations

import re
from typing import Any

from jsonschema import Draft7Validator

from outpost.deps import Deps
from outpost.destinations.endpoints import ForbiddenEndpoint
from outpost.errors import Invalid
from outpost.flow.scope import Scope
from outpost.flow.specs import (
    BATCH_FLOW,
    FREQUENCIES,
    KINESIS,
    PIPELINE,
    S3,
    SPECS,
    STREAMING_FLOW,
    auth_schema,
    secret_params,
)

_COMMON = (
    "id",
    "createdAt",
    "updatedAt",
    "createdBy",
    "updatedBy",
    "createdClient",
    "updatedClient",
    "imsOrgId",
    "sandboxName",
    "state",
    "etag",
    "version",
)


_NAMES_ONLY = ("required", "additionalProperties")  # messages that quote keys, not values


def _problems(
    schema: dict[str, Any], value: Any, where: str, secrets: frozenset[str] = frozenset()
) -> list[str]:
    """One line per problem. An error inside a secret parameter, or about the whole
    object (which holds them), names the rule it broke, never the value."""
    out = []
    for err in Draft7Validator(schema).iter_errors(value):
        names = [str(p) for p in err.absolute_path]
        path = ".".join([where, *names])
        whole = not names and err.validator not in _NAMES_ONLY
        if secrets and (whole or (names and names[0] in secrets)):
            out.append(f"{path}: {_rule(err.validator, err.validator_value)}")
        elif err.validator == "required":
            missing = re.findall(r"'([^']+)' is a required property", err.message)
            out += [f"{path}.{m} is required" for m in missing]
        elif err.validator == "additionalProperties":
            extra = re.findall(r"'([^']+)'", err.message.split("(")[-1])
            out += [f"{path}.{x} is not a known parameter" for x in extra]
        else:
            out.append(f"{path}: {err.message}")
    return sorted(out)


def _rule(validator: Any, expected: Any) -> str:
    """What a value must be, from the schema alone (jsonschema's messages quote it)."""
    if validator == "type":
        kinds = expected if isinstance(expected, list) else [expected]
        return f"must be of type {' or '.join(str(k) for k in kinds)}"
    if validator == "minLength":
        return f"must be at least {expected} characters"
    if validator == "maxLength":
        return f"must be at most {expected} characters"
    return f"does not satisfy {validator}"


def _require(body: Any, fields: dict[str, type], optional: dict[str, type]) -> None:
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object")
    problems = [f"{k} is required" for k in fields if k not in body]
    problems += [
        f"{k} must be {t.__name__}"
        for k, t in {**fields, **optional}.items()
        if k in body and not isinstance(body[k], t)
    ]
    unknown = set(body) - set(fields) - set(optional) - set(_COMMON)
    problems += [f"{k} is not a known field" for k in sorted(unknown)]
    if problems:
        raise Invalid("; ".join(problems))


def _spec_of(body: dict[str, Any], wanted: str | None = None) -> dict[str, Any]:
    spec_id = (body.get("connectionSpec") or {}).get("id")
    if not isinstance(spec_id, str) or spec_id not in SPECS:  # a dict id is unhashable
        raise Invalid(f"connectionSpec.id {spec_id!r} is not a known connection spec")
    if wanted == "auth" and not SPECS[spec_id]["authSpec"]:
        raise Invalid("this connection spec needs no base connection")
    return SPECS[spec_id]


async def _check_connection(deps: Deps, s: Scope, body: Any) -> set[str]:
    _require(
        body,
        {"name": str, "auth": dict, "connectionSpec": dict},
        {"description": str, "providerId": str},
    )
    spec = _spec_of(body, "auth")
    if "providerId" in body and body["providerId"] != spec["providerId"]:
        raise Invalid(f"providerId must be {spec['providerId']} for this spec")
    names = [a["name"] for a in spec["authSpec"]]
    auth = body["auth"]
    if auth.get("specName") not in names:
        raise Invalid(f"auth.specName must be one of {names}")
    schema = auth_schema(spec["id"], auth["specName"])
    assert schema is not None  # specName was checked against the spec just above
    secrets = frozenset(secret_params(spec["id"], auth["specName"]))
    problems = _problems(schema, auth.get("params", {}), "auth.params", secrets)
    if problems:
        raise Invalid("; ".join(problems), problems)
    params = auth["params"]
    for key in ("endpoint", "serviceUrl"):
        try:
            await deps.endpoints.check(params.get(key))
        except ForbiddenEndpoint as exc:
            raise Invalid(f"auth.params.{key}: {exc}") from None
    return set(secrets)


async def _check_source(deps: Deps, s: Scope, body: Any) -> set[str]:
    _require(
        body,
        {"name": str, "baseConnectionId": str, "connectionSpec": dict, "params": dict},
        {"description": str, "data": dict},
    )
    spec = _spec_of(body)
    if spec["id"] not in (KINESIS, S3):
        raise Invalid("source connections are Amazon Kinesis or Amazon S3")
    base = await deps.flows.get("connections", s.org, s.sandbox, body["baseConnectionId"])
    if base is None:
        raise Invalid(
            f"baseConnectionId {body['baseConnectionId']} is not a "
            "connection in this org and sandbox",
        )
    if base["connectionSpec"]["id"] != spec["id"]:
        raise Invalid("baseConnectionId has another connectionSpec")
    fmt = (body.get("data") or {}).get("format", "json")
    if fmt not in spec["dataFormats"]:
        raise Invalid(f"data.format must be one of {spec['dataFormats']}")
    problems = _problems(spec["sourceSpec"]["spec"], body["params"], "params")
    if problems:
        raise Invalid("; ".join(problems), problems)
    body.setdefault("data", {"format": "json"})
    if spec["id"] == KINESIS:
        body["params"].setdefault("dataType", "raw")
        body["params"].setdefault("reset", "latest")
    return set()


async def _check_target(deps: Deps, s: Scope, body: Any) -> set[str]:
    _require(
        body,
        {"name": str, "connectionSpec": dict, "params": dict},
        {"description": str, "data": dict},
    )
    if _spec_of(body)["id"] != PIPELINE:
        raise Invalid(f"target connections use the pipeline spec {PIPELINE}")
    problems = _problems(SPECS[PIPELINE]["targetSpec"]["spec"], body["params"], "params")
    if problems:
        raise Invalid("; ".join(problems), problems)
    topics = deps.settings.topics
    if topics and body["params"]["topic"] not in topics:
        raise Invalid(f"params.topic must be one of the configured TOPICS {topics}")
    return set()


async def _check_flow(deps: Deps, s: Scope, body: Any) -> set[str]:
    _require(
        body,
        {"name": str, "flowSpec": dict, "sourceConnectionIds": list, "targetConnectionIds": list},
        {"description": str, "scheduleParams": dict},
    )
    spec_id = body["flowSpec"].get("id")
    if spec_id not in (STREAMING_FLOW, BATCH_FLOW):
        raise Invalid(
            f"flowSpec.id must be the streaming flow spec {STREAMING_FLOW} (Kinesis) "
            f"or the cloud storage flow spec {BATCH_FLOW} (S3, on a schedule)"
        )
    for field, kind in (
        ("sourceConnectionIds", "sourceConnections"),
        ("targetConnectionIds", "targetConnections"),
    ):
        ids = body[field]
        if len(ids) != 1 or not isinstance(ids[0], str):
            raise Invalid(f"{field} must hold exactly one id")
        if await deps.flows.get(kind, s.org, s.sandbox, ids[0]) is None:
            raise Invalid(f"{field}: {ids[0]} is not in this org and sandbox")
    source = await deps.flows.get(
        "sourceConnections", s.org, s.sandbox, body["sourceConnectionIds"][0]
    )
    wanted = BATCH_FLOW if source and source["connectionSpec"]["id"] == S3 else STREAMING_FLOW
    if spec_id != wanted:
        raise Invalid(f"flowSpec.id must be {wanted} for this source connection")
    if spec_id == BATCH_FLOW:
        body["scheduleParams"] = _schedule(body.get("scheduleParams"))
    elif "scheduleParams" in body:
        raise Invalid("scheduleParams: a streaming flow has no schedule")
    return set()


def _schedule(params: Any) -> dict[str, Any]:
    """`{startTime: epoch seconds, frequency: minute|hour|day|week|once, interval: n}`."""
    if not isinstance(params, dict):
        raise Invalid("scheduleParams is required: {startTime, frequency, interval}")
    extra = set(params) - {"startTime", "frequency", "interval", "backfill"}
    if extra:
        raise Invalid(f"scheduleParams: unknown fields {sorted(extra)}")
    start, freq = params.get("startTime"), params.get("frequency")
    interval = params.get("interval", 1)
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start < 2**37:
        raise Invalid("scheduleParams.startTime must be epoch seconds")
    if freq not in FREQUENCIES:
        raise Invalid(f"scheduleParams.frequency must be one of {sorted(FREQUENCIES)}")
    if isinstance(interval, bool) or not isinstance(interval, int) or not 1 <= interval <= 10_000:
        raise Invalid("scheduleParams.interval must be an integer from 1 to 10000")
    return {"startTime": start, "frequency": freq, "interval": interval}


CHECKS = {
    "connections": _check_connection,
    "sourceConnections": _check_source,
    "targetConnections": _check_target,
    "flows": _check_flow,
}
