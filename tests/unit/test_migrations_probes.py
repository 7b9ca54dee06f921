"""Pure parts of custom probes: settings validation, value conversion and gauge building."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from dbpulse.settings import ConfigError, ProbeSettings, load_settings
from dbpulse.sidecar.base import CollectorError
from dbpulse.sidecar.probes import build_probe, create_probes

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "dbpulse.example.yaml"


def _probe(**kw: object) -> ProbeSettings:
    return ProbeSettings.model_validate({"name": "p", "sql": "SELECT 1 AS n", **kw})


def test_example_probe_block_loads_and_names_every_field(tmp_path: Path) -> None:
    """The commented probe example in the shipped YAML, uncommented, is valid and complete."""
    text = EXAMPLE.read_text()
    block = text[text.index("# probes:") : text.index("\nprobes: []")]
    uncommented = "\n".join(line.removeprefix("#").removeprefix(" ") for line in block.splitlines())
    data = yaml.safe_load(uncommented)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    loaded = load_settings(path)
    assert loaded.probes[0].remaining_column == "remaining"
    for field in ProbeSettings.model_fields:
        assert re.search(rf"^#\s+-?\s*{field}:", block, re.MULTILINE), field


@pytest.mark.parametrize("name", ["Backfill", "1st", "a-b", "", "x" * 64, "probe:x"])
def test_bad_probe_names_are_rejected(name: str) -> None:
    """Probe names must be lower-case identifiers: they become metric names and job ids."""
    with pytest.raises(ConfigError, match=r"probes\.0\.name"):
        load_settings(probes=[{"name": name, "sql": "SELECT 1 AS n"}])


def test_duplicate_probe_names_are_rejected() -> None:
    """Two probes with one name would share a job id and metric names."""
    probe = {"name": "dup", "sql": "SELECT 1 AS n"}
    with pytest.raises(ConfigError, match="unique: dup"):
        load_settings(probes=[probe, probe])


def test_bad_label_and_metric_names_are_rejected() -> None:
    """Label columns and the metric prefix must be valid Prometheus names."""
    with pytest.raises(ConfigError, match=r"probes\.0\.labels"):
        load_settings(probes=[{"name": "p", "sql": "SELECT 1", "labels": ["bad-name"]}])
    with pytest.raises(ConfigError, match=r"probes\.0\.metric"):
        load_settings(probes=[{"name": "p", "sql": "SELECT 1", "metric": "9lives"}])


def test_numbers_of_every_kind_become_gauges_and_null_is_skipped() -> None:
    """int, float and Decimal cells are exported; a NULL cell yields no sample."""
    result = build_probe(
        _probe(),
        ["a", "b", "c", "d"],
        [{"a": 3, "b": 1.5, "c": Decimal("2.25"), "d": None}],
    )
    values = {fam.name: [s.value for s in fam.samples] for fam in result.families}
    assert values == {
        "dbpulse_probe_p_a": [3.0],
        "dbpulse_probe_p_b": [1.5],
        "dbpulse_probe_p_c": [2.25],
        "dbpulse_probe_p_d": [],
    }


@pytest.mark.parametrize("cell", ["12", True, b"\x01", [1]])
def test_non_numeric_value_is_an_error_naming_the_column_not_the_value(cell: object) -> None:
    """A value column holding text, bool, bytes or arrays fails with the column and its type."""
    with pytest.raises(CollectorError, match=r"column 'v' is \w+, not a number") as info:
        build_probe(_probe(), ["v"], [{"v": cell}])
    assert repr(cell) not in str(info.value)


def test_labels_are_declared_columns_and_must_exist() -> None:
    """Label columns label the samples; a missing label column or duplicate rows are errors."""
    config = _probe(labels=["state"])
    result = build_probe(config, ["state", "n"], [{"state": "a", "n": 1}, {"state": None, "n": 2}])
    (family,) = result.families
    assert [(s.labels, s.value) for s in family.samples] == [
        ({"state": "a"}, 1.0),
        ({"state": ""}, 2.0),
    ]
    with pytest.raises(CollectorError, match="not in the result: state"):
        build_probe(config, ["n"], [{"n": 1}])
    with pytest.raises(CollectorError, match="same label values"):
        build_probe(config, ["state", "n"], [{"state": "a", "n": 1}, {"state": "a", "n": 2}])


def test_rows_beyond_max_rows_are_dropped_with_a_notice() -> None:
    """max_rows bounds the series; the overflow is reported once as a notice."""
    config = _probe(labels=["k"], max_rows=2)
    rows = [{"k": str(i), "n": i} for i in range(3)]
    result = build_probe(config, ["k", "n"], rows)
    assert len(result.families[0].samples) == 2
    assert len(result.notices) == 1
    assert "more than 2 rows" in result.notices[0]


def test_probe_jobs_inherit_interval_and_name_their_job() -> None:
    """Each probe becomes job probe:<name> with its own timeout and default interval/stale."""
    settings = load_settings(
        interval=10.0,
        probes=[
            {"name": "a", "sql": "SELECT 1 AS n", "timeout": 2},
            {"name": "b", "sql": "SELECT 1 AS n", "interval": 1},
        ],
    )
    jobs = {job.name: job for job in create_probes(settings)}
    assert (jobs["probe:a"].interval, jobs["probe:a"].timeout, jobs["probe:a"].stale_after) == (
        10.0,
        2.0,
        30.0,
    )
    assert (jobs["probe:b"].interval, jobs["probe:b"].stale_after) == (1.0, 3.0)
