"""Which module builds each metric family, recorded while the code runs, never typed by hand.

While ``record_origins()`` is active, every prometheus_client family or metric object
notes the dbpulse frames on the stack that built it. ``choose_origins`` (pure) then names
one module per family: the innermost frame that did not merely receive the family's name
from its caller. That rule sees through helpers such as ``_gauge(name, doc, ...)`` or a
builder fed ``("pg_x", doc)`` specs, so a family is credited to the module that names it,
wherever the refactor of the day moved the helpers. A family rebuilt from an existing one
of the same name (targets' families merged for ``/probe``) is a copy and credits nobody.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
# The generators themselves construct nothing worth crediting (they wrap constructors).
_OWN = (PACKAGE_ROOT / "docgen", PACKAGE_ROOT / "metricdoc.py")
_COMPREHENSIONS = {"<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>"}


@dataclass(frozen=True)
class Frame:
    """One dbpulse frame above a family's constructor."""

    path: str  # relative to the package root, e.g. "sidecar/collectors/locks.py"
    passed_name: bool  # the family's name (or its prefix) came in as an argument
    # A family of that name came in as an argument: this construction is a copy (merging
    # targets' families), which names nothing.
    passed_family: bool = False


@dataclass(frozen=True)
class Construction:
    """One family built: its name and the dbpulse frames that built it, innermost first."""

    name: str
    frames: tuple[Frame, ...]
    # Built by the thread that opened the recording (others may be unrelated code running
    # meanwhile, such as another test's sidecar merging families for /probe).
    own_thread: bool = True


def choose_origins(constructions: Iterable[Construction]) -> dict[str, str]:
    """The producing module per family name (pure).

    Copies are skipped. Of the rest, the recording thread's constructions come first, and
    the first of a name wins: the declaration of a Counter precedes its renderings.
    """
    origins: dict[str, str] = {}
    ordered = sorted(constructions, key=lambda built: not built.own_thread)  # stable
    for built in ordered:
        if built.name in origins or not built.frames:
            continue
        if any(frame.passed_family for frame in built.frames):
            continue
        namer = next((f for f in built.frames if not f.passed_name), built.frames[-1])
        origins[built.name] = namer.path
    return origins


def _leaves(value: Any, depth: int = 2) -> Iterator[Any]:
    """An argument's values, one or two containers deep (a spec tuple, a list of them)."""
    if depth and isinstance(value, Mapping):
        for item in value.items():
            yield from _leaves(item, depth - 1)
    elif depth and isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _leaves(item, depth - 1)
    else:
        yield value


def passes_name(arguments: Iterable[Any], names: set[str]) -> bool:
    """Whether an argument is one of ``names`` (also inside a spec), or a prefix of one.

    Only a plain string argument counts as a prefix (``prefix="pg_stat_progress_vacuum"``),
    and only one with an underscore: a row key or a short word like ``"pg"`` is no name.
    """
    for value in arguments:
        if isinstance(value, str) and "_" in value:
            if any(name == value or name.startswith(f"{value}_") for name in names):
                return True
        elif any(isinstance(leaf, str) and leaf in names for leaf in _leaves(value)):
            return True
    return False


def passes_family(arguments: Iterable[Any], names: set[str]) -> bool:
    """Whether an argument is (or holds) a family already called one of ``names``."""
    return any(
        isinstance(leaf, Metric) and leaf.name in names
        for value in arguments
        for leaf in _leaves(value)
    )


def _arguments(frame: FrameType) -> list[Any]:
    code = frame.f_code
    count = code.co_argcount + code.co_kwonlyargcount
    local = frame.f_locals
    return [local[n] for n in code.co_varnames[:count] if n in local and n != "self"]


def _package_path(filename: str, root: Path) -> str | None:
    path = Path(filename).resolve()
    if not path.is_relative_to(root) or any(path.is_relative_to(o) for o in _OWN):
        return None
    return path.relative_to(root).as_posix()


def frames_above(
    frame: FrameType | None, names: set[str], root: Path = PACKAGE_ROOT
) -> tuple[Frame, ...]:
    """The frames under ``root`` from ``frame`` outwards (prometheus_client's are skipped)."""
    found: list[Frame] = []
    while frame is not None:
        path = _package_path(frame.f_code.co_filename, root)
        # A comprehension runs in its own frame (until 3.12) whose only argument is its
        # iterator; the function around it, next outwards, is what received the name.
        if path is not None and frame.f_code.co_name not in _COMPREHENSIONS:
            arguments = _arguments(frame)
            found.append(
                Frame(path, passes_name(arguments, names), passes_family(arguments, names))
            )
        frame = frame.f_back
    return tuple(found)


def _spellings(raw: str, normalised: str) -> set[str]:
    return {raw, normalised, f"{normalised}_total", f"{normalised}_info"}


@contextmanager
def record_origins(root: Path = PACKAGE_ROOT) -> Iterator[list[Construction]]:
    """Note every family built inside the block by code under ``root`` (the package).

    It patches prometheus_client's two base constructors for the block, then restores them.
    Families built in any thread count (the poller builds in its workers). Not for use
    beside other code patching the same constructors; the generator and tests are the
    only users.
    """
    built: list[Construction] = []
    root = root.resolve()
    owner = threading.get_ident()
    metric_init = Metric.__init__
    wrapper_init = MetricWrapperBase.__init__

    def metric(self: Metric, name: str, *args: Any, **kwargs: Any) -> None:
        metric_init(self, name, *args, **kwargs)
        names = _spellings(name, self.name)
        frames = frames_above(sys._getframe(1), names, root)
        built.append(Construction(self.name, frames, threading.get_ident() == owner))

    def wrapper(self: MetricWrapperBase, name: str, *args: Any, **kwargs: Any) -> None:
        wrapper_init(self, name, *args, **kwargs)
        if kwargs.get("_labelvalues") is None:  # a .labels() child is not a declaration
            full: str = self._name
            names = _spellings(name, full)
            frames = frames_above(sys._getframe(1), names, root)
            built.append(Construction(full, frames, threading.get_ident() == owner))

    Metric.__init__ = metric  # type: ignore[method-assign]
    MetricWrapperBase.__init__ = wrapper  # type: ignore[method-assign]
    try:
        yield built
    finally:
        Metric.__init__ = metric_init  # type: ignore[method-assign]
        MetricWrapperBase.__init__ = wrapper_init  # type: ignore[method-assign]
