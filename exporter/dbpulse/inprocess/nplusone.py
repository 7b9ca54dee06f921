"""N+1 detection: one statement repeated per row of an earlier result.

The unit of work is the request scope opened by the middleware when there is one, else
the ORM ``Session``'s current transaction. Two sources feed it:

- lazy loads, recognised in the ORM ``do_orm_execute`` event (``lazy_loaded_from`` is
  set and the loader path names the relationship, e.g. ``User.posts``);
- inside a request scope, the same SELECT fingerprint repeated (``queries`` calls
  ``statement_repeated``), which also catches loops of ``session.get()``.

Each pattern is reported once per unit: a counter, one warning naming the relationship,
the application line and the fix, and a span event on the current OpenTelemetry span.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Protocol

from opentelemetry import trace
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from dbpulse.inprocess.callsite import caller
from dbpulse.inprocess.compat import LAZY_LOADED_FROM, ORM_LOAD_OPTIONS, unproxied_engine
from dbpulse.inprocess.guard import HookGuard
from dbpulse.inprocess.metrics import MetricSet
from dbpulse.inprocess.scope import current_scope, note_finding, note_lazy_load
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
    ) -> None:
        self.pool_name = pool_name
        self.threshold = max(2, threshold)
        self.strict = strict
        self.guard = guard
        self._counter = metrics.n_plus_one
        self._sessions: weakref.WeakKeyDictionary[Session, _SessionUnit] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def _session_unit(self, session: Session) -> _SessionUnit:
        transaction = session.get_transaction()
        with self._lock:  # lazy loads only; sessions of many threads share the map
            unit = self._sessions.get(session)
            if unit is None or unit.transaction is not transaction:
                # A new transaction is a new unit of work: counts start over.
                unit = _SessionUnit(transaction)
                self._sessions[session] = unit
            return unit

    def lazy_load(self, session: Session, relationship: str, collection: str) -> None:
        """One lazy load of ``relationship`` (e.g. ``User.posts``) in ``session``."""
        scope = current_scope()
        note_lazy_load(scope, relationship)
        unit: _Unit | None = scope.unit() if scope is not None else None
        where = "request"
        if unit is None:
            unit = self._session_unit(session)
            where = "session"
        key = ("lazy", relationship)
        count = unit.repeats.get(key, 0) + 1
        unit.repeats[key] = count
        if count >= self.threshold and key not in unit.reported:
            unit.reported.add(key)
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

    def statement_repeated(self, unit: _Unit, statement: str, collection: str) -> None:
        """One more run of a SELECT fingerprint inside a request scope."""
        key = (self.pool_name, statement)
        count = unit.repeats.get(key, 0) + 1
        unit.repeats[key] = count
        if count >= self.threshold and key not in unit.reported:
            unit.reported.add(key)
            self._report(
                kind="repeated statement",
                collection=collection,
                unit="request",
                fingerprint=statement[:1000],
                fix=(
                    "fetch the rows in one statement (WHERE ... IN (...)) or eager-load the "
                    "relationship with selectinload()/joinedload()"
                ),
            )

    def _report(self, *, kind: str, collection: str, unit: str, fix: str, **extra: str) -> None:
        site = caller()
        self._counter.labels(self.pool_name, collection).inc()
        what = extra.get("relationship") or extra.get("fingerprint", "")
        message = (
            f"N+1 query pattern ({kind}): {what} ran {self.threshold}+ times in one "
            f"{unit} at {site}; {fix}"
        )
        note_finding(
            current_scope(),
            NPlusOneFinding(
                kind=kind,
                pattern=what,
                relationship=extra.get("relationship", ""),
                collection=collection,
                caller=site,
                fix=fix,
                message=message,
            ),
        )
        span = trace.get_current_span()
        if span.is_recording():
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
            raise NPlusOneError(message)
        get_logger(pool_name=self.pool_name).warning(
            "N+1 query pattern",
            kind=kind,
            db_collection_name=collection,
            count=self.threshold,
            unit_of_work=unit,
            caller=site,
            fix=fix,
            **extra,
        )


# -- the ORM listener, shared by every instrumented engine -----------------------------

_DETECTORS: weakref.WeakKeyDictionary[Engine, NPlusOneDetector] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _engine_of(bind: Any) -> Any:
    # engine.execution_options(...) returns an OptionEngine proxying the real one.
    return unproxied_engine(getattr(bind, "engine", bind))


def _on_do_orm_execute(state: Any) -> None:
    detector: NPlusOneDetector | None = None
    try:
        # Runs for every ORM statement in the process: return early unless it is a lazy
        # load. (ORMExecuteState.lazy_loaded_from raises for non-SELECT statements, so
        # read the load options it would read.)
        load_options = state.execution_options.get(ORM_LOAD_OPTIONS)
        if getattr(load_options, LAZY_LOADED_FROM, None) is None:
            return
        engine = _engine_of(state.session.get_bind(mapper=state.bind_mapper))
        detector = _DETECTORS.get(engine)
        if detector is None:
            return
        path = state.loader_strategy_path
        prop = getattr(path, "prop", None) if path is not None else None
        if prop is None:
            return
        relationship = str(prop)
        table = getattr(prop.mapper, "persist_selectable", None)
        collection = str(getattr(table, "fullname", "") or "")
        detector.lazy_load(state.session, relationship, collection)
    except NPlusOneError:
        raise
    except Exception as exc:  # noqa: BLE001 - hooks never raise into the application
        if detector is not None:
            detector.guard.failed("do_orm_execute", exc)


def attach(engine: Engine, detector: NPlusOneDetector) -> None:
    """Watch lazy loads on ``engine`` (installs the Session listener on first use)."""
    with _LOCK:
        _DETECTORS[engine] = detector
        if not event.contains(Session, "do_orm_execute", _on_do_orm_execute):
            event.listen(Session, "do_orm_execute", _on_do_orm_execute)


def detach(engine: Engine | None) -> None:
    """Stop watching ``engine``; the Session listener goes with the last engine."""
    with _LOCK:
        if engine is not None:
            _DETECTORS.pop(engine, None)
        if not _DETECTORS and event.contains(Session, "do_orm_execute", _on_do_orm_execute):
            event.remove(Session, "do_orm_execute", _on_do_orm_execute)
