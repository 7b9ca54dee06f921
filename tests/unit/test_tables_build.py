"""The tables collector's pure parts: ranking, budgeted selection with holds, bloat, build."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dbpulse.sidecar.allotment import Wants
from dbpulse.sidecar.base import Allotment, Context, Row
from dbpulse.sidecar.collectors.tables import TablesCollector, TablesState
from dbpulse.sidecar.collectors.tables_families import bloat_bytes
from dbpulse.sidecar.collectors.tables_select import (
    INDEXES_PER_TABLE,
    SERIES_PER_INDEX,
    SERIES_PER_TABLE,
    overdue,
    rank,
    select,
)

BLOCK = 8192


def _table(relid: int, **values: Any) -> Row:
    row: Row = {
        "datname": "app",
        "relid": relid,
        "schemaname": "public",
        "relname": f"t{relid}",
        "n_live_tup": 100,
        "n_dead_tup": 0,
        "reltuples": 100.0,
        "vacuum_threshold": 50.0,
        "vacuum_scale_factor": 0.2,
        "heap_bytes": BLOCK,
        "toast_bytes": 0,
        "index_bytes": 0,
        "block_size": BLOCK,
        "row_width": None,
    }
    row.update(values)
    return row


def _index(relid: int, name: str, size: int = BLOCK) -> Row:
    return {
        "datname": "app",
        "relid": relid,
        "schemaname": "public",
        "relname": f"t{relid}",
        "indexrelname": name,
        "idx_scan": 3,
        "idx_tup_read": 4,
        "idx_tup_fetch": 5,
        "size_bytes": size,
    }


def _ctx(now: float = 1000.0, allotment: Allotment | None = None) -> Context:
    return Context("t", 150000, now, allotment=allotment)


def _series(result: Any) -> int:
    return sum(len(f.samples) for f in result.families if f.name != "dbpulse_tables_count")


def _exported(result: Any) -> set[str]:
    fam = next(f for f in result.families if f.name == "pg_stat_user_tables_n_live_tup")
    return {s.labels["relname"] for s in fam.samples}


def test_overdue_tables_rank_first_then_largest() -> None:
    """Tables with dead rows over the autovacuum threshold lead (most dead first), then size."""
    big = _table(1, heap_bytes=100 * BLOCK)
    small_overdue = _table(2, n_dead_tup=500)  # threshold 50 + 0.2 x 100 = 70
    worse_overdue = _table(3, n_dead_tup=900)
    medium = _table(4, heap_bytes=10 * BLOCK)
    ranked = [int(r["relid"]) for r in rank([big, small_overdue, worse_overdue, medium])]
    assert ranked == [3, 2, 1, 4]


def test_per_table_reloption_threshold_is_honoured() -> None:
    """A table whose own autovacuum_vacuum_threshold is high is not overdue at the default's."""
    lenient = _table(1, n_dead_tup=500, vacuum_threshold=10_000.0, heap_bytes=BLOCK)
    large = _table(2, heap_bytes=50 * BLOCK)
    assert [int(r["relid"]) for r in rank([lenient, large])] == [2, 1]


def test_selection_respects_top_n_and_budget() -> None:
    """Only the top-N that fit the budget are chosen; a table that does not fit is skipped."""
    cost = {1: 30, 2: 90, 3: 30}
    sel = select([1, 2, 3], cost, {}, 0.0, top_n=3, budget=70, hold_seconds=60)
    assert sel.keys == [1, 3]
    assert sel.used == 60
    assert sel.dropped == 1


def test_table_that_leaves_the_top_is_held_then_released() -> None:
    """A table that drops out of the top-N stays exported hold_seconds, then goes."""
    cost = dict.fromkeys((1, 2), 30)
    first = select([1, 2], cost, {}, 100.0, top_n=1, budget=100, hold_seconds=60)
    second = select([2, 1], cost, first.last_in_top, 130.0, top_n=1, budget=100, hold_seconds=60)
    assert second.keys == [2, 1]
    assert second.in_top == {2}
    third = select([2, 1], cost, second.last_in_top, 160.0, top_n=1, budget=100, hold_seconds=60)
    assert third.keys == [2]
    assert 1 not in third.last_in_top


def test_held_tables_never_exceed_the_budget() -> None:
    """Held tables fill only the room the top-N leave; the rest are dropped and counted."""
    cost = dict.fromkeys(range(1, 6), 30)
    state = dict.fromkeys(range(1, 6), 90.0)
    sel = select([5, 4, 3, 2, 1], cost, state, 100.0, top_n=1, budget=90, hold_seconds=60)
    assert sel.keys == [5, 4, 3]
    assert sel.used == 90
    assert sel.dropped == 2


@settings(max_examples=200, deadline=None)
@given(
    ranked=st.lists(st.integers(1, 40), unique=True, max_size=40),
    costs=st.lists(st.integers(30, 60), min_size=40, max_size=40),
    held=st.dictionaries(st.integers(1, 40), st.floats(0, 200)),
    top_n=st.integers(1, 20),
    budget=st.integers(0, 800),
)
def test_selection_never_exceeds_the_budget(
    ranked: list[int],
    costs: list[int],
    held: dict[int, float],
    top_n: int,
    budget: int,
) -> None:
    """Whatever the ranking, costs and state, the chosen tables' series fit the budget."""
    cost = {key: costs[key - 1] for key in ranked}
    sel = select(ranked, cost, held, 200.0, top_n=top_n, budget=budget, hold_seconds=100)
    assert sum(cost[k] for k in sel.keys) == sel.used <= budget
    assert len(set(sel.keys)) == len(sel.keys)
    assert len(sel.in_top) <= top_n


def test_build_exports_postgres_exporter_families_for_the_chosen_tables() -> None:
    """Every table family carries datname/schemaname/relname; indexes add indexrelname."""
    collector = TablesCollector(top_n=5, max_series=1000)
    rows = {
        "tables": [_table(1, seq_scan=7, last_autovacuum=1.7e9, n_dead_tup=None)],
        "indexes": [_index(1, "t1_pkey")],
    }
    result = collector.build(rows, _ctx(), None)
    names = {f.name for f in result.families}
    assert "pg_stat_user_tables_seq_scan" in names
    assert "pg_statio_user_tables_heap_blocks_read" in names
    assert "pg_stat_user_indexes_idx_scans" in names
    samples = {s.name: s for f in result.families for s in f.samples}
    assert samples["pg_stat_user_tables_seq_scan"].value == 7.0
    assert samples["pg_stat_user_tables_last_autovacuum"].value == 1.7e9
    assert samples["pg_stat_user_tables_n_dead_tup"].value == 0.0  # NULL column
    assert samples["pg_stat_user_tables_seq_scan"].labels == {
        "datname": "app",
        "schemaname": "public",
        "relname": "t1",
    }
    assert samples["pg_stat_user_indexes_idx_scans_total"].labels["indexrelname"] == "t1_pkey"
    assert _series(result) == SERIES_PER_TABLE + SERIES_PER_INDEX
    counted = {s.labels["state"]: s.value for s in samples_of(result, "dbpulse_tables_count")}
    assert counted == {"exported": 1.0, "omitted": 0.0}


def samples_of(result: Any, name: str) -> list[Any]:
    return [s for f in result.families for s in f.samples if s.name == name]


def test_build_keeps_to_the_allotment_and_reports_its_wants() -> None:
    """With an allotment of 3 tables / 240 series of 500 tables, it exports the 3 largest
    within 240 series, and tells discovery it would want 15 tables (its own top_n)."""
    collector = TablesCollector(top_n=15, max_series=1200)
    tables = [_table(i, heap_bytes=i * BLOCK) for i in range(1, 501)]
    indexes = [_index(i, f"t{i}_{j}") for i in range(1, 501) for j in range(3)]
    allotment = Allotment(top_n=3, max_series=240)
    result = collector.build(
        {"tables": tables, "indexes": indexes}, _ctx(allotment=allotment), None
    )
    assert _series(result) <= 240
    assert _exported(result) == {"t500", "t499", "t498"}  # the largest, 39 series each
    assert result.notices == []
    assert result.state.wants == Wants(items=15, series=15 * 39)
    omitted = samples_of(result, "dbpulse_tables_count")
    assert {s.labels["state"]: s.value for s in omitted}["omitted"] == 497.0


def test_indexes_per_table_are_capped_largest_first() -> None:
    """A table with many indexes exports its largest INDEXES_PER_TABLE only."""
    collector = TablesCollector(top_n=5, max_series=1000)
    indexes = [_index(1, f"i{j:02d}", size=j * BLOCK) for j in range(INDEXES_PER_TABLE + 5)]
    result = collector.build({"tables": [_table(1)], "indexes": indexes}, _ctx(), None)
    fam = samples_of(result, "pg_stat_user_indexes_idx_scans_total")
    assert len(fam) == INDEXES_PER_TABLE
    assert "i14" in {s.labels["indexrelname"] for s in fam}
    assert "i00" not in {s.labels["indexrelname"] for s in fam}


def test_build_holds_a_table_across_polls_through_the_state() -> None:
    """The state returned by one build keeps a table that fell out of the top-N exported."""
    collector = TablesCollector(top_n=1, max_series=1000, hold_seconds=600)
    first = collector.build(
        {"tables": [_table(1, heap_bytes=9 * BLOCK), _table(2)], "indexes": []}, _ctx(100.0), None
    )
    assert _exported(first) == {"t1"}
    assert isinstance(first.state, TablesState)
    second = collector.build(
        {"tables": [_table(1), _table(2, heap_bytes=9 * BLOCK)], "indexes": []},
        _ctx(160.0),
        first.state,
    )
    assert _exported(second) == {"t1", "t2"}


def test_build_notices_when_a_top_table_does_not_fit() -> None:
    """A budget too small for a top-N table says so (once per text, by the poller)."""
    collector = TablesCollector(top_n=5, max_series=40)
    indexes = [_index(1, f"i{j}") for j in range(5)]
    result = collector.build({"tables": [_table(1), _table(2)], "indexes": indexes}, _ctx(), None)
    assert _exported(result) == {"t2"}
    assert result.notices
    assert "max_series" in result.notices[0]


def test_build_with_no_tables_declares_every_family() -> None:
    """An empty database still yields every family (HELP/TYPE visible) and no samples."""
    result = TablesCollector().build({"tables": [], "indexes": []}, _ctx(), None)
    assert len(result.families) == 30 + 3 + 1
    assert _series(result) == 0


def test_bloat_from_statistics_sees_space_vacuum_left_behind() -> None:
    """A 100-page heap holding rows that fit in 10 pages shows about 90 pages of bloat."""
    # 1,000 rows of width 100: (24 + 100 -> 128) + 4 = 132 bytes, 61 rows per page.
    row = _table(1, heap_bytes=100 * BLOCK, reltuples=1000.0, n_live_tup=1000, row_width=100.0)
    needed = 17 * BLOCK  # ceil(1000 / 61)
    assert bloat_bytes(row, BLOCK) == 100 * BLOCK - needed


def test_bloat_falls_back_to_the_dead_row_share() -> None:
    """Without planner statistics the dead rows' share of the heap is the estimate."""
    row = _table(1, heap_bytes=10 * BLOCK, n_live_tup=300, n_dead_tup=100, row_width=None)
    assert bloat_bytes(row, BLOCK) == 10 * BLOCK / 4


def test_bloat_is_never_negative_and_zero_for_an_empty_heap() -> None:
    """A tightly packed heap has no bloat; an empty one neither."""
    packed = _table(1, heap_bytes=BLOCK, reltuples=50.0, n_live_tup=50, row_width=20.0)
    assert bloat_bytes(packed, BLOCK) == 0.0
    assert bloat_bytes(_table(2, heap_bytes=0, n_dead_tup=10), BLOCK) == 0.0


def test_bloat_honours_fillfactor() -> None:
    """At fillfactor 50 the live rows need twice the pages, so less of the heap is bloat."""
    full = _table(1, heap_bytes=100 * BLOCK, reltuples=1000.0, row_width=100.0)
    half = {**full, "fillfactor": 50.0}
    assert bloat_bytes(half, BLOCK) < bloat_bytes(full, BLOCK)


def test_overdue_counts_rows_as_autovacuum_does() -> None:
    """The threshold scales with pg_class.reltuples; n_live_tup only when never analyzed."""
    analyzed = _table(1, reltuples=1000.0, n_live_tup=1701, n_dead_tup=299, vacuum_threshold=10.0)
    assert overdue(analyzed)  # 299 > 10 + 0.2 x 1000
    never = _table(2, reltuples=-1.0, n_live_tup=100, n_dead_tup=100)
    assert overdue(never)  # 100 > 50 + 0.2 x 100
    assert not overdue(_table(3, reltuples=-1.0, n_live_tup=1000, n_dead_tup=100))
