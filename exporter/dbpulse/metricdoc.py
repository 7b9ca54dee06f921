"""Generates the README's metric tables and module map from what the code really does.

``python -m dbpulse.metricdoc --write README.md`` starts a throwaway cluster, runs every
sidecar collector once and an instrumented engine through a few statements, then writes
each family's name, type, labels, help and the module that builds it (recorded from the
running code by ``docgen.origins``) between the README's metric markers, and the module
map (``docgen.layout``) between its layout markers. ``--layout-only`` skips the cluster.
Tests regenerate both and fail when the README is stale. The command exits 1 when a
module of 300 lines or more has no ``# layout-note:`` (after writing the README).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from prometheus_client.metrics_core import Metric

from dbpulse.docgen.layout import missing_notes, render_layout
from dbpulse.docgen.origins import choose_origins, record_origins
from dbpulse.http.barecounter import BareCounter
from dbpulse.sidecar.collectors.pg_settings import DOC_ROW as SETTINGS_ROW

START = "<!-- metrics:start -->"
END = "<!-- metrics:end -->"
LAYOUT_START = "<!-- layout:start -->"
LAYOUT_END = "<!-- layout:end -->"
# Families named after data rather than code (prefix -> (row name, meaning)).
COLLAPSED = {"pg_settings_": SETTINGS_ROW}
# Sources are linked from the README at the repository root; pyproject fixes this folder.
SOURCE_DIR = "exporter/dbpulse"


def _exposed_name(family: Metric) -> str:
    if isinstance(family, BareCounter):  # postgres_exporter's counters keep their names
        return family.name
    if family.type == "counter":
        return f"{family.name}_total"
    if family.type == "info":
        return f"{family.name}_info"
    return family.name


def _labels(family: Metric) -> list[str]:
    # A family without samples still knows its label names when it was declared with
    # them (the *MetricFamily classes keep them; Counter/Gauge/Histogram too).
    names: set[str] = set(getattr(family, "_labelnames", ()) or ())
    for sample in family.samples:
        names.update(k for k in sample.labels if k not in {"le", "quantile"})
    return sorted(names)


def render_table(
    families: Iterable[Metric], title: str, sources: Mapping[str, str] | None = None
) -> str:
    """A Markdown table of families, sorted by exposed name (pure).

    With ``sources`` (family name -> module path under the package) each row links the
    module that builds it; a family missing from ``sources`` is an error, never a blank.
    """
    rows: dict[str, str] = {}
    for family in families:
        name = _exposed_name(family)
        documentation = family.documentation
        # A family per server setting: one row for all, whatever the server's version.
        for prefix, (shown, meaning) in COLLAPSED.items():
            if name.startswith(prefix):
                name, documentation = shown, meaning
        if name.startswith(("process_", "python_")) or name in rows:
            continue
        labels = ", ".join(_labels(family)) or "—"
        doc = re.sub(r"\s+", " ", documentation).replace("|", "\\|")
        source = ""
        if sources is not None:
            if family.name not in sources:
                raise LookupError(f"no dbpulse module was seen building {family.name}")
            source = f" [{sources[family.name]}]({SOURCE_DIR}/{sources[family.name]}) |"
        rows[name] = f"| `{name}` |{source} {family.type} | {labels} | {doc} |"
    columns = ["metric", "source", "type", "labels", "meaning"]
    if sources is None:
        columns.remove("source")
    header = f"**{title}**\n\n| {' | '.join(columns)} |\n|{'---|' * len(columns)}\n"
    return header + "\n".join(rows[k] for k in sorted(rows)) + "\n"


def splice(readme: str, block: str, start: str = START, end: str = END) -> str:
    """Replace the text between the ``start`` and ``end`` markers with ``block``."""
    first, last = readme.index(start), readme.index(end)
    return readme[: first + len(start)] + "\n" + block + readme[last:]


def sidecar_families(dsn: str) -> list[Metric]:
    """What a sidecar serves after one poll of every collector against ``dsn``.

    The only place that knows how the sidecar runtime is started; adapt it, not the
    tables, when the runtime changes.
    """
    from dbpulse.settings import load_settings
    from dbpulse.sidecar.daemon import Sidecar

    # One custom probe, so that its family (and the module building it) is listed too.
    probe = {"name": "example", "sql": "SELECT 1 AS value"}
    sidecar = Sidecar.build(load_settings(dsn=dsn, interval=60, probes=[probe]))
    try:
        sidecar.poller.run_all_once()
        return list(sidecar.registry.collect())
    finally:
        sidecar.close()


def inprocess_families(dsn: str) -> list[Metric]:
    """What ``instrument(engine)`` registers, after one statement against ``dsn``."""
    from prometheus_client import CollectorRegistry
    from sqlalchemy import create_engine, text

    from dbpulse import instrument

    registry = CollectorRegistry()
    engine = create_engine(dsn.replace("postgresql://", "postgresql+psycopg://", 1))
    instrumentation = instrument(engine, pool_name="doc", registry=registry)
    try:
        with engine.begin() as conn:
            conn.execute(text("SELECT 1"))
        app = list(registry.collect())
        # The registry has no public map of declared label names; this private one has
        # been stable across prometheus_client releases and only feeds documentation.
        declared = {
            name: getattr(collector, "_labelnames", ())
            for collector, names in registry._collector_to_names.items()
            for name in names
        }
        for family in app:
            if not family.samples and family.name in declared:
                family._labelnames = tuple(declared[family.name])  # type: ignore[attr-defined]
    finally:
        instrumentation.uninstrument()
        engine.dispose()
    return app


def multitarget_families(dsn: str) -> list[Metric]:
    """What a many-targets dbpulse serves: one ``/probe`` answer, then its ``/metrics``.

    Like ``sidecar_families``, the one place that knows how that runtime is driven.
    """
    from prometheus_client.parser import text_string_to_metric_families

    from dbpulse.settings import load_settings
    from dbpulse.sidecar.multitarget import MultiTarget

    target = {"name": "doc", "dsn": dsn, "discovery": True}
    multi = MultiTarget(load_settings(interval=60, targets=[target]))
    multi.start()
    try:
        status, body, _ = multi.probe({"target": ["doc"]})
        if status != 200:
            raise RuntimeError(f"/probe answered {status}: {body.decode(errors='replace')}")
        return [*text_string_to_metric_families(body.decode()), *multi.collect()]
    finally:
        multi.stop()


def collect_live(dsn: str) -> tuple[list[Metric], list[Metric], list[Metric]]:
    """Families the sidecar, a many-targets dbpulse and ``instrument()`` emit against ``dsn``.

    The many-targets list holds only the families a single sidecar does not have.
    """
    side = sidecar_families(dsn)
    known = {family.name for family in side}
    multi = [f for f in multitarget_families(dsn) if f.name not in known]
    return side, multi, inprocess_families(dsn)


def render_live(dsn: str) -> str:
    """Both metric tables, from a live run against ``dsn``, each row naming its module."""
    with record_origins() as built:
        side, multi, app = collect_live(dsn)
    sources = choose_origins(built)
    return (
        render_table(side, "Sidecar (`dbpulse sidecar`)", sources)
        + "\n"
        + render_table(
            multi, "Many databases (`/probe` and `/metrics`), besides the above", sources
        )
        + "\n"
        + render_table(app, "In-process (`dbpulse.instrument(engine)`)", sources)
    )


def _root_of(readme: Path) -> Path:
    return readme.resolve().parent


def main() -> int:
    from dbpulse.localpg import LocalPostgres
    from dbpulse.logging import configure_logging

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", type=Path, help="README to update in place")
    parser.add_argument(
        "--layout-only", action="store_true", help="only the module map (no PostgreSQL needed)"
    )
    args = parser.parse_args()
    configure_logging("error", "console")  # the runs below log as a sidecar would
    root = _root_of(args.write) if args.write else Path.cwd()
    layout = render_layout(root)
    metrics = None
    if not args.layout_only:
        with LocalPostgres() as cluster:
            import psycopg

            with psycopg.connect(cluster.dsn, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            metrics = render_live(cluster.dsn)
    if args.write:
        text = splice(args.write.read_text(encoding="utf-8"), layout, LAYOUT_START, LAYOUT_END)
        if metrics is not None:
            text = splice(text, metrics)
        args.write.write_text(text, encoding="utf-8")
    else:
        print(layout if metrics is None else f"{metrics}\n{layout}")
    unexplained = missing_notes(root)
    for module in unexplained:
        print(
            f"{module.path}: {module.lines} lines and no '# layout-note:'; split it or say why",
            file=sys.stderr,
        )
    return 1 if unexplained else 0


if __name__ == "__main__":
    raise SystemExit(main())
