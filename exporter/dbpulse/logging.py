"""Logging: stdlib ``logging`` when embedded; structlog renders it only for the sidecar.

Embedded in an application (``dbpulse.instrument``), dbpulse is a library: its events go
to stdlib loggers under ``dbpulse`` (``dbpulse.inprocess``, ...), so
``logging.getLogger("dbpulse").setLevel(...)`` and the application's own handlers decide
what is shown and how. Each record's message is ``event key=value ...`` and carries the
fields as ``record.dbpulse_event`` / ``record.dbpulse_fields`` for structured handlers.
Only the sidecar's CLI calls :func:`configure_logging`, which makes structlog the
renderer: JSON lines in containers, a readable console on a TTY.

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


# Whether configure_logging() made structlog the renderer (the sidecar's CLI); until then
# get_logger() hands out stdlib loggers, as a library should.
_STRUCTLOG_RENDERS = [False]


def _text(value: Any) -> str:
    text = str(value)
    return repr(text) if (not text or " " in text or "=" in text) else text


class StdlibLogger:
    """structlog's calling convention (``log.warning("event", key=value)``) over a stdlib
    logger: what :func:`get_logger` returns when dbpulse is embedded in an application."""

    __slots__ = ("_context", "_logger")

    def __init__(self, logger: logging.Logger, context: dict[str, Any]) -> None:
        self._logger = logger
        self._context = context

    def bind(self, **fields: Any) -> StdlibLogger:
        return StdlibLogger(self._logger, {**self._context, **fields})

    def _log(self, level: int, event: str, fields: dict[str, Any], exc_info: bool) -> None:
        if not self._logger.isEnabledFor(level):
            return
        # Redacted as the sidecar's renderer would: no DSN password reaches a handler.
        clean = {key: _scrub(val) for key, val in {**self._context, **fields}.items()}
        name = redact(event)
        detail = " ".join(f"{key}={_text(val)}" for key, val in clean.items())
        self._logger.log(
            level,
            "%s %s" if detail else "%s",
            *((name, detail) if detail else (name,)),
            exc_info=exc_info,
            extra={"dbpulse_event": name, "dbpulse_fields": clean},
            stacklevel=3,
        )

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, event, fields, False)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, event, fields, False)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, event, fields, False)

    def error(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, event, fields, False)

    def exception(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, event, fields, True)


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
    _STRUCTLOG_RENDERS[0] = True
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


def get_logger(name: str = "dbpulse", /, **initial: Any) -> Any:
    """A logger for ``name`` (under ``dbpulse``) bound to ``initial`` context (e.g.
    collector=, target=): structlog once :func:`configure_logging` ran, else stdlib."""
    if _STRUCTLOG_RENDERS[0]:
        return structlog.get_logger(name).bind(**initial)
    return StdlibLogger(logging.getLogger(name), initial)
