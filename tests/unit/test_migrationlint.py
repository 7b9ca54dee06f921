"""lint-migrations' pure parts: rules over the fixture migrations, context, ignores, output."""
# layout-note: fixture pairs first (the decision matrix), then context-dependent rules,
# layout-note: ignores, downgrade detection, output formats and the README table.

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from dbpulse.cli import build_parser
from dbpulse.migrationlint.alembic_source import empty_downgrade
from dbpulse.migrationlint.catalog import BY_NAME, RULES
from dbpulse.migrationlint.command import run
from dbpulse.migrationlint.engine import exit_code, lint
from dbpulse.migrationlint.model import Finding
from dbpulse.migrationlint.render import write_github, write_json
from dbpulse.migrationlint.sqlsource import parse_text
from dbpulse.migrationlint.sqltypes import ColumnType, rewrites
from dbpulse.migrationlint.state import Context

FIXTURES = Path(__file__).resolve().parents[1] / "migration_fixtures"
HAZARDS = sorted((FIXTURES / "hazards").glob("*.sql"))
SAFE = sorted((FIXTURES / "safe").glob("*.sql"))
README = Path(__file__).resolve().parents[2] / "README.md"


def _lint(text: str, ctx: Context | None = None, file: str = "m.sql") -> list[Finding]:
    statements = parse_text(text, file, file)
    return lint(statements, [], {file: text.splitlines()}, ctx or Context())


def _rules(findings: list[Finding]) -> list[str]:
    return [f.rule for f in findings]


def _expected(path: Path) -> str:
    match = re.search(r"^-- expect: (\S+)$", path.read_text(encoding="utf-8"), re.MULTILINE)
    assert match is not None, path
    return match.group(1)


def test_every_matrix_hazard_has_a_fixture_pair() -> None:
    """Each hazard fixture has a safe counterpart with the same number, and names a real rule."""
    assert len(HAZARDS) >= 7
    assert [p.name[:2] for p in HAZARDS] == [p.name[:2] for p in SAFE]
    assert all(_expected(p) in BY_NAME for p in HAZARDS)


@pytest.mark.parametrize("path", HAZARDS, ids=lambda p: p.stem)
def test_each_hazard_is_flagged_with_its_rule_and_the_seed_fix(path: Path) -> None:
    """The hazard's rule fires (and only it), carrying the catalog's fix and the statement."""
    findings = _lint(path.read_text(encoding="utf-8"), file=path.name)
    rule = _expected(path)
    assert _rules(findings) == [rule]
    assert findings[0].fix == BY_NAME[rule].fix
    assert findings[0].level == BY_NAME[rule].level
    assert findings[0].statement


@pytest.mark.parametrize("path", SAFE, ids=lambda p: p.stem)
def test_each_safe_version_passes(path: Path) -> None:
    """The seed's safe way of doing the same change yields no finding at all."""
    assert _lint(path.read_text(encoding="utf-8"), file=path.name) == []


def test_tables_created_in_the_same_migration_are_exempt() -> None:
    """Index, FK, NOT NULL column and type change on a table made in this file are fine."""
    sql = """
    CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint, note varchar(10));
    CREATE INDEX orders_user ON orders (user_id);
    ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id);
    ALTER TABLE orders ADD COLUMN total numeric NOT NULL;
    ALTER TABLE orders ALTER COLUMN note TYPE bigint USING 0;
    """
    assert _lint(sql) == []


@pytest.mark.parametrize(
    ("old", "new", "rewrite"),
    [
        (ColumnType("varchar", (50,)), ColumnType("varchar", (100,)), False),
        (ColumnType("varchar", (50,)), ColumnType("varchar", (20,)), True),
        (ColumnType("varchar", (50,)), ColumnType("text"), False),
        (ColumnType("varchar", (50,)), ColumnType("varchar"), False),
        (ColumnType("text"), ColumnType("varchar"), False),
        (ColumnType("text"), ColumnType("varchar", (10,)), True),
        (ColumnType("numeric", (10, 2)), ColumnType("numeric", (12, 2)), False),
        (ColumnType("numeric", (10, 2)), ColumnType("numeric", (12, 3)), True),
        (ColumnType("numeric", (10, 2)), ColumnType("numeric"), False),
        (ColumnType("int4"), ColumnType("int8"), True),
        (ColumnType("cidr"), ColumnType("inet"), False),
        (ColumnType("timestamp"), ColumnType("timestamptz"), True),
    ],
)
def test_type_change_rewrites_except_the_safe_casts(
    old: ColumnType, new: ColumnType, rewrite: bool
) -> None:
    """Widening varchar/numeric, varchar<->text and dropping a limit skip the rewrite."""
    assert rewrites(old, new) is rewrite


def test_type_change_uses_the_type_an_earlier_statement_gave() -> None:
    """A column created varchar(50) in an earlier migration: widening passes, narrowing not."""
    created = "CREATE TABLE t (a varchar(50));\n"
    widen = parse_text(created, "a.sql", "a") + parse_text(
        "SET lock_timeout = '1s'; ALTER TABLE t ALTER COLUMN a TYPE text;", "b.sql", "b"
    )
    assert lint(widen, [], {}, Context()) == []
    narrow = parse_text(created, "a.sql", "a") + parse_text(
        "SET lock_timeout = '1s'; ALTER TABLE t ALTER COLUMN a TYPE varchar(20);", "b.sql", "b"
    )
    findings = lint(narrow, [], {}, Context())
    assert _rules(findings) == ["alter-column-type-rewrite"]
    assert "varchar(50) -> varchar(20)" in findings[0].message


def test_unknown_old_type_with_a_maybe_safe_target_is_a_warning() -> None:
    """Without the current type, ``TYPE text`` is a warning pointing at --dsn, not an error."""
    findings = _lint("SET lock_timeout = '1s'; ALTER TABLE t ALTER COLUMN a TYPE text;")
    assert [(f.rule, f.level) for f in findings] == [("alter-column-type-rewrite", "warning")]
    assert "--dsn" in findings[0].message


def test_small_tables_downgrade_rewrites_to_info() -> None:
    """With catalog sizes: a 10-row table's rewrite is info, a big or unknown one an error."""
    sql = "SET lock_timeout = '1s'; ALTER TABLE t ALTER COLUMN a TYPE bigint;"
    small = _lint(sql, Context(table_rows={"t": 10}))
    assert [(f.rule, f.level) for f in small] == [("alter-column-type-rewrite", "info")]
    assert "~10 rows" in small[0].message
    assert exit_code(small) == 0
    big = _lint(sql, Context(table_rows={"t": 5_000_000}))
    assert [f.level for f in big] == ["error"]
    assert [f.level for f in _lint(sql)] == ["error"]


def test_not_null_without_default_is_info_only_on_an_empty_table() -> None:
    """ADD COLUMN NOT NULL without default works on 0 rows and fails on 5."""
    sql = "SET lock_timeout = '1s'; ALTER TABLE t ADD COLUMN b int NOT NULL;"
    assert [f.level for f in _lint(sql, Context(table_rows={"t": 0}))] == ["info"]
    assert [f.level for f in _lint(sql, Context(table_rows={"t": 5}))] == ["error"]


def test_defaults_rewrite_before_pg11_and_volatile_ones_always() -> None:
    """now() is free on 11+ and a rewrite on 10; random() is a rewrite everywhere."""
    stable = "SET lock_timeout = '1s'; ALTER TABLE t ADD COLUMN b timestamptz DEFAULT now();"
    assert _lint(stable, Context(server_major=15)) == []
    assert _rules(_lint(stable, Context(server_major=10))) == ["add-column-rewrite"]
    volatile = "SET lock_timeout = '1s'; ALTER TABLE t ADD COLUMN b float DEFAULT random();"
    assert _rules(_lint(volatile, Context(server_major=17))) == ["add-column-rewrite"]
    serial = "SET lock_timeout = '1s'; ALTER TABLE t ADD COLUMN b bigserial;"
    assert _rules(_lint(serial)) == ["add-column-rewrite"]


def test_set_not_null_needs_pg12_even_with_a_validated_check() -> None:
    """The validated CHECK only spares the scan from PostgreSQL 12 on."""
    sql = (FIXTURES / "safe" / "07_set_not_null_with_check.sql").read_text(encoding="utf-8")
    assert _lint(sql, Context(server_major=12)) == []
    assert _rules(_lint(sql, Context(server_major=11))) == ["set-not-null-without-check"]


def test_lock_timeout_counts_only_when_it_is_really_set() -> None:
    """SET LOCAL outside a transaction and SET ... = 0 leave it unset; one finding per file."""
    local = "SET LOCAL lock_timeout = '5s'; ALTER TABLE t ADD COLUMN a text;"
    assert _rules(_lint(local)) == ["lock-timeout-missing"]
    zero = "SET lock_timeout = 0; ALTER TABLE t ADD COLUMN a text; ALTER TABLE t ADD COLUMN b text;"
    assert _rules(_lint(zero)) == ["lock-timeout-missing"]
    after_commit = (
        "BEGIN; SET LOCAL lock_timeout = '5s'; ALTER TABLE t ADD COLUMN a text; COMMIT;\n"
        "ALTER TABLE t ADD COLUMN b text;"
    )
    findings = _lint(after_commit)
    assert _rules(findings) == ["lock-timeout-missing"]
    assert findings[0].line == 2


def test_ignore_with_reason_suppresses_only_the_named_rule() -> None:
    """The ignore covers the statement below its comment block, for the rules it names."""
    sql = (
        "-- dbpulse: ignore=add-foreign-key-not-valid reason: table is empty\n"
        "ALTER TABLE p ADD CONSTRAINT f FOREIGN KEY (u) REFERENCES u (id);\n"
        "ALTER TABLE q ADD CONSTRAINT g FOREIGN KEY (u) REFERENCES u (id);\n"
    )
    findings = _lint(sql)
    assert [(f.rule, f.line) for f in findings] == [
        ("lock-timeout-missing", 2),
        ("add-foreign-key-not-valid", 3),
    ]


def test_ignore_without_reason_is_itself_an_error_and_suppresses_nothing() -> None:
    """A missing reason is an error finding; the finding it meant to hide stays."""
    sql = "SET lock_timeout = '1s';\nDROP TABLE t; -- dbpulse: ignore=drop-table\n"
    findings = _lint(sql)
    assert sorted(_rules(findings)) == ["drop-table", "ignore-needs-reason"]
    assert exit_code(findings) == 1


def test_ignore_of_an_unknown_rule_is_reported() -> None:
    """A typo in the rule name does not silently ignore nothing."""
    sql = "-- dbpulse: ignore=drop-tabel reason: typo\nSELECT 1;\n"
    findings = _lint(sql)
    assert _rules(findings) == ["ignore-unknown-rule"]
    assert "drop-tabel" in findings[0].message


def test_syntax_error_costs_one_statement() -> None:
    """An unparsable statement is a finding; the statements after it are still checked."""
    findings = _lint("SET lock_timeout = '1s';\nALTR TABLE t;\nVACUUM FULL t;\n")
    assert [(f.rule, f.line) for f in findings] == [
        ("syntax-error", 2),
        ("vacuum-full-or-cluster", 3),
    ]


def test_statement_lines_skip_leading_comments_and_literals_are_hidden() -> None:
    """A finding points at the statement's first token, and shows no literal."""
    sql = "SET lock_timeout = '1s';\n-- backfill\n/* all */\nUPDATE t SET secret = 'hunter2';\n"
    findings = _lint(sql)
    assert [(f.rule, f.line) for f in findings] == [("whole-table-update", 4)]
    assert "hunter2" not in findings[0].statement


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def downgrade():\n    pass\n", (1, 2)),
        ('def downgrade():\n    """Nothing."""\n    pass\n', (1, 3)),
        ("def downgrade() -> None:\n    ...\n", (1, 2)),
        ("def downgrade():\n    op.drop_table('t')\n", None),
        ("def downgrade():\n    raise NotImplementedError('data migration')\n", None),
        ("def upgrade():\n    pass\n", (1, 1)),
    ],
)
def test_empty_downgrade_detection(source: str, expected: tuple[int, int] | None) -> None:
    """pass / docstring / ellipsis bodies (or no downgrade at all) count as missing."""
    assert empty_downgrade(source) == expected


def test_github_annotations_are_escaped_and_levelled() -> None:
    """Each finding is one ``::level file=,line=,title=::`` line with %, : and , escaped."""
    findings = _lint("ALTER TABLE t ADD COLUMN a int NOT NULL;", file="db/1%.sql")
    out = io.StringIO()
    write_github(out, findings)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(
        "::warning file=db/1%25.sql,line=1,title=dbpulse lock-timeout-missing::"
    )
    assert lines[1].startswith("::error file=db/1%25.sql,line=1,")
    assert "Fix: multi-phase" in lines[1]


def test_json_report_has_stable_keys() -> None:
    """The JSON document carries status, exit code, count and each finding's fields."""
    findings = _lint("VACUUM FULL t;")
    out = io.StringIO()
    write_json(out, findings, exit_code(findings), 1)
    document = json.loads(out.getvalue())
    assert document["status"] == "error"
    assert document["exit_code"] == 1
    assert document["findings"][0]["rule"] == "vacuum-full-or-cluster"
    assert set(document["findings"][0]) == {
        "rule",
        "level",
        "message",
        "fix",
        "file",
        "line",
        "unit",
        "statement",
    }


def test_readme_rule_table_maps_every_rule_to_squawk_and_strong_migrations() -> None:
    """Each catalog rule has a README row naming the same squawk and strong_migrations rules."""
    text = README.read_text(encoding="utf-8")
    for rule in RULES:
        row = next(
            (line for line in text.splitlines() if line.startswith(f"| `{rule.name}`")), None
        )
        assert row is not None, rule.name
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[2] == (f"`{rule.squawk}`" if rule.squawk else "—"), rule.name
        expected_sm = f"`{rule.strong_migrations}`" if rule.strong_migrations else "—"
        assert cells[3] == expected_sm, rule.name


def test_list_rules_prints_every_rule() -> None:
    """--list-rules prints one line per catalog rule with its level, and exits 0."""
    out = io.StringIO()
    code = run(build_parser().parse_args(["lint-migrations", "--list-rules"]), out=out)
    assert code == 0
    assert [line.split("\t")[:2] for line in out.getvalue().splitlines()] == [
        [rule.name, rule.level] for rule in RULES
    ]


def test_github_actions_default_to_annotations(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Inside GitHub Actions, with no --format, the output is workflow annotations."""
    sql = tmp_path / "m.sql"
    sql.write_text("VACUUM FULL t;\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.delenv("DBPULSE_DSN", raising=False)
    out = io.StringIO()
    code = run(build_parser().parse_args(["lint-migrations", str(sql)]), out=out)
    assert code == 1
    assert out.getvalue().startswith("::error file=")


def test_with_dsn_a_table_an_earlier_migration_creates_counts_as_empty() -> None:
    """A table not in the catalog yet, created by an earlier revision of the run: 0 rows."""
    created = parse_text("CREATE TABLE jobs (id int, state text);", "a.sql", "a")
    index = parse_text(
        "SET lock_timeout = '1s'; CREATE INDEX jobs_state ON jobs (state);", "b.sql", "b"
    )
    findings = lint(created + index, [], {}, Context(live=True))
    assert [(f.rule, f.level) for f in findings] == [("create-index-not-concurrently", "info")]
    filled = parse_text("INSERT INTO jobs SELECT 1, 'x';", "a2.sql", "a2")
    findings = lint(created + filled + index, [], {}, Context(live=True))
    assert [f.level for f in findings] == ["error"]
    assert [f.level for f in lint(created + index, [], {}, Context())] == ["error"]


def test_concurrent_builds_on_pg_14_0_to_14_3_are_errors() -> None:
    """The 14.0-14.3 CIC corruption bug: flagged from the DSN's minor version, not on 14.4."""
    sql = "CREATE INDEX CONCURRENTLY i ON t (a); REINDEX INDEX CONCURRENTLY i;"
    buggy = _lint(sql, Context(server_major=14, server_version_num=140003))
    assert [(f.rule, f.message) for f in buggy] == [
        ("index-pg14-corruption", "CREATE INDEX CONCURRENTLY on PostgreSQL 14.3"),
        ("index-pg14-corruption", "REINDEX CONCURRENTLY on PostgreSQL 14.3"),
    ]
    assert _lint(sql, Context(server_major=14, server_version_num=140004)) == []


def test_wide_non_unique_index_is_a_warning() -> None:
    """Four columns in a non-unique index warn; a unique one may need them all."""
    wide = _lint("CREATE INDEX CONCURRENTLY i ON t (a, b, c, d);")
    assert [(f.rule, f.level) for f in wide] == [("index-too-many-columns", "warning")]
    assert _lint("CREATE UNIQUE INDEX CONCURRENTLY i ON t (a, b, c, d);") == []
