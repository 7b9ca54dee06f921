"""Real gunicorn / uvicorn processes serving ``servers/mpapp.py``, and what the tests read.

The gunicorn configuration is the README's ``gunicorn.conf.py`` block itself (its port
replaced), so the documented recipe is the tested one.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from prometheus_client.parser import text_string_to_metric_families

from tests.scripts import ROOT

APP = "tests.integration.inprocess.servers.mpapp"
APPLICATION_NAME = "dbpulse-mp"  # mpapp's connections, as PostgreSQL names them
CAPACITY = 5  # mpapp's pool_size + max_overflow


def readme_block(first_line: str) -> str:
    """The README's fenced Python block that starts with ``first_line``."""
    text = (ROOT / "README.md").read_text()
    found = re.search(r"```python\n(" + re.escape(first_line) + r"\n.*?)```", text, re.S)
    assert found is not None, f"no README block starting {first_line!r}"
    return found.group(1)


def get(url: str, timeout: float = 30) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        body: bytes = resp.read()
        return body.decode()


def listening(base: str) -> bool:
    """Whether the server's own port accepts connections yet (a single uvicorn process
    serves its metrics port from the app's import, before it binds the app's port)."""
    url = urllib.parse.urlsplit(base)
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=1):
            return True
    except OSError:
        return False


def scrape(url: str) -> dict[str, float] | None:
    """Pool and request samples of a /metrics page, pool_name="mpapp" only; None if down.

    Keys are ``name`` or ``name{state}`` for the connection count; the page's families
    must not carry a ``pid`` label (multiprocess gauges merged without one).
    """
    try:
        text = get(url, timeout=5)
    except OSError:
        return None
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            assert "pid" not in s.labels, s
            if s.name == "db_client_request_queries_count":
                out[s.name] = s.value
            if s.labels.get("pool_name") != "mpapp":
                continue
            if s.name == "db_client_connection_count":
                out[f"{s.name}{{{s.labels['state']}}}"] = s.value
            elif s.name == "db_client_operation_duration_seconds_count":
                if s.labels["db_collection_name"] == "ticks":
                    out[s.name] = out.get(s.name, 0) + s.value
            elif s.name.startswith("db_client_connection_"):
                out[s.name] = s.value
    return out


def backends(dsn: str, *, waiting: bool = False) -> int:
    """mpapp's connections as PostgreSQL sees them (``waiting``: on the advisory lock)."""
    sql = (
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
        " AND datname = current_database()"
    )
    if waiting:
        sql += " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(sql, (APPLICATION_NAME,)).fetchone()
    assert row is not None
    return int(row[0])


def poll(probe: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """``probe()`` until truthy (the servers' startup on a busy machine takes seconds)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"{what}: not met within {timeout}s (last: {last!r})")


def waiting_is(dsn: str, count: int) -> bool:
    return backends(dsn, waiting=True) == count


def hold(base: str, dsn: str, count: int) -> tuple[list[int], Callable[[], None]]:
    """Start ``count`` /hold requests, one at a time, each running before the next.

    Returns the pids that answer (filled once released) and the release function.
    """
    lock = psycopg.connect(dsn, autocommit=True)
    lock.execute("SELECT pg_advisory_lock(42)")
    pids: list[int] = []
    threads = []
    for k in range(1, count + 1):
        thread = threading.Thread(target=lambda: pids.append(int(get(base + "/hold"))))
        thread.start()
        threads.append(thread)
        # Running (waiting in PostgreSQL) before the next is sent: a busy worker slot
        # takes no new request, so the next goes to a free one.
        poll(partial(waiting_is, dsn, k), f"{k} held requests")

    def release() -> None:
        lock.execute("SELECT pg_advisory_unlock(42)")
        for thread in threads:
            thread.join(timeout=30)
        lock.close()

    return pids, release


class Server:
    """A server process (its own session, so that its workers go with it)."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.output: list[str] = []
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def alive(self) -> None:
        assert self.proc.poll() is None, "server exited:\n" + "".join(self.output[-40:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # gunicorn: quick shutdown; uvicorn: stop
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the group this test started
                self.proc.wait(timeout=10)
        self._reader.join(timeout=5)


def environment(url: str, multiproc_dir: Path | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() != "prometheus_multiproc_dir"}
    paths = [str(ROOT), str(ROOT / "exporter"), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env["MPAPP_URL"] = url
    if multiproc_dir is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc_dir)
    env.update(extra)
    return env


def gunicorn(
    tmp: Path,
    url: str,
    multiproc_dir: Path,
    *,
    workers: int,
    worker_class: str,
    port: int,
    preload: bool = False,
) -> tuple[Server, int, int]:
    """gunicorn -c <the README's gunicorn.conf.py>: it, the master's /metrics port, and
    the port every worker also tries at import (the issue's EADDRINUSE case)."""
    from dbpulse.localpg import free_port

    metrics_port, import_port = free_port(), free_port()
    conf = tmp / "gunicorn.conf.py"
    conf.write_text(readme_block("# gunicorn.conf.py").replace("9200", str(metrics_port)))
    argv = [sys.executable, "-m", "gunicorn", "-c", str(conf), "-w", str(workers)]
    if worker_class == "gthread":
        # At most two requests per worker at once, so that the test's held requests
        # spread over every worker instead of queueing behind one.
        argv += ["-k", "gthread", "--threads", "2", "--worker-connections", "2"]
    argv += ["--preload"] if preload else []
    argv += ["-b", f"127.0.0.1:{port}", "--graceful-timeout", "5", f"{APP}:wsgi"]
    env = environment(url, multiproc_dir, MPAPP_METRICS_PORT=str(import_port))
    return Server(argv, env, tmp), metrics_port, import_port


def uvicorn(
    tmp: Path, url: str, multiproc_dir: Path | None, *, workers: int | None, port: int
) -> tuple[Server, int]:
    """uvicorn [--workers N] mpapp:asgi; each worker calls serve_metrics(metrics port)."""
    from dbpulse.localpg import free_port

    metrics_port = free_port()
    argv = [sys.executable, "-m", "uvicorn", f"{APP}:asgi", "--port", str(port)]
    argv += ["--workers", str(workers)] if workers else []
    env = environment(url, multiproc_dir, MPAPP_METRICS_PORT=str(metrics_port))
    return Server(argv, env, tmp), metrics_port
