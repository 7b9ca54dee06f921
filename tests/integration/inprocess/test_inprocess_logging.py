"""Embedded, dbpulse logs like a library: stdlib loggers under ``dbpulse``, rate-limited,
naming the application's line (and the template's) that caused a pattern."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import jinja2
import pytest
from mako.template import Template as MakoTemplate
from prometheus_client import CollectorRegistry
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tests.clock import ManualClock
from tests.integration.inprocess.conftest import Instrumented, value
from tests.integration.inprocess.models import User, seed
from tests.logcapture import Records

N1 = "db_client_n_plus_one_total"


@pytest.fixture
def app_handler() -> Iterator[Records]:
    """The application's own handler on the root logger, as logging.basicConfig would add."""
    handler = Records()
    root = logging.getLogger()
    root.addHandler(handler)
    level = logging.getLogger("dbpulse").level
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        logging.getLogger("dbpulse").setLevel(level)


def _lazy_loop(session: Session) -> list[int]:
    return [len(user.posts) for user in session.scalars(select(User))]  # LAZY LOOP LINE


def test_n_plus_one_goes_to_the_apps_stdlib_handlers_not_stdout(
    pg_url: str,
    instrumented: Instrumented,
    app_handler: Records,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The N+1 warning reaches the root logger's handler as a dbpulse.inprocess record; stdout stays empty."""
    engine, _ = instrumented(pg_url)
    seed(engine, users=6)
    with Session(engine) as session:
        assert _lazy_loop(session) == [2] * 6
    (record,) = app_handler.events("N+1 query pattern")
    assert record.name == "dbpulse.inprocess"
    assert record.levelno == logging.WARNING
    fields = record.dbpulse_fields  # type: ignore[attr-defined]
    assert fields["relationship"] == "User.posts"
    assert "relationship=User.posts" in record.getMessage()
    out = capsys.readouterr()
    assert "N+1" not in out.out
    assert "N+1" not in out.err


def test_set_level_on_the_dbpulse_logger_silences_it(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented, app_handler: Records
) -> None:
    """logging.getLogger("dbpulse").setLevel(ERROR) drops dbpulse's warnings; metrics still count."""
    logging.getLogger("dbpulse").setLevel(logging.ERROR)
    engine, inst = instrumented(pg_url)
    seed(engine, users=6)
    with Session(engine) as session:
        _lazy_loop(session)
    assert [r for r in app_handler.records if r.name.startswith("dbpulse")] == []
    assert value(registry, N1, pool_name=inst.pool_name, db_collection_name="posts") == 1


def test_repeated_n_plus_one_is_logged_once_per_interval_with_the_suppressed_count(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented, app_handler: Records
) -> None:
    """Ten units with the same N+1: ten counted, one line; after the interval one more saying nine were left out."""
    engine, inst = instrumented(pg_url, instrument_kw={"log_interval_seconds": 60.0})
    assert inst._nplusone is not None
    clock = ManualClock()
    inst._nplusone._limiter._clock = clock
    seed(engine, users=6)
    for _ in range(10):
        with Session(engine) as session:
            _lazy_loop(session)
    assert value(registry, N1, pool_name=inst.pool_name, db_collection_name="posts") == 10
    first = app_handler.events("N+1 query pattern")
    assert [r.dbpulse_fields["suppressed"] for r in first] == [0]  # type: ignore[attr-defined]
    clock.advance(61)
    with Session(engine) as session:
        _lazy_loop(session)
    later = app_handler.events("N+1 query pattern")
    assert [r.dbpulse_fields["suppressed"] for r in later] == [0, 9]  # type: ignore[attr-defined]


def test_slow_query_is_logged_once_per_fingerprint_per_interval(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented, app_handler: Records
) -> None:
    """A statement slow on every run: each run counted as slow, one log line for it."""
    engine, inst = instrumented(pg_url, instrument_kw={"slow_query_seconds": 1e-9})
    with engine.connect() as conn:
        for _ in range(5):
            conn.execute(text("SELECT pg_sleep(0)"))
        conn.execute(text("SELECT now()"))
    slow = app_handler.events("slow query")
    assert sorted(r.dbpulse_fields["fingerprint"] for r in slow) == [  # type: ignore[attr-defined]
        "SELECT now()",
        "SELECT pg_sleep(?)",
    ]
    slow_total = value(
        registry,
        "db_client_slow_queries_total",
        pool_name=inst.pool_name,
        db_operation_name="SELECT",
        db_collection_name="",
    )
    assert slow_total == 6


def test_jinja2_template_lazy_load_names_the_view_line_and_template_line(
    pg_url: str, instrumented: Instrumented, app_handler: Records
) -> None:
    """A lazy load inside a Jinja2 {% for %}: caller is this file's render line plus users.html:3, not jinja2/environment.py."""
    engine, _ = instrumented(pg_url)
    seed(engine, users=6)
    env = jinja2.Environment(
        loader=jinja2.DictLoader(
            {
                "users.html": "<ul>\n{% for u in users %}\n<li>{{ u.posts|length }}</li>\n{% endfor %}"
            }
        ),
        autoescape=True,
    )
    with Session(engine) as session:
        users = session.scalars(select(User)).all()
        html = env.get_template("users.html").render(users=users)  # RENDER LINE
    assert html.count("<li>2</li>") == 6
    (record,) = app_handler.events("N+1 query pattern")
    site = record.dbpulse_fields["caller"]  # type: ignore[attr-defined]
    render_line = _line_of("# RENDER LINE")
    assert site == f"{__file__}:{render_line} (template users.html:3)"
    assert "jinja2" not in site


def test_mako_template_lazy_load_names_the_template_line(
    pg_url: str, instrumented: Instrumented, app_handler: Records
) -> None:
    """The same lazy load from a Mako template: caller names users.mako and its line."""
    engine, _ = instrumented(pg_url)
    seed(engine, users=6)
    template = MakoTemplate(  # noqa: S702 - renders integers only, in a test
        "<ul>\n% for u in users:\n<li>${len(u.posts)}</li>\n% endfor\n</ul>", uri="users.mako"
    )
    with Session(engine) as session:
        users = session.scalars(select(User)).all()
        html = template.render(users=users)  # MAKO LINE
    assert str(html).count("<li>2</li>") == 6
    (record,) = app_handler.events("N+1 query pattern")
    site = record.dbpulse_fields["caller"]  # type: ignore[attr-defined]
    assert site == f"{__file__}:{_line_of('# MAKO LINE')} (template users.mako:3)"


def _line_of(marker: str) -> int:
    with open(__file__, encoding="utf-8") as source:
        for number, line in enumerate(source, start=1):
            if line.rstrip().endswith(marker) and "_line_of" not in line:
                return number
    raise AssertionError(marker)
