"""A benchmark's child process (an exporter, Prometheus, pgbench): started in its own
session so that Ctrl-C reaches the benchmark, which stops it itself; output to a log."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    port: int = 0  # the port it serves on, when the benchmark scrapes it
    popen: subprocess.Popen[bytes] | None = None
    cwd: Path = ROOT

    def start(self) -> None:
        """Start ``argv``; its output goes to ``log``."""
        with self.log.open("wb") as fh:
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=str(self.cwd),
                start_new_session=True,  # Ctrl-C reaches us; we stop it ourselves
            )

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def check_alive(self) -> None:
        """Raise with the log's tail when the process has exited."""
        if self.popen is not None and self.popen.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.popen.returncode}; its log:\n{self.log_tail()}"
            )

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Terminate, then kill after 15 s."""
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=15)
