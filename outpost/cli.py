"""`outpost api|worker|all|source|rotate-key|drain|migrate-redis|dev|tail`: parse the
command line (the parser is cliparser.py), build Settings from the environment, hand over
to the runtime (`drain` and `migrate-redis`: to ops.py; `dev` and `tail`: to the developer
commands)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from pydantic import ValidationError

from outpost import logs, ops
from outpost.cliparser import build_parser
from outpost.queue.connection import StartupError
from outpost.queue.keys import Keys
from outpost.runtime import (
    check_redis_settings,
    redis_client,
    redis_config,
    rotate_key,
    serve,
)
from outpost.settings import Settings, describe_errors


def load_settings(require_secrets: bool = True) -> Settings:
    """Settings from the environment, or exit 2 with one line per bad value."""
    try:
        settings = Settings()
    except ValidationError as exc:
        _fail(describe_errors(exc))
    if require_secrets and (missing := settings.check_service_secrets()):
        _fail(missing)
    return settings


def _fail(lines: list[str]) -> None:
    for line in lines:
        print(f"outpost: config error: {line}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except StartupError as exc:
        print(f"outpost: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:  # Ctrl-C before the service installed its own handler
        raise SystemExit(130) from None


def run(args: argparse.Namespace) -> None:
    if args.command == "dev":
        from outpost.dev.commands import run_dev  # developer tools: loaded only here

        run_dev(args, load_settings)
        return
    if args.command == "tail":
        from outpost.dev.commands import run_tail

        run_tail(args)
        return
    if args.command in ("drain", "migrate-redis"):
        settings = load_settings(require_secrets=False)
        logs.configure(settings.log_level, settings.log_format)
        ok = asyncio.run(run_ops(settings, args))
        raise SystemExit(0 if ok else 1)
    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    if args.command == "rotate-key":
        asyncio.run(rotate_key(settings))
        return
    api = args.command in ("api", "all")
    worker = args.command in ("worker", "all")
    source = args.command in ("source", "all")
    asyncio.run(serve(settings, api=api, worker=worker, source=source))


async def run_ops(settings: Settings, args: argparse.Namespace) -> bool:
    """`outpost drain` and `outpost migrate-redis` (ops.py); True when it succeeded."""
    keys = Keys(settings.deployment_id, spread=settings.redis_cluster_enabled)
    if args.command == "migrate-redis":
        urls = (args.source, args.target)
        config = redis_config(settings)
        done = await ops.run_migrate(config, keys, urls, args.to_cluster, args.replace)
        kept = "" if args.replace else ": --replace overwrites them"
        print(
            f"copied {done.keys} key(s); {done.existing} already on the target (kept{kept}); "
            f"{done.gone} gone meanwhile"
        )
        return True
    await check_redis_settings(settings)
    redis = redis_client(settings)
    try:
        partitions = settings.delivery_partitions
        return await ops.drain(redis, keys, partitions, args.wait, args.timeout)
    finally:
        await redis.aclose()


if __name__ == "__main__":
    main()
