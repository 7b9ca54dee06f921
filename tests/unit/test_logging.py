"""Third-party stdlib logging goes through dbpulse's structlog renderer (issue 13.8)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from dbpulse.logging import configure_logging, get_logger
from tests.logcapture import Records
from tests.logging_state import restored_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """configure_logging is process-wide: later tests see the configuration they expect."""
    with restored_logging():
        yield


def _lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_foreign_log_lines_are_json_with_their_logger_name() -> None:
    """An OTLP exporter's and APScheduler's stdlib warnings become JSON lines too."""
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    logging.getLogger("opentelemetry.exporter.otlp.proto.grpc.exporter").warning(
        "Transient error %s encountered while exporting traces to %s, retrying in %ss.",
        "StatusCode.UNAVAILABLE",
        "localhost:4317",
        1,
    )
    logging.getLogger("apscheduler.scheduler").warning("Execution of job skipped")
    get_logger(collector="activity").info("polled")
    lines = _lines(out)
    assert [line["event"] for line in lines] == [
        "Transient error StatusCode.UNAVAILABLE encountered while exporting traces to "
        "localhost:4317, retrying in 1s.",
        "Execution of job skipped",
        "polled",
    ]
    assert lines[0]["logger"] == "opentelemetry.exporter.otlp.proto.grpc.exporter"
    assert lines[0]["level"] == "warning"
    assert lines[2]["collector"] == "activity"
    assert all("timestamp" in line for line in lines)


def _refuse() -> None:
    raise ConnectionError("postgresql://app:Hunter2pw@db/app refused")


def test_foreign_exception_is_one_json_line_and_redacted() -> None:
    """A foreign record with a traceback and a DSN stays one JSON line without the password."""
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    try:
        _refuse()
    except ConnectionError:
        logging.getLogger("psycopg.pool").exception("error connecting")
    lines = _lines(out)
    assert len(lines) == 1
    assert "ConnectionError" in str(lines[0]["exception"])
    assert "Hunter2pw" not in out.getvalue()


def test_chatty_libraries_stay_quiet_below_warning_and_reconfiguring_does_not_double() -> None:
    """APScheduler's per-run INFO lines are dropped at info; a second configure adds no handler."""
    out = io.StringIO()
    configure_logging("info", "json", stream=io.StringIO())
    configure_logging("info", "json", stream=out)
    logging.getLogger("apscheduler.executors.default").info('Running job "x"')
    get_logger().warning("once")
    assert [line["event"] for line in _lines(out)] == ["once"]


def test_nested_values_and_objects_are_redacted() -> None:
    """A DSN inside a dict, a list or an exception object logged as a value is scrubbed."""
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    dsn = "postgresql://app:Hunter2pw@db/app"
    get_logger().warning(
        "failed", error=ConnectionError(f"{dsn} refused"), detail={"dsn": dsn}, items=[dsn, 3]
    )
    line = _lines(out)[0]
    assert "Hunter2pw" not in out.getvalue()
    assert line["items"] == ["postgresql://app:***@db/app", 3]


def test_unconfigured_get_logger_is_stdlib_and_redacts() -> None:
    """Before configure_logging (embedded in an app), events are stdlib records under dbpulse, DSN passwords scrubbed."""
    keep = Records()
    logger = logging.getLogger("dbpulse")
    logger.addHandler(keep)
    try:
        get_logger("dbpulse.inprocess", pool_name="p").warning(
            "connect failed", dsn="postgresql://app:Hunter2pw@db/app"
        )
        logger.setLevel(logging.ERROR)
        get_logger("dbpulse.inprocess").warning("dropped by the level")
    finally:
        logger.removeHandler(keep)
        logger.setLevel(logging.NOTSET)
    (record,) = keep.records
    assert record.name == "dbpulse.inprocess"
    assert record.getMessage() == "connect failed pool_name=p dsn=postgresql://app:***@db/app"
    assert record.dbpulse_fields == {  # type: ignore[attr-defined]
        "pool_name": "p",
        "dsn": "postgresql://app:***@db/app",
    }
    assert record.pathname == __file__  # stacklevel: the caller's line, not the adapter's


def test_configured_get_logger_renders_through_structlog() -> None:
    """After configure_logging (the sidecar's CLI), the same call is a structlog JSON line."""
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    get_logger("dbpulse.inprocess", pool_name="p").warning("slow query", fingerprint="SELECT ?")
    line = _lines(out)[0]
    assert line["event"] == "slow query"
    assert line["fingerprint"] == "SELECT ?"
