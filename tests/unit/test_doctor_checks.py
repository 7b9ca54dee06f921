"""The doctor's pure checks: facts in, findings (level, explanation, fix) out."""

from __future__ import annotations

import json
from dataclasses import replace
from io import StringIO

import pytest

from dbpulse.doctor.checks import (
    check_fk_missing_index,
    check_idle_in_transaction_timeout,
    check_invalid_indexes,
    check_long_transactions,
    check_not_valid_constraints,
    check_pg_stat_statements,
    check_pool,
    check_statement_timeout,
    check_tables_without_pk,
    exit_code,
    parse_duration_ms,
    quote_ident,
    resolve_role_setting,
    run_checks,
)
from dbpulse.doctor.facts import Facts, PoolPlan, RoleSetting, ServerSetting
from dbpulse.doctor.render import report, write_table


def _setting(value: str, source: str = "configuration file", boot: str = "0") -> ServerSetting:
    return ServerSetting(value, source, boot)


def _facts(**kw: object) -> Facts:
    base = Facts(
        target="h:5432/app",
        datname="app",
        role="app",
        server_version=150004,
        settings={
            "max_connections": _setting("100"),
            "superuser_reserved_connections": _setting("3"),
            "statement_timeout": _setting("30000"),
            "idle_in_transaction_session_timeout": _setting("60000"),
            "shared_preload_libraries": _setting("pg_stat_statements,auto_explain"),
        },
        pg_stat_statements_installed=True,
    )
    return replace(base, **kw)  # type: ignore[arg-type]  # values differ per field


def test_pool_formula_error_warning_ok() -> None:
    """(pool+overflow) x workers x replicas over usable is an error, over 80% a warning."""
    facts = _facts()  # usable = 100 - 3 = 97
    over = check_pool(facts, PoolPlan(pool_size=10, max_overflow=10, workers=3, replicas=2))
    assert over.level == "error"
    assert "= 120" in over.detail
    assert "max_connections 100 - reserved 3 = 97" in over.detail
    assert "pool_size + max_overflow <= 12 per process" in over.fix  # floor(97*0.8)/6
    assert "max_connections to at least 153" in over.fix  # 120/0.8 + 3
    tight = check_pool(facts, PoolPlan(pool_size=40, max_overflow=0, workers=1, replicas=2))
    assert tight.level == "warning"
    fits = check_pool(facts, PoolPlan(pool_size=5, max_overflow=5, workers=2, replicas=2))
    assert fits.level == "ok"
    assert check_pool(facts, None).level == "info"


def test_pool_counts_pg16_reserved_connections() -> None:
    """PostgreSQL 16's reserved_connections come off the usable ceiling too."""
    settings = {**_facts().settings, "reserved_connections": _setting("10")}
    finding = check_pool(_facts(settings=settings), PoolPlan(45, 0, 2, 1))
    assert finding.level == "error"  # 90 > 100 - 3 - 10
    assert "reserved 13 = 87" in finding.detail


@pytest.mark.parametrize(
    ("text", "millis"),
    [
        ("0", 0),
        ("1500", 1500),
        ("30s", 30000),
        ("5min", 300000),
        ("1h", 3600000),
        ("'250ms'", 250),
        ("2d", 172800000),
        ("soon", None),
        ("5 parsecs", None),
    ],
)
def test_parse_duration(text: str, millis: float | None) -> None:
    """PostgreSQL duration spellings parse to milliseconds; nonsense to None."""
    assert parse_duration_ms(text) == millis


def test_role_setting_precedence() -> None:
    """Role-in-database beats role, which beats database, which beats the server value."""
    server = _setting("0", "default")
    rows = [
        RoleSetting(False, True, ("statement_timeout=10s",)),
        RoleSetting(True, False, ("statement_timeout=20s", "work_mem=64MB")),
        RoleSetting(True, True, ("statement_timeout=30s",)),
    ]
    assert resolve_role_setting("statement_timeout", rows, server) == (
        "30s",
        "ALTER ROLE ... IN DATABASE",
    )
    assert resolve_role_setting("statement_timeout", rows[:2], server)[0] == "20s"
    assert resolve_role_setting("statement_timeout", rows[:1], server) == ("10s", "ALTER DATABASE")
    assert resolve_role_setting("statement_timeout", [], server) == ("0", "server (default)")


def test_own_session_value_is_not_taken_for_the_server_value() -> None:
    """When the doctor's session got its value from its own role, fall back to the built-in."""
    own = _setting("5s", "user", boot="0")
    assert resolve_role_setting("statement_timeout", [], own) == ("0", "built-in default")


def test_unset_timeouts_warn_with_alter_role_fix() -> None:
    """statement_timeout/idle_in_transaction 0 for the role: warnings naming ALTER ROLE."""
    settings = {
        **_facts().settings,
        "statement_timeout": _setting("0", "default"),
        "idle_in_transaction_session_timeout": _setting("0", "default"),
    }
    facts = _facts(settings=settings, role='we"ird')
    st = check_statement_timeout(facts)
    assert st.level == "warning"
    assert st.fix.startswith('ALTER ROLE "we""ird" SET statement_timeout = \'30s\';')
    assert check_idle_in_transaction_timeout(facts).level == "warning"
    set_for_role = replace(
        facts, role_settings=[RoleSetting(True, False, ("statement_timeout=1min",))]
    )
    assert check_statement_timeout(set_for_role).level == "ok"


def test_pg_stat_statements_missing_or_not_installed() -> None:
    """Not preloaded: fix is shared_preload_libraries; preloaded but absent: CREATE EXTENSION."""
    assert check_pg_stat_statements(_facts()).level == "ok"
    not_loaded = {**_facts().settings, "shared_preload_libraries": _setting("auto_explain")}
    finding = check_pg_stat_statements(_facts(settings=not_loaded))
    assert finding.level == "warning"
    assert "shared_preload_libraries" in finding.fix
    missing = check_pg_stat_statements(_facts(pg_stat_statements_installed=False))
    assert missing.fix == "CREATE EXTENSION pg_stat_statements;"


def test_schema_findings_quote_identifiers_in_their_fixes() -> None:
    """Generated SQL quotes every identifier, so odd names cannot break or inject."""
    fk = check_fk_missing_index(
        _facts(
            fk_missing_index=[
                {"schemaname": "s", "relname": 'odd"t', "conname": "fk", "columns": ["a", "b"]}
            ]
        )
    )
    assert fk.items == ['fk: CREATE INDEX CONCURRENTLY ON "s"."odd""t" ("a", "b");']
    invalid = check_invalid_indexes(
        _facts(
            invalid_indexes=[
                {"schemaname": "s", "relname": "t", "indexrelname": "i", "is_unique": False}
            ]
        )
    )
    assert invalid.level == "error"
    assert invalid.items == ['t: DROP INDEX CONCURRENTLY "s"."i";']
    nv = check_not_valid_constraints(
        _facts(not_valid_constraints=[{"schemaname": "s", "relname": "t", "conname": "c"}])
    )
    assert nv.items == ['ALTER TABLE "s"."t" VALIDATE CONSTRAINT "c";']
    assert quote_ident("a") == '"a"'


def test_long_transactions_respect_the_threshold() -> None:
    """Only transactions at least the threshold old are reported, with pid and app."""
    rows = [
        {
            "pid": 1,
            "usename": "app",
            "application_name": "worker",
            "state": "idle in transaction",
            "xact_seconds": 900,
        },
        {"pid": 2, "usename": "app", "application_name": "", "state": "active", "xact_seconds": 10},
    ]
    finding = check_long_transactions(_facts(long_transactions=rows), threshold=300)
    assert finding.level == "warning"
    assert finding.items == ["pid 1 (app, worker, idle in transaction) open 900s"]
    assert check_long_transactions(_facts(long_transactions=rows[1:]), 300).level == "ok"


def test_long_item_lists_are_capped() -> None:
    """Hundreds of tables without a key list 50 and say how many more."""
    rows = [{"schemaname": "s", "relname": f"t{i}"} for i in range(120)]
    finding = check_tables_without_pk(_facts(tables_without_pk=rows))
    assert len(finding.items) == 51
    assert finding.items[-1] == "... and 70 more"


def test_exit_code_is_1_only_for_errors() -> None:
    """Warnings keep exit code 0; any error-level finding makes it 1."""
    healthy = run_checks(_facts(), PoolPlan(5, 5, 1, 1))
    assert {f.level for f in healthy} == {"ok"}
    assert exit_code(healthy) == 0
    warned = run_checks(_facts(pg_stat_statements_installed=False), None)
    assert exit_code(warned) == 0
    broken = run_checks(_facts(), PoolPlan(100, 0, 1, 1))
    assert exit_code(broken) == 1


def test_json_report_and_table_render() -> None:
    """The JSON report carries status and every finding; the table shows levels and fixes."""
    findings = run_checks(_facts(pg_stat_statements_installed=False), None)
    doc = report(_facts(), findings, 0)
    assert doc["status"] == "warning"
    assert json.loads(json.dumps(doc))["findings"][3]["check"] == "pg_stat_statements"
    out = StringIO()
    write_table(out, _facts(), findings, 0, color=False)
    text = out.getvalue()
    assert "WARNING" in text
    assert "CREATE EXTENSION" in text  # the fix column may wrap the statement
    assert "\x1b[" not in text  # no colour codes outside a terminal
