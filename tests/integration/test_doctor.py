"""``dbpulse doctor`` against a real PostgreSQL: each situation, its finding and exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import psycopg
import pytest

from dbpulse.cli import main
from dbpulse.localpg import LocalPostgres, free_port
from tests.integration.collector_helpers import wait_for


def _doctor(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(["doctor", "--format", "json", *argv])
    out = capsys.readouterr().out
    report = json.loads(out)
    return code, {f["check"]: f for f in report["findings"]} | {"_report": report}


def _tidy(dsn: str) -> None:
    """Give the database the role timeouts and extension a healthy service has."""
    dbname = dsn.rsplit("/", 1)[1]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE \"{dbname}\" SET statement_timeout = '30s'")
        conn.execute(f'ALTER DATABASE "{dbname}" SET idle_in_transaction_session_timeout = 60000')
        conn.execute("CREATE EXTENSION pg_stat_statements")


def test_healthy_database_exits_zero(fresh_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Timeouts set, extension installed, pools that fit: every check ok, exit code 0."""
    _tidy(fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE p (id int PRIMARY KEY)")
        conn.execute("CREATE TABLE c (id int PRIMARY KEY, p_id int REFERENCES p)")
        conn.execute("CREATE INDEX ON c (p_id)")
    code, found = _doctor(capsys, "--dsn", fresh_db, "--pool-size", "5", "--max-overflow", "5")
    assert code == 0
    levels = {check: f["level"] for check, f in found.items() if check != "_report"}
    assert set(levels.values()) == {"ok"}, levels
    assert found["statement_timeout"]["title"] == "statement_timeout is 30s for role postgres"


def test_migration_hazards_are_found_with_fixes(
    fresh_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Failed unique CIC -> error (exit 1); NOT VALID FK, unindexed FK, no PK -> warnings."""
    _tidy(fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE parent (id int PRIMARY KEY)")
        conn.execute("CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent)")
        conn.execute("CREATE TABLE later (id int PRIMARY KEY, parent_id int)")
        conn.execute("CREATE INDEX ON later (parent_id)")
        conn.execute(
            "ALTER TABLE later ADD CONSTRAINT later_fk FOREIGN KEY (parent_id) "
            "REFERENCES parent NOT VALID"
        )
        conn.execute("CREATE TABLE dup (v int)")
        conn.execute("INSERT INTO dup VALUES (1), (1)")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY dup_v_key ON dup (v)")
    code, found = _doctor(capsys, "--dsn", fresh_db)
    assert code == 1
    assert found["_report"]["status"] == "error"
    assert found["invalid_indexes"]["level"] == "error"
    assert found["invalid_indexes"]["items"] == [
        'dup: DROP INDEX CONCURRENTLY "public"."dup_v_key"; (unique: remove the duplicate rows first)'
    ]
    assert found["not_valid_constraints"]["level"] == "warning"
    assert found["not_valid_constraints"]["items"] == [
        'ALTER TABLE "public"."later" VALIDATE CONSTRAINT "later_fk";'
    ]
    assert found["fk_missing_index"]["items"] == [
        'child_parent_id_fkey: CREATE INDEX CONCURRENTLY ON "public"."child" ("parent_id");'
    ]
    assert found["tables_without_pk"]["items"] == ['"public"."dup"']
    assert found["pool_sizing"]["level"] == "info"


def test_undersized_max_connections_is_an_error(
    fresh_db: str, capsys: pytest.CaptureFixture[str], pg: LocalPostgres
) -> None:
    """Pools of (20+10) x 4 workers x 2 replicas = 240 against max_connections 120: exit 1."""
    _tidy(fresh_db)
    code, found = _doctor(
        capsys,
        "--dsn",
        fresh_db,
        *("--pool-size", "20", "--max-overflow", "10", "--workers", "4", "--replicas", "2"),
    )
    assert code == 1
    pool = found["pool_sizing"]
    assert pool["level"] == "error"
    assert "= 240" in pool["detail"]
    assert "max_connections 120 - reserved 3 = 117" in pool["detail"]
    assert "pool_size + max_overflow <= 11 per process" in pool["fix"]


def _wait_until_transaction_older_than(dsn: str, application: str, seconds: float) -> None:
    """Until the server itself sees the transaction past ``seconds`` (the doctor's clock)."""
    sql = (
        "SELECT now() - xact_start > make_interval(secs => %s)"
        " FROM pg_stat_activity WHERE application_name = %s"
    )
    with psycopg.connect(dsn, autocommit=True) as admin:
        # now() is the start of the checking transaction: autocommit gives a fresh one each time.
        wait_for(lambda: (admin.execute(sql, (seconds, application)).fetchone() or (False,))[0])


def test_unset_timeouts_and_long_transaction_are_warnings(
    fresh_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """No role timeouts and a transaction held open past the threshold are reported."""
    holder = psycopg.connect(fresh_db, application_name="stuck-worker")
    try:
        holder.execute("SELECT 1")
        _wait_until_transaction_older_than(fresh_db, "stuck-worker", 1.2)
        code, found = _doctor(capsys, "--dsn", fresh_db, "--long-transaction-seconds", "1")
    finally:
        holder.close()
    assert code == 0
    assert found["statement_timeout"]["level"] == "warning"
    assert (
        "ALTER ROLE \"postgres\" SET statement_timeout = '30s';"
        in (found["statement_timeout"]["fix"])
    )
    assert found["idle_in_transaction_session_timeout"]["level"] == "warning"
    assert found["pg_stat_statements"]["level"] == "warning"
    assert found["pg_stat_statements"]["fix"] == "CREATE EXTENSION pg_stat_statements;"
    assert found["long_transactions"]["level"] == "warning"
    assert any("stuck-worker" in item for item in found["long_transactions"]["items"])


def test_table_format_is_readable(fresh_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--format table prints a table naming each check with its fix."""
    code = main(["doctor", "--format", "table", "--dsn", fresh_db])
    out = capsys.readouterr().out
    assert code == 0
    assert "dbpulse doctor" in out
    assert "statement_timeout" in out
    assert "ALTER ROLE" in out
    assert "WARNING" in out


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dbpulse", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_unreachable_database_is_exit_2_with_one_line_and_no_password() -> None:
    """A closed port: exit 2, a single stderr line, no traceback, the password redacted."""
    dsn = f"postgresql://app:hunter2@127.0.0.1:{free_port()}/app"
    result = _cli("doctor", "--dsn", dsn)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("dbpulse doctor: cannot connect to 127.0.0.1:")
    assert "hunter2" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ("--pool-size", "0"),
        ("--pool-size", "x"),
        ("--workers", "2"),
        ("--format", "xml"),
    ],
)
def test_bad_flags_exit_2(argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    """Invalid pool flags, or pool flags without --pool-size, exit 2 before connecting."""
    dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/x"
    try:
        code = main(["doctor", "--dsn", dsn, *argv])
    except SystemExit as exc:  # argparse rejects malformed values itself
        code = int(exc.code or 0)
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot connect" not in err


def test_role_flag_reads_that_roles_settings(
    fresh_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--role judges the application role's own ALTER ROLE settings, not the doctor's."""
    role = "app_" + fresh_db.rsplit("_", 1)[1]
    dbname = fresh_db.rsplit("/", 1)[1]
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}"')
        conn.execute(f'ALTER ROLE "{role}" IN DATABASE "{dbname}" SET statement_timeout = \'15s\'')
    try:
        _code, found = _doctor(capsys, "--dsn", fresh_db, "--role", role)
    finally:
        with psycopg.connect(fresh_db, autocommit=True) as conn:
            conn.execute(f'ALTER ROLE "{role}" IN DATABASE "{dbname}" RESET ALL')
            conn.execute(f'DROP ROLE "{role}"')
    assert found["_report"]["role"] == role
    assert found["statement_timeout"]["level"] == "ok"
    assert found["statement_timeout"]["detail"] == "from ALTER ROLE ... IN DATABASE"
    assert found["idle_in_transaction_session_timeout"]["level"] == "warning"


def _app_role_dsn(pg: LocalPostgres, fresh_db: str) -> tuple[str, str]:
    """An application's login role (no superuser, no pg_monitor) owning nothing; its DSN."""
    role = "app_" + fresh_db.rsplit("_", 1)[1]
    with psycopg.connect(pg.dsn, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD 'app-pw'")
    return role, pg.dsn_for(fresh_db.rsplit("/", 1)[1], user=role, password="app-pw")


def _drop_role(pg: LocalPostgres, role: str) -> None:
    with psycopg.connect(pg.dsn, autocommit=True) as admin:
        admin.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_app_role_is_told_cannot_see_not_absent(
    fresh_db: str, capsys: pytest.CaptureFixture[str], pg: LocalPostgres
) -> None:
    """As the app's own role, a loaded pg_stat_statements is not called "not loaded"."""
    _tidy(fresh_db)
    role, app_dsn = _app_role_dsn(pg, fresh_db)
    try:
        with psycopg.connect(app_dsn) as app:  # the app reads the view itself
            assert app.execute("SELECT count(*) FROM pg_stat_statements").fetchone()
        code, found = _doctor(capsys, "--dsn", app_dsn)
    finally:
        _drop_role(pg, role)
    assert code == 0
    pss = found["pg_stat_statements"]
    assert "not loaded" not in pss["title"]
    assert "restart" not in pss["fix"]
    assert pss["title"] == "pg_stat_statements is loaded and installed"
    # Other roles' statement texts are hidden from it: say which grant shows them.
    assert pss["level"] == "info"
    assert f'GRANT pg_read_all_stats TO "{role}";' in pss["fix"]
    # Other sessions' transactions are invisible too: an "ok" would be a guess.
    lt = found["long_transactions"]
    assert lt["level"] == "info"
    assert f'GRANT pg_read_all_stats TO "{role}";' in lt["fix"]


def test_app_role_without_the_extension_cannot_tell_if_loaded(
    fresh_db: str, capsys: pytest.CaptureFixture[str], pg: LocalPostgres
) -> None:
    """No extension and shared_preload_libraries unreadable: "cannot see", with the grant."""
    role, app_dsn = _app_role_dsn(pg, fresh_db)
    try:
        code, found = _doctor(capsys, "--dsn", app_dsn)
    finally:
        _drop_role(pg, role)
    assert code == 0
    pss = found["pg_stat_statements"]
    assert pss["level"] == "warning"
    assert "not loaded" not in pss["title"]
    assert "cannot see" in pss["title"]
    assert f'GRANT pg_read_all_settings TO "{role}";' in pss["fix"]
    assert "CREATE EXTENSION pg_stat_statements;" in pss["fix"]


def test_unknown_role_is_an_error_not_a_missing_timeout(
    fresh_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--role nosuchrole: an error finding "role ... does not exist", exit 1, no timeout advice."""
    code, found = _doctor(capsys, "--dsn", fresh_db, "--role", "nosuchrole")
    assert code == 1
    assert found["role"]["level"] == "error"
    assert found["role"]["title"] == "role nosuchrole does not exist"
    assert found["statement_timeout"]["level"] == "info"
    assert "no statement_timeout" not in found["statement_timeout"]["title"]
    assert "ALTER ROLE" not in found["statement_timeout"]["fix"]
