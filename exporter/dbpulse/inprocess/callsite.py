"""Find the application's line that issued a statement (for slow-query and N+1 logs).

The line reported is the first frame of the application's own code: frames of
SQLAlchemy, of dbpulse's in-process hooks, of the standard library and of installed
packages (site-packages: frameworks, template engines, drivers) are skipped. A template
that triggered the statement (a lazy load inside ``{% for %}``) is named too, with its
own line: Jinja2's compiled templates carry ``__jinja_template__`` in their globals and
map code lines back through ``Template.get_corresponding_lineno``; Mako's compiled
modules are registered in ``mako.template.ModuleInfo`` with a line map in their source.

Cold code: called only when a pattern crosses a threshold or a statement is slow.
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
from types import FrameType
from typing import Any

import sqlalchemy

__all__ = ["caller"]


def _prefixes() -> tuple[str, ...]:
    found: set[str] = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            found.add(os.path.realpath(path))
    getsitepackages = getattr(site, "getsitepackages", list)  # absent in some embeddings
    found.update(os.path.realpath(p) for p in getsitepackages())
    user = getattr(site, "getusersitepackages", lambda: "")()
    if isinstance(user, str) and user:
        found.add(os.path.realpath(user))
    return tuple(p.rstrip(os.sep) + os.sep for p in found)


# Plumbing between the application and the driver, always skipped: SQLAlchemy itself and
# dbpulse's in-process hooks (this directory). The rest of the exporter package is not:
# the demo application lives there.
_PLUMBING = (
    os.path.dirname(sqlalchemy.__file__ or "") + os.sep,
    os.path.dirname(os.path.abspath(__file__)) + os.sep,
)
# Installed code: the standard library and site-packages (frameworks, template engines).
_INSTALLED = _prefixes()


def _is_installed(name: str) -> bool:
    if name.startswith(_INSTALLED):
        return True
    # A virtualenv's files may be reached through a symlinked path.
    return os.path.realpath(name).startswith(_INSTALLED)


def _jinja_line(frame: FrameType) -> str | None:
    template: Any = frame.f_globals.get("__jinja_template__")
    if template is None:
        return None
    name = template.name or template.filename or "<template>"
    try:
        line = template.get_corresponding_lineno(frame.f_lineno)
    except Exception:  # noqa: BLE001 - a name without a line is still worth reporting
        return str(name)
    return f"{name}:{line}"


_MAKO_LINES: dict[str, list[int]] = {}


def _mako_line(frame: FrameType) -> str | None:
    mako_template = sys.modules.get("mako.template")
    if mako_template is None:
        return None
    info = mako_template.ModuleInfo._modules.get(frame.f_globals.get("__name__"))
    if info is None:
        return None
    name = info.template_uri or info.template_filename or "<template>"
    try:
        lines = _MAKO_LINES.get(info.module.__name__)
        if lines is None:
            meta = mako_template.ModuleInfo.get_module_source_metadata(
                info.code, full_line_map=True
            )
            lines = _MAKO_LINES[info.module.__name__] = list(meta["full_line_map"])
        return f"{name}:{lines[frame.f_lineno - 1]}"
    except Exception:  # noqa: BLE001 - a name without a line is still worth reporting
        return str(name)


def _template_line(frame: FrameType) -> str | None:
    return _jinja_line(frame) or _mako_line(frame)


def _walk(frame: FrameType | None) -> tuple[str | None, str | None, str | None]:
    """(first application frame, innermost template frame, first non-plumbing frame)."""
    template: str | None = None
    fallback: str | None = None
    while frame is not None:
        name = frame.f_code.co_filename
        if not name.startswith(_PLUMBING):
            if template is None:
                template = _template_line(frame)
                if template is not None:  # a compiled template is not application code
                    frame = frame.f_back
                    continue
            here = f"{name}:{frame.f_lineno}"
            if fallback is None and not name.startswith("<"):
                fallback = here
            if not name.startswith("<") and not _is_installed(name):
                return here, template, fallback
        frame = frame.f_back
    return None, template, fallback


def _parent_frames() -> list[FrameType | None]:
    # AsyncEngine runs the sync core in a child greenlet whose stack ends at SQLAlchemy's
    # greenlet_spawn; the awaiting coroutine (the application) is in the parent's stack.
    frames: list[FrameType | None] = []
    greenlet_mod = sys.modules.get("greenlet")
    if greenlet_mod is not None:
        parent = getattr(greenlet_mod.getcurrent(), "parent", None)
        while parent is not None:
            frames.append(getattr(parent, "gr_frame", None))
            parent = getattr(parent, "parent", None)
    return frames


def caller() -> str:
    """``file:line`` of the application's frame that led here, or ``unknown``; with
    `` (template NAME:LINE)`` when a Jinja2 or Mako template was rendering.

    When every frame is installed code (the application itself is pip-installed), the
    nearest frame outside SQLAlchemy and dbpulse is reported instead.
    """
    found, template, fallback = _walk(sys._getframe(1))
    for frame in _parent_frames() if found is None else ():
        found, outer_template, outer_fallback = _walk(frame)
        template = template or outer_template
        fallback = fallback or outer_fallback
        if found is not None:
            break
    site_ = found or fallback or "unknown"
    return f"{site_} (template {template})" if template else site_
