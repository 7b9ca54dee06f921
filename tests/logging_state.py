"""Save and restore process-wide logging state around tests that call configure_logging."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from dbpulse import logging as dbpulse_logging

_NAMED = ("dbpulse", "apscheduler")


@contextmanager
def restored_logging() -> Iterator[None]:
    """Whatever configure_logging changes (structlog, root handlers, levels) is put back."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    named = {name: logging.getLogger(name).level for name in _NAMED}
    renders = dbpulse_logging._STRUCTLOG_RENDERS[0]
    try:
        yield
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, lvl in named.items():
            logging.getLogger(name).setLevel(lvl)
        logging.captureWarnings(False)
        dbpulse_logging._STRUCTLOG_RENDERS[0] = renders
