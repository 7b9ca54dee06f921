"""The kustomize base (sidecar) and standalone overlay: render, schema-valid, hardened, wired."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.unit.kustomize import (
    BASE,
    CRD_KINDS,
    K8S_VERSIONS,
    ROOT,
    STANDALONE,
    Obj,
    container_named,
    one,
    render,
)

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="pip install kubernetes-validate (a dev dependency)"
)
RULES = ROOT / "deploy" / "prometheus" / "dbpulse-rules.yml"


@pytest.fixture(scope="module")
def base() -> list[Obj]:
    return render(BASE)


@pytest.fixture(scope="module")
def standalone() -> list[Obj]:
    return render(STANDALONE)


@pytest.fixture(scope="module", params=["base", "standalone"])
def rendered(request: pytest.FixtureRequest) -> list[Obj]:
    return render(BASE if request.param == "base" else STANDALONE)


def _workload(objs: list[Obj]) -> Obj:
    found = [o for o in objs if o["kind"] in {"StatefulSet", "Deployment"}]
    assert len(found) == 1
    return found[0]


def test_base_renders_sidecar_objects(base: list[Obj]) -> None:
    """The base renders PostgreSQL with the sidecar, Service, ServiceMonitor, rules, config."""
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in base)
    names = {k for k, _ in kinds}
    assert names == {"ConfigMap", "Service", "StatefulSet", "ServiceMonitor", "PrometheusRule"}
    assert ("Service", "dbpulse") in kinds
    sts = one(base, "StatefulSet", "postgres")
    pod = sts["spec"]["template"]["spec"]
    assert {c["name"] for c in pod["containers"]} == {"postgres", "dbpulse"}
    annotations = sts["spec"]["template"]["metadata"]["annotations"]
    assert annotations["kubectl.kubernetes.io/default-container"] == "postgres"


def test_standalone_renders_a_deployment_only(standalone: list[Obj]) -> None:
    """The overlay runs dbpulse as its own Deployment and drops the example PostgreSQL."""
    kinds = {o["kind"] for o in standalone}
    assert "StatefulSet" not in kinds
    assert not [o for o in standalone if o["metadata"]["name"] == "postgres"]
    deploy = one(standalone, "Deployment", "dbpulse")
    assert deploy["spec"]["replicas"] == 1
    assert [c["name"] for c in deploy["spec"]["template"]["spec"]["containers"]] == ["dbpulse"]


def test_no_secret_is_rendered_and_dsn_is_a_secret_ref(rendered: list[Obj]) -> None:
    """No Secret object or literal credential ships; DBPULSE_DSN comes from secretKeyRef."""
    assert all(o["kind"] != "Secret" for o in rendered)
    pod = _workload(rendered)["spec"]["template"]["spec"]
    for container in pod["containers"]:
        for env in container.get("env", []):
            value = str(env.get("value", ""))
            assert "://" not in value, env
            assert "password" not in env["name"].lower() or "valueFrom" in env, env
    env = {e["name"]: e for e in container_named(pod, "dbpulse")["env"]}
    assert env["DBPULSE_DSN"]["valueFrom"]["secretKeyRef"] == {"name": "dbpulse", "key": "dsn"}
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert "secret.example.yaml" not in kustomization["resources"]


def test_dbpulse_container_is_hardened(rendered: list[Obj]) -> None:
    """Non-root uid 10001, read-only root, no capabilities, no escalation, requests and limits."""
    pod = _workload(rendered)["spec"]["template"]["spec"]
    c = container_named(pod, "dbpulse")
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == 10001
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert "add" not in sc["capabilities"]
    for part in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][part]), part
    assert c["image"] == "dbpulse:0.1.0"


def test_probes_and_port(rendered: list[Obj]) -> None:
    """Liveness hits /healthz; readiness is /readyz alone, /healthz beside PostgreSQL."""
    workload = _workload(rendered)
    c = container_named(workload["spec"]["template"]["spec"], "dbpulse")
    assert c["ports"] == [{"name": "metrics", "containerPort": 9189, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    # In the PostgreSQL pod a failing /readyz would take the database out of its Service.
    ready = "/healthz" if workload["kind"] == "StatefulSet" else "/readyz"
    assert c["readinessProbe"]["httpGet"] == {"path": ready, "port": "metrics"}


def test_config_map_is_mounted_and_passes_check_config(rendered: list[Obj], tmp_path: Path) -> None:
    """--config names a file of the generated ConfigMap, and `dbpulse check-config` accepts it."""
    pod = _workload(rendered)["spec"]["template"]["spec"]
    c = container_named(pod, "dbpulse")
    config_path = Path(c["args"][c["args"].index("--config") + 1])
    assert c["args"][0] == "sidecar"
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == str(config_path.parent)]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    cm = one(rendered, "ConfigMap", volume["configMap"]["name"])
    text = cm["data"][config_path.name]
    settings = yaml.safe_load(text)
    assert "dsn" not in settings, "the DSN belongs in the Secret"
    assert settings["listen"].rsplit(":", 1)[1] == "9189"
    path = tmp_path / config_path.name
    path.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "dbpulse", "check-config", str(path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_service_selects_the_dbpulse_pods(rendered: list[Obj]) -> None:
    """The metrics Service selects the workload's pod labels and targets the metrics port."""
    svc = one(rendered, "Service", "dbpulse")
    pod_labels = _workload(rendered)["spec"]["template"]["metadata"]["labels"]
    selector = svc["spec"]["selector"]
    assert selector.items() <= pod_labels.items()
    (port,) = svc["spec"]["ports"]
    assert port == {"name": "metrics", "port": 9189, "targetPort": "metrics", "protocol": "TCP"}


def test_servicemonitor_matches_service(rendered: list[Obj]) -> None:
    """The ServiceMonitor (CRD, checked structurally) selects the Service and its port."""
    sm = one(rendered, "ServiceMonitor", "dbpulse")
    svc = one(rendered, "Service", "dbpulse")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}


def test_prometheusrule_carries_the_rule_file(rendered: list[Obj]) -> None:
    """The rendered PrometheusRule (CRD, checked structurally) holds the promtool-tested groups."""
    rule = one(rendered, "PrometheusRule", "dbpulse")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def test_core_objects_pass_kubernetes_schema(rendered: list[Obj]) -> None:
    """Every built-in object validates strictly against the Kubernetes 1.29 and 1.37 schemas."""
    checked = 0
    for obj in rendered:
        if obj["kind"] in CRD_KINDS:
            continue
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
        checked += 1
    assert checked >= 3


def test_schema_validation_rejects_a_typo(base: list[Obj]) -> None:
    """The schema check bites: a misspelled probe field fails strict validation."""
    sts = copy.deepcopy(one(base, "StatefulSet", "postgres"))
    c = container_named(sts["spec"]["template"]["spec"], "dbpulse")
    c["readinesProbe"] = c.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, K8S_VERSIONS[-1], strict=True)


def test_sidecar_and_standalone_containers_are_identical(
    base: list[Obj], standalone: list[Obj]
) -> None:
    """The dbpulse container is the same in the sidecar and the Deployment but for readiness."""
    sidecar_pod = one(base, "StatefulSet")["spec"]["template"]["spec"]
    deploy_pod = one(standalone, "Deployment")["spec"]["template"]["spec"]
    sidecar, deployed = (
        container_named(sidecar_pod, "dbpulse"),
        container_named(deploy_pod, "dbpulse"),
    )
    sidecar.pop("readinessProbe")
    deployed.pop("readinessProbe")
    assert sidecar == deployed
    mine = {"dbpulse-config", "dbpulse-tmp"}
    assert [v for v in sidecar_pod["volumes"] if v["name"] in mine] == [
        v for v in deploy_pod["volumes"] if v["name"] in mine
    ]
