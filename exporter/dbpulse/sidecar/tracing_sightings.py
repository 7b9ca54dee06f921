"""Typed facts from a poll's ``BuildResult`` -> episode sightings, per kind (pure).

- index builds: ``facts.index_builds`` (the progress collector);
- blocking episodes: one per root blocker of ``facts.blocking``, the tree the locks
  collector built (built once, read here);
- slow queries: ``facts.slow_queries`` (the slow_queries collector, on with tracing),
  whose text is literal-free already; only that text ever reaches a sighting;
- regressions: ``facts.regressions`` (the regressions collector): a span per regression
  from when it was judged until it clears; a change of plan while it lasts is a phase
  event (the phase is the plan's one-line summary).
"""

from __future__ import annotations

from collections.abc import Sequence

from dbpulse.inprocess.fingerprint import fingerprint
from dbpulse.sidecar.blocking import BlockingTree
from dbpulse.sidecar.facts import IndexBuild, Regression, SlowQuery
from dbpulse.sidecar.tracing_episodes import Sighting

__all__ = [
    "blocking_sightings",
    "index_build_sightings",
    "regression_sightings",
    "slow_query_sightings",
]


def index_build_sightings(builds: Sequence[IndexBuild], now: float) -> list[Sighting]:
    """One sighting per index build in flight, its phase and ratio."""
    return [
        Sighting(
            key=("index_build", b.pid, b.datname, b.relname),
            started_at=now - b.elapsed_seconds,
            name=f"{b.command} {b.relname}".strip(),
            phase=b.phase or None,
            attributes={
                "db.system.name": "postgresql",
                "db.namespace": b.datname,
                "db.collection.name": b.relname,
                "db.operation.name": b.command,
                "dbpulse.index.name": b.index_relname,
                "dbpulse.pid": b.pid,
                "dbpulse.progress.ratio": b.ratio,
            },
            traceparent=b.traceparent,
        )
        for b in builds
    ]


def blocking_sightings(tree: BlockingTree, now: float) -> list[Sighting]:
    """One sighting per root blocker; it started when its longest waiter began waiting."""
    found = []
    for root in tree.roots:
        waiters = tree.reachable(root)
        if not waiters:
            continue
        root_session = tree.session(root)
        longest = max(tree.session(p).wait_seconds or 0.0 for p in waiters)
        attrs: dict[str, str | bool | int | float] = {
            "db.system.name": "postgresql",
            "db.namespace": root_session.datname or "",
            "dbpulse.blocking.root_pid": root,
            "dbpulse.blocking.root_state": root_session.state or "",
            "dbpulse.blocking.root_application_name": root_session.application_name or "",
            "dbpulse.blocking.waiter_pids": ",".join(str(p) for p in waiters),
            "dbpulse.blocking.waiters": len(waiters),
            "dbpulse.blocking.max_wait_seconds": longest,
        }
        if root_session.query_id is not None:
            attrs["dbpulse.blocking.root_query_id"] = str(root_session.query_id)
        found.append(
            Sighting(
                key=("blocking", root),
                started_at=now - longest,
                name="blocking episode",
                attributes=attrs,
                traceparent=root_session.traceparent,
            )
        )
    return found


def slow_query_sightings(queries: Sequence[SlowQuery], now: float) -> list[Sighting]:
    """One sighting per statement still running past the slow threshold."""
    found = []
    for q in queries:
        fp = fingerprint(q.text)  # the text is literal-free already: nothing left to find
        attrs: dict[str, str | bool | int | float] = {
            "db.system.name": "postgresql",
            "db.namespace": q.datname,
            "db.operation.name": fp.operation,
            "db.query.text": q.text,
            "db.query.summary": f"{fp.operation} {fp.collection}".strip(),
            "dbpulse.pid": q.pid,
            "dbpulse.application_name": q.application_name,
            "dbpulse.slow_query": True,
            "dbpulse.query_text_source": q.text_source,
        }
        if fp.collection:
            attrs["db.collection.name"] = fp.collection
        if q.query_id is not None:
            attrs["dbpulse.query_id"] = str(q.query_id)
        found.append(
            Sighting(
                # query_start tells two statements of one backend apart.
                key=("slow_query", q.pid, q.query_start),
                started_at=now - q.age_seconds,
                name=f"{fp.operation} {fp.collection}".strip(),
                attributes=attrs,
                traceparent=q.traceparent,
            )
        )
    return found


def regression_sightings(regressions: Sequence[Regression]) -> list[Sighting]:
    """One sighting per regressed statement; its plan summary is the episode's phase."""
    found = []
    for fact in regressions:
        r = fact.judged
        fp = fingerprint(fact.text) if fact.text else None
        summary = f"{fp.operation} {fp.collection}".strip() if fp else ""
        attrs: dict[str, str | bool | int | float] = {
            "db.system.name": "postgresql",
            "db.namespace": r.datname,
            "dbpulse.query_id": str(r.queryid),
            "dbpulse.user": r.user,
            "dbpulse.regression.ratio": r.ratio,
            "dbpulse.regression.recent_seconds_per_call": r.recent_seconds_per_call,
            "dbpulse.regression.baseline_seconds_per_call": r.baseline_seconds_per_call,
        }
        if fact.text and fp is not None:
            attrs["db.query.text"] = fact.text
            attrs["db.query.summary"] = summary
            attrs["db.operation.name"] = fp.operation
            if fp.collection:
                attrs["db.collection.name"] = fp.collection
        found.append(
            Sighting(
                key=("regression", r.datname, r.user, r.queryid),
                started_at=r.since,
                name=f"regression {summary}".strip(),
                phase=fact.plan,
                attributes=attrs,
            )
        )
    return found
