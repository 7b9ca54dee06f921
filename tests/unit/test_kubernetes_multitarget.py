"""The kustomize multi-target overlay and probe scrape configs: one Deployment, targets, /probe."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.kustomize import (
    CRD_KINDS,
    K8S_VERSIONS,
    MULTI_TARGET,
    PROBE_SCRAPE,
    ROOT,
    Obj,
    container_named,
    one,
    render,
)

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="pip install kubernetes-validate (a dev dependency)"
)


@pytest.fixture(scope="module")
def multi_target() -> list[Obj]:
    return render(MULTI_TARGET)


def _multi_config(objs: list[Obj]) -> tuple[Obj, Obj, dict[str, Any], str]:
    """The Deployment's pod, dbpulse container, parsed config and its raw text."""
    pod = one(objs, "Deployment", "dbpulse")["spec"]["template"]["spec"]
    c = container_named(pod, "dbpulse")
    config_path = Path(c["args"][c["args"].index("--config") + 1])
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == str(config_path.parent)]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    text = one(objs, "ConfigMap", volume["configMap"]["name"])["data"][config_path.name]
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
    svc_port = one(multi_target, "Service", "dbpulse")["spec"]["ports"][0]["port"]
    operator = one(multi_target, "ScrapeConfig", "dbpulse-probe")["spec"]
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
