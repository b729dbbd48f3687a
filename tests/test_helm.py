"""deploy/helm/outpost through Helm itself: `helm lint --strict` and `helm template`, by
Helm's own Go SDK (helm-python-sdk, a dev dependency: no helm binary is packaged for
Debian 12). What it renders must pass the same checks as deploy/k8s
(tests/deploy_checks.py: valid Settings, real commands, probes on real routes, non-root
read-only pods, PDBs, HPAs, NetworkPolicies)."""

import base64
import tomllib
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from outpost.dev.helmsync import SECRET_KEYS
from outpost.settings import Settings
from tests.deploy_checks import SETTING_NAMES, by_kind, check_all

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "outpost"
TRIAL = yaml.safe_load((CHART / "ci" / "trial-values.yaml").read_text())
PRODUCTION = yaml.safe_load((CHART / "ci" / "production-values.yaml").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
CHART_META = yaml.safe_load((CHART / "Chart.yaml").read_text())
# kept in the operator's Secret, never in values; HEALTH_HOST is the pod's IP
# where the chart's default differs from the service's, and why
CHART_CHOICES = {
    "HEALTH_PORT": "8081",  # the probes need the port (off by default outside Kubernetes)
    "LOG_FORMAT": "json",  # pods have no terminal; "auto" would be JSON anyway
    "REDIS_HOST": "",  # no 127.0.0.1 in a pod: REDIS_URL, REDIS_HOST or the trial Redis
}
A_SECRET = {  # what an operator's existing Secret holds
    "API_KEY": "k" * 40,
    "API_JWT_SECRET": "j" * 40,
    "AES_ENCRYPTION_SECRET": "a" * 40,
}


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    rendered = helm.Chart.load(CHART).render(
        values, name="rel", namespace="outpost", is_install=True
    )
    objs = []
    for path, text in rendered.items():
        if path.endswith(".yaml"):
            objs += [d for d in yaml.safe_load_all(text) if d]
    return objs


def environment(objs: list[dict[str, Any]]) -> tuple[dict[str, str], dict[str, str]]:
    (config,) = by_kind(objs, "ConfigMap")
    secrets = by_kind(objs, "Secret")
    secret = {k: base64.b64decode(v).decode() for s in secrets for k, v in s["data"].items()}
    return config["data"], secret or A_SECRET


def as_env(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


@pytest.mark.parametrize("values", [TRIAL, PRODUCTION], ids=["trial", "production"])
def test_helm_lint_strict_is_clean(values):
    report = helm.lint(CHART, values, strict=True, namespace="outpost")
    assert report["errors"] == [] and report["total_charts_linted"] == 1
    worse_than_info = [m for m in report["messages"] if m["severity"] >= 2]
    assert worse_than_info == []


def test_values_hold_every_setting_with_its_default():
    """config: is every non-secret setting, with the service's default (or a choice listed
    in CHART_CHOICES): a new setting without a line in values.yaml fails here (and
    `python -m outpost.dev.helmsync` adds it)."""
    config = VALUES["config"]
    assert set(config) == SETTING_NAMES - SECRET_KEYS - {"HEALTH_HOST"}
    for name, value in config.items():
        default = as_env(Settings.model_fields[name.lower()].default)
        assert value == CHART_CHOICES.get(name, default), name
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    assert set(schema["properties"]["config"]["properties"]) == set(config)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert CHART_META["appVersion"] == version and not VALUES["image"]["tag"]


def test_trial_release_starts():
    """Generated secrets of a valid length, the trial Redis found by name, every check of
    deploy_checks, the ServiceMonitor on a metrics port of every process."""
    objs = render(TRIAL)
    config, secret = environment(objs)
    check_all(objs, config, secret)
    assert sorted(secret) == ["AES_ENCRYPTION_SECRET", "API_JWT_SECRET", "API_KEY"]
    assert all(len(v) == 48 for v in secret.values())
    redis_services = [
        s for s in by_kind(objs, "Service") if s["metadata"]["name"].endswith("-redis")
    ]
    assert config["REDIS_HOST"] == redis_services[0]["metadata"]["name"]
    (monitor,) = by_kind(objs, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    with_metrics = [
        s for s in by_kind(objs, "Service") if "metrics" in {p["name"] for p in s["spec"]["ports"]}
    ]
    assert len(with_metrics) == 3
    deployments = {d["metadata"]["name"] for d in by_kind(objs, "Deployment")}
    assert deployments == {"rel-outpost-api", "rel-outpost-worker", "rel-outpost-source"}


def test_production_release_uses_the_existing_secret():
    objs = render(PRODUCTION)
    config, secret = environment(objs)
    check_all(objs, config, secret)
    assert by_kind(objs, "Secret") == [] and by_kind(objs, "StatefulSet") == []
    assert config["REDIS_URL"] == PRODUCTION["config"]["REDIS_URL"]
    for d in by_kind(objs, "Deployment"):
        (container,) = d["spec"]["template"]["spec"]["containers"]
        refs = {k: v["name"] for s in container["envFrom"] for k, v in s.items()}
        assert refs["secretRef"] == "outpost-secrets"
        assert container["image"] == f"outpost:{CHART_META['appVersion']}"
    api_policy = next(
        p for p in by_kind(objs, "NetworkPolicy") if p["metadata"]["name"].endswith("-api")
    )
    api_rule = next(r for r in api_policy["spec"]["ingress"] if {"port": "http"} in r["ports"])
    assert api_rule["from"] == PRODUCTION["networkPolicy"]["apiFrom"]


@pytest.mark.parametrize(
    ("values", "error", "says"),
    [
        ({"config": {"API_PROT": "1"}}, helm.HelmValuesError, "API_PROT"),
        ({}, helm.HelmRenderError, "config.REDIS_URL"),
        ({**TRIAL, "secrets": {"generate": False}}, helm.HelmRenderError, "existingSecret"),
    ],
    ids=["unknown-setting", "no-redis", "no-secret"],
)
def test_misconfiguration_fails_at_install_naming_the_value(values, error, says):
    with pytest.raises(error) as caught:
        render(values)
    assert says in str(caught.value)


def test_optional_parts_turn_off():
    objs = render({**PRODUCTION, "source": {**VALUES["source"], "enabled": False}})
    assert "rel-outpost-source" not in {d["metadata"]["name"] for d in objs}
    objs = render(
        {
            **TRIAL,
            "networkPolicy": {"enabled": False},
            "api": {**VALUES["api"], "autoscaling": {"enabled": False}},
        }
    )
    assert by_kind(objs, "NetworkPolicy") == []
    api = next(d for d in by_kind(objs, "Deployment") if d["metadata"]["name"].endswith("-api"))
    assert api["spec"]["replicas"] == VALUES["api"]["replicas"]
    assert {h["metadata"]["name"] for h in by_kind(objs, "HorizontalPodAutoscaler")} == {
        "rel-outpost-worker"
    }
