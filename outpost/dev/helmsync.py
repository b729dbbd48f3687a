"""Keep the Helm chart's `config:` in step with Settings: `python -m outpost.dev.helmsync`
adds a line (the setting's default) for every setting values.yaml lacks, drops lines of
settings that no longer exist, and rewrites values.schema.json's list of names.
tests/test_helm.py fails until it has run after a setting is added."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from outpost.settings import Settings

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "outpost"
SECRET_KEYS = frozenset(  # the chart's `secrets`, never in its ConfigMap
    {
        "API_KEY",
        "API_JWT_SECRET",
        "AES_ENCRYPTION_SECRET",
        "AES_ENCRYPTION_SECRET_PREVIOUS",
        "REDIS_PASSWORD",
        "OPERATOR_EVENTS_HTTP_SIGNING_SECRET",
    }
)
NOT_CONFIG = SECRET_KEYS | {"HEALTH_HOST"}  # HEALTH_HOST: the pod's IP, set by the chart
LINE = re.compile(r"^  ([A-Z0-9_]+): ")


def as_env(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def sync(chart: Path = CHART) -> list[str]:
    """The names added and removed (prefixed + / -)."""
    names = {n.upper() for n in Settings.model_fields} - NOT_CONFIG
    lines = (chart / "values.yaml").read_text().splitlines()
    start = lines.index("config:") + 1
    end = next(i for i in range(start, len(lines)) if lines[i] and not lines[i][0].isspace())
    while not lines[end - 1].strip():
        end -= 1
    block = [ln for ln in lines[start:end] if not (m := LINE.match(ln)) or m[1] in names]
    have = {m[1] for ln in block if (m := LINE.match(ln))}
    gone = {m[1] for ln in lines[start:end] if (m := LINE.match(ln))} - names
    added = sorted(names - have)
    for name in added:
        default = as_env(Settings.model_fields[name.lower()].default)
        block.append(f"  {name}: {json.dumps(default)}")
    lines[start:end] = block
    (chart / "values.yaml").write_text("\n".join(lines) + "\n")
    schema_path = chart / "values.schema.json"
    schema = json.loads(schema_path.read_text())
    props = schema["properties"]["config"]["properties"]
    kind = {"type": ["string", "number", "boolean"]}
    order = [m[1] for ln in block if (m := LINE.match(ln))]
    schema["properties"]["config"]["properties"] = {n: props.get(n, kind) for n in order}
    schema_path.write_text(json.dumps(schema, indent=2) + "\n")
    return [f"+{n}" for n in added] + [f"-{n}" for n in sorted(gone)]


if __name__ == "__main__":
    changed = sync()
    print("\n".join(changed) or "values.yaml is in step with Settings")
    sys.exit(0)
