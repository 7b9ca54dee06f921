"""The kustomize base (sidecar), standalone and multi-target overlays: render, schema-valid, hardened, wired."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="pip install kubernetes-validate (a dev dependency)"
)

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
BASE = K8S / "base"
STANDALONE = K8S / "overlays" / "standalone"
MULTI_TARGET = K8S / "overlays" / "multi-target"
PROBE_SCRAPE = ROOT / "deploy" / "prometheus" / "probe-scrape-config.yml"
RULES = ROOT / "deploy" / "prometheus" / "dbpulse-rules.yml"
CRD_KINDS = {"ServiceMonitor", "PrometheusRule", "ScrapeConfig"}
# Oldest and newest Kubernetes minor versions the manifests are checked against.
K8S_VERSIONS = ("1.29.0", "1.37.0")

Obj = dict[str, Any]


def _render(path: Path) -> list[Obj]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: it renders kustomize (kubectl kustomize)")
    done = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def base() -> list[Obj]:
    return _render(BASE)


@pytest.fixture(scope="module")
def standalone() -> list[Obj]:
    return _render(STANDALONE)


@pytest.fixture(scope="module", params=["base", "standalone"])
def rendered(request: pytest.FixtureRequest) -> list[Obj]:
    return _render(BASE if request.param == "base" else STANDALONE)


def _one(objs: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [
        o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def _workload(objs: list[Obj]) -> Obj:
    found = [o for o in objs if o["kind"] in {"StatefulSet", "Deployment"}]
    assert len(found) == 1
    return found[0]


def _container(pod_spec: Obj, name: str) -> Obj:
    (container,) = [c for c in pod_spec["containers"] if c["name"] == name]
    found: Obj = container
    return found


def test_base_renders_sidecar_objects(base: list[Obj]) -> None:
    """The base renders PostgreSQL with the sidecar, Service, ServiceMonitor, rules, config."""
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in base)
    names = {k for k, _ in kinds}
    assert names == {"ConfigMap", "Service", "StatefulSet", "ServiceMonitor", "PrometheusRule"}
    assert ("Service", "dbpulse") in kinds
    sts = _one(base, "StatefulSet", "postgres")
    pod = sts["spec"]["template"]["spec"]
    assert {c["name"] for c in pod["containers"]} == {"postgres", "dbpulse"}
    annotations = sts["spec"]["template"]["metadata"]["annotations"]
    assert annotations["kubectl.kubernetes.io/default-container"] == "postgres"


def test_standalone_renders_a_deployment_only(standalone: list[Obj]) -> None:
    """The overlay runs dbpulse as its own Deployment and drops the example PostgreSQL."""
    kinds = {o["kind"] for o in standalone}
    assert "StatefulSet" not in kinds
    assert not [o for o in standalone if o["metadata"]["name"] == "postgres"]
    deploy = _one(standalone, "Deployment", "dbpulse")
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
    env = {e["name"]: e for e in _container(pod, "dbpulse")["env"]}
    assert env["DBPULSE_DSN"]["valueFrom"]["secretKeyRef"] == {"name": "dbpulse", "key": "dsn"}
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert "secret.example.yaml" not in kustomization["resources"]


def test_dbpulse_container_is_hardened(rendered: list[Obj]) -> None:
    """Non-root uid 10001, read-only root, no capabilities, no escalation, requests and limits."""
    pod = _workload(rendered)["spec"]["template"]["spec"]
    c = _container(pod, "dbpulse")
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
    c = _container(workload["spec"]["template"]["spec"], "dbpulse")
    assert c["ports"] == [{"name": "metrics", "containerPort": 9189, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    # In the PostgreSQL pod a failing /readyz would take the database out of its Service.
    ready = "/healthz" if workload["kind"] == "StatefulSet" else "/readyz"
    assert c["readinessProbe"]["httpGet"] == {"path": ready, "port": "metrics"}


def test_config_map_is_mounted_and_passes_check_config(rendered: list[Obj], tmp_path: Path) -> None:
    """--config names a file of the generated ConfigMap, and `dbpulse check-config` accepts it."""
    pod = _workload(rendered)["spec"]["template"]["spec"]
    c = _container(pod, "dbpulse")
    config_path = Path(c["args"][c["args"].index("--config") + 1])
    assert c["args"][0] == "sidecar"
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == str(config_path.parent)]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    cm = _one(rendered, "ConfigMap", volume["configMap"]["name"])
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
    svc = _one(rendered, "Service", "dbpulse")
    pod_labels = _workload(rendered)["spec"]["template"]["metadata"]["labels"]
    selector = svc["spec"]["selector"]
    assert selector.items() <= pod_labels.items()
    (port,) = svc["spec"]["ports"]
    assert port == {"name": "metrics", "port": 9189, "targetPort": "metrics", "protocol": "TCP"}


def test_servicemonitor_matches_service(rendered: list[Obj]) -> None:
    """The ServiceMonitor (CRD, checked structurally) selects the Service and its port."""
    sm = _one(rendered, "ServiceMonitor", "dbpulse")
    svc = _one(rendered, "Service", "dbpulse")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}


def test_prometheusrule_carries_the_rule_file(rendered: list[Obj]) -> None:
    """The rendered PrometheusRule (CRD, checked structurally) holds the promtool-tested groups."""
    rule = _one(rendered, "PrometheusRule", "dbpulse")
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
    sts = copy.deepcopy(_one(base, "StatefulSet", "postgres"))
    c = _container(sts["spec"]["template"]["spec"], "dbpulse")
    c["readinesProbe"] = c.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, K8S_VERSIONS[-1], strict=True)


def test_sidecar_and_standalone_containers_are_identical(
    base: list[Obj], standalone: list[Obj]
) -> None:
    """The dbpulse container is the same in the sidecar and the Deployment but for readiness."""
    sidecar_pod = _one(base, "StatefulSet")["spec"]["template"]["spec"]
    deploy_pod = _one(standalone, "Deployment")["spec"]["template"]["spec"]
    sidecar, deployed = _container(sidecar_pod, "dbpulse"), _container(deploy_pod, "dbpulse")
    sidecar.pop("readinessProbe")
    deployed.pop("readinessProbe")
    assert sidecar == deployed
    mine = {"dbpulse-config", "dbpulse-tmp"}
    assert [v for v in sidecar_pod["volumes"] if v["name"] in mine] == [
        v for v in deploy_pod["volumes"] if v["name"] in mine
    ]


@pytest.fixture(scope="module")
def multi_target() -> list[Obj]:
    return _render(MULTI_TARGET)


def _multi_config(objs: list[Obj]) -> tuple[Obj, Obj, dict[str, Any], str]:
    """The Deployment's pod, dbpulse container, parsed config and its raw text."""
    pod = _one(objs, "Deployment", "dbpulse")["spec"]["template"]["spec"]
    c = _container(pod, "dbpulse")
    config_path = Path(c["args"][c["args"].index("--config") + 1])
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == str(config_path.parent)]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    text = _one(objs, "ConfigMap", volume["configMap"]["name"])["data"][config_path.name]
    return pod, c, yaml.safe_load(text), text


def test_multi_target_is_one_deployment_with_targets_and_a_password_file(
    multi_target: list[Obj], tmp_path: Path
) -> None:
    """One Deployment, no DSN env, targets in the config, the password a mounted Secret file."""
    assert {o["kind"] for o in multi_target} & {"StatefulSet", "Secret"} == set()
    pod, c, settings, text = _multi_config(multi_target)
    assert "DBPULSE_DSN" not in {e["name"] for e in c.get("env", [])}
    assert len(settings["targets"]) >= 2
    assert "@" in settings["dsn_template"]
    assert ":" not in settings["dsn_template"].split("://", 1)[1].split("@", 1)[0], "no password"
    assert settings["allow_dsn_in_url"] is False
    secret_dir = str(Path(settings["password_file"]).parent)
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == secret_dir]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == "dbpulse-password"
    path = tmp_path / "dbpulse.yaml"
    path.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "dbpulse", "check-config", str(path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _relabel(address: str, rules: list[dict[str, Any]]) -> dict[str, str]:
    """Apply replace-only relabel rules (the subset the probe configs use) to one target."""
    labels = {"__address__": address}
    for rule in rules:
        sources = rule.get("source_labels", rule.get("sourceLabels", []))
        value = ";".join(labels.get(name, "") for name in sources)
        assert rule.get("action", "replace") == "replace"
        assert rule.get("regex", "(.*)") == "(.*)"
        replacement = str(rule.get("replacement", "$1")).replace("$1", value)
        target = rule.get("target_label", rule.get("targetLabel"))
        assert isinstance(target, str), rule
        labels[target] = replacement
    return labels


def test_probe_scrape_configs_send_each_name_to_dbpulse(multi_target: list[Obj]) -> None:
    """Both scrape configs turn each configured target name into /probe?target=NAME on dbpulse."""
    _, _, settings, _ = _multi_config(multi_target)
    names = sorted(t["name"] for t in settings["targets"])
    svc_port = _one(multi_target, "Service", "dbpulse")["spec"]["ports"][0]["port"]
    operator = _one(multi_target, "ScrapeConfig", "dbpulse-probe")["spec"]
    plain = yaml.safe_load(PROBE_SCRAPE.read_text())["scrape_configs"][0]
    assert operator["metricsPath"] == plain["metrics_path"] == "/probe"
    configs = [
        (operator["staticConfigs"], operator["relabelings"]),
        (plain["static_configs"], plain["relabel_configs"]),
    ]
    for static, rules in configs:
        assert sorted(t for group in static for t in group["targets"]) == names
        for name in names:
            labels = _relabel(name, rules)
            assert labels["__param_target"] == name
            assert labels["instance"] == name
            host, port = labels["__address__"].rsplit(":", 1)
            assert host.startswith("dbpulse.")
            assert int(port) == svc_port


def test_probe_scrape_config_passes_promtool() -> None:
    """promtool accepts deploy/prometheus/probe-scrape-config.yml as a Prometheus config."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    done = subprocess.run(
        [promtool, "check", "config", str(PROBE_SCRAPE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_multi_target_core_objects_pass_kubernetes_schema(multi_target: list[Obj]) -> None:
    """The multi-target Deployment, Service and ConfigMap validate strictly on 1.29 and 1.37."""
    checked = 0
    for obj in multi_target:
        if obj["kind"] in CRD_KINDS:
            continue
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
        checked += 1
    assert checked == 3
