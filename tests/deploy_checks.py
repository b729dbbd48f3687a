"""What every Kubernetes object set we ship must satisfy: the plain manifests of deploy/k8s
and whatever the Helm chart renders are both checked here (tests/test_deploy.py,
tests/test_helm.py), so the two cannot drift apart on what "starts" means.

The objects are dicts as parsed from YAML. The checks need no cluster: they hold the
manifests against the code itself (Settings, the CLI's commands, the probe routes)."""

from __future__ import annotations

from typing import Any

from outpost.cliparser import COMMANDS
from outpost.health import LIVE_PATH, READY_PATH
from outpost.runtime import openapi_document
from outpost.settings import Settings

Obj = dict[str, Any]
SETTING_NAMES = {name.upper() for name in Settings.model_fields}
SERVING = {"api", "worker", "source", "all"}  # commands that run until SIGTERM
API_VERSIONS = {
    "ConfigMap": "v1",
    "Secret": "v1",
    "Service": "v1",
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "PodDisruptionBudget": "policy/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "NetworkPolicy": "networking.k8s.io/v1",
    "ServiceMonitor": "monitoring.coreos.com/v1",
}


def by_kind(objs: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def pod_labels(workload: Obj) -> dict[str, str]:
    return dict(workload["spec"]["template"]["metadata"]["labels"])


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def check_all(objs: list[Obj], config: dict[str, str], secret: dict[str, str]) -> None:
    """Every check below, on one rendered set; `config` and `secret` are the environment
    the ConfigMap and the Secret give each pod."""
    for o in objs:
        assert API_VERSIONS.get(o["kind"]) == o["apiVersion"], (o["kind"], o["apiVersion"])
    check_settings(config, secret)
    for deployment in by_kind(objs, "Deployment"):
        check_deployment(deployment, objs, config)
    check_disruption_and_scaling(objs)
    check_services(objs)
    check_network_policies(objs)


def check_settings(config: dict[str, str], secret: dict[str, str]) -> None:
    """The pods' environment builds a valid Settings with the secrets a server needs."""
    env = {**config, **secret, "HEALTH_HOST": "10.1.2.3"}
    assert set(env) <= SETTING_NAMES, set(env) - SETTING_NAMES
    settings = Settings(**{k.lower(): v for k, v in env.items()})  # type: ignore[arg-type]
    assert settings.check_service_secrets() == []
    assert settings.api_jwt_secret, "API_JWT_SECRET is needed for tenant tokens"
    assert settings.health_port, "the probes need HEALTH_PORT"


def check_deployment(deployment: Obj, objs: list[Obj], config: dict[str, str]) -> None:
    pod = deployment["spec"]["template"]["spec"]
    assert matches(deployment["spec"]["selector"]["matchLabels"], pod_labels(deployment))
    assert pod["automountServiceAccountToken"] is False
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
    (container,) = pod["containers"]
    command = container["args"][0]
    assert command in COMMANDS and command in SERVING, command
    check_container_security(container)
    check_environment(container, objs)
    check_probes(container, command, config)


def check_container_security(container: Obj) -> None:
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]


def check_environment(container: Obj, objs: list[Obj]) -> None:
    """Every variable is a setting; the ConfigMap exists; HEALTH_HOST is the pod's IP."""
    env = {e["name"]: e for e in container.get("env", [])}
    assert set(env) <= SETTING_NAMES, set(env) - SETTING_NAMES
    assert env["HEALTH_HOST"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    maps = {o["metadata"]["name"] for o in by_kind(objs, "ConfigMap")}
    refs = [ref for source in container["envFrom"] for ref in source.values()]
    kinds = {k for source in container["envFrom"] for k in source}
    assert kinds == {"configMapRef", "secretRef"}
    config_ref = next(s["configMapRef"] for s in container["envFrom"] if "configMapRef" in s)
    assert config_ref["name"] in maps and all(r["name"] for r in refs)


def check_probes(container: Obj, command: str, config: dict[str, str]) -> None:
    """Liveness: the probe port's /healthz. Readiness: /readyz there, or for the API its own
    GET /healthz (a real route of the served document) on the API port."""
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["health"] == int(config["HEALTH_PORT"])
    live = container["livenessProbe"]["httpGet"]
    assert (live["path"], ports[live["port"]]) == (LIVE_PATH, ports["health"])
    ready = container["readinessProbe"]["httpGet"]
    if command == "api":
        assert ports["http"] == int(config["API_PORT"])
        assert (ready["path"], ready["port"]) == ("/healthz", "http")
        assert "/healthz" in openapi_document()["paths"]
    else:
        assert (ready["path"], ports[ready["port"]]) == (READY_PATH, ports["health"])


def check_disruption_and_scaling(objs: list[Obj]) -> None:
    """A PDB for each Deployment; each HPA scales a Deployment on CPU."""
    deployments = {d["metadata"]["name"]: d for d in by_kind(objs, "Deployment")}
    budgets = by_kind(objs, "PodDisruptionBudget")
    for deployment in deployments.values():
        labels = pod_labels(deployment)
        assert any(matches(b["spec"]["selector"]["matchLabels"], labels) for b in budgets)
    scalers = by_kind(objs, "HorizontalPodAutoscaler")
    assert scalers
    for hpa in scalers:
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment" and target["name"] in deployments
        assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        resources = [m["resource"]["name"] for m in hpa["spec"]["metrics"]]
        assert "cpu" in resources


def container_ports(objs: list[Obj]) -> list[tuple[dict[str, str], set[str | int]]]:
    """(pod labels, the names and numbers of its ports) of every workload."""
    found = []
    for w in by_kind(objs, "Deployment") + by_kind(objs, "StatefulSet"):
        ports: set[str | int] = set()
        for c in w["spec"]["template"]["spec"]["containers"]:
            for p in c.get("ports", []):
                ports |= {p["name"], p["containerPort"]}
        found.append((pod_labels(w), ports))
    return found


def check_services(objs: list[Obj]) -> None:
    """Each Service selects pods that have the ports it targets."""
    workloads = container_ports(objs)
    for svc in by_kind(objs, "Service"):
        selected = [
            ports for labels, ports in workloads if matches(svc["spec"]["selector"], labels)
        ]
        assert selected, f"Service {svc['metadata']['name']} selects no pods"
        for port in svc["spec"]["ports"]:
            assert all(port["targetPort"] in ports for ports in selected), port


def check_network_policies(objs: list[Obj]) -> None:
    """Every workload is under a policy, and each allowed port is one its pods have."""
    policies = by_kind(objs, "NetworkPolicy")
    for labels, ports in container_ports(objs):
        mine = [p for p in policies if matches(p["spec"]["podSelector"]["matchLabels"], labels)]
        assert mine, f"no NetworkPolicy for {labels}"
        for policy in mine:
            for rule in policy["spec"].get("ingress", []):
                assert all(p["port"] in ports for p in rule["ports"]), rule
