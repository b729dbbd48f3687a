"""The README as a first user reads it: self-contained, every setting in its configuration
table, and its example Kinesis destination delivering under `make run` as it is."""

import json
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from outpost.dev import devstack
from outpost.settings import Settings
from tests.test_dev_stack import OUTPOST, clean_env, read_banner

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def section(title: str) -> str:
    """The text from a heading (any level) to the next heading of that level or higher."""
    match = re.search(rf"^(#+) {re.escape(title)}\n", README, flags=re.M)
    assert match, title
    level = len(match.group(1))
    end = re.compile(rf"^#{{1,{level}}} ", flags=re.M).search(README, match.end())
    return README[match.end() : end.start() if end else len(README)]


def test_readme_names_nothing_outside_the_repository():
    assert not re.search(r"\bseeds?\b", README, flags=re.I)
    assert not re.search(r"(?<!\.)\.\./", README)  # a parent path; `.../{dest}` is prose
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if not target.startswith(("http://", "https://")):
            assert (Path(__file__).resolve().parents[1] / target).exists(), target


def test_every_setting_is_in_the_configuration_table():
    assert Settings.model_config.get("env_prefix") == ""  # env name = field name, upper
    table = section("Configuration")
    names = set()
    for name, field in Settings.model_fields.items():
        assert field.alias is None and field.validation_alias is None, name
        names.add(name.upper())
    missing = [n for n in sorted(names) if f"`{n}`" not in table]
    assert not missing, f"README configuration table lacks {missing}"
    rows = [r for r in table.splitlines() if r.startswith("| `")]
    assert all(r.count("|") == 5 for r in rows), "every row has a production column"


def example_destination() -> dict:
    block = re.search(r"```json\n(.*?)```", section("The Kinesis destination"), flags=re.S)
    assert block, "no json block under The Kinesis destination"
    return json.loads(block.group(1))


def call(base, key, method, path, body=None):
    req = urllib.request.Request(
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, json.loads(r.read() or b"null")


def tail(state, stream, want, timeout=20.0):
    deadline, records = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        out = subprocess.run(
            [*OUTPOST, "tail", stream, "--state-dir", str(state)],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        records = [json.loads(line) for line in out.splitlines()]
        found = [r for r in records if want in r["data"]]
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{want} not on {stream}: {records}")


def test_the_readme_destination_delivers_under_make_run(tmp_path):
    body = example_destination()
    assert "endpoint" not in body["config"]  # make run's AWS_ENDPOINT_URL is what it uses
    port, state = devstack.free_port(), tmp_path / "state"
    proc = subprocess.Popen(
        [*OUTPOST, "dev", "--state-dir", str(state)],
        env=clean_env(API_PORT=str(port), LOG_LEVEL="warning"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        key = re.search(r"admin key: (\S+)", read_banner(proc)).group(1)
        assert json.loads((state / "secrets.json").read_text())["API_KEY"] == key
        base = f"http://127.0.0.1:{port}/api/v1"
        call(base, key, "PUT", "/tenants/acme")
        status, dest = call(base, key, "POST", "/tenants/acme/destinations", body)
        assert status == 201 and dest["config"]["stream_name"] == "my-stream"
        event = {"tenant_id": "acme", "topic": "orders", "data": {"customer_id": "c-42"}}
        assert call(base, key, "POST", "/publish", event)[0] == 202
        [record] = tail(state, "my-stream", '"c-42"')
        assert record["partition_key"] == "c-42"  # partition_key_template: data.customer_id
        data = json.loads(record["data"])
        assert data["data"] == {"customer_id": "c-42"} and data["metadata"]["topic"] == "orders"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        proc.stdout.close()
