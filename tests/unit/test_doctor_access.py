"""The doctor as the application's own role: "cannot see" is told from "absent"."""

from __future__ import annotations

from dataclasses import replace

from dbpulse.doctor.checks import (
    check_pg_stat_statements,
    check_pool,
    check_role,
    check_statement_timeout,
    exit_code,
    run_checks,
)
from dbpulse.doctor.facts import PoolPlan, ServerSetting
from tests.unit.test_doctor_checks import _facts


def _hidden_preload() -> dict[str, ServerSetting]:
    """The settings an unprivileged role sees: shared_preload_libraries is not among them."""
    settings = dict(_facts().settings)
    del settings["shared_preload_libraries"]
    return settings


def test_hidden_preload_with_a_readable_view_is_loaded() -> None:
    """A role that cannot read shared_preload_libraries but reads the view: loaded, not absent."""
    facts = _facts(
        settings=_hidden_preload(), pg_stat_statements_probe="readable", reads_all_stats=False
    )
    finding = check_pg_stat_statements(facts)
    assert finding.title == "pg_stat_statements is loaded and installed"
    assert finding.level == "info"
    assert finding.fix.startswith('GRANT pg_read_all_stats TO "app";')
    privileged = replace(facts, reads_all_stats=True)
    assert check_pg_stat_statements(privileged).level == "ok"


def test_hidden_preload_without_the_extension_cannot_tell() -> None:
    """Hidden setting and no view: 'cannot see', with CREATE EXTENSION and the settings grant."""
    facts = _facts(settings=_hidden_preload(), pg_stat_statements_installed=False, login_role="me")
    finding = check_pg_stat_statements(facts)
    assert finding.level == "warning"
    assert finding.title.startswith("cannot see whether pg_stat_statements is loaded")
    assert "restart" not in finding.fix
    assert "CREATE EXTENSION pg_stat_statements;" in finding.fix
    assert 'GRANT pg_read_all_settings TO "me";' in finding.fix


def test_the_views_own_error_proves_not_loaded_or_denied() -> None:
    """Reading the view failing 'must be loaded' means not loaded; a denied read names a GRANT."""
    hidden = _hidden_preload()
    not_loaded = check_pg_stat_statements(
        _facts(settings=hidden, pg_stat_statements_probe="not_loaded")
    )
    assert not_loaded.title == "pg_stat_statements is not loaded"
    assert "shared_preload_libraries, restart" in not_loaded.fix
    denied = check_pg_stat_statements(_facts(settings=hidden, pg_stat_statements_probe="denied"))
    assert denied.level == "warning"
    assert denied.fix == 'GRANT SELECT ON pg_stat_statements TO "app";'


def test_a_role_that_does_not_exist_is_an_error() -> None:
    """--role naming no role: an error finding first, exit 1, timeouts not judged."""
    facts = _facts(role="nosuchrole", role_exists=False)
    role = check_role(facts)
    assert role is not None
    assert (role.level, role.title) == ("error", "role nosuchrole does not exist")
    assert check_role(_facts()) is None
    st = check_statement_timeout(facts)
    assert st.level == "info"
    assert "ALTER ROLE" not in st.fix
    findings = run_checks(facts, None)
    assert findings[0].check == "role"
    assert exit_code(findings) == 1


def test_pool_advice_explains_its_headroom() -> None:
    """Every pool verdict says what the 80% target is for and how many connections it spares."""
    facts = _facts()  # usable 97: target 77, 20 spare
    for plan in (PoolPlan(10, 10, 3, 2), PoolPlan(40, 0, 1, 2), PoolPlan(5, 5, 2, 2)):
        detail = check_pool(facts, plan).detail
        assert "within 80% of the usable connections (77 of 97)" in detail
        assert "the other 20 are headroom" in detail
        assert "rolling deploy" in detail


def test_long_transactions_say_when_only_own_sessions_were_seen() -> None:
    """Without pg_read_all_stats, 'none found' is info with the grant; found ones keep items."""
    blind = _facts(reads_all_stats=False)
    none = run_checks(blind, None)[-2]
    assert none.check == "long_transactions"
    assert none.level == "info"
    assert 'GRANT pg_read_all_stats TO "app";' in none.fix
    row = {"pid": 7, "usename": "app", "application_name": "w", "state": "active"}
    found = run_checks(replace(blind, long_transactions=[{**row, "xact_seconds": 900}]), None)[-2]
    assert found.level == "warning"
    assert found.items == ["pid 7 (app, w, active) open 900s"]
    assert "pg_read_all_stats" in found.fix
