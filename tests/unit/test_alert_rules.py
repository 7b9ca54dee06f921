"""The alert rules: valid for promtool, unit-tested, documented, and mirrored in Kubernetes."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "dbpulse-rules.yml"
RULE_TESTS = sorted((ROOT / "deploy" / "prometheus" / "tests").glob("*.yml"))
RUNBOOK = ROOT / "deploy" / "prometheus" / "RUNBOOK.md"
PROMETHEUS_RULE = ROOT / "deploy" / "kubernetes" / "base" / "prometheusrule.yaml"

EXPECTED_ALERTS = {
    "DbpulseDatabaseDown",
    "DbpulseConnectionSaturation",
    "DbpulseLongIdleInTransaction",
    "DbpulseLockBlocking",
    "DbpulseIndexBuildStalled",
    "DbpulseInvalidIndex",
    "DbpulseReplicationLag",
    "DbpulseReplicationSlotRetainingWal",
    "DbpulseWalArchivingFailing",
    "DbpulseQueryRegressed",
    "DbpulseTableNotVacuumed",
    "DbpulsePoolExhausted",
    "DbpulsePoolTimeouts",
    "DbpulseCollectorFailing",
    "DbpulseSnapshotStale",
    "DbpulseExporterDown",
    "DbpulseExporterAbsent",
}


exprs = load_script("dbpulse_grafana_exprs", "grafana/exprs.py")
prometheusrule = load_script(
    "dbpulse_build_prometheusrule", "deploy/kubernetes/build_prometheusrule.py"
)


def _alerts(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


@pytest.fixture(scope="module")
def rules() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return loaded


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (apt-get install prometheus); CI installs it")
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False, cwd=ROOT)


def test_promtool_check_rules(promtool: str) -> None:
    """promtool accepts the rule file (syntax, PromQL, templates)."""
    done = _run(promtool, "check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(_alerts(yaml.safe_load(RULES.read_text())))} rules found" in done.stdout


def test_promtool_unit_tests_pass(promtool: str) -> None:
    """Every promtool rule unit test passes: each alert fires on its bad input, not on healthy."""
    assert RULE_TESTS
    done = _run(promtool, "test", "rules", *map(str, RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_can_fail(promtool: str, tmp_path: Path) -> None:
    """The unit tests bite: with DbpulseDatabaseDown's threshold inverted, promtool fails."""
    broken = RULES.read_text().replace("expr: pg_up == 0", "expr: pg_up == 2")
    assert broken != RULES.read_text()
    (tmp_path / "dbpulse-rules.yml").write_text(broken)
    tests_dir = tmp_path / "tests"
    tests_dir.mkdir()
    for path in RULE_TESTS:
        (tests_dir / path.name).write_text(path.read_text())
    done = _run(promtool, "test", "rules", *(str(tests_dir / p.name) for p in RULE_TESTS))
    assert done.returncode != 0
    assert "DbpulseDatabaseDown" in done.stdout + done.stderr


def test_every_alert_fires_and_stays_quiet_in_tests(rules: dict[str, Any]) -> None:
    """Each alert has a promtool case where it fires and one where it must not."""
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {a["alert"] for a in _alerts(rules)}
    assert names == EXPECTED_ALERTS
    assert names - fired == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown quiet"


def test_alerts_are_labelled_and_documented(rules: dict[str, Any]) -> None:
    """Each alert has a severity, summary, description, runbook text and a live runbook anchor."""
    headings = {
        re.sub(r"[^a-z0-9_-]", "", line[3:].strip().lower().replace(" ", "-"))
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("## ")
    }
    for alert in _alerts(rules):
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}, alert["alert"]
        notes = alert["annotations"]
        for key in ("summary", "description", "runbook", "runbook_url"):
            assert notes.get(key, "").strip(), f"{alert['alert']} lacks {key}"
        page, _, anchor = notes["runbook_url"].partition("#")
        assert page == "RUNBOOK.md"
        assert anchor == alert["alert"].lower()
        assert anchor in headings, f"RUNBOOK.md has no section for {alert['alert']}"


def test_rules_read_only_dbpulse_metrics(rules: dict[str, Any]) -> None:
    """Rule expressions read dbpulse's own series (plus Prometheus' up), never a typo'd family."""
    for ref in exprs.rule_exprs(rules):
        assert ref.metrics, ref
        for name in ref.metrics:
            assert name == "up" or name.startswith(("pg_", "db_client_", "dbpulse_")), ref


def test_prometheusrule_is_generated_from_rules(rules: dict[str, Any]) -> None:
    """base/prometheusrule.yaml is the generator's output and carries exactly the same groups."""
    assert PROMETHEUS_RULE.read_text() == prometheusrule.render()
    obj = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert obj["apiVersion"] == "monitoring.coreos.com/v1"
    assert obj["kind"] == "PrometheusRule"
    assert obj["spec"]["groups"] == rules["groups"]


def test_prometheusrule_spec_passes_promtool(promtool: str, tmp_path: Path) -> None:
    """The groups inside the PrometheusRule are themselves a valid rule file for promtool."""
    obj = yaml.safe_load(PROMETHEUS_RULE.read_text())
    path = tmp_path / "from-prometheusrule.yml"
    path.write_text(yaml.safe_dump({"groups": obj["spec"]["groups"]}))
    done = _run(promtool, "check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
