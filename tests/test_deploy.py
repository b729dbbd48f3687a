"""The deployment files reference real commands, settings and routes (no Docker or cluster
here, so they are parsed and checked, not run): the Kubernetes manifests of deploy/k8s
(through tests/deploy_checks.py, shared with the Helm chart's test), the Dockerfile and its
dependency lock, docker-compose."""

import re
import tomllib
from pathlib import Path

import yaml

from tests.deploy_checks import SETTING_NAMES, check_all

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
BOTOCORE_NAMES = {
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_KINESIS",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
}
COMMANDS = {"api", "worker", "all", "source"}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def manifests() -> dict[tuple[str, str], dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    found = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    assert len(found) == len(docs), "two objects of one kind share a name"
    return found


def test_kubernetes_objects_present():
    processes = {"outpost-api", "outpost-worker", "outpost-source"}
    assert set(manifests()) == {
        ("ConfigMap", "outpost-config"),
        ("Secret", "outpost-secrets"),
        ("Service", "outpost-api"),
        ("StatefulSet", "outpost-redis"),
        ("Service", "outpost-redis"),
        ("NetworkPolicy", "outpost-redis"),
        ("HorizontalPodAutoscaler", "outpost-api"),
        ("HorizontalPodAutoscaler", "outpost-worker"),
        *{(kind, name) for kind in ("Deployment", "PodDisruptionBudget") for name in processes},
        *{("NetworkPolicy", name) for name in processes},
    }
    assert not list((ROOT / "deploy").glob("*.yaml")), "manifests live in deploy/k8s/"


def test_manifests_start_as_shipped():
    """Settings accepts the shipped ConfigMap and Secret (the Secret's JWT secret used to
    be too short: the service exited 2 in a crash loop), probes hit real routes and ports,
    pods run non-root on a read-only root fs, each process has its PDB and policy."""
    m = manifests()
    objs = list(m.values())
    config = m["ConfigMap", "outpost-config"]["data"]
    secret = m["Secret", "outpost-secrets"]["stringData"]
    check_all(objs, config, secret)
    commands = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["args"]
        for d in objs
        if d["kind"] == "Deployment"
    }
    assert commands == {
        "outpost-api": ["api"],
        "outpost-worker": ["worker"],
        "outpost-source": ["source"],
    }


def test_trial_parts_say_so():
    """The Redis StatefulSet and the Secret's public values are marked for trials, with the
    step that replaces them; the service finds the trial Redis by its Service's name."""
    assert "FOR TRIALS ONLY" in (K8S / "redis.yaml").read_text()
    secret_text = (K8S / "secret.yaml").read_text()
    assert "TRIAL VALUES" in secret_text and "openssl rand" in secret_text
    assert all(
        "trial" in v for v in manifests()["Secret", "outpost-secrets"]["stringData"].values() if v
    )
    assert manifests()["ConfigMap", "outpost-config"]["data"]["REDIS_HOST"] == "outpost-redis"


def test_images_are_the_package_version():
    version = PYPROJECT["project"]["version"]
    for obj in manifests().values():
        if obj["kind"] == "Deployment":
            for c in obj["spec"]["template"]["spec"]["containers"]:
                assert c["image"] == f"outpost:{version}"


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


def test_compose_waits_for_health():
    """Every service has a healthcheck and the service starts once its dependencies pass
    theirs; the service's own check asks the probe port's /readyz."""
    services = yaml.safe_load((ROOT / "docker-compose.localstack.yml").read_text())["services"]
    for name, svc in services.items():
        assert svc["healthcheck"]["test"][0] == "CMD", name
    outpost = services["outpost"]
    assert {d["condition"] for d in outpost["depends_on"].values()} == {"service_healthy"}
    port = outpost["environment"]["HEALTH_PORT"]
    assert f"127.0.0.1:{port}/readyz" in " ".join(outpost["healthcheck"]["test"])


def test_dockerfile_is_pinned_non_root_and_checks_health():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"python:3\.11-slim@sha256:[0-9a-f]{64}\b", text), "base not pinned"
    assert "pip install --require-hashes --no-deps -r requirements.lock" in text
    assert "--no-index ." in text  # the package itself: built from the locked tools only
    assert 'ENTRYPOINT ["outpost"]' in text
    cmd = next(line for line in text.splitlines() if line.startswith("CMD"))
    assert any(f'"{c}"' in cmd for c in COMMANDS)
    assert re.search(r"^USER 10001", text, re.M)
    healthcheck = text[text.index("HEALTHCHECK") :]
    assert "/healthz" in healthcheck and "HEALTH_PORT=8081" in text


def locked() -> dict[str, list[str]]:
    """requirements.lock: each pinned name (normalised) -> its hashes."""
    text = (ROOT / "requirements.lock").read_text()
    pins: dict[str, list[str]] = {}
    for block in re.split(r"\n(?=[A-Za-z])", text):
        if match := re.match(r"([A-Za-z0-9_.-]+)==\S+", block):
            name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
            pins[name] = re.findall(r"--hash=sha256:([0-9a-f]{64})", block)
    return pins


def test_lock_covers_the_runtime_dependencies_with_hashes():
    """Every runtime dependency of pyproject.toml (and the build backend the image uses)
    is pinned in requirements.lock with its hashes: a dependency added to pyproject
    without `make lock` fails here, not in a docker build."""
    pins = locked()
    assert all(pins.values()), [n for n, h in pins.items() if not h]
    wanted = PYPROJECT["project"]["dependencies"] + PYPROJECT["build-system"]["requires"]
    for requirement in wanted:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)  # type: ignore[union-attr]
        assert re.sub(r"[-_.]+", "-", name).lower() in pins, f"{name}: run `make lock`"
    assert "hiredis" in pins  # extras resolved too (redis[hiredis])


def test_ci_runs_make_test():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
