"""`outpost api|worker|all|source|rotate-key|dev|tail`: parse the command line (the parser
is cliparser.py), build Settings from the environment, hand over to the runtime (or, for
`dev` and `tail`, to the developer commands)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from pydantic import ValidationError

from outpost import logs
from outpost.cliparser import build_parser
from outpost.queue.connection import StartupError
from outpost.runtime import rotate_key, serve
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
    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    if args.command == "rotate-key":
        asyncio.run(rotate_key(settings))
        return
    api = args.command in ("api", "all")
    worker = args.command in ("worker", "all")
    source = args.command in ("source", "all")
    asyncio.run(serve(settings, api=api, worker=worker, source=source))


if __name__ == "__main__":
    main()
