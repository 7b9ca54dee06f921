"""Find the application's line that issued a statement (for slow-query and N+1 logs)."""

from __future__ import annotations

import os
import sys
from types import FrameType

import sqlalchemy

__all__ = ["caller"]

# Frames from these trees are plumbing between the application and the driver:
# SQLAlchemy itself and dbpulse's in-process hooks (this directory). The rest of the
# exporter package is not skipped: the demo application lives there.
_SKIP = (
    os.path.dirname(sqlalchemy.__file__ or "") + os.sep,
    os.path.dirname(os.path.abspath(__file__)) + os.sep,
)


def _first_app_frame(frame: FrameType | None) -> str | None:
    while frame is not None:
        name = frame.f_code.co_filename
        if not name.startswith(_SKIP) and not name.startswith("<"):
            return f"{name}:{frame.f_lineno}"
        frame = frame.f_back
    return None


def caller() -> str:
    """``file:line`` of the nearest frame outside SQLAlchemy and dbpulse, or ``unknown``.

    Called only on the slow paths (a slow query, an N+1 report), never per statement.
    """
    found = _first_app_frame(sys._getframe(1))
    if found is not None:
        return found
    # AsyncEngine runs the sync core in a child greenlet whose stack ends at SQLAlchemy's
    # greenlet_spawn; the awaiting coroutine (the application) is in the parent's stack.
    greenlet_mod = sys.modules.get("greenlet")
    if greenlet_mod is not None:
        current = greenlet_mod.getcurrent()
        parent = getattr(current, "parent", None)
        while parent is not None:
            found = _first_app_frame(getattr(parent, "gr_frame", None))
            if found is not None:
                return found
            parent = getattr(parent, "parent", None)
    return "unknown"
