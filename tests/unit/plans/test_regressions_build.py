"""The regressions collector's pure build over plain rows: series, flips, errors, spans."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dbpulse.plans.regressions import RegressionRules
from dbpulse.sidecar.base import BuildResult, Context
from dbpulse.sidecar.collectors.regressions import RegressionsCollector
from dbpulse.sidecar.tracing import SidecarTracer
from tests.otel import attrs

COLLECTOR = RegressionsCollector(rules=RegressionRules(min_calls=10, recent_window=300))
KEY = {"dbid": 5, "userid": 10, "queryid": 77}
TEXT = "SELECT id FROM orders WHERE customer_id = $1"


def counters(calls: float, ms: float) -> dict[str, Any]:
    return {**KEY, "datname": "app", "user": "web", "calls": calls, "total_ms": ms}


def plan(node: str, index: str | None = None) -> list[dict[str, Any]]:
    top: dict[str, Any] = {"Node Type": node, "Relation Name": "orders", "Schema": "public",
                           "Alias": "orders", "Plan Rows": 10, "Plan Width": 8,
                           "Filter": "(customer_id = $1)"}  # fmt: skip
    if index:
        top["Index Name"] = index
        top["Index Cond"] = top.pop("Filter")
    return [{"Plan": top}]


def rows(calls: float, ms: float, **extra: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {"database": [{"datname": "app"}], "counters": [counters(calls, ms)], **extra}


def run(state: Any, data: dict[str, list[Any]], now: float) -> BuildResult:
    return COLLECTOR.build(data, Context("t", 160000, now), state)


def sample(result: BuildResult, name: str, **labels: str) -> float | None:
    found = [
        s.value
        for fam in result.families
        for s in fam.samples
        if s.name == name and labels.items() <= s.labels.items()
    ]
    return found[0] if found else None


def test_regression_series_flip_and_clear_over_polls() -> None:
    """Baseline poll, a regressed poll with a flipped plan, then a cleared one: series,
    the flip counter, zero-filled advice and debug entries follow."""
    texts = [{**KEY, "query": TEXT}]
    fast = [{**KEY, "plan": plan("Index Scan", "orders_customer_idx")}]
    first = run(None, rows(100, 100.0, texts=texts, plans=fast), 1000.0)
    assert sample(first, "pg_stat_statements_regressions", datname="app") == 0.0
    assert sample(first, "pg_stat_statements_regression_ratio") is None
    assert sample(first, "pg_plan_advice_findings", rule="sort-spills") == 0.0

    slow = [{**KEY, "plan": plan("Seq Scan")}]
    second = run(first.state, rows(150, 100.0 + 50 * 20.0, plans=slow), 1060.0)
    assert sample(second, "pg_stat_statements_regression_ratio", queryid="77") == 20.0
    assert sample(second, "pg_stat_statements_regressions", datname="app") == 1.0
    assert sample(second, "pg_stat_statements_plan_flips_total", datname="app") == 1.0
    (entry,) = second.debug["regressions"]
    assert entry["query"] == TEXT
    assert entry["plan"]["summary"] == "Seq Scan on orders"
    (flip,) = second.debug["flips"]
    assert flip["message"] == (
        "plan flipped from Index Scan using orders_customer_idx on orders to Seq Scan on orders"
    )
    assert second.facts.regressions is not None
    assert [r.plan for r in second.facts.regressions] == ["Seq Scan on orders"]

    third = run(second.state, rows(400, 1100.0 + 250 * 1.0), 1500.0)
    assert sample(third, "pg_stat_statements_regression_ratio") is None
    assert sample(third, "pg_stat_statements_regressions", datname="app") == 0.0


def test_failed_explain_keeps_the_last_good_plan() -> None:
    """An EXPLAIN that failed records its error but keeps the previous plan to compare."""
    good = run(None, rows(100, 100.0, plans=[{**KEY, "plan": plan("Seq Scan")}]), 1000.0)
    failed = [{**KEY, "plan": None, "error": "InsufficientPrivilege: permission denied"}]
    after = run(good.state, rows(110, 110.0, plans=failed), 1060.0)
    (entry,) = after.debug["plans"]
    assert entry["summary"] == "Seq Scan on orders"
    assert entry["error"] == "InsufficientPrivilege: permission denied"
    assert sample(after, "pg_stat_statements_plan_flips_total") == 0.0


def test_evicted_statement_leaves_state_and_plans() -> None:
    """A statement gone from pg_stat_statements drops its track, text and plan."""
    first = run(None, rows(100, 100.0, plans=[{**KEY, "plan": plan("Seq Scan")}]), 1000.0)
    empty = run(first.state, {"database": [{"datname": "app"}], "counters": []}, 1060.0)
    assert empty.state.tracks == {}
    assert empty.state.plans == {}
    assert empty.debug["plans"] == []


def test_regression_span_lasts_until_cleared_with_plan_changes_as_events() -> None:
    """A regression is one span from when it was judged until it clears; a plan change
    while it lasts is an event; the span carries the scrubbed text and the ratio."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = SidecarTracer(provider, target="t")
    texts = [{**KEY, "query": TEXT}]
    polls = [
        (rows(100, 100.0), 1000.0),
        # fetch reads the text of a new regression and plans it (see to_plan)
        (rows(150, 1100.0, texts=texts, plans=[{**KEY, "plan": plan("Seq Scan")}]), 1060.0),
        (rows(200, 1100.0 + 50 * 20.0, plans=[{**KEY, "plan": plan("Bitmap Heap Scan")}]), 1120.0),
        (rows(900, 2100.0 + 700 * 1.0), 1500.0),
    ]
    state = None
    for data, now in polls:
        result = run(state, data, now)
        state = result.state
        tracer.observe("regressions", result, Context("t", 160000, now))
    (span,) = exporter.get_finished_spans()
    assert span.name == "regression SELECT orders"
    a = attrs(span)
    assert a["db.query.text"] == TEXT
    assert a["dbpulse.query_id"] == "77"
    assert float(a["dbpulse.regression.ratio"]) >= 2.0
    phases = [attrs(e)["dbpulse.phase"] for e in span.events]
    assert phases == ["Seq Scan on orders", "Bitmap Heap Scan on orders"]


def test_a_cleared_regression_is_planned_again_before_its_plan_ages_out() -> None:
    """The poll a regression clears in plans that statement again, even within
    explain_period, so advice from its slow plan does not outlive the fix."""
    slow = [{**KEY, "plan": plan("Seq Scan")}]
    fast = [{**KEY, "plan": plan("Index Scan", "orders_customer_idx")}]
    first = run(None, rows(100, 100.0, plans=fast), 1000.0)
    second = run(first.state, rows(150, 100.0 + 50 * 20.0, plans=slow), 1060.0)
    assert second.state.tracks[(5, 10, 77)].regressed_since == 1060.0
    still_slow = counters(200, 1100.0 + 50 * 20.0)
    assert COLLECTOR.to_plan(second.state, [], [still_slow], 1070.0) == [(5, 10, 77)]
    # Nothing had regressed: a plan 70 s old is kept until explain_period.
    assert COLLECTOR.to_plan(first.state, [], [still_slow], 1070.0) == []
