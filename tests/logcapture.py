"""Capture dbpulse's log events in tests, whichever way they were emitted.

Embedded (no ``configure_logging``), dbpulse logs through stdlib loggers under
``dbpulse``; after the sidecar's CLI configured structlog, through structlog. Tests assert
on the events, not the route: both arrive in one list of dicts shaped like structlog's
``capture_logs`` entries (``event``, ``log_level`` and the fields).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog.testing

__all__ = ["Records", "capture_logs"]


class Records(logging.Handler):
    """A handler that keeps every record it is given (add it where the test needs)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def events(self, event: str) -> list[logging.LogRecord]:
        """The records of dbpulse event ``event`` (its stdlib logger's ``dbpulse_event``)."""
        return [r for r in self.records if getattr(r, "dbpulse_event", None) == event]


class _Into(logging.Handler):
    def __init__(self, entries: list[MutableMapping[str, Any]]) -> None:
        super().__init__(logging.DEBUG)
        self._entries = entries

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "dbpulse_event", None)
        fields: dict[str, Any] = dict(getattr(record, "dbpulse_fields", {}))
        self._entries.append(
            {
                "event": record.getMessage() if event is None else event,
                "log_level": record.levelname.lower(),
                "logger": record.name,
                **fields,
            }
        )


@contextmanager
def capture_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Every dbpulse event (any level) logged inside the block, stdlib or structlog."""
    logger = logging.getLogger("dbpulse")
    level = logger.level
    with structlog.testing.capture_logs() as entries:
        handler = _Into(entries)
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        try:
            yield entries
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
