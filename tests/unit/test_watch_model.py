"""watch-migration's pure state: statement kinds, relevant waits, build outcomes, exit rule."""

from __future__ import annotations

from dbpulse.watch.model import (
    Build,
    LockWait,
    ProbeReading,
    Tracker,
    lock_waits_from_rows,
    statement_kind,
)
from dbpulse.watch.render import plain_lines


def _build(**kw: object) -> Build:
    row = {
        "pid": 10,
        "relname": "t",
        "index_relname": "t_idx",
        "index_relid": 500,
        "command": "CREATE INDEX CONCURRENTLY",
        "phase": "building index: scanning table",
        "blocks_total": 100,
        "blocks_done": 0,
        **kw,
    }
    return Build.from_row(row)


def _wait(kind_query: str, blocker_query: str, pid: int = 1, blocker: int = 2) -> LockWait:
    (wait,) = lock_waits_from_rows(
        [
            {
                "pid": pid,
                "query": kind_query,
                "blocking_pids": [blocker],
                "mode": "AccessExclusiveLock",
            }
        ],
        [{"pid": blocker, "query": blocker_query, "state": "idle in transaction"}],
    )
    return wait


def test_statement_kind_keeps_keywords_and_drops_literals() -> None:
    """Only leading keywords survive: no table data, literals or comments reach the screen."""
    assert statement_kind("alter table orders add column x int") == "ALTER TABLE"
    assert (
        statement_kind("/* app */ CREATE UNIQUE INDEX CONCURRENTLY i ON t (x)") == "CREATE UNIQUE"
    )
    assert statement_kind("SELECT 'secret' FROM t") == "SELECT"
    assert statement_kind("-- comment\nUPDATE t SET a = 'x'") == "UPDATE"
    assert statement_kind("") == "?"
    assert statement_kind(None) == "?"


def test_only_waits_involving_ddl_or_a_build_are_relevant() -> None:
    """An ALTER waiting, or an app waiting behind an ALTER, counts; app-vs-app waits do not."""
    assert _wait("ALTER TABLE t ADD c int", "SELECT 1").involves_migration(set())
    assert _wait("SELECT * FROM t", "ALTER TABLE t ADD c int").involves_migration(set())
    assert not _wait("UPDATE t SET a = 1", "UPDATE t SET a = 2").involves_migration(set())
    assert _wait("UPDATE t SET a = 1", "UPDATE t SET a = 2", blocker=10).involves_migration({10})


def test_build_counter_follows_the_phase() -> None:
    """Blocks while scanning, tuples while loading, lockers while waiting."""
    assert _build(blocks_done=5).counter() == ("blocks", 5, 100)
    loading = _build(phase="building index: loading tuples in tree", tuples_total=50, tuples_done=7)
    assert loading.counter() == ("tuples", 7, 50)
    waiting = _build(phase="waiting for writers before build", lockers_total=2, lockers_done=1)
    assert waiting.counter() == ("lockers", 1, 2)
    assert _build(blocks_total=0).counter() is None


def test_waiting_phase_shows_no_stale_block_counts() -> None:
    """'waiting for old snapshots' keeps the scan's blocks in the view: they are not shown."""
    stale = _build(phase="waiting for old snapshots", blocks_done=100, blocks_total=100)
    assert stale.counter() is None
    view = Tracker(started=0.0).update(1.0, [stale], [], [], {})
    (line,) = plain_lines(view)
    assert "blocks" not in line
    assert line.endswith("waiting for old snapshots")
    sorting = _build(phase="index validation: sorting tuples", tuples_done=9, tuples_total=9)
    assert sorting.counter() is None


def test_phase_change_resets_the_rate() -> None:
    """A new phase starts a new rate window: the scan's rate is not carried into validation."""
    tracker = Tracker(started=0.0)
    tracker.update(1.0, [_build(blocks_done=10)], [], [], {})
    tracker.update(2.0, [_build(blocks_done=60)], [], [], {})
    validating = _build(phase="index validation: scanning table", blocks_done=1)
    view = tracker.update(3.0, [validating], [], [], {})
    assert view.builds[0].estimate.rate is None  # one sample of the new phase: no rate yet


def test_quiet_period_keeps_the_watch_between_steps() -> None:
    """Legacy mode: a gap with nothing in flight ends the watch only after ``quiet`` seconds."""
    tracker = Tracker(started=0.0)
    busy = tracker.update(2.0, [_build()], [], [], {})
    assert tracker.decide(busy, wait=0, quiet=3.0) == "continue"
    gap = tracker.update(4.0, [], [], [], {500: True})
    assert tracker.decide(gap, wait=0, quiet=3.0) == "continue"
    later = tracker.update(5.5, [], [], [], {})
    assert tracker.decide(later, wait=0, quiet=3.0) == "finished"


def test_finished_build_with_valid_index_is_done_and_exit_follows() -> None:
    """A build seen, then gone with its index valid: 'done', and the watch is finished."""
    tracker = Tracker(started=0.0)
    view = tracker.update(1.0, [_build(blocks_done=10)], [], [], {})
    assert view.in_flight
    assert tracker.decide(view, wait=0) == "continue"
    assert tracker.index_oids() == [500]
    view = tracker.update(2.0, [], [], [], {500: True})
    assert [(f.outcome, f.label) for f in view.finished] == [("done", "t_idx on t")]
    assert tracker.decide(view, wait=0) == "finished"


def test_invalid_index_is_rechecked_once_then_failed() -> None:
    """Gone but invalid: checked again next poll (commit race), then reported failed."""
    tracker = Tracker(started=0.0)
    tracker.update(1.0, [_build()], [], [], {})
    view = tracker.update(2.0, [], [], [], {500: False})
    assert view.checking == 1
    assert tracker.decide(view, wait=0) == "continue"
    assert tracker.index_oids() == [500]
    view = tracker.update(3.0, [], [], [], {500: False})
    assert [f.outcome for f in view.finished] == ["failed"]
    assert "INVALID" in view.finished[0].detail
    tracker2 = Tracker(started=0.0)
    tracker2.update(1.0, [_build()], [], [], {})
    tracker2.update(2.0, [], [], [], {500: False})
    view2 = tracker2.update(3.0, [], [], [], {500: True})  # the commit landed meanwhile
    assert [f.outcome for f in view2.finished] == ["done"]


def test_rolled_back_build_is_failed() -> None:
    """A build whose index no longer exists was rolled back."""
    tracker = Tracker(started=0.0)
    tracker.update(1.0, [_build()], [], [], {})
    tracker.update(2.0, [], [], [], {500: None})
    view = tracker.update(3.0, [], [], [], {500: None})
    assert view.finished[0].detail == "index is gone: the build was rolled back"


def test_second_build_on_the_same_connection_is_a_new_build() -> None:
    """One migration session building two indexes: the first is finished when the second starts."""
    tracker = Tracker(started=0.0)
    tracker.update(1.0, [_build()], [], [], {})
    second = _build(index_relname="t_idx2", index_relid=501)
    view = tracker.update(2.0, [second], [], [], {500: True, 501: False})
    assert [f.label for f in view.finished] == ["t_idx on t"]
    assert [b.build.index_relname for b in view.builds] == ["t_idx2"]


def test_idle_until_wait_elapses_and_probes_keep_it_running() -> None:
    """Nothing in flight: keep waiting during --wait, then 'idle'; remaining > 0 is in flight."""
    tracker = Tracker(started=0.0)
    assert tracker.decide(tracker.update(1.0, [], [], [], {}), wait=5) == "continue"
    assert tracker.decide(tracker.update(6.0, [], [], [], {}), wait=5) == "idle"
    probe = ProbeReading("backfill", {"remaining": 10, "total": 20}, 10, 20)
    view = tracker.update(7.0, [], [], [probe], {})
    assert tracker.decide(view, wait=0) == "continue"
    done = ProbeReading("backfill", {"remaining": 0, "total": 20}, 0, 20)
    assert tracker.decide(tracker.update(8.0, [], [], [done], {}), wait=0) == "finished"


def test_irrelevant_waits_are_hidden_and_do_not_hold_the_watch() -> None:
    """An app-vs-app lock wait is neither shown nor keeps the watch running."""
    tracker = Tracker(started=0.0)
    view = tracker.update(1.0, [], [_wait("UPDATE t", "UPDATE t")], [], {})
    assert view.waits == []
    assert tracker.decide(view, wait=0) == "idle"


def test_plain_lines_show_progress_rate_and_eta() -> None:
    """The non-TTY output names the build, its counter, rate and ETA, then the wait."""
    tracker = Tracker(started=0.0)
    tracker.update(0.0, [_build(blocks_done=10)], [], [], {})
    wait = _wait("CREATE INDEX CONCURRENTLY i ON t (x)", "INSERT INTO t VALUES (1)", blocker=11)
    view = tracker.update(2.0, [_build(blocks_done=30)], [wait], [], {})
    lines = plain_lines(view)
    assert lines[0].startswith("build t_idx on t [CREATE INDEX CONCURRENTLY] building index")
    assert "blocks 30/100 (30.0%), 10.0 blocks/s, ETA 7s" in lines[0]
    assert lines[1] == (
        "wait pid 1 (CREATE INDEX) waits 0s for AccessExclusiveLock on ?; "
        "blocked by pid 11 (INSERT, idle in transaction)"
    )
