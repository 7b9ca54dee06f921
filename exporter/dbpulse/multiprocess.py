"""prometheus_client's multiprocess mode for servers with worker processes (gunicorn, uvicorn).

With ``PROMETHEUS_MULTIPROC_DIR`` set before ``prometheus_client`` is first imported,
every process writes its counters, histograms and gauges to its own files in that
directory, and one scrape merges them (``MultiProcessCollector``): counters and
histograms summed, each gauge by its ``multiprocess_mode``. This module is what an
application and its ``gunicorn.conf.py`` import; it does not import SQLAlchemy, so the
gunicorn master (which never touches the database) stays small:

- ``enabled()``: is prometheus_client in multiprocess mode in this process;
- ``metrics_registry()``: the registry to serve, the merge of every process's files in
  multiprocess mode, else ``prometheus_client.REGISTRY``;
- gunicorn hooks, by gunicorn's own names: ``on_starting`` (empties the directory of a
  previous run's files), ``child_exit`` (``mark_process_dead`` for the worker).

The merge also drops the live-gauge files of processes that no longer exist on this host
(what ``mark_process_dead`` does), so a worker killed under a server without a
``child_exit`` hook (uvicorn ``--workers``) stops counting its pool at the next scrape.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
from collections.abc import Callable, Iterator
from typing import Any, cast

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, values
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

__all__ = [
    "child_exit",
    "directory",
    "enabled",
    "metrics_registry",
    "misconfigured",
    "on_starting",
    "prune_dead_processes",
    "warn_if_misconfigured",
]

ENV = "PROMETHEUS_MULTIPROC_DIR"
_LOG = logging.getLogger("dbpulse.multiprocess")
# prometheus_client names each process's files {counter,gauge_<mode>,histogram,summary}_<pid>.db;
# only the live* gauge modes are dropped when a process dies (mark_process_dead's rule).
_LIVE_FILE = re.compile(r"^gauge_live[a-z]+_(\d+)\.db$")
_OWN_FILE = re.compile(r"^(counter|histogram|summary|gauge_[a-z]+)_\d+\.db$")
# prometheus_client.multiprocess has no type annotations: typed here once.
_merged = cast(Callable[..., Collector], multiprocess.MultiProcessCollector)
_mark_process_dead = cast(Callable[[int, str], None], multiprocess.mark_process_dead)


def enabled() -> bool:
    """True when prometheus_client stores metric values in ``PROMETHEUS_MULTIPROC_DIR``.

    prometheus_client decides once, when it is first imported: the variable set later
    (say by gunicorn's ``raw_env``, after the master imported it) has no effect, so the
    value class it chose is asked rather than the environment.
    """
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def directory() -> str | None:
    """The multiprocess directory from the environment (the lowercase name is the old one)."""
    return os.environ.get(ENV) or os.environ.get(ENV.lower()) or None


def misconfigured() -> str | None:
    """Why the variable is set but multiprocess mode is off (or the reverse), else None."""
    path = directory()
    if path is not None and not enabled():
        return (
            f"{ENV} is set but prometheus_client was imported before it was: metrics are "
            "per process; set it in the server's environment, before Python starts"
        )
    if enabled() and (path is None or not os.path.isdir(path)):
        return f"{ENV} ({path}) is not an existing directory"
    return None


def warn_if_misconfigured() -> None:
    """Log ``misconfigured()``'s reason, if any, on the ``dbpulse.multiprocess`` logger."""
    problem = misconfigured()
    if problem is not None:
        _LOG.warning("dbpulse: %s", problem)


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def prune_dead_processes(path: str | None = None) -> list[int]:
    """``mark_process_dead`` for every pid with live-gauge files that no longer runs.

    Returns the pids pruned. Pids are only meaningful on one host and in one pid
    namespace, which is how the directory must be used anyway (one per pod/server).
    """
    where = path or directory()
    if where is None:
        return []
    dead: set[int] = set()
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(where):
            match = _LIVE_FILE.match(name)
            if match is not None and not _pid_exists(int(match.group(1))):
                dead.add(int(match.group(1)))
    for pid in sorted(dead):
        with contextlib.suppress(FileNotFoundError):  # another scrape pruned it first
            _mark_process_dead(pid, where)
    return sorted(dead)


class _LiveMultiProcessCollector(Collector):
    """``MultiProcessCollector`` that first forgets processes that died without a hook."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._merged = _merged(None, path=path)  # None: not registered anywhere itself

    def collect(self) -> Iterator[Metric]:
        try:
            prune_dead_processes(self._path)
        except OSError as exc:  # a read-only directory: merge what is there
            _LOG.warning("dbpulse: could not prune dead processes' gauges: %s", exc)
        yield from self._merged.collect()


def metrics_registry() -> CollectorRegistry:
    """What ``/metrics`` should serve in this process.

    Multiprocess mode: a new registry holding only the merge of every process's files
    (as prometheus_client's documentation builds it; this process's own default registry
    must not be added, its values are in the files already). Otherwise the default
    registry.
    """
    if not enabled():
        return REGISTRY
    path = directory()
    if path is None or not os.path.isdir(path):  # as MultiProcessCollector says it
        raise ValueError(f"env {ENV} is not set or not a directory")
    registry = CollectorRegistry()
    registry.register(_LiveMultiProcessCollector(path))
    return registry


def on_starting(server: Any = None) -> None:
    """gunicorn ``on_starting`` hook: make the directory, remove a previous run's files.

    prometheus_client requires an empty directory at start: files of pids from an
    earlier run would otherwise be summed in (and a new worker may even reuse one of
    those pids). Only files named as prometheus_client names them are removed.
    """
    path = directory()
    if path is not None:  # workers (without preload_app) open their files after this
        os.makedirs(path, exist_ok=True)
    warn_if_misconfigured()
    if path is None:
        return
    for file in glob.glob(os.path.join(path, "*.db")):
        if _OWN_FILE.match(os.path.basename(file)):
            with contextlib.suppress(FileNotFoundError):
                os.remove(file)


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn ``child_exit`` hook: the worker's live gauges (its pool) stop counting."""
    path = directory()
    if path is None:
        return
    try:
        _mark_process_dead(worker.pid, path)
    except OSError as exc:  # never take the master down over bookkeeping
        _LOG.warning("dbpulse: mark_process_dead(%s) failed: %s", worker.pid, exc)
