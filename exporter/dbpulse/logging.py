"""structlog setup: JSON lines in containers, a readable console on a TTY.

Every event passes through a redaction step so that a DSN which slipped into a message
or an exception never prints its password. Standard-library logging (APScheduler, the
OTLP exporter, psycopg's pool, Python warnings) is rendered by the same processors
through structlog's ``ProcessorFormatter``, so a JSON stream holds nothing but JSON.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import structlog

from dbpulse.dsn import redact

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v) for v in value]
    # Anything else (an exception, a URL object) is printed as text: redact that text.
    return redact(str(value))


def _redact_values(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in event_dict.items():
        event_dict[key] = _scrub(value)
    return event_dict


# Libraries that log every routine step at INFO (APScheduler: each job run).
_CHATTY = ("apscheduler",)
# Libraries whose warnings repeat what dbpulse reports itself, once per transition:
# psycopg's pool warns at every failed connect, the connection manager once per outage.
_DUPLICATING = ("psycopg.pool",)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler this module installed, so a second configure replaces it."""


def configure_logging(
    level: str = "info",
    fmt: Literal["auto", "json", "console"] = "auto",
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and stdlib logging process-wide (the CLI calls this at start)."""
    out = stream if stream is not None else sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    handler = _Handler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            # Records from stdlib loggers get what structlog's own events get below.
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.stdlib.add_log_level,
                stamp,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _redact_values,
                renderer,
            ],
        )
    )
    numeric = _LEVELS[level]
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    logging.getLogger("dbpulse").setLevel(numeric)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(
            numeric if numeric == logging.DEBUG else max(numeric, logging.WARNING)
        )
    for name in _DUPLICATING:
        logging.getLogger(name).setLevel(
            numeric if numeric == logging.DEBUG else max(numeric, logging.ERROR)
        )
    logging.captureWarnings(True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            stamp,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # One handler, one lock: structlog's lines and foreign ones cannot interleave.
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )


def get_logger(**initial: Any) -> Any:
    """A structlog logger bound to ``initial`` context (e.g. collector=, target=)."""
    return structlog.get_logger("dbpulse").bind(**initial)
