"""Who is blocking whom, built once per locks poll from ``pg_blocking_pids()`` rows (pure).

The locks collector exports counts from it and serves it at ``/debug/locks``; tracing
turns its roots into blocking-episode spans. Both read this one tree (``BuildResult.facts``).
It never holds query text, only PostgreSQL's ``query_id`` (14+): statements carry literals.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# A chain deeper than this is cut off in the JSON (it is already an emergency).
MAX_DEPTH = 32
# pg_blocking_pids() reports a lock held by a prepared transaction as pid 0.
PREPARED_XACT_PID = 0


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _seconds(value: Any) -> float | None:
    return None if value is None else max(0.0, float(value))


@dataclass(frozen=True)
class Session:
    """One backend involved in a lock wait (fields None where the server had nothing)."""

    pid: int
    datname: str | None = None
    usename: str | None = None
    application_name: str | None = None
    backend_type: str | None = None
    state: str | None = None
    wait_event_type: str | None = None
    wait_event: str | None = None
    query_id: int | None = None
    xact_age_seconds: float | None = None
    state_age_seconds: float | None = None
    wait_seconds: float | None = None
    traceparent: str | None = None
    blocked_by: tuple[int, ...] = field(default=())

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Session:
        pid = int(row["pid"])
        # Parallel workers' locks are reported under the leader's pid, so a pid can appear
        # more than once, and a session never counts as blocking itself.
        blocked_by = tuple(sorted({int(p) for p in row.get("blocked_by") or () if int(p) != pid}))
        query_id = row.get("query_id")
        return cls(
            pid=pid,
            datname=_text(row.get("datname")),
            usename=_text(row.get("usename")),
            application_name=_text(row.get("application_name")),
            backend_type=_text(row.get("backend_type")),
            state=_text(row.get("state")),
            wait_event_type=_text(row.get("wait_event_type")),
            wait_event=_text(row.get("wait_event")),
            query_id=None if query_id is None else int(query_id),
            xact_age_seconds=_seconds(row.get("xact_age_seconds")),
            state_age_seconds=_seconds(row.get("state_age_seconds")),
            wait_seconds=_seconds(row.get("wait_seconds")),
            traceparent=_text(row.get("traceparent")) or None,
            blocked_by=blocked_by,
        )


@dataclass(frozen=True)
class BlockingTree:
    """Sessions involved in lock waits, indexed by pid, plus who waits on whom."""

    sessions: dict[int, Session]
    # blocker pid -> pids waiting on it (sorted, de-duplicated)
    waiters: dict[int, list[int]]
    # waiting pid -> pids blocking it
    blockers: dict[int, list[int]]
    roots: list[int]
    # waiting sessions not reachable from any root: a cycle (a deadlock the server has
    # not detected yet, deadlock_timeout) has no root to hang from.
    unrooted: list[int]

    def session(self, pid: int) -> Session:
        return self.sessions.get(pid) or Session(pid=pid)

    def waiting_pids(self) -> list[int]:
        return sorted(self.blockers)

    def reachable(self, root: int) -> list[int]:
        """Every session waiting, directly or not, on ``root``."""
        seen: set[int] = set()
        stack = [root]
        while stack:
            for child in self.waiters.get(stack.pop(), ()):
                if child not in seen and child != root:
                    seen.add(child)
                    stack.append(child)
        return sorted(seen)

    def node(self, pid: int, depth: int = 0, path: frozenset[int] = frozenset()) -> dict[str, Any]:
        s = self.session(pid)
        node: dict[str, Any] = {
            "pid": pid,
            "prepared_transaction": pid == PREPARED_XACT_PID,
            "datname": s.datname,
            "usename": s.usename,
            "application_name": s.application_name,
            "backend_type": s.backend_type,
            "state": s.state,
            "wait_event_type": s.wait_event_type,
            "wait_event": s.wait_event,
            "query_id": s.query_id,
            "xact_age_seconds": s.xact_age_seconds,
            "idle_in_transaction_seconds": (
                s.state_age_seconds
                if s.state is not None and s.state.startswith("idle in transaction")
                else None
            ),
            "wait_seconds": s.wait_seconds if pid in self.blockers else None,
            "blocked_by": self.blockers.get(pid, []),
        }
        children = [p for p in self.waiters.get(pid, []) if p not in path and p != pid]
        if depth >= MAX_DEPTH:
            node["waiters_truncated"] = len(children)
            node["waiters"] = []
        else:
            inner = path | {pid}
            node["waiters"] = [self.node(child, depth + 1, inner) for child in children]
        return node

    def as_json(self, now: float) -> dict[str, Any]:
        return {
            "generated_at": now,
            "waiting_sessions": len(self.blockers),
            "roots": [self.node(pid) for pid in self.roots],
            "unrooted": [self.node(pid) for pid in self.unrooted],
        }


def build_tree(rows: Iterable[dict[str, Any]]) -> BlockingTree:
    """Index the blocking rows; pure, so cycles and duplicates are unit-tested."""
    sessions: dict[int, Session] = {}
    blockers: dict[int, list[int]] = {}
    waiters: dict[int, set[int]] = defaultdict(set)
    for row in rows:
        session = Session.from_row(row)
        sessions[session.pid] = session
        if session.blocked_by:
            blockers[session.pid] = list(session.blocked_by)
            for blocker in session.blocked_by:
                waiters[blocker].add(session.pid)
    roots = sorted(pid for pid in waiters if pid not in blockers)
    reachable: set[int] = set()
    stack = list(roots)
    while stack:
        pid = stack.pop()
        for child in waiters.get(pid, ()):
            if child not in reachable:
                reachable.add(child)
                stack.append(child)
    unrooted = sorted(pid for pid in blockers if pid not in reachable)
    return BlockingTree(
        sessions=sessions,
        waiters={pid: sorted(kids) for pid, kids in waiters.items()},
        blockers=blockers,
        roots=roots,
        unrooted=unrooted,
    )
