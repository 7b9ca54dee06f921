"""Generates the README's metric list from what the code really emits.

``python -m dbpulse.metricdoc --write README.md`` starts a throwaway cluster, runs every
sidecar collector once and an instrumented engine through a few statements, then writes
each family's name, type, labels and help between the README's metric markers. A test
regenerates the list and fails when the README is stale.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable
from pathlib import Path

from prometheus_client.metrics_core import Metric

START = "<!-- metrics:start -->"
END = "<!-- metrics:end -->"


def _exposed_name(family: Metric) -> str:
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


def render_table(families: Iterable[Metric], title: str) -> str:
    """A Markdown table of families, sorted by exposed name (pure)."""
    rows: dict[str, str] = {}
    for family in families:
        name = _exposed_name(family)
        if name.startswith(("process_", "python_")) or name in rows:
            continue
        labels = ", ".join(_labels(family)) or "—"
        doc = re.sub(r"\s+", " ", family.documentation).replace("|", "\\|")
        rows[name] = f"| `{name}` | {family.type} | {labels} | {doc} |"
    header = f"**{title}**\n\n| metric | type | labels | meaning |\n|---|---|---|---|\n"
    return header + "\n".join(rows[k] for k in sorted(rows)) + "\n"


def splice(readme: str, block: str) -> str:
    """Replace the text between the metric markers with ``block``."""
    start, end = readme.index(START), readme.index(END)
    return readme[: start + len(START)] + "\n" + block + readme[end:]


def collect_live(dsn: str) -> tuple[list[Metric], list[Metric]]:
    """Families the sidecar and the in-process instrumentation emit against ``dsn``."""
    from prometheus_client import CollectorRegistry
    from sqlalchemy import create_engine, text

    from dbpulse import instrument
    from dbpulse.settings import load_settings
    from dbpulse.sidecar.daemon import Sidecar

    sidecar = Sidecar.build(load_settings(dsn=dsn, interval=60))
    try:
        sidecar.poller.run_all_once()
        side = list(sidecar.registry.collect())
    finally:
        sidecar.close()
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
    return side, app


def render_live(dsn: str) -> str:
    side, app = collect_live(dsn)
    return (
        render_table(side, "Sidecar (`dbpulse sidecar`)")
        + "\n"
        + render_table(app, "In-process (`dbpulse.instrument(engine)`)")
    )


def main() -> int:
    from dbpulse.localpg import LocalPostgres

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", type=Path, help="README to update in place")
    args = parser.parse_args()
    with LocalPostgres() as cluster:
        import psycopg

        with psycopg.connect(cluster.dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        block = render_live(cluster.dsn)
    if args.write:
        args.write.write_text(splice(args.write.read_text(), block), encoding="utf-8")
    else:
        print(block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
