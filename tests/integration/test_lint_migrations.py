"""``dbpulse lint-migrations`` end to end: SQL fixtures, a real Alembic project, --dsn, --roundtrip."""
# layout-note: the Alembic revisions as strings first, then tests in the order of the README
# section: SQL files and exit codes, the Alembic project, --dsn, --roundtrip.

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbpulse.cli import build_parser
from dbpulse.localpg import LocalPostgres, free_port
from dbpulse.migrationlint.command import run
from tests.integration.alembic_project import line_of, write_project

FIXTURES = Path(__file__).resolve().parents[1] / "migration_fixtures"

BASE = """
def upgrade():
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(50)),
        sa.Column("legacy", sa.Text),
    )
    op.create_table(
        "posts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer),
        sa.Column("title", sa.Text),
    )
    op.create_index("ix_users_email", "users", ["email"])


def downgrade():
    op.drop_table("posts")
    op.drop_table("users")
"""

HAZARDS = """
def upgrade():
    op.add_column("users", sa.Column("verified", sa.Boolean(), nullable=False))
    op.create_index("ix_posts_title", "posts", ["title"])
    op.create_foreign_key("fk_posts_user_id", "posts", "users", ["user_id"], ["id"])
    op.alter_column("users", "email", type_=sa.String(20))
    op.alter_column("posts", "title", new_column_name="headline")
    op.execute("UPDATE users SET verified = false")
    # dbpulse: ignore=drop-column reason: release 41 stopped reading users.legacy
    op.drop_column("users", "legacy")


def downgrade():
    pass
"""

SAFE = """
def upgrade():
    op.execute("SET lock_timeout = '5s'")
    op.add_column("users", sa.Column("email_verified", sa.Boolean(), nullable=True))
    op.execute("ALTER TABLE users ALTER COLUMN email_verified SET DEFAULT false")
    op.alter_column("users", "email", type_=sa.Text())
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_users_verified", "users", ["email_verified"], postgresql_concurrently=True
        )
    op.execute(
        "ALTER TABLE posts ADD CONSTRAINT fk_posts_user FOREIGN KEY (user_id) "
        "REFERENCES users (id) NOT VALID"
    )
    with op.get_context().autocommit_block():
        op.execute("ALTER TABLE posts VALIDATE CONSTRAINT fk_posts_user")


def downgrade():
    op.drop_constraint("fk_posts_user", "posts", type_="foreignkey")
    op.drop_index("ix_users_verified", table_name="users")
    op.alter_column("users", "email", type_=sa.String(20))
    op.drop_column("users", "email_verified")
"""

SEED_PHASES = """
def upgrade():
    op.execute("SET lock_timeout = '5s'")
    connection = op.get_bind()
    batch_size = 10000
    while True:
        result = connection.execute(
            sa.text(
                "UPDATE users SET email_verified = false WHERE id IN ("
                "SELECT id FROM users WHERE email_verified IS NULL ORDER BY id LIMIT :batch_size)"
            ),
            {"batch_size": batch_size},
        )
        if result.rowcount == 0:
            break
    null_count = connection.execute(
        sa.text("SELECT COUNT(*) FROM users WHERE email_verified IS NULL")
    ).scalar()
    if null_count > 0:
        raise Exception(f"Cannot add NOT NULL: {null_count} NULL values remain")
    connection.execute(sa.text("UPDATE posts SET headline = 'x'"))
    op.create_index("ix_posts_user", "posts", ["user_id"], postgresql_concurrently=True)


def downgrade():
    pass
"""

ADD_NICKNAME = """
def upgrade():
    op.add_column("users", sa.Column("nickname", sa.Text(), nullable=True))
    op.create_index("ix_users_email_nick", "users", ["email", "nickname"])
    op.create_index("ix_users_legacy", "users", ["legacy"])


def downgrade():
    op.drop_index("ix_users_email_nick", table_name="users")
    {forget}op.drop_index("ix_users_legacy", table_name="users")
    op.drop_column("users", "nickname")
"""


def _lint(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = run(build_parser().parse_args(["lint-migrations", *argv]), out=out)
    return code, out.getvalue()


def _json(*argv: str) -> tuple[int, dict[str, Any]]:
    code, text = _lint(*argv, "--format", "json")
    return code, json.loads(text)


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBPULSE_", "GITHUB_"))}
    return subprocess.run(
        [sys.executable, "-m", "dbpulse", "lint-migrations", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_cli_flags_every_hazard_fixture_and_exits_1() -> None:
    """Over the hazards directory: every expected rule reported at its file, exit code 1."""
    result = _cli(str(FIXTURES / "hazards"), "--format", "json")
    assert result.returncode == 1, result.stderr
    found = {(Path(f["file"]).name, f["rule"]) for f in json.loads(result.stdout)["findings"]}
    for path in sorted((FIXTURES / "hazards").glob("*.sql")):
        match = re.search(r"^-- expect: (\S+)$", path.read_text(), re.MULTILINE)
        assert match is not None
        assert (path.name, match.group(1)) in found


def test_cli_passes_the_safe_fixtures_with_exit_0() -> None:
    """Over the safe directory: no finding, exit 0, and the plain table says so."""
    result = _cli(str(FIXTURES / "safe"), "--format", "table")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 finding(s)" in result.stdout


def test_cli_warnings_alone_exit_0_in_github_format() -> None:
    """Warning-level findings are annotations but do not fail the job."""
    result = _cli(str(FIXTURES / "hazards" / "08_drop_column.sql"), "--format", "github")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("::warning file=")
    assert "title=dbpulse drop-column::" in result.stdout


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["nosuch/dir"], "nosuch/dir: no such file or directory"),
        ([], "nothing to lint"),
        (["--roundtrip", "--alembic", "alembic.ini"], "--roundtrip needs --alembic INI and --dsn"),
        (["--alembic", "nosuch.ini"], "nosuch.ini: no such Alembic config file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], expected: str) -> None:
    """Unusable input: exit 2 and one stderr line, never a traceback."""
    assert expected in _one_line_error(_cli(*argv))


def test_unreachable_dsn_is_one_line_without_the_password(tmp_path: Path) -> None:
    """A DSN nobody listens on: exit 2, one line, the password redacted."""
    sql = tmp_path / "m.sql"
    sql.write_text("SELECT 1;\n")
    dsn = f"postgresql://app:s3cret-Pw@127.0.0.1:{free_port()}/app?connect_timeout=2"
    line = _one_line_error(_cli(str(sql), "--dsn", dsn))
    assert "cannot read the database" in line
    assert "s3cret-Pw" not in line


def test_broken_alembic_env_is_one_line_exit_2(tmp_path: Path) -> None:
    """An env.py that raises: exit 2 with its one-line reason."""
    ini = write_project(tmp_path, [("r1", BASE)])
    (tmp_path / "migrations" / "env.py").write_text("raise RuntimeError('no settings module')\n")
    line = _one_line_error(_cli("--alembic", str(ini)))
    assert "RuntimeError: no settings module" in line


def test_alembic_project_findings_point_at_the_op_call_lines(tmp_path: Path) -> None:
    """Offline SQL is attributed to each revision's op.* line; the ignore comment holds."""
    ini = write_project(tmp_path, [("r1", BASE), ("r2", HAZARDS), ("r3", SAFE)])
    code, document = _json("--alembic", str(ini))
    assert code == 1
    got = {(f["unit"], f["rule"], f["line"]) for f in document["findings"]}

    def at(needle: str) -> int:
        return line_of(ini, "r2", needle)

    add = at('op.add_column("users"')
    assert got == {
        ("r2", "lock-timeout-missing", add),
        ("r2", "add-column-not-null-no-default", add),
        ("r2", "create-index-not-concurrently", at('op.create_index("ix_posts_title"')),
        ("r2", "add-foreign-key-not-valid", at("op.create_foreign_key")),
        ("r2", "alter-column-type-rewrite", at("type_=sa.String(20)")),
        ("r2", "rename-column", at("new_column_name")),
        ("r2", "whole-table-update", at("UPDATE users")),
        ("r2", "missing-downgrade", at("def downgrade")),
    }
    files = {Path(f["file"]).name for f in document["findings"]}
    assert files == {"r2.py"}
    narrowing = next(f for f in document["findings"] if f["rule"] == "alter-column-type-rewrite")
    assert "varchar(50) -> varchar(20)" in narrowing["message"]


def test_alembic_get_bind_statements_are_linted_offline(tmp_path: Path) -> None:
    """The seed's get_bind() batch loop and NULL count run offline; what they execute is linted."""
    ini = write_project(
        tmp_path, [("r1", BASE), ("r2", HAZARDS), ("r3", SAFE), ("r4", SEED_PHASES)]
    )
    code, document = _json("--alembic", str(ini), "--range", "r3:r4")
    assert code == 1
    got = [(f["unit"], f["rule"], f["line"]) for f in document["findings"]]
    assert got == [
        ("r4", "whole-table-update", line_of(ini, "r4", "UPDATE posts")),
        ("r4", "concurrently-in-transaction", line_of(ini, "r4", "ix_posts_user")),
        ("r4", "missing-downgrade", line_of(ini, "r4", "def downgrade")),
    ]


def test_alembic_range_lints_only_the_revisions_in_it(tmp_path: Path) -> None:
    """``--range r2:r3`` (what a deploy at r2 adds) lints r3 alone: no r2 finding, exit 0."""
    ini = write_project(tmp_path, [("r1", BASE), ("r2", HAZARDS), ("r3", SAFE)])
    code, document = _json("--alembic", str(ini), "--range", "r2:r3")
    assert code == 0
    # Without r1's CREATE TABLE (or --dsn) the old type of users.email is unknown: the
    # varchar -> text change is a warning asking for --dsn, not an error.
    assert [(f["unit"], f["rule"], f["level"]) for f in document["findings"]] == [
        ("r3", "alter-column-type-rewrite", "warning")
    ]


def test_alembic_ignore_without_reason_fails(tmp_path: Path) -> None:
    """A ``# dbpulse: ignore=...`` without reason in a revision is an error at its line."""
    body = HAZARDS.replace(" reason: release 41 stopped reading users.legacy", "")
    ini = write_project(tmp_path, [("r1", BASE), ("r2", body)])
    code, document = _json("--alembic", str(ini))
    assert code == 1
    rules = {(f["rule"], f["line"]) for f in document["findings"]}
    assert ("ignore-needs-reason", line_of(ini, "r2", "dbpulse: ignore")) in rules
    assert ("drop-column", line_of(ini, "r2", "op.drop_column")) in rules


def test_dsn_gives_real_sizes_and_column_types(fresh_db: str, tmp_path: Path) -> None:
    """With --dsn: catalog types decide the cast, and a 10-row table's rewrite is info."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE small (id int, email varchar(50))")
        conn.execute("INSERT INTO small SELECT g, 'a' FROM generate_series(1, 10) g")
        conn.execute("CREATE TABLE big (id int, email varchar(50))")
        conn.execute("INSERT INTO big SELECT g, 'a' FROM generate_series(1, 20000) g")
        conn.execute("ANALYZE small")
        conn.execute("ANALYZE big")
    sql = tmp_path / "m.sql"
    sql.write_text(
        "SET lock_timeout = '1s';\n"
        "ALTER TABLE small ALTER COLUMN email TYPE text;\n"
        "ALTER TABLE big ALTER COLUMN email TYPE varchar(100);\n"
        "ALTER TABLE small ALTER COLUMN id TYPE bigint;\n"
        "ALTER TABLE big ALTER COLUMN id TYPE bigint;\n"
    )
    code, document = _json(str(sql), "--dsn", fresh_db)
    assert [(f["line"], f["level"]) for f in document["findings"]] == [(4, "info"), (5, "error")]
    assert "int4 -> int8" in document["findings"][1]["message"]
    assert code == 1


def _roundtrip_dbs(pg: LocalPostgres) -> list[str]:
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'dbpulse_roundtrip_%'"
        ).fetchall()
    return [row[0] for row in rows]


def test_roundtrip_passes_a_project_whose_downgrades_undo_everything(
    pg: LocalPostgres, tmp_path: Path
) -> None:
    """Up, down to base step by step, up again: exit 0, and the throwaway database is gone."""
    ini = write_project(tmp_path, [("r1", BASE), ("r2", ADD_NICKNAME.format(forget=""))])
    code, text = _lint("--alembic", str(ini), "--roundtrip", "--dsn", pg.dsn)
    assert code == 0, text
    assert "downgrade r2 -> r1: ok" in text
    assert "upgrade head again: ok" in text
    assert _roundtrip_dbs(pg) == []


def test_roundtrip_reports_the_downgrade_that_leaves_an_index_behind(
    pg: LocalPostgres, tmp_path: Path
) -> None:
    """r2's downgrade forgets an index: exit 1 naming that step and the leftover index."""
    ini = write_project(tmp_path, [("r1", BASE), ("r2", ADD_NICKNAME.format(forget="# "))])
    code, text = _lint("--alembic", str(ini), "--roundtrip", "--dsn", pg.dsn)
    assert code == 1
    failed = text.strip().splitlines()[-1]
    assert failed.startswith("roundtrip: FAILED at downgrade r2 -> r1")
    assert "+ index CREATE INDEX ix_users_legacy ON public.users USING btree (legacy)" in failed
    assert _roundtrip_dbs(pg) == []


def test_roundtrip_reports_a_downgrade_that_fails(pg: LocalPostgres, tmp_path: Path) -> None:
    """A downgrade that raises is the reported step, with the error's first line."""
    broken = ADD_NICKNAME.format(forget="").replace(
        'op.drop_column("users", "nickname")', 'op.drop_column("users", "no_such_column")'
    )
    ini = write_project(tmp_path, [("r1", BASE), ("r2", broken)])
    code, text = _lint("--alembic", str(ini), "--roundtrip", "--dsn", pg.dsn)
    assert code == 1
    failed = text.strip().splitlines()[-1]
    assert failed.startswith("roundtrip: FAILED at downgrade r2 -> r1: ")
    assert "no_such_column" in failed


ENUM_TABLE = """
def upgrade():
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("state", sa.Enum("queued", "done", name="job_state")),
    )


def downgrade():
    op.drop_table("jobs")
"""


def test_roundtrip_names_the_enum_type_a_drop_table_leaves_behind(
    pg: LocalPostgres, tmp_path: Path
) -> None:
    """op.drop_table keeps sa.Enum's type: the downgrade step is reported with that type."""
    ini = write_project(tmp_path, [("r1", ENUM_TABLE)])
    code, text = _lint("--alembic", str(ini), "--roundtrip", "--dsn", pg.dsn)
    assert code == 1
    failed = text.strip().splitlines()[-1]
    assert failed.startswith("roundtrip: FAILED at downgrade r1 -> base")
    assert "+ type public.job_state enum (queued, done)" in failed


def test_missing_project_python_is_one_line_exit_2(tmp_path: Path) -> None:
    """--python naming no interpreter: exit 2 with one line saying which."""
    ini = write_project(tmp_path, [("r1", BASE)])
    line = _one_line_error(_cli("--alembic", str(ini), "--python", str(tmp_path / "nopython")))
    assert "cannot run" in line
    assert "nopython" in line


def test_roundtrip_never_touches_the_database_env_py_names(
    pg: LocalPostgres, fresh_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An env.py that builds its URL from APP_DATABASE_URL is still sent to the throwaway DB."""
    ini = write_project(tmp_path, [("r1", BASE), ("r2", ADD_NICKNAME.format(forget=""))])
    env_py = tmp_path / "migrations" / "env.py"
    env_py.write_text(
        env_py.read_text().replace(
            'config.get_section(config.config_ini_section, {}),\n        prefix="sqlalchemy.",',
            '{"sqlalchemy.url": __import__("os").environ["APP_DATABASE_URL"]},\n'
            '        prefix="sqlalchemy.",',
        )
    )
    assert "APP_DATABASE_URL" in env_py.read_text()
    monkeypatch.setenv(
        "APP_DATABASE_URL", fresh_db.replace("postgresql://", "postgresql+psycopg://")
    )
    code, text = _lint("--alembic", str(ini), "--roundtrip", "--dsn", pg.dsn)
    assert code == 0, text
    with psycopg.connect(fresh_db) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
    assert tables == (0,)
