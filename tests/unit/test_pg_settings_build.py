"""Unit tests for the pure build step of the settings collector (pg_settings_*)."""

from __future__ import annotations

from typing import Any

import pytest

from dbpulse.sidecar.base import Context
from dbpulse.sidecar.collectors.pg_settings import SettingsCollector, convert_unit

CTX = Context("t", 150000, 0.0, server="db:5432")


def _row(
    name: str, setting: str | None, unit: str = "", vartype: str = "integer"
) -> dict[str, Any]:
    return {
        "name": name,
        "setting": setting,
        "unit": unit,
        "short_desc": f"About {name}.",
        "vartype": vartype,
    }


def _build(*rows: dict[str, Any]) -> tuple[dict[str, tuple[float, str]], list[str]]:
    result = SettingsCollector().build({"settings": list(rows)}, CTX, None)
    out = {}
    for fam in result.families:
        assert fam.type == "gauge"
        assert len(fam.samples) == 1
        assert fam.samples[0].labels == {"server": "db:5432"}
        out[fam.name] = (fam.samples[0].value, fam.documentation)
    return out, result.notices


def test_units_become_seconds_and_bytes_with_suffixes() -> None:
    """Time units convert to seconds and size units to bytes, named _seconds/_bytes."""
    got, notices = _build(
        _row("statement_timeout", "1500", "ms"),
        _row("authentication_timeout", "60", "s"),
        _row("autovacuum_naptime", "2", "min"),
        _row("log_rotation_age", "1", "h"),
        _row("some_days", "2", "d"),
        _row("shared_buffers", "16384", "8kB"),
        _row("work_mem", "4096", "kB"),
        _row("max_wal_size", "1024", "MB"),
        _row("track_activity_query_size", "1024", "B"),
        _row("old_wal_segments", "3", "16MB"),
        _row("vacuum_cost_delay", "2.5", "ms", "real"),
    )
    assert notices == []
    assert got["pg_settings_statement_timeout_seconds"][0] == 1.5
    assert got["pg_settings_authentication_timeout_seconds"][0] == 60
    assert got["pg_settings_autovacuum_naptime_seconds"][0] == 120
    assert got["pg_settings_log_rotation_age_seconds"][0] == 3600
    assert got["pg_settings_some_days_seconds"][0] == 172800
    assert got["pg_settings_shared_buffers_bytes"][0] == 16384 * 8192
    assert got["pg_settings_work_mem_bytes"][0] == 4096 * 1024
    assert got["pg_settings_max_wal_size_bytes"][0] == 1024 * 1024 * 1024
    assert got["pg_settings_track_activity_query_size_bytes"][0] == 1024
    assert got["pg_settings_old_wal_segments_bytes"][0] == 3 * 16 * 1024 * 1024
    assert got["pg_settings_vacuum_cost_delay_seconds"][0] == 0.0025
    assert got["pg_settings_work_mem_bytes"][1] == "About work_mem. [Units converted to bytes.]"


def test_minus_one_is_kept_unscaled_and_bools_are_zero_or_one() -> None:
    """-1 (disabled) stays -1 under the suffixed name; bools are 1 for on, else 0."""
    got, _ = _build(
        _row("autovacuum_work_mem", "-1", "kB"),
        _row("log_min_duration_statement", "-1", "ms"),
        _row("autovacuum", "on", vartype="bool"),
        _row("fsync", "off", vartype="bool"),
        _row("max_connections", "100"),
    )
    assert got["pg_settings_autovacuum_work_mem_bytes"][0] == -1
    assert got["pg_settings_log_min_duration_statement_seconds"][0] == -1
    assert got["pg_settings_autovacuum"][0] == 1
    assert got["pg_settings_fsync"][0] == 0
    assert got["pg_settings_max_connections"] == (100, "About max_connections.")


def test_extension_names_lose_dots_and_dashes() -> None:
    """Dots and dashes in a setting's name become underscores, as postgres_exporter does."""
    got, _ = _build(
        _row("pg_stat_statements.max", "5000"),
        _row("my-ext.some-knob", "on", vartype="bool"),
    )
    assert set(got) == {"pg_settings_pg_stat_statements_max", "pg_settings_my_ext_some_knob"}


def test_unknown_units_nulls_and_garbage_are_skipped_with_notices() -> None:
    """A unit dbpulse cannot convert, a NULL or a non-number is skipped, never mis-named."""
    got, notices = _build(
        _row("future_knob", "3", "us"),
        _row("null_knob", None),
        _row("bad_knob", "abc"),
        _row("inf_knob", "inf", vartype="real"),
        _row("ok", "1"),
    )
    assert set(got) == {"pg_settings_ok"}
    assert len(notices) == 4
    assert any("'us'" in n for n in notices)


def test_names_colliding_after_renaming_export_one_family() -> None:
    """Two settings that map to one metric name give one family and a notice, not a clash."""
    got, notices = _build(_row("a.b", "1"), _row("a_b", "2"))
    assert got == {"pg_settings_a_b": (1, "About a.b.")}
    assert len(notices) == 1


@pytest.mark.parametrize(
    ("unit", "expected"),
    [("", ("", 1.0)), ("32kB", ("_bytes", 32768.0)), ("GB", ("_bytes", 2.0**30)), ("x", None)],
)
def test_convert_unit(unit: str, expected: tuple[str, float] | None) -> None:
    """Block-multiplied size units scale by their multiplier; unknown units are None."""
    assert convert_unit(unit) == expected
