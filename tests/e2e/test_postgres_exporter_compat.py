"""dbpulse as a drop-in for postgres_exporter: Debian's 0.11.1 and dbpulse side by side.

Both exporters watch one PostgreSQL; a real Prometheus scrapes both (it negotiates
OpenMetrics, which dbpulse speaks and postgres_exporter does not), and the text format
is read directly too. Every family postgres_exporter exposes by default must be stored
under the same name, with the same type and label names, from dbpulse; deterministic
values must agree.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from dbpulse.localpg import LocalPostgres, free_port
from tests.e2e.prometheus import Prometheus
from tests.integration.collector_helpers import wait_for
from tests.sidecar_process import SidecarProcess

BINARY = Path("/usr/bin/prometheus-postgres-exporter")

# The exporter's own process, not PostgreSQL: Go runtime, HTTP handler and build info
# (dbpulse has its own process_* and dbpulse_build_info).
EXPORTER_RUNTIME = ("go_", "promhttp_", "process_", "postgres_exporter_build_info")
# Families whose label VALUES are PostgreSQL facts both exporters must spell alike.
SAME_SERIES = (
    "pg_locks_count",
    "pg_stat_activity_count",
    "pg_stat_activity_max_tx_duration",
    "pg_database_size_bytes",
    "pg_stat_database_xact_commit",
    "pg_stat_database_conflicts_confl_lock",
    "pg_up",
)

if not BINARY.exists() and os.environ.get("CI") != "true":
    pytest.skip(
        "prometheus-postgres-exporter not installed (apt-get install prometheus-postgres-exporter)",
        allow_module_level=True,
    )

# Settings a client sends at connection startup: lib/pq sets extra_float_digits=2 for
# postgres_exporter's own session; dbpulse reports the server's value.
CLIENT_SESSION_SETTINGS = {"pg_settings_extra_float_digits"}
_TYPE = re.compile(r"^# TYPE (\S+) (\S+)$")
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass
class Family:
    """One stored metric name: its type and its series (label dicts → value)."""

    type: str = "untyped"
    series: dict[tuple[tuple[str, str], ...], float] = field(default_factory=dict)

    @property
    def label_names(self) -> frozenset[str]:
        return frozenset(name for key in self.series for name, _ in key)


def parse_text(body: str) -> dict[str, Family]:
    """Text format 0.0.4 as Prometheus stores it: sample names, typed by their # TYPE line."""
    types: dict[str, str] = {}
    out: dict[str, Family] = defaultdict(Family)
    for line in body.splitlines():
        if m := _TYPE.match(line):
            types[m[1]] = m[2]
        elif line and not line.startswith("#") and (m := _SAMPLE.match(line)):
            labels = tuple(sorted(_LABEL.findall(m[2] or "")))
            out[m[1]].series[labels] = float(m[3])
    for name, family in out.items():
        typ = types.get(name)
        for suffix in ("_sum", "_count", "_bucket"):  # summaries' and histograms' series
            if typ is None and name.endswith(suffix):
                typ = types.get(name.removesuffix(suffix))
        family.type = "unknown" if typ in (None, "untyped") else str(typ)
    return dict(out)


def scrape(url: str) -> dict[str, Family]:
    request = urllib.request.Request(url, headers={"Accept": "text/plain; version=0.0.4"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return parse_text(resp.read().decode())


def stored(prom: Prometheus, job: str) -> dict[str, Family]:
    """What Prometheus stored from ``job``: series names, label sets, metadata types."""
    series = prom.api("series", **{"match[]": f'{{job="{job}"}}'})["data"]
    out: dict[str, Family] = defaultdict(Family)
    for labels in series:
        name = labels.pop("__name__")
        labels.pop("job", None)
        labels.pop("instance", None)
        out[name].series[tuple(sorted(labels.items()))] = math.nan
    meta = prom.api("targets/metadata", match_target=f'{{job="{job}"}}')["data"]
    types = {m["metric"]: m["type"] for m in meta}
    for name, family in out.items():
        # OpenMetrics names a counter family without _total (its samples carry it);
        # Prometheus finds a series' metadata under the family name the same way.
        base = name.removesuffix("_total")
        family.type = types.get(name) or types.get(base, "unknown")
    return dict(out)


def _expected(pe: dict[str, Family]) -> dict[str, Family]:
    return {
        name: fam
        for name, fam in pe.items()
        if not name.startswith(EXPORTER_RUNTIME)
        and not name.startswith(("scrape_", "up"))  # Prometheus' own per-target series
    }


def _scraped(prom: Prometheus, job: str) -> bool:
    """Two good scrapes of the job stored (every family of a full page is there)."""
    result = prom.query(f'count_over_time(up{{job="{job}"}}[1m]) >= 2 and up{{job="{job}"}} == 1')
    return bool(result["data"]["result"])


@dataclass
class Pair:
    pg: LocalPostgres
    db: str
    pe_url: str
    dbpulse: SidecarProcess
    prom: Prometheus


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    """One cluster watched by postgres_exporter and dbpulse, both scraped by Prometheus."""
    with LocalPostgres() as pg:
        db = f"compat_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db}"')
        with psycopg.connect(pg.dsn_for(db), autocommit=True) as conn:
            conn.execute("CREATE TABLE t (id int)")
        port = free_port()
        env = {**os.environ, "DATA_SOURCE_NAME": pg.dsn + "?sslmode=disable"}
        exporter = subprocess.Popen(
            [str(BINARY), f"--web.listen-address=127.0.0.1:{port}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        dbpulse = SidecarProcess(pg.dsn)
        # postgres_exporter 0.11.1 takes about a second per scrape (it sleeps on its
        # first connection): Prometheus' default timeout at a 1 s interval is too short.
        prom = Prometheus(
            {"pe": f"127.0.0.1:{port}", "dbpulse": f"127.0.0.1:{dbpulse.port}"},
            job_options={"scrape_interval": "3s", "scrape_timeout": "3s"},
        )
        try:
            pe_url = f"http://127.0.0.1:{port}/metrics"
            wait_for(lambda: "pg_stat_database_xact_commit" in scrape(pe_url), timeout=30)
            dbpulse.wait_for_text(lambda t: "pg_stat_database_xact_commit{" in t, timeout=30)
            wait_for(lambda: _scraped(prom, "pe") and _scraped(prom, "dbpulse"), timeout=60)
            yield Pair(pg, db, pe_url, dbpulse, prom)
        finally:
            prom.stop()
            dbpulse.stop()
            exporter.terminate()
            exporter.wait(timeout=20)


def _compare(pe: dict[str, Family], ours: dict[str, Family]) -> list[str]:
    problems = []
    for name, fam in sorted(_expected(pe).items()):
        mine = ours.get(name)
        if mine is None:
            problems.append(f"{name}: missing")
        elif mine.type != fam.type:
            problems.append(f"{name}: type {mine.type}, postgres_exporter {fam.type}")
        elif mine.label_names != fam.label_names:
            problems.append(
                f"{name}: labels {sorted(mine.label_names)}, postgres_exporter "
                f"{sorted(fam.label_names)}"
            )
    return problems


def test_every_default_family_is_stored_alike_through_prometheus(pair: Pair) -> None:
    """Prometheus (negotiating OpenMetrics) stores each postgres_exporter default family from dbpulse under the same name, type and label names."""
    pe = stored(pair.prom, "pe")
    ours = stored(pair.prom, "dbpulse")
    assert len(_expected(pe)) >= 40, sorted(pe)  # postgres_exporter's output was really read
    errors = {
        t["labels"]["job"]: t["lastError"]
        for t in pair.prom.api("targets")["data"]["activeTargets"]
    }
    assert errors == {"pe": "", "dbpulse": ""}
    # dbpulse was read as OpenMetrics (a counter's family name has no _total there).
    meta = pair.prom.api("targets/metadata", match_target='{job="dbpulse"}')["data"]
    assert "pg_exporter_scrapes" in {m["metric"] for m in meta}
    assert _compare(pe, ours) == []


def test_every_default_family_matches_in_text_format(pair: Pair) -> None:
    """Read as text format 0.0.4, dbpulse exposes each default family with postgres_exporter's name, type and labels."""
    pe = scrape(pair.pe_url)
    ours = scrape(pair.dbpulse.url + "/metrics")
    assert pe["pg_stat_database_xact_commit"].type == "counter"
    assert _compare(pe, ours) == []


def test_label_values_are_spelled_alike(pair: Pair) -> None:
    """Databases, lock modes, states, datids and the server label carry the same values in both."""
    pe = scrape(pair.pe_url)
    ours = scrape(pair.dbpulse.url + "/metrics")
    for name in SAME_SERIES:
        assert set(ours[name].series) == set(pe[name].series), name


def test_deterministic_values_agree(pair: Pair) -> None:
    """Sizes agree within a tolerance and reset times, checksum NaNs and settings exactly."""
    pe = scrape(pair.pe_url)
    ours = scrape(pair.dbpulse.url + "/metrics")
    for key, value in pe["pg_database_size_bytes"].series.items():
        assert abs(ours["pg_database_size_bytes"].series[key] - value) <= 1 << 20, key
    for name in ("pg_stat_database_stats_reset", "pg_stat_database_checksum_failures"):
        for key, value in pe[name].series.items():
            theirs = ours[name].series[key]
            assert (math.isnan(value) and math.isnan(theirs)) or theirs == value, (name, key)
    settings = [n for n in pe if n.startswith("pg_settings_")]
    assert len(settings) > 200
    for name in settings:
        if name in CLIENT_SESSION_SETTINGS:
            continue
        assert ours[name].series == pe[name].series, name
    for name in ("pg_stat_bgwriter_stats_reset_total", "pg_static"):
        assert ours[name].series == pe[name].series, name
    assert ours["pg_up"].series == pe["pg_up"].series == {(): 1.0}


def test_counters_move_together(pair: Pair) -> None:
    """Rows inserted and transactions committed in one database raise both exporters' counters by the same amount."""
    key = None
    pe0 = scrape(pair.pe_url)
    for labels in pe0["pg_stat_database_tup_inserted"].series:
        if ("datname", pair.db) in labels:
            key = labels
    assert key is not None
    ours0 = pair.dbpulse.wait_for_text(lambda t: f'datname="{pair.db}"' in t)
    ours0_fams = parse_text(ours0)

    def delta(fams: dict[str, Family], before: dict[str, Family], name: str) -> float:
        assert key is not None
        return fams[name].series[key] - before[name].series[key]

    with psycopg.connect(pair.pg.dsn_for(pair.db), autocommit=True) as conn:
        for i in range(25):
            conn.execute("INSERT INTO t SELECT generate_series(1, 20) + %s", (i,))

    def settled() -> tuple[dict[str, Family], dict[str, Family]] | None:
        pe1, ours1 = scrape(pair.pe_url), scrape(pair.dbpulse.url + "/metrics")
        done = all(
            delta(f, b, "pg_stat_database_tup_inserted") == 500
            for f, b in ((pe1, pe0), (ours1, ours0_fams))
        )
        return (pe1, ours1) if done else None

    pe1, ours1 = wait_for(settled, timeout=30, interval=0.5)
    commits_pe = delta(pe1, pe0, "pg_stat_database_xact_commit")
    commits_ours = delta(ours1, ours0_fams, "pg_stat_database_xact_commit")
    assert commits_pe >= 25
    assert commits_ours >= 25
