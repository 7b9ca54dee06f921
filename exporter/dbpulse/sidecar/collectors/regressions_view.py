"""What the regressions collector shows (pure): its state, metric families and debug page.

``regressions.py`` fetches and judges; this module renders: the worst regressions as
series under ``top_n``, zero-filled advice counts per rule, plan flips as a counter, and
``/debug/regressions`` (= ``/debug/plans``) with scrubbed texts, plans and advice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from dbpulse.plans import advice
from dbpulse.plans.regressions import Key, Regression, Track
from dbpulse.sidecar import facts

LABELS = ["datname", "user", "queryid"]
# Flips kept for /debug/plans, newest last.
FLIP_HISTORY = 50


@dataclass(frozen=True)
class PlanRecord:
    at: float
    hash: str | None = None
    summary: str | None = None
    plan: Any = None  # scrubbed EXPLAIN JSON
    findings: tuple[advice.Finding, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class RegressionsState:
    tracks: dict[Key, Track] = field(default_factory=dict)
    texts: dict[Key, str] = field(default_factory=dict)
    plans: dict[Key, PlanRecord] = field(default_factory=dict)
    flips: tuple[dict[str, Any], ...] = ()
    flips_total: float = 0.0


def families(
    datname: str, exported: list[Regression], count: int, state: RegressionsState
) -> list[Metric]:
    ratio = GaugeMetricFamily(
        "pg_stat_statements_regression_ratio",
        "recent time per call / the statement's own baseline (worst statements)",
        labels=LABELS,
    )
    recent = GaugeMetricFamily(
        "pg_stat_statements_regression_recent_seconds_per_call",
        "recent mean execution time per call of a regressed statement",
        labels=LABELS,
    )
    baseline = GaugeMetricFamily(
        "pg_stat_statements_regression_baseline_seconds_per_call",
        "baseline mean execution time per call of a regressed statement",
        labels=LABELS,
    )
    for r in exported:
        labels = [r.datname, r.user, str(r.queryid)]
        ratio.add_metric(labels, r.ratio)
        recent.add_metric(labels, r.recent_seconds_per_call)
        baseline.add_metric(labels, r.baseline_seconds_per_call)
    total = GaugeMetricFamily(
        "pg_stat_statements_regressions",
        "statements whose time per call regressed against their baseline",
        labels=["datname"],
    )
    total.add_metric([datname], float(count))
    flips = CounterMetricFamily(
        "pg_stat_statements_plan_flips",
        "times a planned statement's plan changed shape",
        labels=["datname"],
    )
    flips.add_metric([datname], state.flips_total)
    findings = GaugeMetricFamily(
        "pg_plan_advice_findings",
        "findings of plan advice over the statements' latest plans, per rule",
        labels=["datname", "rule"],
    )
    per_rule = dict.fromkeys(advice.RULES, 0.0)
    for record in state.plans.values():
        for finding in record.findings:
            per_rule[finding.rule] = per_rule.get(finding.rule, 0.0) + 1
    for rule, n in per_rule.items():
        findings.add_metric([datname, rule], n)
    return [ratio, recent, baseline, total, flips, findings]


def debug(exported: list[Regression], state: RegressionsState, now: float) -> dict[str, Any]:
    def plan_view(key: Key) -> dict[str, Any] | None:
        record = state.plans.get(key)
        if record is None:
            return None
        return {
            "planned_at": record.at,
            "plan_hash": record.hash,
            "summary": record.summary,
            "error": record.error,
            "advice": [f.as_dict() for f in record.findings],
            "plan": record.plan,
        }

    return {
        "generated_at": now,
        "regressions": [
            {
                "datname": r.datname,
                "user": r.user,
                "queryid": str(r.queryid),
                "ratio": r.ratio,
                "recent_seconds_per_call": r.recent_seconds_per_call,
                "baseline_seconds_per_call": r.baseline_seconds_per_call,
                "recent_calls": r.recent_calls,
                "since": r.since,
                "query": state.texts.get(r.key),
                "plan": plan_view(r.key),
            }
            for r in exported
        ],
        "plans": [
            {"queryid": str(key[2]), "query": state.texts.get(key), **(plan_view(key) or {})}
            for key in sorted(state.plans, key=lambda k: -state.plans[k].at)
        ],
        "flips": list(state.flips),
    }


def flip(key: Key, datname: str, old: PlanRecord, new: PlanRecord, now: float) -> dict[str, Any]:
    return {
        "at": now,
        "datname": datname,
        "queryid": str(key[2]),
        "from": old.summary,
        "to": new.summary,
        "from_hash": old.hash,
        "to_hash": new.hash,
        "message": f"plan flipped from {old.summary} to {new.summary}",
    }


def regression_facts(exported: list[Regression], state: RegressionsState) -> list[facts.Regression]:
    """The exported regressions as tracing reads them (scrubbed text, plan summary)."""
    return [
        facts.Regression(
            judged=r,
            text=state.texts.get(r.key),
            plan=state.plans[r.key].summary if r.key in state.plans else None,
        )
        for r in exported
    ]
