"""What a first user reads: `outpost --version`, and each command's --help saying what it
does, the environment it reads and every option's default (the real CLI, subprocesses)."""

import argparse
import subprocess
from importlib.metadata import version

from outpost.cliparser import build_parser
from tests.test_processes import OUTPOST

# the main variables each command's description must name
READS = {
    "api": ["REDIS_URL", "API_KEY", "AES_ENCRYPTION_SECRET", "API_HOST=0.0.0.0", "API_PORT=3333"],
    "worker": ["REDIS_URL", "AES_ENCRYPTION_SECRET", "DELIVERY_MAX_CONCURRENCY=64"],
    "all": ["REDIS_URL", "API_PORT=3333", "MAX_RETRY_LIMIT=10", "SOURCE_POLL_SECONDS=1.0"],
    "source": ["REDIS_URL", "SOURCE_LEASE_SECONDS=10.0"],
    "dev": ["REDIS_URL", "AWS_ENDPOINT_URL", "API_PORT=3333", "LOG_LEVEL=info"],
    "tail": ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KINESIS"],
    "rotate-key": ["REDIS_URL", "AES_ENCRYPTION_SECRET_PREVIOUS"],
    "drain": ["REDIS_URL", "REDIS_CLUSTER_ENABLED", "DELIVERY_PARTITIONS"],
    "migrate-redis": ["REDIS_TLS_", "DEPLOYMENT_ID"],
}


def subcommands():
    [sub] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices


def test_version():
    run = subprocess.run([*OUTPOST, "--version"], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0
    assert run.stdout == f"outpost {version('outpost')}\n"


def test_every_command_help_describes_it_its_environment_and_defaults():
    commands = subcommands()
    assert set(commands) == set(READS)  # a new command needs its line above
    procs = {
        name: subprocess.Popen([*OUTPOST, name, "--help"], stdout=subprocess.PIPE, text=True)
        for name in commands
    }
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, name
        flat = " ".join(out.split())
        description = out.split("\n\n")[1]  # the paragraph after the usage line
        assert len(description.split()) >= 15, (name, description)
        for variable in READS[name]:
            assert variable in flat, (name, variable)
        for action in commands[name]._actions:
            if not action.option_strings or action.dest == "help":
                continue
            assert "(default:" in action.help, (name, action.dest)
            if action.default is not None:
                assert f"(default: {action.default})" in flat, (name, action.dest)
