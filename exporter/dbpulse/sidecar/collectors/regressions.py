"""Statements that got slower than their own past, their plans, and advice from them.

Each poll reads the connected database's pg_stat_statements counters without text
(``pg_stat_statements(false)``) and judges every statement against its own baseline
(:mod:`dbpulse.plans.regressions`). A few statements per poll are then planned
(:mod:`dbpulse.sidecar.explain`): the ones that just regressed first, then the top
statements by total time, each at most once per ``explain_period``. A plan is kept
with its shape hash, so a changed shape is an event of its own ("plan flipped from
Index Scan to Seq Scan"), and turned into advice (:mod:`dbpulse.plans.advice`).

Query texts are read only for statements about to be planned or newly regressed
(``pg_stat_statements(true)`` reads the whole text file, see ``statements.py``), used
raw only to EXPLAIN inside ``fetch`` and kept scrubbed. Plans keep no constants: they
are made from parameterised text and scrubbed once more all the same.

It runs per database (EXPLAIN must run in the statement's own database): with
discovery, on every database; without, on the one dbpulse connects to.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from psycopg import sql

from dbpulse.plans import advice
from dbpulse.plans.regressions import Counters, Key, Regression, RegressionRules, observe
from dbpulse.plans.tree import plan_hash, root, scrubbed, summary
from dbpulse.settings import Settings
from dbpulse.sidecar.base import BuildResult, CollectorError, Context, Row, Rows, query
from dbpulse.sidecar.collectors.regressions_view import (
    FLIP_HISTORY,
    PlanRecord,
    RegressionsState,
    debug,
    families,
    flip,
    regression_facts,
)
from dbpulse.sidecar.collectors.statements import (
    MISSING,
    NOT_LOADED,
    SQL_EXTENSION,
    extension_version,
)
from dbpulse.sidecar.explain import attempt, catalog_rows
from dbpulse.sidecar.facts import Facts
from dbpulse.sidecar.scrub import scrub_text

TEXT_MAX = 2000

SQL_COUNTERS = """
SELECT s.dbid::int8 AS dbid, s.userid::int8 AS userid, s.queryid,
    current_database() AS datname, coalesce(r.rolname, s.userid::text) AS "user",
    sum(s.calls)::float8 AS calls, sum(s.{time_column})::float8 AS total_ms
FROM {schema}.pg_stat_statements(false) s
LEFT JOIN pg_roles r ON r.oid = s.userid
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND s.queryid IS NOT NULL
GROUP BY s.dbid, s.userid, s.queryid, r.rolname
"""
SQL_TEXTS = """
SELECT dbid::int8 AS dbid, userid::int8 AS userid, queryid, query
FROM {schema}.pg_stat_statements(true)
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND queryid = ANY(%(ids)s::int8[])
"""


def _key(row: Row) -> Key:
    return (int(row["dbid"]), int(row["userid"]), int(row["queryid"]))


def counters(rows: list[Row]) -> list[Counters]:
    return [
        Counters(
            key=_key(r),
            datname=str(r["datname"]),
            user=str(r["user"]),
            calls=float(r.get("calls") or 0),
            seconds=float(r.get("total_ms") or 0) / 1000.0,
        )
        for r in rows
    ]


@dataclass(frozen=True)
class RegressionsCollector:
    name: str = "regressions"
    rules: RegressionRules = field(default_factory=RegressionRules)
    top_n: int = 20
    explain_enabled: bool = True
    explain_top: int = 10
    explain_per_poll: int = 3
    explain_period: float = 3600.0
    explain_timeout: float = 0.5
    thresholds: advice.Thresholds = field(default_factory=advice.Thresholds)

    # -- I/O ---------------------------------------------------------------------------

    def fetch(self, conn: psycopg.Connection[Row], ctx: Context, state: Any) -> Rows:
        ext = query(conn, SQL_EXTENSION)[0]
        if ext["schema"] is None:
            raise CollectorError(MISSING.format(db=ext["db"]))
        modern = extension_version(ext["version"]) >= (1, 8)

        def in_schema(template: str) -> str:
            column = "total_exec_time" if modern else "total_time"
            return (
                sql.SQL(template.replace("{time_column}", column))
                .format(schema=sql.Identifier(str(ext["schema"])))
                .as_string(conn)
            )

        try:
            raw = query(conn, in_schema(SQL_COUNTERS))
        except psycopg.errors.ObjectNotInPrerequisiteState as exc:
            raise CollectorError(NOT_LOADED) from exc
        rows: Rows = {"database": [{"datname": ext["db"]}], "counters": raw}
        previous: RegressionsState = state or RegressionsState()
        # What to plan must be decided inside the transaction, from this poll's counters;
        # the judge is pure and cheap (a few dict operations per statement, once a
        # minute), and build runs it again on the same rows rather than carry state out.
        _, regressed = observe(previous.tracks, counters(raw), ctx.now, self.rules)
        to_plan = self.to_plan(previous, regressed, raw, ctx.now) if self.explain_enabled else []
        wanted = {r.key for r in regressed[: self.top_n] if r.key not in previous.texts}
        wanted |= set(to_plan)
        if not wanted:
            return rows
        texts = {
            _key(r): str(r["query"])
            for r in query(conn, in_schema(SQL_TEXTS), {"ids": sorted({k[2] for k in wanted})})
            if r.get("query") is not None and _key(r) in wanted
        }
        # Only the scrubbed text leaves fetch; the raw one is for EXPLAIN alone.
        rows["texts"] = [
            {"dbid": k[0], "userid": k[1], "queryid": k[2], "query": scrub_text(t, TEXT_MAX)}
            for k, t in texts.items()
        ]
        rows["plans"] = []
        for key in to_plan:
            rows["plans"].append(self._explain(conn, ctx, key, texts.get(key)))
        rows.update(catalog_rows(conn, [entry["plan"] for entry in rows["plans"]]))
        return rows

    def _explain(
        self, conn: psycopg.Connection[Row], ctx: Context, key: Key, text: str | None
    ) -> Row:
        plan, error = attempt(conn, text, ctx.server_version_num, self.explain_timeout)
        return {"dbid": key[0], "userid": key[1], "queryid": key[2], "plan": plan, "error": error}

    def to_plan(
        self, state: RegressionsState, regressed: list[Regression], raw: list[Row], now: float
    ) -> list[Key]:
        """Which statements to plan this poll: new regressions without a plan since they
        started first, then regressions that just cleared (their kept plan and advice are
        from while they were slow: a fixed index must not be advised for another hour),
        then the top statements by total time whose plan is older than
        ``explain_period``; at most ``explain_per_poll``."""
        chosen: list[Key] = []
        for r in regressed:
            plan = state.plans.get(r.key)
            if plan is None or plan.at < r.since:
                chosen.append(r.key)
        still = {r.key for r in regressed}
        listed = {_key(row) for row in raw}
        for key, track in state.tracks.items():
            since = track.regressed_since
            if since is None or key in still or key not in listed:
                continue
            plan = state.plans.get(key)
            if plan is not None and plan.at >= since:  # planned while it was slow
                chosen.append(key)
        top = sorted(raw, key=lambda row: -float(row.get("total_ms") or 0))[: self.explain_top]
        for row in top:
            key = _key(row)
            plan = state.plans.get(key)
            if key not in chosen and (plan is None or now - plan.at >= self.explain_period):
                chosen.append(key)
        return chosen[: self.explain_per_poll]

    # -- pure --------------------------------------------------------------------------

    def build(self, rows: Rows, ctx: Context, state: Any) -> BuildResult:
        previous: RegressionsState = state or RegressionsState()
        tracks, regressed = observe(
            previous.tracks, counters(rows["counters"]), ctx.now, self.rules
        )
        datname = str(rows["database"][0]["datname"]) if rows.get("database") else ""
        texts = {**previous.texts, **{_key(r): str(r["query"]) for r in rows.get("texts", [])}}
        facts = advice.catalog_facts(rows)
        plans = dict(previous.plans)
        flips = list(previous.flips)
        flips_total = previous.flips_total
        for entry in rows.get("plans", []):
            key = _key(entry)
            record = self._record(entry, facts, ctx.now, plans.get(key))
            old = plans.get(key)
            if old is not None and old.hash and record.hash and old.hash != record.hash:
                flips.append(flip(key, datname, old, record, ctx.now))
                flips_total += 1
            plans[key] = record
        exported = regressed[: self.top_n]
        keep = set(tracks)
        wanted_texts = {r.key for r in exported} | set(plans)
        new_state = RegressionsState(
            tracks=tracks,
            texts={k: v for k, v in texts.items() if k in wanted_texts and k in keep},
            plans={k: v for k, v in plans.items() if k in keep},
            flips=tuple(flips[-FLIP_HISTORY:]),
            flips_total=flips_total,
        )
        return BuildResult(
            families=families(datname, exported, len(regressed), new_state),
            debug=debug(exported, new_state, ctx.now),
            state=new_state,
            facts=Facts(regressions=tuple(regression_facts(exported, new_state))),
        )

    def _record(
        self, entry: Row, facts: advice.CatalogFacts, now: float, old: PlanRecord | None
    ) -> PlanRecord:
        if entry.get("plan") is None:
            # Keep the last good plan to compare against; remember the attempt.
            base = old or PlanRecord(at=now)
            return replace(base, at=now, error=str(entry.get("error") or "no plan"))
        top = root(entry["plan"])
        return PlanRecord(
            at=now,
            hash=plan_hash(top),
            summary=summary(top),
            plan=scrubbed(top),
            findings=tuple(advice.advise(top, facts, self.thresholds)),
        )


def create(settings: Settings) -> RegressionsCollector:
    config = settings.collectors.regressions
    return RegressionsCollector(
        rules=RegressionRules(
            factor=config.factor,
            clear_factor=config.clear_factor,
            min_calls=config.min_calls,
            min_extra_seconds=config.min_extra_seconds,
            recent_window=config.recent_window,
            baseline_half_life=config.baseline_half_life,
        ),
        top_n=config.top_n,
        explain_enabled=config.explain,
        explain_top=config.explain_top,
        explain_per_poll=config.explain_per_poll,
        explain_period=config.explain_period,
        explain_timeout=config.explain_timeout,
    )
