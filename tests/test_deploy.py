"""The deployment files reference real commands and real setting names (no Docker here,
so they are parsed and checked, not run)."""

from pathlib import Path

import yaml

from outpost.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SETTING_NAMES = {name.upper() for name in Settings.model_fields}
BOTOCORE_NAMES = {
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_KINESIS",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
}
COMMANDS = {"api", "worker", "all"}


def manifests():
    docs = []
    for path in sorted((ROOT / "deploy").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_kubernetes_objects_present():
    assert set(manifests()) == {
        ("ConfigMap", "outpost-config"),
        ("Secret", "outpost-secrets"),
        ("Deployment", "outpost-api"),
        ("Deployment", "outpost-worker"),
        ("Service", "outpost-api"),
    }


def test_config_and_secret_use_real_setting_names():
    m = manifests()
    names = set(m["ConfigMap", "outpost-config"]["data"])
    names |= set(m["Secret", "outpost-secrets"]["stringData"])
    assert names <= SETTING_NAMES, names - SETTING_NAMES
    assert {"API_KEY", "AES_ENCRYPTION_SECRET", "API_JWT_SECRET"} <= names


def test_deployments_run_the_right_commands():
    m = manifests()
    api = m["Deployment", "outpost-api"]["spec"]["template"]["spec"]["containers"][0]
    worker = m["Deployment", "outpost-worker"]["spec"]["template"]["spec"]["containers"][0]
    assert api["args"] == ["api"] and worker["args"] == ["worker"]
    assert api["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert "httpGet" not in api["livenessProbe"]  # not restarted for a Redis outage
    assert api["ports"][0]["containerPort"] == int(
        m["ConfigMap", "outpost-config"]["data"]["API_PORT"]
    )
    for c in (api, worker):
        refs = {next(iter(v.values()))["name"] for v in c["envFrom"]}
        assert refs == {"outpost-config", "outpost-secrets"}
    svc = m["Service", "outpost-api"]["spec"]
    assert svc["selector"] == m["Deployment", "outpost-api"]["spec"]["selector"]["matchLabels"]


def test_compose_runs_localstack_redis_and_the_service():
    compose = yaml.safe_load((ROOT / "docker-compose.localstack.yml").read_text())
    services = compose["services"]
    assert set(services) == {"localstack", "redis", "outpost"}
    assert "kinesis" in services["localstack"]["environment"]["SERVICES"]
    assert "s3" in services["localstack"]["environment"]["SERVICES"]
    assert "--appendonly" in services["redis"]["command"]
    outpost = services["outpost"]
    assert set(outpost["command"]) <= COMMANDS
    env = set(outpost["environment"])
    assert env <= SETTING_NAMES | BOTOCORE_NAMES, env - SETTING_NAMES - BOTOCORE_NAMES
    assert outpost["environment"]["AWS_ENDPOINT_URL"].startswith("http://localstack:4566")
    for svc in services.values():
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:")


def test_dockerfile_installs_the_package_and_runs_the_cli():
    text = (ROOT / "Dockerfile").read_text()
    assert "pip install" in text and 'ENTRYPOINT ["outpost"]' in text
    cmd = next(line for line in text.splitlines() if line.startswith("CMD"))
    assert any(f'"{c}"' in cmd for c in COMMANDS)
    assert "USER" in text  # not root


def test_ci_runs_make_test():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
