"""``dbpulse watch-migration`` following real index builds, lock waits and a backfill."""

# layout-note: one scenario per test, each a real build or wait; their shared fixtures
# layout-note: (a screen reader, a background session) are small and live at the top.

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from dbpulse.cli import main
from dbpulse.localpg import free_port
from tests.integration.collector_helpers import wait_for
from tests.integration.watch_screen import Screen

# One row per page (fillfactor 10) and 10 ms per key: the table scan is slow and visible.
SLOW_TABLE = """
CREATE TABLE big (id int, pad text) WITH (fillfactor = 10);
INSERT INTO big SELECT g, repeat('x', 600) FROM generate_series(1, {rows}) g;
CREATE FUNCTION slow_key(i int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS
    $$ BEGIN PERFORM pg_sleep(0.01); RETURN i % {modulo}; END $$;
"""


def _setup(dsn: str, rows: int = 120, modulo: int = 1_000_000) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in SLOW_TABLE.format(rows=rows, modulo=modulo).split(";\n"):
            if statement.strip():
                conn.execute(statement)


@pytest.fixture
def builder(fresh_db: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    conn = psycopg.connect(fresh_db, autocommit=True)
    yield conn
    conn.close()


def _in_thread(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def _wait_for_build(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        wait_for(
            lambda: conn.execute("SELECT 1 FROM pg_stat_progress_create_index").fetchone(),
            timeout=10,
            interval=0.05,
        )


def test_build_with_lock_wait_is_followed_to_the_end(
    fresh_db: str,
    builder: psycopg.Connection[tuple[object, ...]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Captured output shows the CIC waiting on a writer, its block progress with rate/ETA, then done."""
    _setup(fresh_db)
    holder = psycopg.connect(fresh_db)
    holder.execute("INSERT INTO big VALUES (0, 'x')")  # an open writer the build must wait for

    def build() -> None:
        builder.execute("CREATE INDEX CONCURRENTLY big_slow_idx ON big (slow_key(id))")

    thread = _in_thread(build)
    _wait_for_build(fresh_db)
    screen = Screen()
    # The writer commits once the watch has shown the build waiting for it, not after a
    # guessed delay.
    screen.when("waiting for writers", holder.commit)
    monkeypatch.setattr(sys, "stdout", screen)
    code = main(["watch-migration", "--dsn", fresh_db, "--interval", "0.2", "--wait", "10"])
    thread.join(timeout=30)
    holder.close()
    out = screen.getvalue()
    assert code == 0, out
    assert "[CREATE INDEX CONCURRENTLY] waiting for writers before build" in out
    assert "wait pid" in out
    assert "(CREATE INDEX" in out  # the waiting statement's kind, never its text
    scanning = [ln for ln in out.splitlines() if "building index: scanning table: blocks" in ln]
    assert scanning, out
    assert any("blocks/s, ETA" in ln and "ETA ?" not in ln for ln in scanning), scanning
    assert "done big_slow_idx on big: index is valid" in out
    assert out.rstrip().endswith("migration finished: nothing left in flight")


# Sets the CLI's inherited SIGINT disposition, then execs it (dispositions survive exec):
# a thread-safe stand-in for preexec_fn.
_WITH_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, getattr(signal, sys.argv[1]));"
    " os.execv(sys.executable, [sys.executable, '-m', 'dbpulse', *sys.argv[2:]])"
)


def _run_in_pty(
    argv: list[str],
    *,
    on_screen: dict[str, Callable[[subprocess.Popen[bytes]], object]] | None = None,
    sigint: str = "SIG_DFL",
) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as stdout; ``on_screen`` maps a text to an action
    run once, when the screen first shows it (send SIGINT, release a lock).

    ``sigint`` is the disposition the CLI inherits (SIG_DFL, or SIG_IGN as under ``cmd &``).
    """
    pending = dict(on_screen or {})
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        # -I -S: the launcher needs only the standard library; keep its start-up short.
        [sys.executable, "-I", "-S", "-c", _WITH_SIGINT, sigint, *argv],
        stdout=slave,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "160", "TERM": "xterm"},
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        text = b"".join(chunks).decode(errors="replace")
        for needle in [n for n in pending if n in text]:
            pending.pop(needle)(proc)
        if proc.poll() is not None and not ready:
            break
    code = proc.wait(timeout=30)
    os.close(master)
    assert proc.stderr is not None
    stderr = proc.stderr.read().decode()
    assert "Traceback" not in stderr, stderr
    return code, b"".join(chunks).decode(errors="replace")


def test_failed_unique_build_on_a_terminal_draws_bars_and_exits_1(
    fresh_db: str, builder: psycopg.Connection[tuple[object, ...]]
) -> None:
    """On a pty: a progress bar while a unique CIC scans; duplicates leave it INVALID: exit 1."""
    _setup(fresh_db, rows=120, modulo=60)
    # An open writer holds the build until the watch has drawn it: the CLI's start-up
    # time can no longer let the whole build pass unseen.
    holder = psycopg.connect(fresh_db)
    holder.execute("INSERT INTO big VALUES (0, 'x')")

    def build() -> None:
        with pytest.raises(psycopg.errors.UniqueViolation):
            builder.execute("CREATE UNIQUE INDEX CONCURRENTLY big_dup_key ON big (slow_key(id))")

    thread = _in_thread(build)
    _wait_for_build(fresh_db)
    code, screen = _run_in_pty(
        ["watch-migration", "--dsn", fresh_db, "--interval", "0.3"],
        on_screen={"big_dup_key on big": lambda _proc: holder.commit()},
    )
    thread.join(timeout=30)
    holder.close()
    assert code == 1, screen
    assert "index builds" in screen
    assert "━" in screen  # rich's progress bar
    assert "big_dup_key on big" in screen
    assert "index left INVALID" in screen
    assert "finished with 1 failed index build(s)" in screen


@pytest.mark.parametrize("inherited", ["SIG_DFL", "SIG_IGN"])
def test_ctrl_c_stops_cleanly(fresh_db: str, inherited: str) -> None:
    """SIGINT while waiting for a migration: exit 130, a clean message, no traceback (also when started with SIGINT ignored, as from `make test &`)."""
    code, screen = _run_in_pty(
        ["watch-migration", "--dsn", fresh_db, "--wait", "60", "--interval", "0.2"],
        on_screen={"waiting for a migration to start": lambda p: p.send_signal(signal.SIGINT)},
        sigint=inherited,
    )
    assert code == 130
    assert "interrupted" in screen


def _remaining(text: str) -> list[int]:
    """The probe's remaining counts, in the order the watch printed them."""
    return [
        int(ln.split("remaining=")[1].split()[0]) for ln in text.splitlines() if "remaining=" in ln
    ]


def _shows_remaining(count: int) -> Callable[[str], bool]:
    return lambda text: count in _remaining(text)


def test_backfill_probe_is_followed_until_nothing_remains(
    fresh_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A probe from --config shows remaining rows falling batch by batch and ends at 0."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, ref int)")
        conn.execute("INSERT INTO orders SELECT g, NULL FROM generate_series(1, 500) g")
    config = tmp_path / "dbpulse.yaml"
    config.write_text(
        "probes:\n"
        "  - name: backfill\n"
        "    sql: SELECT count(*) FILTER (WHERE ref IS NULL) AS remaining, count(*) AS total"
        " FROM orders\n"
        "    remaining_column: remaining\n"
        "    total_column: total\n",
        encoding="utf-8",
    )

    screen = Screen()
    unseen: list[int] = []

    def backfill() -> None:
        # Each batch waits until the watch has shown the count it leaves behind, so every
        # step is on screen however slowly the machine runs.
        with psycopg.connect(fresh_db, autocommit=True) as app:
            for start in range(0, 500, 100):
                left = 500 - start
                if not screen.wait_until(_shows_remaining(left)):
                    unseen.append(left)  # go on regardless, so that the watch can end
                app.execute(
                    "UPDATE orders SET ref = id WHERE id > %s AND id <= %s", (start, start + 100)
                )

    monkeypatch.setattr(sys, "stdout", screen)
    thread = _in_thread(backfill)
    code = main(
        ["watch-migration", "--dsn", fresh_db, "--config", str(config), "--interval", "0.2"]
    )
    thread.join(timeout=30)
    out = screen.getvalue()
    assert code == 0, out
    assert unseen == [], out
    remaining = _remaining(out)
    assert remaining[0] == 500
    assert remaining[-1] == 0
    assert remaining == sorted(remaining, reverse=True)
    assert len(set(remaining)) >= 4  # several batches were seen on the way down
    assert "rows/s, ETA" in out
    assert "(100.0% done)" in out


def test_nothing_in_flight_exits_at_once(
    fresh_db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --wait and with nothing running, the watch says so and exits 0 without waiting a poll interval."""
    waited: list[float] = []
    real_sleep, this_thread = time.sleep, threading.get_ident()

    def sleep(seconds: float) -> None:
        if threading.get_ident() == this_thread:  # other threads' sleeps are not the watch's
            waited.append(seconds)
        real_sleep(seconds)

    # The loop waits only in time.sleep between polls: "at once" means it never got there.
    monkeypatch.setattr(time, "sleep", sleep)
    assert main(["watch-migration", "--dsn", fresh_db]) == 0
    assert waited == []
    assert "nothing in flight" in capsys.readouterr().out


def test_unreachable_is_exit_2_without_password(capsys: pytest.CaptureFixture[str]) -> None:
    """A closed port at start: exit 2, one stderr line naming the target, no password."""
    dsn = f"postgresql://app:hunter2@127.0.0.1:{free_port()}/app"
    assert main(["watch-migration", "--dsn", dsn]) == 2
    captured = capsys.readouterr()
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    assert "cannot connect to 127.0.0.1:" in captured.err
    assert "hunter2" not in captured.err + captured.out


def test_misconfigured_probe_is_shown_as_an_error(
    fresh_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A remaining_column missing from the result is reported on screen, not crashed on."""
    config = tmp_path / "dbpulse.yaml"
    config.write_text(
        "probes:\n  - name: backfill\n    sql: SELECT 1 AS done\n    remaining_column: left\n",
        encoding="utf-8",
    )
    assert main(["watch-migration", "--dsn", fresh_db, "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "probe backfill: error: remaining_column 'left' is not a value column" in out


def _stamp(line: str) -> float:
    return float(line.split("]", maxsplit=1)[0].strip("[ s"))


def test_slow_probe_does_not_hold_back_the_screen(
    fresh_db: str,
    builder: psycopg.Connection[tuple[object, ...]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A probe that takes 2 s runs on its own thread: the build is on screen refreshes before the probe's first answer."""
    _setup(fresh_db)
    config = tmp_path / "dbpulse.yaml"
    config.write_text(
        "probes:\n  - name: slow\n    sql: SELECT 0 AS remaining FROM pg_sleep(2)\n"
        "    remaining_column: remaining\n    timeout: 10\n",
        encoding="utf-8",
    )
    holder = psycopg.connect(fresh_db)
    holder.execute("INSERT INTO big VALUES (0, 'x')")

    def build() -> None:
        builder.execute("CREATE INDEX CONCURRENTLY big_idx ON big (slow_key(id))")

    thread = _in_thread(build)
    _wait_for_build(fresh_db)
    screen = Screen()
    screen.when("probe slow:", holder.commit)  # the build may go on once the probe answered
    monkeypatch.setattr(sys, "stdout", screen)
    code = main(
        [
            "watch-migration",
            "--dsn",
            fresh_db,
            "--config",
            str(config),
            "--interval",
            "0.2",
            "--quiet-seconds",
            "0.5",
        ]
    )
    thread.join(timeout=30)
    holder.close()
    out = screen.getvalue()
    assert code == 0, out
    lines = out.splitlines()
    first_build = next(_stamp(ln) for ln in lines if "build big_idx on big" in ln)
    first_probe = next(_stamp(ln) for ln in lines if "probe slow:" in ln)
    assert first_build < first_probe, out
    refreshes = {_stamp(ln) for ln in lines if ln.startswith("[") and _stamp(ln) < first_probe}
    assert len(refreshes) >= 2, out  # the screen kept refreshing while the probe ran
