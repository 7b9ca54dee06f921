"""``dbpulse watch-migration`` following a real Alembic project (issue 16's shape) to its end."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from dbpulse.cli import main
from tests.integration.test_watch_migration import _run_in_pty
from tests.integration.watch_alembic_project import (
    alembic,
    create_schema,
    migration_env,
    write_project,
)
from tests.integration.watch_screen import Screen


@pytest.fixture
def project(fresh_db: str, tmp_path: Path) -> Path:
    """The Alembic project, with its tables created and filled in ``fresh_db``."""
    create_schema(fresh_db)
    return write_project(tmp_path)


def _watch(
    monkeypatch: pytest.MonkeyPatch, dsn: str, *argv: str, pause: float = 0.0, swallow: bool = False
) -> tuple[int, str]:
    for key, value in migration_env(dsn, pause=pause, swallow=swallow).items():
        monkeypatch.setenv(key, value)
    screen = Screen()
    monkeypatch.setattr(sys, "stdout", screen)
    code = _run_watch(dsn, *argv)
    return code, screen.getvalue()


def _run_watch(dsn: str, *argv: str) -> int:
    """``dbpulse watch-migration --dsn DSN --interval 0.2 ARGV...`` in this process."""
    return main(["watch-migration", "--dsn", dsn, "--interval", "0.2", *argv])


def _summary(out: str) -> list[str]:
    return [
        ln.split(": ", 1)[1].strip() for ln in out.splitlines() if ln.startswith("dbpulse watch-")
    ]


def test_upgrade_head_reports_every_step_and_exits_1_for_the_failed_cic(
    fresh_db: str, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`-- alembic upgrade head`: each step listed with its outcome, the failed unique CIC named, exit 1."""
    code, out = _watch(monkeypatch, fresh_db, "--", *alembic(project, "upgrade", "head"), pause=0.5)
    assert code == 1, out
    lines = _summary(out)
    steps = [ln for ln in lines if ln.startswith("step ")]
    expected = [
        "ALTER TABLE orders ADD COLUMN code INTEGER: done",
        "(x4): done",
        "CREATE INDEX CONCURRENTLY orders_code_idx ON orders (code): done: new index",
        "FOREIGN KEY (customer_id) REFERENCES customers (id) NOT VALID: done",
        "ALTER TABLE orders VALIDATE CONSTRAINT orders_customer_fk: done",
        # Fails within milliseconds and Alembic exits at once: sampled or not, the catalog
        # comparison finds its INVALID index.
        "failed: new index orders_ref_key on orders left INVALID",
    ]
    assert len(steps) == len(expected), "\n".join(lines)
    for step, text in zip(steps, expected, strict=True):
        assert text in step, (step, text)
    assert "schema: new foreign key constraint orders_customer_fk on orders: validated" in lines
    # The command's own output is passed through, marked "| ".
    assert any("| " in ln and "could not create unique index" in ln for ln in out.splitlines())
    assert lines[-1].startswith("command `")
    assert "exited 1" in lines[-1]


def test_good_revisions_exit_0_when_the_command_ends(
    fresh_db: str, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`-- alembic upgrade r3` (no pauses): exit 0 once Alembic exits 0, every change in the schema lines."""
    code, out = _watch(monkeypatch, fresh_db, "--", *alembic(project, "upgrade", "r3"))
    assert code == 0, out
    lines = _summary(out)
    assert "schema: new index orders_code_idx on orders: valid" in lines, lines
    assert "schema: new foreign key constraint orders_customer_fk on orders: validated" in lines
    assert lines[-1].endswith("exited 0; exit 0")


def test_cic_failing_in_milliseconds_is_reported_even_when_the_command_succeeds(
    fresh_db: str, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migration that swallows a millisecond unique-CIC failure exits 0; the watch finds the INVALID index and exits 1."""
    code, out = _watch(
        monkeypatch, fresh_db, "--", *alembic(project, "upgrade", "head"), swallow=True
    )
    assert code == 1, out
    lines = _summary(out)
    assert any(
        ln.startswith("schema: new index orders_ref_key on orders left INVALID") for ln in lines
    ), lines
    assert lines[-1].endswith("exited 0; exit 1 (made 1: see the schema lines above)")


def test_application_name_mode_follows_the_migration_through_its_gaps(
    fresh_db: str, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--application-name: idle gaps longer than the quiet period between steps do not end the watch; the backends' disconnect does."""
    env = {**migration_env(fresh_db, pause=1.0), "PGAPPNAME": "deploy-migration"}
    proc = subprocess.Popen(
        alembic(project, "upgrade", "head"),
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        code, out = _watch(
            monkeypatch,
            fresh_db,
            "--application-name",
            "deploy-migration",
            "--wait",
            "60",
            "--quiet-seconds",
            "0.2",
        )
    finally:
        status = proc.wait(timeout=60)
    assert status == 1  # Alembic itself failed on the duplicate keys
    assert code == 1, out
    lines = _summary(out)
    steps = [ln for ln in lines if ln.startswith("step ")]
    assert "VALIDATE CONSTRAINT orders_customer_fk" in steps[-2], steps
    assert "orders_ref_key" in steps[-1]
    assert lines[
        -1
    ] == "the migration's backends disconnected (0 failed index build(s)); exit 1" or (
        lines[-1].startswith("the migration's backends disconnected")
    )


def test_bad_targets_are_one_line_errors_with_exit_2(
    fresh_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pid that is not connected, or a command that cannot run: exit 2, one line on stderr."""
    assert main(["watch-migration", "--dsn", fresh_db, "--pid", "999999"]) == 2
    assert capsys.readouterr().err.strip() == "dbpulse watch-migration: no backend with pid 999999"
    assert main(["watch-migration", "--dsn", fresh_db, "--", "/nonexistent/alembic"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("dbpulse watch-migration: cannot run /nonexistent/alembic")


def test_pid_mode_ends_when_the_backend_disconnects(
    fresh_db: str, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--pid: an idle gap between two statements does not end the watch; closing the connection does."""
    conn = psycopg.connect(fresh_db, autocommit=True)
    pid = conn.info.backend_pid
    screen = Screen()

    def migrate() -> None:
        conn.execute("ALTER TABLE orders ADD COLUMN note text")
        # The second statement waits until the watch has shown the first as done (plus a
        # gap longer than --quiet-seconds): the watch must still be there to see it.
        screen.wait_until(lambda text: "ADD COLUMN note" in text)
        time.sleep(1.0)
        conn.execute("CREATE INDEX CONCURRENTLY orders_note_idx ON orders (note)")
        time.sleep(0.3)
        conn.close()

    thread = threading.Thread(target=migrate, daemon=True)
    monkeypatch.setattr(sys, "stdout", screen)
    thread.start()
    code = _run_watch(fresh_db, "--pid", str(pid), "--quiet-seconds", "0.2")
    thread.join(timeout=30)
    lines = _summary(screen.getvalue())
    assert code == 0, lines
    steps = [ln for ln in lines if ln.startswith("step ")]
    assert "ALTER TABLE orders ADD COLUMN note text: done" in steps[0]
    assert "orders_note_idx ON orders (note): done: new index orders_note_idx" in steps[1]
    assert lines[-1] == "the migration's backends disconnected; exit 0"


def test_command_on_a_terminal_shows_its_output_above_the_live_screen(
    fresh_db: str, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a pty (rich Live): Alembic's output is printed marked '| ', the summary follows, exit 1."""
    for key, value in migration_env(fresh_db, pause=0.3).items():
        monkeypatch.setenv(key, value)
    code, screen = _run_in_pty(
        [
            "watch-migration",
            "--dsn",
            fresh_db,
            "--interval",
            "0.2",
            "--",
            *alembic(project, "upgrade", "head"),
        ]
    )
    assert code == 1, screen
    assert "| " in screen
    assert "could not create unique index" in screen
    assert "orders_ref_key on orders left INVALID" in screen
    assert "exited 1; exit 1" in screen


def test_command_status_is_passed_on(fresh_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A command exiting 3 makes the watch exit 3; one that never connected gets a note on PGAPPNAME."""
    code, out = _watch(monkeypatch, fresh_db, "--", sys.executable, "-c", "raise SystemExit(3)")
    assert code == 3, out
    lines = _summary(out)
    assert lines[0] == "summary: 0 step(s) on the migration's backends"
    assert any(
        ln.startswith("note: no backend with application_name dbpulse-migration-") for ln in lines
    )
    assert lines[-1].endswith("exited 3; exit 3")


def test_application_name_mode_survives_a_reconnect_between_steps(
    fresh_db: str, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By name, a tool that reconnects between revisions is followed across the gap; the end is a disconnect lasting --quiet-seconds."""
    screen = Screen()

    def migrate() -> None:
        with psycopg.connect(fresh_db, autocommit=True, application_name="hopper") as first:
            first.execute("ALTER TABLE orders ADD COLUMN a int")
            screen.wait_until(lambda text: "ADD COLUMN a int: done" in text)
        time.sleep(0.5)  # no backend at all, shorter than --quiet-seconds
        with psycopg.connect(fresh_db, autocommit=True, application_name="hopper") as second:
            second.execute("ALTER TABLE orders ADD COLUMN b int")
            screen.wait_until(lambda text: "ADD COLUMN b int: done" in text)

    thread = threading.Thread(target=migrate, daemon=True)
    monkeypatch.setattr(sys, "stdout", screen)
    thread.start()
    code = _run_watch(
        fresh_db, "--application-name", "hopper", "--wait", "30", "--quiet-seconds", "3"
    )
    thread.join(timeout=30)
    lines = _summary(screen.getvalue())
    assert code == 0, lines
    steps = [ln for ln in lines if ln.startswith("step ")]
    assert len(steps) == 2, steps
    assert "ADD COLUMN a int: done" in steps[0]
    assert "ADD COLUMN b int: done" in steps[1]
    assert lines[-1] == "the migration's backends disconnected; exit 0"
