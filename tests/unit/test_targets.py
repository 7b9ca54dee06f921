"""Pure bookkeeping for many targets: names to DSNs, discovery filters, budget, cadence, idling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client.core import GaugeMetricFamily
from psycopg.conninfo import conninfo_to_dict

from dbpulse.settings import ConfigError, Settings, load_settings
from dbpulse.sidecar.multitarget import merge_families
from dbpulse.sidecar.targets import (
    Budget,
    Cadence,
    TargetRegistry,
    UnknownTarget,
    database_dsn,
    resolve,
    select_databases,
)

TEMPLATE = "postgresql://monitor@{host}:{port}/{dbname}"


def _settings(**extra: Any) -> Settings:
    targets = [
        {"name": "orders", "host": "orders-db", "port": 6432, "dbname": "orders"},
        {"name": "billing", "dsn": "postgresql://b:own-pw@billing-db/billing", "discovery": True},
    ]
    return load_settings(targets=targets, dsn_template=TEMPLATE, **extra)


def test_template_target_gets_host_port_dbname_and_the_password() -> None:
    """A host target fills dsn_template and gains the password_file password."""
    spec = resolve(_settings(), "orders", "s3cret")
    parts = conninfo_to_dict(spec.dsn)
    assert parts["host"] == "orders-db"
    assert parts["port"] == "6432"
    assert parts["dbname"] == "orders"
    assert parts["user"] == "monitor"
    assert parts["password"] == "s3cret"
    assert spec.discovery is False


def test_own_dsn_keeps_its_own_password_and_discovery_override() -> None:
    """A target's own DSN password is not replaced; targets[].discovery beats the default."""
    spec = resolve(_settings(), "billing", "file-pw")
    assert conninfo_to_dict(spec.dsn)["password"] == "own-pw"
    assert spec.discovery is True


def test_unknown_name_is_refused_with_the_configured_names() -> None:
    """An unknown name raises UnknownTarget listing the configured targets."""
    with pytest.raises(UnknownTarget, match=r"unknown target 'nope'.*billing, orders"):
        resolve(_settings(), "nope", None)


def test_dsn_in_url_is_refused_by_default_and_never_echoed() -> None:
    """A DSN as target is refused unless allow_dsn_in_url, and its password is not echoed."""
    with pytest.raises(UnknownTarget) as info:
        resolve(_settings(), "postgresql://u:leak@evil:5432/db", None)
    assert "leak" not in str(info.value)
    assert "refused" in str(info.value)


def test_dsn_in_url_when_allowed_is_named_without_password() -> None:
    """With allow_dsn_in_url a DSN target is accepted and named host:port/dbname."""
    settings = _settings(allow_dsn_in_url=True, dsn_in_url_hosts=["h"])
    spec = resolve(settings, "postgresql://u:pw@h:5433/db", None)
    assert spec.name == "h:5433/db"
    # The DSN is rebuilt (urldsn.py): the same server, user, password and database.
    parts = conninfo_to_dict(spec.dsn)
    wanted = conninfo_to_dict("postgresql://u:pw@h:5433/db")
    assert {key: parts[key] for key in wanted} == wanted
    assert spec.from_url


def test_database_dsn_swaps_only_the_database() -> None:
    """A discovered database keeps host, user and password; only dbname changes."""
    parts = conninfo_to_dict(database_dsn("postgresql://u:pw@h:5433/postgres", "app"))
    assert (parts["host"], parts["port"], parts["user"], parts["password"], parts["dbname"]) == (
        "h",
        "5433",
        "u",
        "pw",
        "app",
    )


def test_target_without_dsn_or_template_is_a_config_error(tmp_path: Path) -> None:
    """A host target without dsn_template, an unknown placeholder, or duplicate names fail."""
    with pytest.raises(ConfigError, match="needs a dsn"):
        load_settings(targets=[{"name": "a", "host": "h"}])
    with pytest.raises(ConfigError, match=r"only \{host\}"):
        load_settings(dsn_template="postgresql://{user}@{host}/db")
    with pytest.raises(ConfigError, match="unique: a"):
        load_settings(targets=[{"name": "a", "dsn": "x"}, {"name": "a", "dsn": "y"}])


def test_select_databases_filters_and_bounds() -> None:
    """Include/exclude are full-match regexes; beyond max_databases, names are skipped in order."""
    names = ["postgres", "app_b", "app_a", "app_c", "other", "app_a"]
    polled, skipped = select_databases(names, ["app_.*", "postgres"], ["postgres"], 2)
    assert polled == ["app_a", "app_b"]
    assert skipped == ["app_c"]
    assert select_databases(["xapp_a"], ["app_.*"], [], 5) == ([], [])


def test_budget_reserves_within_the_total_and_releases() -> None:
    """Reservations never exceed the total; one key holds once; release frees by key or prefix."""
    budget = Budget(3)
    assert budget.reserve("t1\x00server", 2)
    assert budget.reserve("t1\x00server", 2)  # idempotent
    assert not budget.reserve("t2\x00server", 2)
    assert budget.reserve("t1\x00db:a", 1)
    assert budget.used == 3
    budget.release_prefix("t1\x00")
    assert budget.used == 0
    assert budget.reserve("t2\x00server", 2)


def test_cadence_runs_each_collector_on_its_interval_and_measures_lag() -> None:
    """Everything is due at first; then each name again after its own interval; late ticks show lag."""
    cadence = Cadence({"fast": 15.0, "slow": 300.0})
    assert cadence.due(1000.0) == ["fast", "slow"]
    cadence.ran("fast", 1000.0)
    cadence.ran("slow", 1000.0)
    assert cadence.due(1015.0) == ["fast"]
    assert cadence.lag == 0.0
    assert cadence.due(1040.0) == ["fast"]  # 10 s late
    assert cadence.lag == pytest.approx(10.0)


def test_registry_reports_targets_idle_past_the_timeout() -> None:
    """A target is new on its first touch and idle once unprobed for longer than the timeout."""
    registry = TargetRegistry(idle_timeout=60)
    assert registry.touch("a", 0.0)
    assert registry.touch("b", 0.0)
    assert not registry.touch("a", 50.0)
    assert registry.idle(100.0) == ["b"]
    registry.forget("b")
    assert registry.names() == ["a"]


def test_merge_families_joins_same_names_without_touching_the_originals() -> None:
    """Two databases' families of one name become one family; the inputs are unchanged."""
    first = GaugeMetricFamily("pg_x", "doc", labels=["datname"])
    first.add_metric(["a"], 1.0)
    second = GaugeMetricFamily("pg_x", "doc", labels=["datname"])
    second.add_metric(["b"], 2.0)
    other = GaugeMetricFamily("pg_y", "doc")
    merged = merge_families([first, other, second])
    assert [f.name for f in merged] == ["pg_x", "pg_y"]
    assert [s.labels["datname"] for s in merged[0].samples] == ["a", "b"]
    assert len(first.samples) == 1
