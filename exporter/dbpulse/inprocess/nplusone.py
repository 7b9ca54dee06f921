"""N+1 detection: one statement repeated per row of an earlier result.

The unit of work is the request scope opened by the middleware when there is one, else
the ORM ``Session``'s current transaction. The statement hook (``queries``) feeds it
every SELECT, at no cost beyond one dict lookup for those that are not lazy loads:

- lazy loads, recognised by the ORM's load options on the statement
  (``_lazy_loaded_from`` is set; the loader path names the relationship, e.g.
  ``User.posts``);
- inside a request scope, the same SELECT fingerprint repeated, which also catches loops
  of ``session.get()``.

No ``Session.do_orm_execute`` listener: one would slow every ORM statement in the
process (see ``compat.lazy_load_relationship``). The call site is looked up only when a
pattern crosses the threshold, never per statement.

Each pattern is reported once per unit: a counter and a span event on the current
OpenTelemetry span every time, and one warning naming the relationship, the application
line (and template line) and the fix, at most once per pattern per ``log_interval``
(``ratelimit``), with the number left out since the last one.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Protocol

from opentelemetry import trace
from sqlalchemy.orm import Session

from dbpulse.inprocess.callsite import caller
from dbpulse.inprocess.compat import lazy_load_relationship
from dbpulse.inprocess.guard import HookGuard
from dbpulse.inprocess.metrics import MetricSet
from dbpulse.inprocess.ratelimit import WarningLimiter
from dbpulse.inprocess.scope import (
    QueryScope,
    current_scope,
    note_finding,
    note_lazy_load,
)
from dbpulse.inprocess.scope import (
    recording as recording_scopes,
)
from dbpulse.logging import get_logger

__all__ = ["NPlusOneDetector", "NPlusOneError", "NPlusOneFinding"]


class NPlusOneError(RuntimeError):
    """Raised instead of logging when an instrumentation runs in strict mode (tests)."""


@dataclass(frozen=True)
class NPlusOneFinding:
    """One reported N+1 pattern, as recording scopes (the pytest plugin) keep it."""

    kind: str  # "lazy load" or "repeated statement"
    pattern: str  # the relationship (User.posts) or the statement's fingerprint
    relationship: str  # "" for a repeated statement
    collection: str
    caller: str
    fix: str
    message: str


class _Unit(Protocol):
    repeats: dict[object, int]
    reported: set[object]


class _Entry(Protocol):
    """What the detector reads of the statement hook's cached entry."""

    fp: Any
    collection: str


@dataclass(eq=False)
class _SessionUnit:
    """Counts for a Session's current transaction (the unit outside any request)."""

    transaction: Any
    repeats: dict[object, int] = field(default_factory=dict)
    reported: set[object] = field(default_factory=set)


class NPlusOneDetector:
    """Counts repeats per unit of work for one instrumented engine and reports once."""

    def __init__(
        self,
        pool_name: str,
        metrics: MetricSet,
        guard: HookGuard,
        *,
        threshold: int,
        strict: bool,
        log_interval: float = 60.0,
    ) -> None:
        self.pool_name = pool_name
        self.threshold = max(2, threshold)
        self.strict = strict
        self.guard = guard
        self._counter = metrics.n_plus_one
        self._limiter = WarningLimiter(log_interval)
        self._sessions: weakref.WeakKeyDictionary[Session, _SessionUnit] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        # RelationshipProperty -> ("User.posts", "posts"): mapper attributes live as long
        # as the mapping, so a plain dict keeps the per-load work to one lookup.
        self._names: dict[Any, tuple[str, str]] = {}

    def _session_unit(self, session: Session) -> _SessionUnit:
        transaction = session.get_transaction()
        with self._lock:  # lazy loads only; sessions of many threads share the map
            unit = self._sessions.get(session)
            if unit is None or unit.transaction is not transaction:
                # A new transaction is a new unit of work: counts start over.
                unit = _SessionUnit(transaction)
                self._sessions[session] = unit
            return unit

    def _name(self, prop: Any) -> tuple[str, str]:
        named = self._names.get(prop)
        if named is None:
            table = getattr(prop.mapper, "persist_selectable", None)
            named = (str(prop), str(getattr(table, "fullname", "") or ""))
            self._names[prop] = named
        return named

    def lazy_load(self, context: Any, loaded_from: Any, current: QueryScope | None) -> None:
        """One lazy-load statement, run for the object whose ``InstanceState`` is
        ``loaded_from``, in the request scope ``current`` (or None)."""
        prop = lazy_load_relationship(context)
        if prop is None:
            return
        if current is not None:  # recording scopes (the pytest plugin) count every load
            note_lazy_load(current, self._name(prop)[0])
        unit: _Unit | None = current.unit() if current is not None else None
        where = "request"
        if unit is None:
            session = loaded_from.session
            if session is None:
                return
            unit = self._session_unit(session)
            where = "session"
        count = unit.repeats.get(prop, 0) + 1
        unit.repeats[prop] = count
        if count >= self.threshold and prop not in unit.reported:
            unit.reported.add(prop)
            relationship, collection = self._name(prop)
            self._report(
                kind="lazy load",
                collection=collection,
                unit=where,
                relationship=relationship,
                fix=(
                    f"eager-load it: .options(selectinload({relationship})) for a collection, "
                    f"or joinedload({relationship}) for a many-to-one"
                ),
            )

    def statement_repeated(self, unit: _Unit, entry: _Entry) -> None:
        """One more run of a SELECT (the hook's cached entry) inside a request scope."""
        count = unit.repeats.get(entry, 0) + 1
        unit.repeats[entry] = count
        if count >= self.threshold and entry not in unit.reported:
            unit.reported.add(entry)
            self._report(
                kind="repeated statement",
                collection=entry.collection,
                unit="request",
                fingerprint=entry.fp.text[:1000],
                fix=(
                    "fetch the rows in one statement (WHERE ... IN (...)) or eager-load the "
                    "relationship with selectinload()/joinedload()"
                ),
            )

    def _message(self, kind: str, what: str, unit: str, site: str, fix: str) -> str:
        """The finding in one sentence: a test's failure and strict mode's error."""
        return (
            f"N+1 query pattern ({kind}): {what} ran {self.threshold}+ times in one {unit} "
            f"at {site}; {fix}"
        )

    def _report(self, *, kind: str, collection: str, unit: str, fix: str, **extra: str) -> None:
        self._counter.labels(self.pool_name, collection).inc()
        what = extra.get("relationship") or extra.get("fingerprint", "")
        site: str | None = None
        scope = current_scope()
        if next(recording_scopes(scope), None) is not None:
            # A test's query budget names the pattern, its line and its fix.
            site = caller()
            note_finding(
                scope,
                NPlusOneFinding(
                    kind=kind,
                    pattern=what,
                    relationship=extra.get("relationship", ""),
                    collection=collection,
                    caller=site,
                    fix=fix,
                    message=self._message(kind, what, unit, site, fix),
                ),
            )
        span = trace.get_current_span()
        recording = span.is_recording()
        suppressed = None if self.strict else self._limiter.admit((kind, what))
        if not (recording or self.strict or suppressed is not None):
            return  # counted; the log line for this pattern went out this interval
        if site is None:
            site = caller()
        if recording:
            span.add_event(
                "db.n_plus_one",
                {
                    "db.collection.name": collection,
                    "dbpulse.pattern": what,
                    "dbpulse.n_plus_one.kind": kind,
                    "dbpulse.n_plus_one.relationship": extra.get("relationship", ""),
                    # Reported when the count reaches the threshold, once per unit.
                    "dbpulse.n_plus_one.count": self.threshold,
                    "code.location": site,
                    "dbpulse.threshold": self.threshold,
                },
            )
        if self.strict:
            raise NPlusOneError(self._message(kind, what, unit, site, fix))
        if suppressed is None:
            return
        get_logger("dbpulse.inprocess", pool_name=self.pool_name).warning(
            "N+1 query pattern",
            kind=kind,
            db_collection_name=collection,
            count=self.threshold,
            unit_of_work=unit,
            caller=site,
            fix=fix,
            suppressed=suppressed,
            log_interval_seconds=self._limiter.interval,
            **extra,
        )
