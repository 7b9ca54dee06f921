"""watch-migration's steps, catalog comparison and summary (pure): what the summary says."""

from __future__ import annotations

from typing import Any

from dbpulse.watch.catalog import Catalog, compare
from dbpulse.watch.model import Finished
from dbpulse.watch.steps import StepJournal, describe
from dbpulse.watch.summary import summarize


def _row(pid: int, query: str, start: float, state: str = "idle", end: float | None = None) -> Any:
    return {
        "pid": pid,
        "query": query,
        "query_start": start,
        "state": state,
        "state_change": start + 0.5 if end is None else end,
        "now": 100.0,
    }


def test_plumbing_is_not_a_step_and_labels_hide_literals() -> None:
    """BEGIN, SET, catalog reads and alembic_version are no steps; literals become '?'."""
    assert describe("BEGIN") is None
    assert describe("SET lock_timeout = '5s'") is None
    assert describe("SELECT pg_sleep(0.1)") is None
    assert describe("UPDATE alembic_version SET version_num='abc123'") is None
    assert describe("select relname from pg_class where relname = 'x'") is None
    described = describe("UPDATE orders SET note = 'secret' WHERE id <= 500")
    assert described is not None
    assert "secret" not in described[1]
    assert "500" not in described[1]


def test_batches_merge_into_one_step_and_states_give_durations() -> None:
    """Consecutive committed batches are one step (xN) timed query_start to state_change."""
    journal = StepJournal()
    update = "UPDATE orders SET code = id WHERE id > {} AND id <= {}"
    journal.fold([_row(7, update.format(0, 100), 1.0, state="active")])
    journal.fold([_row(7, "COMMIT", 1.6)])
    journal.fold([_row(7, update.format(100, 200), 2.0)])
    journal.fold([_row(7, "CREATE INDEX CONCURRENTLY ix ON orders (code)", 3.0, "active")])
    journal.fold([_row(7, "CREATE INDEX CONCURRENTLY ix ON orders (code)", 3.0, end=3.25)])
    first, second = journal.steps
    assert first.count == 2
    assert first.title().endswith("(x2)")
    assert first.duration(now=100.0) == 1.5  # 1.0 .. 2.5, the last batch's end
    assert second.duration(now=100.0) == 0.25
    assert journal.alive == {7}
    journal.fold([])
    assert journal.ever_alive
    assert journal.alive == set()


def test_aborted_transaction_fails_its_step() -> None:
    """A statement whose transaction ended aborted is a failed step."""
    journal = StepJournal()
    journal.fold([_row(3, "ALTER TABLE t ADD COLUMN c int", 1.0, "idle in transaction (aborted)")])
    summary = summarize(journal.steps, 10.0, [], [], command_status=1)
    assert "failed: its transaction was aborted" in summary.lines[1]
    assert summary.code == 1


def _catalog(indexes: dict[str, bool], constraints: dict[str, bool]) -> Catalog:
    return Catalog(
        {name: ("orders", valid) for name, valid in indexes.items()},
        {("orders", name): ("foreign key", valid) for name, valid in constraints.items()},
    )


def test_catalog_comparison_finds_new_invalid_indexes_and_not_valid_constraints() -> None:
    """New INVALID index and NOT VALID constraint are bad; pre-existing ones are not blamed."""
    before = _catalog({"old_invalid": False, "pk": True}, {"old_fk": False})
    after = _catalog(
        {"old_invalid": False, "pk": True, "ix_ok": True, "ix_dup": False},
        {"old_fk": False, "fk_new": False, "fk_done": True},
    )
    changes = compare(before, after)
    bad = sorted(c.text.split(" left ")[0] for c in changes if c.bad)
    assert bad == ["new foreign key constraint fk_new on orders", "new index ix_dup on orders"]
    texts = [c.text for c in changes]
    assert "new index ix_ok on orders: valid" in texts
    assert "new foreign key constraint fk_done on orders: validated" in texts
    assert not any("old_" in t for t in texts)


def test_summary_names_each_step_and_makes_a_clean_exit_1_when_an_index_is_left_invalid() -> None:
    """Command exit 0 but a unique CIC left INVALID: the step says so and the code is 1."""
    journal = StepJournal()
    journal.fold([_row(5, "CREATE INDEX CONCURRENTLY ix_ok ON orders (code)", 1.0)])
    journal.fold([_row(5, "CREATE UNIQUE INDEX CONCURRENTLY ix_dup ON orders (ref)", 2.0)])
    changes = compare(_catalog({}, {}), _catalog({"ix_ok": True, "ix_dup": False}, {}))
    summary = summarize(journal.steps, 10.0, changes, [], command_status=0)
    assert summary.code == 1
    assert "step 1 (pid 5, 0.50s)" in summary.lines[1]
    assert "done: new index ix_ok on orders: valid" in summary.lines[1]
    assert "failed: new index ix_dup on orders left INVALID" in summary.lines[2]
    assert summarize(journal.steps, 10.0, changes, [], command_status=3).code == 3


def test_failed_build_seen_live_fails_the_legacy_watch() -> None:
    """Without a command, a build seen failing still makes the exit code 1."""
    failed = Finished("ix on t", "failed", "index left INVALID")
    summary = summarize([], 0.0, [], [failed], command_status=None, follows=False)
    assert summary.code == 1
    assert summary.lines == ["  index build ix on t: failed: index left INVALID"]


def test_step_cut_by_a_disconnect_ends_when_last_seen() -> None:
    """A statement still running when its backend vanished ends at the last sample, marked cut."""
    journal = StepJournal()
    journal.fold([_row(4, "UPDATE orders SET code = 1", 1.0, "active")])  # now = 100.0
    journal.fold([])
    (step,) = journal.steps
    assert step.cut
    assert step.ended == 100.0
    summary = summarize(journal.steps, 500.0, [], [], command_status=1)
    assert "cut short: its backend disconnected while it ran" in summary.lines[1]


def test_a_statement_restamped_while_running_counts_once() -> None:
    """One statement seen running under two query_starts (the extended protocol stamps
    Parse and Execute) is one run; a repeat after the backend went idle is a second."""
    journal = StepJournal()
    update = "UPDATE orders SET code = id WHERE id > 1 AND id <= 2"
    journal.fold([_row(7, update, 10.000, state="active")])
    journal.fold([_row(7, update, 10.004, state="active")])
    journal.fold([_row(7, update, 10.004, end=10.5)])
    (step,) = journal.steps
    assert step.count == 1
    assert step.ended == 10.5
    journal.fold([_row(7, update, 11.0, state="active")])
    assert step.count == 2
