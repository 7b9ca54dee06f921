"""A `dbpulse sidecar` child process and /metrics helpers, shared by the process-level tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import psycopg

from dbpulse.localpg import free_port

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def _unescape(value: str) -> str:
    return re.sub(r"\\[\\\"n]", lambda m: _ESCAPES[m[0]], value)


def parse(text: str) -> Samples:
    """Every sample of a text-format /metrics body keyed by (name, sorted labels).

    Names are the samples' own, as Prometheus stores them: prometheus_client's parser
    would append ``_total`` to a counter sample without it (postgres_exporter's names).
    """
    out: Samples = {}
    for line in text.splitlines():
        if line.startswith("#") or not (m := _SAMPLE.match(line)):
            continue
        labels = tuple(sorted((k, _unescape(v)) for k, v in _LABEL.findall(m[2] or "")))
        out[(m[1], labels)] = float(m[3])
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    want = set(labels.items())
    for (n, lbls), v in samples.items():
        if n == name and want <= set(lbls):
            return v
    return None


def fetch(url: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:
        return 0, ""


class SidecarProcess:
    """``python -m dbpulse sidecar`` as a child process, its output kept for greps."""

    def __init__(
        self,
        dsn: str | None,
        interval: float | None = 0.5,  # None: the settings' own intervals (defaults)
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dbpulse",
                "sidecar",
                *(["--dsn", dsn] if dsn is not None else []),  # None: targets from --config
                "--listen",
                f"127.0.0.1:{self.port}",
                *(["--interval", str(interval)] if interval is not None else []),
                *(extra_args or []),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={
                **os.environ,
                "DBPULSE_LOG_FORMAT": "json",
                "PYTHONFAULTHANDLER": "1",
                **(env or {}),
            },
        )
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def metrics(self) -> Samples:
        status, text = fetch(self.url + "/metrics")
        return parse(text) if status == 200 else {}

    def wait_for(self, predicate: Callable[[Samples], bool], timeout: float = 20.0) -> Samples:
        deadline = time.monotonic() + timeout
        samples: Samples = {}
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "sidecar exited:\n" + "".join(self.output[-30:])
            samples = self.metrics()
            if samples and predicate(samples):
                return samples
            time.sleep(0.1)
        raise AssertionError(
            f"not met in {timeout}s; last: {sorted(samples.items())[:40]}\n"
            + "".join(self.output[-30:])
        )

    def wait_for_text(
        self, predicate: Callable[[str], bool], timeout: float = 20.0, path: str = "/metrics"
    ) -> str:
        """Like wait_for, on the raw text of ``path`` (/metrics, or /probe?target=...)."""
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "sidecar exited:\n" + "".join(self.output[-30:])
            status, text = fetch(self.url + path)
            if status == 200 and predicate(text):
                return text
            time.sleep(0.2)
        raise AssertionError(
            f"not met in {timeout}s; last:\n{text[-3000:]}\n" + "".join(self.output[-30:])
        )

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)  # faulthandler dumps every thread
            self.proc.wait(timeout=10)
            self._reader.join(timeout=5)
            raise AssertionError(
                "sidecar ignored SIGTERM for 30 s:\n" + "".join(self.output[-80:])
            ) from None
        self._reader.join(timeout=5)
        return code


class BackendCounter:
    """Counts backends with application_name='dbpulse' every 50 ms while the server is up."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.counts: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=2) as conn:
                    while not self._stop.is_set():
                        row = conn.execute(
                            "SELECT count(*) FROM pg_stat_activity"
                            " WHERE application_name = 'dbpulse'"
                        ).fetchone()
                        assert row is not None
                        self.counts.append(int(row[0]))
                        time.sleep(0.05)
            except psycopg.Error:
                time.sleep(0.1)  # the server is down; try again

    def stop(self) -> list[int]:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.counts
