"""What a collector is: ``fetch`` does the I/O, ``build`` turns rows into a ``BuildResult``.

The contract, kept by every collector and relied on by the runtime:

- ``fetch(conn, ctx, state) -> Rows`` runs inside the poll's read-only transaction and
  does I/O only: queries, and nothing computed from their results beyond what must not
  leave the transaction (raw query text is scrubbed there).
- ``build(rows, ctx, state) -> BuildResult`` is pure: no I/O, no clock (``ctx.now``), no
  mutation of the collector. It is unit-tested with plain dict rows, including NULL
  columns and rows shaped like an older server's.
- State that lives across polls (a top-N selection, held sets, text caches) is owned by
  the runtime: it passes the previous ``BuildResult.state`` (``None`` before the first
  successful build) to the next ``fetch`` and ``build``. Collectors keep none themselves.
- Other parts of the sidecar (tracing) read ``BuildResult.facts`` (typed), never rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from dbpulse.sidecar.facts import Facts

if TYPE_CHECKING:
    import psycopg
    from prometheus_client.metrics_core import Metric

Row = dict[str, Any]
Rows = dict[str, list[Row]]


@dataclass(frozen=True)
class Allotment:
    """The items (``top_n``) and series one database may export of a target's budget."""

    top_n: int
    max_series: int


@dataclass(frozen=True)
class Context:
    """What ``fetch`` and ``build`` may know besides the rows and the state."""

    target: str
    server_version_num: int
    now: float
    # The server's connectable, non-template databases (sorted), read at most once per
    # poll round by the runtime, for collectors with ``needs_databases`` (zero-filling).
    databases: tuple[str, ...] = ()
    # "host:port" of the server as the poll's connection reached it: postgres_exporter's
    # ``server`` label, which its families carry and dbpulse's same-named families copy.
    server: str = ""
    # With discovery, this database's part of a per-database collector's target-wide
    # budget (``sidecar/allotment.py``); None: the collector's own settings apply.
    allotment: Allotment | None = None


@dataclass
class BuildResult:
    families: list[Metric]
    # JSON-able detail served at /debug/<collector> (e.g. the blocking tree).
    debug: Any = None
    # Warnings the poller logs once per distinct text (e.g. "extension missing").
    notices: list[str] = field(default_factory=list)
    # The state the runtime passes to this collector's next fetch and build.
    state: Any = None
    # Typed observations for the rest of the sidecar (tracing), never raw rows.
    facts: Facts = field(default_factory=Facts)


class CollectorError(Exception):
    """A collector cannot run here; the message tells the operator what to do."""


class Collector(Protocol):
    """A collector may also set ``needs_databases = True`` (a class attribute) to get
    ``ctx.databases`` filled; the runtime reads the list only for those."""

    @property
    def name(self) -> str: ...

    def fetch(self, conn: psycopg.Connection[Row], ctx: Context, state: Any) -> Rows: ...

    def build(self, rows: Rows, ctx: Context, state: Any) -> BuildResult: ...


def server_label(conn: psycopg.Connection[Row]) -> str:
    """postgres_exporter's ``server`` label: the host (or socket directory) and port."""
    return f"{conn.info.host}:{conn.info.port}"


def query(conn: psycopg.Connection[Row], sql: str, params: Any = None) -> list[Row]:
    """Run one catalog query and return its rows as dicts."""
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return list(cur.fetchall())
