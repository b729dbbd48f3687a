"""The `outpost` command line: each subcommand says what it does, the environment it
reads, and its options with their defaults (`outpost <command> --help`)."""

from __future__ import annotations

import argparse
from importlib.metadata import PackageNotFoundError, version

from outpost.settings import Settings

DEV_STATE = ".outpost-dev"
ABOUT = """Multi-tenant event delivery, compatible with Hookdeck Outpost: publish an event
once, deliver it at least once to every matching destination of its tenant.
Configured by environment variables; `outpost COMMAND --help` lists the ones
each command reads."""


def _with_defaults(*names: str) -> str:
    """`NAME=default` for settings that have one (from Settings itself), else `NAME`."""
    fields = Settings.model_fields
    shown = []
    for name in names:
        default = fields[name.lower()].default
        shown.append(f"{name}={default}" if default not in ("", [], None) else name)
    return ", ".join(shown)


_REDIS = "REDIS_URL, or " + _with_defaults(
    "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_DATABASE"
)
_CLUSTER = "REDIS_CLUSTER_ENABLED, REDIS_TLS_ENABLED, REDIS_TLS_*_FILE, REDIS_USERNAME"
_SECRETS = "API_KEY, AES_ENCRYPTION_SECRET (>= 16 bytes), API_JWT_SECRET (>= 32 bytes)"
_API = _with_defaults("API_HOST", "API_PORT", "MAX_EVENT_BYTES")
_DELIVERY = _with_defaults("DELIVERY_MAX_CONCURRENCY", "MAX_RETRY_LIMIT", "RETRY_SCHEDULE")
_SOURCE = _with_defaults("SOURCE_LEASE_SECONDS", "SOURCE_POLL_SECONDS", "SOURCE_BATCH_LIMIT")
_LOGS = _with_defaults("LOG_LEVEL", "LOG_FORMAT")
_PROBES = _with_defaults("HEALTH_HOST", "HEALTH_PORT") + " (probe port: /healthz, /readyz)"
_AWS = "AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_KINESIS (local Kinesis), AWS_* credentials"
_STOP = "SIGTERM or Ctrl-C: stops reading, finishes in-flight sends, exits 0."
_EXIT = "A bad setting, or Redis not answering at start: one line on stderr, exit 2."
_TAIL_EXIT = "An unknown stream or unreachable endpoint: one line on stderr, exit 2."

COMMANDS: dict[str, tuple[str, str]] = {
    "api": (
        "HTTP API and retry promoter",
        "Serve the HTTP API (under /api/v1 and /2025-07-01, plus GET /healthz,\n"
        "which answers 503 while Redis does not) and promote due retries.",
    ),
    "worker": (
        "delivery worker",
        "Deliver queued events to their destinations, retry failures on the\n"
        "RETRY_SCHEDULE / RETRY_INTERVAL_SECONDS schedule, reclaim the tasks of\n"
        "crashed workers and promote due retries. Run as many as you like.",
    ),
    "all": (
        "API, worker and Kinesis source reader in one process",
        "The API, a delivery worker and the Kinesis source reader (Flow Service\n"
        "flows) in one process: what `outpost dev` runs.",
    ),
    "source": (
        "Kinesis source reader (Flow Service flows)",
        "Read the Kinesis stream of every enabled Flow Service flow and publish\n"
        "its records into the tenant's pipeline; shards are leased, so several\n"
        "readers share the work.",
    ),
    "dev": (
        "`make run`: local stack for what is not configured + all",
        "`make run`. Start, on 127.0.0.1, a private redis-server unless REDIS_URL\n"
        "or REDIS_HOST is set, and a moto server (Kinesis + S3, with the stream\n"
        "'my-stream') unless AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_KINESIS is set;\n"
        "generate API_KEY, API_JWT_SECRET and AES_ENCRYPTION_SECRET once (kept in\n"
        "the state dir); then run `all` and print how to try it. Ctrl-C stops the\n"
        "service, then the servers it started.",
    ),
    "tail": (
        "print the records on a Kinesis stream",
        "Print every record on STREAM, from the start of each shard, one JSON\n"
        "object a line. The endpoint is --endpoint, else AWS_ENDPOINT_URL_KINESIS,\n"
        "else AWS_ENDPOINT_URL, else the one a running `outpost dev` wrote to its\n"
        "state dir.",
    ),
    "drain": (
        "report (or --wait until) nothing queued, in flight or to be retried",
        "Print how many tasks are queued or in flight, waiting to be retried, and\n"
        "kept as dead letters. With --wait, print it again every second until\n"
        "nothing is queued, in flight or waiting to be retried. Exit 0 when\n"
        "drained, 1 when not (or not within --timeout). Before moving to another\n"
        "Redis: stop the publishers, run this with --wait, then migrate-redis.",
    ),
    "migrate-redis": (
        "copy tenants, destinations and flows to another Redis (a cluster)",
        "Copy the data at rest (tenants, destinations, Flow Service connections\n"
        "and flows with their checkpoints) from --from to --to: DUMP/RESTORE per\n"
        "key, each to the node owning its slot when --to-cluster. Queued tasks,\n"
        "events, attempts and dead letters are not copied: drain first. A key\n"
        "already on the target is kept unless --replace. Prints the counts.",
    ),
    "rotate-key": (
        "re-encrypt all credentials with AES_ENCRYPTION_SECRET "
        "(old keys in AES_ENCRYPTION_SECRET_PREVIOUS)",
        "Re-encrypt every stored credential with AES_ENCRYPTION_SECRET, reading\n"
        "with it or any key in AES_ENCRYPTION_SECRET_PREVIOUS (comma-separated).\n"
        "Exits 1 if some destination changed meanwhile: run it again.",
    ),
}

ENVIRONMENT: dict[str, list[str]] = {
    "api": [_REDIS, _CLUSTER, _SECRETS, _API, "TOPICS, DEPLOYMENT_ID", _PROBES],
    "worker": [_REDIS, _CLUSTER, _SECRETS, _DELIVERY, "ALERT_*, OPERATOR_EVENTS_*", _PROBES],
    "all": [_REDIS, _CLUSTER, _SECRETS, _API, _DELIVERY, _SOURCE, _PROBES],
    "source": [_REDIS, _CLUSTER, _SECRETS, _SOURCE, _PROBES],
    "dev": [_REDIS, _AWS, "API_PORT=3333 (API_HOST is 127.0.0.1 here unless set)", _LOGS],
    "tail": [_AWS],
    "rotate-key": [_REDIS, _CLUSTER, _SECRETS, "AES_ENCRYPTION_SECRET_PREVIOUS"],
    "drain": [_REDIS, _CLUSTER, "DEPLOYMENT_ID, DELIVERY_PARTITIONS"],
    "migrate-redis": [
        "REDIS_TLS_* (both ends; each URL carries its own user and password)",
        "DEPLOYMENT_ID",
    ],
}


def package_version() -> str:
    try:
        return version("outpost")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _description(command: str) -> str:
    text = COMMANDS[command][1]
    env = "\n".join(f"  {line}" for line in ENVIRONMENT[command])
    once = {"tail": [_TAIL_EXIT], "rotate-key": [_EXIT], "drain": [_EXIT]}
    tail = once.get(command, [_STOP, _EXIT]) if command != "migrate-redis" else [_EXIT]
    return f"{text}\n\nenvironment:\n{env}\n\n" + "\n".join(tail)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="outpost", description=ABOUT, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"outpost {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parsers = {
        name: sub.add_parser(
            name,
            help=short,
            description=_description(name),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        for name, (short, _) in COMMANDS.items()
    }
    state_help = "where `outpost dev` keeps its Redis data, secrets and endpoints"
    parsers["dev"].add_argument(
        "--state-dir", default=DEV_STATE, help=f"{state_help} (default: %(default)s)"
    )
    tail = parsers["tail"]
    tail.add_argument("stream", help="the Kinesis stream name, e.g. my-stream")
    tail.add_argument(
        "--endpoint",
        help="Kinesis endpoint URL (default: AWS_ENDPOINT_URL_KINESIS, AWS_ENDPOINT_URL, "
        "or the running `outpost dev`'s)",
    )
    tail.add_argument("--state-dir", default=DEV_STATE, help=f"{state_help} (default: %(default)s)")
    _ops_arguments(parsers["drain"], parsers["migrate-redis"])
    return parser


def _ops_arguments(drain: argparse.ArgumentParser, migrate: argparse.ArgumentParser) -> None:
    on = "(default: %(default)s)"
    drain.add_argument("--wait", action="store_true", help=f"wait until drained {on}")
    drain.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        help=f"give up waiting after this many seconds {on}",
    )
    required = "(default: none, required)"
    migrate.add_argument(
        "--from", dest="source", required=True, help=f"the old Redis's URL {required}"
    )
    migrate.add_argument(
        "--to", dest="target", required=True, help=f"the new Redis's URL {required}"
    )
    migrate.add_argument(
        "--to-cluster", action="store_true", help=f"the new Redis is a cluster {on}"
    )
    migrate.add_argument(
        "--replace", action="store_true", help=f"overwrite keys already on the target {on}"
    )
