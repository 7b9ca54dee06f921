"""Every collector in the registry, and the other version-gated SQL, on each PostgreSQL major.

``pg_matrix`` is the session's Debian server by default and one cluster per major with
``DBPULSE_TEST_PG_VERSIONS=13,14,15,16,17,18`` (``make test-pg-matrix``). On each, one
scene is set up and read once: a table with rows and statements in pg_stat_statements,
a session idle in a transaction holding a row lock, a ``CREATE INDEX CONCURRENTLY``
waiting on it (a build in progress and a lock wait with a blocker), an active
``pg_sleep`` (a slow query) and a ``COPY`` in flight. Every collector of ``FACTORIES``
and ``TRACING`` then runs its real fetch and build twice (the second run reads texts
and carries state), so a collector added to the registry is covered here without a
line changed; doctor, watch-migration's poll and catalog, lint-migrations' --dsn read,
generic plans and a probe run beside them.
"""

# layout-note: one scene per server read once, then one test per concern; splitting the
# layout-note: module would set the scene up (and start the clusters) once per module.
from __future__ import annotations

import json
import re
import threading
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics

from dbpulse.doctor.fetch import fetch_facts
from dbpulse.http import start_server
from dbpulse.localpg import LocalPostgres
from dbpulse.migrationlint import live
from dbpulse.settings import ProbeSettings, Settings, load_settings
from dbpulse.sidecar.base import BuildResult, Collector
from dbpulse.sidecar.collectors import FACTORIES, TRACING
from dbpulse.sidecar.connection import ConnectionManager
from dbpulse.sidecar.daemon import Sidecar
from dbpulse.sidecar.explain import attempt
from dbpulse.watch.catalog import read_catalog
from dbpulse.watch.fetch import poll, run_probe
from dbpulse.watch.model import ProbeReading
from tests.integration.collector_helpers import background, runner, wait_for

DBNAME = "matrix"
SLOW_SECONDS = 0.2
COLLECTORS = sorted(FACTORIES) + sorted(TRACING)
# Texts as pg_stat_statements keeps them, planned by the doctor and the regressions collector.
PLANNED = (
    "SELECT count(*) FROM items WHERE owner_id = $1",
    "UPDATE items SET note = $1 WHERE id = $2",
)


@dataclass
class Scene:
    """What one server answered; errors are kept as text so every test can report them."""

    version: int
    results: dict[str, list[BuildResult]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def major(self) -> int:
        return self.version // 10000

    def families(self, collector: str) -> set[str]:
        return {fam.name for result in self.results[collector] for fam in result.families}


def _prepare(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE owners (id int PRIMARY KEY)")
        # owner_id has no index: a migrations finding on every version.
        conn.execute(
            "CREATE TABLE items (id int PRIMARY KEY, owner_id int REFERENCES owners, note text)"
        )
        conn.execute("INSERT INTO owners SELECT g FROM generate_series(1, 10) g")
        conn.execute(
            "INSERT INTO items SELECT g, 1 + g % 10, md5(g::text) FROM generate_series(1, 2000) g"
        )
        for i in range(5):
            conn.execute("SELECT count(*) FROM items WHERE owner_id = %s", (i,))
            conn.execute("UPDATE items SET note = note WHERE id = %s", (i,))
        conn.execute("ANALYZE items")
        for table in ("vacuumed", "analyzed"):
            conn.execute(f"CREATE TABLE {table} (id int, pad text)")
            conn.execute(
                f"INSERT INTO {table} SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g"
            )
        conn.execute("DELETE FROM vacuumed WHERE id % 2 = 0")


@pytest.fixture(scope="module")
def scene(pg_matrix: LocalPostgres) -> Scene:
    """One server's answers to every collector, read with work in flight."""
    with psycopg.connect(pg_matrix.dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DBNAME} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DBNAME}")
    dsn = pg_matrix.dsn_for(DBNAME)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        version = conn.info.server_version
    _prepare(dsn)
    found = Scene(version)
    with ExitStack() as stack:
        holder = stack.enter_context(psycopg.connect(dsn))
        holder.execute("INSERT INTO items VALUES (100000, 1, 'held')")  # stays open
        build = stack.enter_context(
            background(dsn, "CREATE INDEX CONCURRENTLY items_note ON items (note)")
        )
        sleeper = stack.enter_context(background(dsn, "SELECT pg_sleep(30)"))
        # Throttled to a page per 100 ms, so both are still running when read.
        slow_dsn = f"{dsn}?options=-c%20vacuum_cost_delay%3D100%20-c%20vacuum_cost_limit%3D1"
        stack.enter_context(background(slow_dsn, "VACUUM vacuumed"))
        stack.enter_context(background(slow_dsn, "ANALYZE analyzed"))
        copier = stack.enter_context(psycopg.connect(dsn, autocommit=True))
        copy = stack.enter_context(copier.cursor().copy("COPY owners FROM STDIN"))
        copy.write_row((500,))
        with psycopg.connect(dsn, autocommit=True) as watcher:
            for sql, params in (
                (
                    "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'",
                    (build.pid,),
                ),
                ("SELECT 1 FROM pg_stat_progress_vacuum WHERE relid = 'vacuumed'::regclass", ()),
                ("SELECT 1 FROM pg_stat_progress_analyze WHERE relid = 'analyzed'::regclass", ()),
                # Older than the slow threshold, so the slow_queries collector reports it.
                (
                    "SELECT 1 FROM pg_stat_activity WHERE pid = %s"
                    " AND clock_timestamp() - query_start > make_interval(secs => %s)",
                    (sleeper.pid, SLOW_SECONDS * 2),
                ),
            ):
                wait_for(partial(_row, watcher, sql, params))
        found.extras["holder_pid"] = holder.info.backend_pid
        found.extras["build_pid"] = build.pid
        _read_everything(dsn, found)
    with psycopg.connect(pg_matrix.dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DBNAME} WITH (FORCE)")
    return found


def _row(conn: psycopg.Connection[Any], sql: str, params: tuple[Any, ...]) -> Any:
    return conn.execute(sql, params).fetchone()


def _every_collector(settings: Settings) -> dict[str, Collector]:
    """One of each, all alive at once: the runner keys state by id(), which a collector
    freed early would hand on to the next one."""
    return {
        name: (FACTORIES[name] if name in FACTORIES else TRACING[name][0])(settings)
        for name in COLLECTORS
    }


def _read_everything(dsn: str, found: Scene) -> None:
    settings = load_settings(
        dsn=dsn,
        telemetry={"slow_query_seconds": SLOW_SECONDS},
        collectors={"statements": {"top_n": 5000, "max_series": 100000}},
    )
    with runner(dsn) as run:
        for name, collector in _every_collector(settings).items():
            try:
                # Twice: the second run reads with the first one's state (texts, holds).
                found.results[name] = [run(collector), run(collector)]
            except Exception as exc:  # reported per collector by the tests
                found.errors[name] = f"{type(exc).__name__}: {exc}"
    conns = ConnectionManager(dsn, target="t", connect_timeout=5)
    try:
        found.extras["watch"] = poll(conns, [])
        probe = ProbeSettings(
            name="items", sql="SELECT count(*)::int8 AS items, 1.5::numeric AS ratio FROM items"
        )
        found.extras["probe"] = run_probe(conns, probe)
        with conns.transaction(5.0) as conn:  # read-only, like the poll's
            found.extras["plans"] = {
                text: attempt(conn, text, found.version, 1.0) for text in PLANNED
            }
            found.extras["catalog"] = read_catalog(conn)
    finally:
        conns.close()
    found.extras["doctor"] = fetch_facts(dsn)
    found.extras["lint_live"] = live.fetch(dsn)


@pytest.mark.parametrize("name", COLLECTORS)
def test_every_collector_runs_on_this_version(scene: Scene, name: str) -> None:
    """The collector's real fetch and build succeed on this server, twice in a row."""
    assert name not in scene.errors, f"PostgreSQL {scene.major}: {scene.errors.get(name)}"
    first, second = scene.results[name]
    assert isinstance(first, BuildResult)
    assert isinstance(second, BuildResult)
    # Every family renders in both exposition formats (label counts, values, names).
    registry = CollectorRegistry()
    registry.register(_Families(second.families))
    text = generate_latest(registry).decode()
    assert all(fam.name in text for fam in second.families)
    assert openmetrics_text(registry).decode().endswith("# EOF\n")


openmetrics_text: Callable[[CollectorRegistry], bytes] = openmetrics.generate_latest
CORE = ("activity", "statements", "locks", "progress", "database", "migrations")


@pytest.mark.parametrize("name", CORE)
def test_core_collectors_export_families(scene: Scene, name: str) -> None:
    """The collectors every server has (no version gate on the whole view) export families."""
    assert scene.families(name), f"{name} exported no family on PostgreSQL {scene.major}"


def test_no_family_has_two_types(scene: Scene) -> None:
    """Across the whole registry on this version, one family name has one type."""
    types: dict[str, set[str]] = {}
    for results in scene.results.values():
        for fam in results[-1].families:
            types.setdefault(fam.name, set()).add(fam.type)
    assert {name: t for name, t in types.items() if len(t) > 1} == {}


class _Families:
    """A registry collector serving fixed families (exposition checks only)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families

    def describe(self) -> list[Metric]:
        return []


def test_statements_families_and_texts(scene: Scene) -> None:
    """pg_stat_statements' columns of this version (total_time or total_exec_time) are read
    and the texts of the second poll are literal-free."""
    families = scene.families("statements")
    assert any(name.startswith("pg_stat_statements") for name in families), families
    statements = scene.results["statements"][1].debug["statements"]
    texts = [s["query"] for s in statements if s["query"]]
    assert any("FROM items WHERE owner_id = $1" in text for text in texts), texts
    assert not any("held" in text for text in texts)


def test_database_session_counters_only_from_14(scene: Scene) -> None:
    """pg_stat_database's session accounting (14+) is exported where the server has it."""
    sessions = {name for name in scene.families("database") if "session" in name}
    if scene.major >= 14:
        assert sessions
    else:
        assert not sessions


def test_progress_views_of_this_version(scene: Scene) -> None:
    """The index build and the COPY in flight are reported; each view only where it exists,
    with the vacuum columns of this version."""
    result = scene.results["progress"][0]
    families = scene.families("progress")
    builds = result.facts.index_builds or ()
    assert "items" in [b.relname for b in builds]
    copy = {name for name in families if name.startswith("pg_stat_progress_copy")}
    copying = [
        s.labels
        for fam in result.families
        if fam.name.startswith("pg_stat_progress_copy")
        for s in fam.samples
    ]
    if scene.major >= 14:
        assert copy
        assert any(labels.get("relname") == "owners" for labels in copying)
    else:
        assert not copy
    vacuuming = _sampled(result, "pg_stat_progress_vacuum", "vacuumed")
    if scene.major >= 17:
        assert {"num_dead_item_ids", "dead_tuple_bytes", "indexes_total"} <= vacuuming
    else:
        assert {"num_dead_tuples", "max_dead_tuples"} <= vacuuming
    assert "sample_blks_total" in _sampled(result, "pg_stat_progress_analyze", "analyzed")


def _sampled(result: BuildResult, prefix: str, relname: str) -> set[str]:
    """The columns of ``prefix``'s families with a sample for ``relname``."""
    return {
        s.name.removeprefix(prefix + "_")
        for fam in result.families
        if fam.name.startswith(prefix)
        for s in fam.samples
        if s.labels.get("relname") == relname
    }


def test_debug_views_show_what_is_in_flight(scene: Scene) -> None:
    """/debug/activity lists the session idle in its transaction and /debug/progress the
    index build, vacuum and analyze in flight (objects, never null)."""
    activity = scene.results["activity"][0].debug
    (held,) = [s for s in activity["sessions"] if s["pid"] == scene.extras["holder_pid"]]
    assert held["state"] == "idle in transaction"
    assert held["xact_age_seconds"] > 0
    operations = scene.results["progress"][0].debug["operations"]
    in_flight = {(op["view"], op["relname"]) for op in operations}
    assert {("create_index", "items"), ("vacuum", "vacuumed"), ("analyze", "analyzed")} <= in_flight
    build = next(op for op in operations if op["view"] == "create_index")
    assert build["pid"] == scene.extras["build_pid"]
    assert build["phase"].startswith("waiting for")


def test_locks_tree_and_slow_queries(scene: Scene) -> None:
    """The lock wait has its blocker in the tree, and the pg_sleep is a slow query with a
    query ID where the server has one (14+)."""
    tree = scene.results["locks"][0].debug
    assert tree["waiting_sessions"] >= 1
    slow = scene.results["slow_queries"][1].facts.slow_queries or ()
    sleeping = [q for q in slow if "pg_sleep" in q.text]
    assert sleeping, [q.text for q in slow]
    assert (sleeping[0].query_id is not None) == (scene.major >= 14)


def test_doctor_watch_and_probe(scene: Scene) -> None:
    """doctor reads its facts and plans the top statements, watch-migration sees the build
    and its lock wait, and a probe's numeric columns are read, on this server."""
    doctor = scene.extras["doctor"]
    assert doctor.server_version == scene.version
    assert doctor.pg_stat_statements_probe == "readable"
    watch = scene.extras["watch"]
    assert [b.relname for b in watch.builds] == ["items"]
    assert watch.waits
    probe: ProbeReading = scene.extras["probe"]
    assert probe.error == ""
    assert probe.values


def test_migration_catalog_reads(scene: Scene) -> None:
    """watch-migration's catalog sees the build's index (still invalid) and the foreign key,
    and lint-migrations --dsn reads table sizes and column types, on this server."""
    catalog = scene.extras["catalog"]
    assert catalog.indexes["items_note"] == ("items", False)
    assert catalog.constraints[("items", "items_owner_id_fkey")] == ("foreign key", True)
    lint = scene.extras["lint_live"]
    assert lint.server_version_num == scene.version
    assert lint.rows["items"] >= 2000
    assert lint.columns[("items", "note")].name == "text"


def test_generic_plans_of_parameterised_texts(scene: Scene) -> None:
    """A pg_stat_statements-style text is planned without running it, in the read-only
    transaction: EXPLAIN (GENERIC_PLAN) on 16+, PREPARE and EXPLAIN EXECUTE on 13-15."""
    for text, (plan, error) in scene.extras["plans"].items():
        assert error is None, (text, error)
        assert "items" in json.dumps(plan), text


def test_threads_left_behind(scene: Scene) -> None:
    """The scene's background statements ended with it (no thread outlives the fixture)."""
    assert scene.results
    assert not [t for t in threading.enumerate() if t.name == "bg-sql" and t.is_alive()]


def test_sidecar_serves_every_collector(pg_matrix: LocalPostgres) -> None:
    """The whole sidecar (connection, database list, every registry collector enabled)
    polls this server and /metrics reports each collector's success."""
    enabled = {name: {"enabled": True} for name in FACTORIES}
    sidecar = Sidecar.build(load_settings(dsn=pg_matrix.dsn, collectors=enabled))
    server, thread = start_server("127.0.0.1", 0, sidecar.endpoints())
    try:
        outcomes = sidecar.poller.run_all_once()
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
    finally:
        server.shutdown()
        thread.join(5)
        sidecar.close()
    assert outcomes == dict.fromkeys(FACTORIES, True)
    for name in FACTORIES:
        assert re.search(
            rf'^(dbpulse|pg_scrape)_collector_success{{collector="{name}"[^}}]*}} 1\.0$', text, re.M
        ), name


def test_statements_with_an_extension_older_than_the_server(pg_matrix: LocalPostgres) -> None:
    """pg_stat_statements 1.7 (total_time, before ALTER EXTENSION UPDATE) is read on this
    server as well as its own version is: the variant follows the installed extension."""
    name = "matrix_ext17"
    with psycopg.connect(pg_matrix.dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    dsn = pg_matrix.dsn_for(name)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements VERSION '1.7'")
            conn.execute("SELECT count(*) FROM pg_class WHERE relpages > %s", (7,))
        settings = load_settings(
            dsn=dsn, collectors={"statements": {"top_n": 5000, "max_series": 100000}}
        )
        collector = FACTORIES["statements"](settings)
        with runner(dsn) as run:
            run(collector)
            result = run(collector)
    finally:
        with psycopg.connect(pg_matrix.dsn, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    texts = [s["query"] for s in result.debug["statements"] if s["query"]]
    assert any("FROM pg_class WHERE relpages > $1" in text for text in texts), texts
    assert any(s["seconds"] > 0 for s in result.debug["statements"])


def test_a_pg_monitor_role_runs_every_collector(pg_matrix: LocalPostgres) -> None:
    """A login role with pg_monitor and nothing else (README's "Role and grants") runs
    every collector of the registry on this server."""
    role = "matrix_monitor"
    with psycopg.connect(pg_matrix.dsn, autocommit=True) as admin:
        admin.execute(f"DROP ROLE IF EXISTS {role}")
        admin.execute(f"CREATE ROLE {role} LOGIN IN ROLE pg_monitor")
    dsn = pg_matrix.dsn_for(user=role)
    settings = load_settings(dsn=dsn, telemetry={"slow_query_seconds": SLOW_SECONDS})
    errors: dict[str, str] = {}
    try:
        with runner(dsn) as run:
            for name, collector in _every_collector(settings).items():
                try:
                    run(collector)
                except Exception as exc:  # reported below, every collector tried
                    errors[name] = f"{type(exc).__name__}: {exc}"
    finally:
        with psycopg.connect(pg_matrix.dsn, autocommit=True) as admin:
            admin.execute(f"DROP ROLE {role}")
    assert errors == {}
