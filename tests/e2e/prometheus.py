"""A real Prometheus server for end-to-end tests: started in a temp dir, queried over HTTP."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from dbpulse.localpg import free_port
from tests.integration.collector_helpers import wait_for


class Prometheus:
    def __init__(
        self,
        targets: dict[str, str],
        rule_files: list[Path] | None = None,
        job_options: dict[str, Any] | None = None,
        scrape_interval: str = "1s",
    ) -> None:
        """``job_options`` go into every scrape config (``scheme``, ``tls_config``, ...);
        ``scrape_interval`` is also the rule evaluation interval."""
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus not found: apt-get install prometheus")
        self.base = Path(tempfile.mkdtemp(prefix="dbpulse-prom-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
            "rule_files": [str(p) for p in rule_files or []],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [address]}], **(job_options or {})}
                for job, address in targets.items()
            ],
        }
        (self.base / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = (self.base / "prometheus.log").open("w")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={self.base / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.base / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def _wait_ready(self) -> None:
        try:
            wait_for(self._ready, timeout=30, interval=0.2)
        except AssertionError as exc:
            raise RuntimeError("prometheus did not become ready: " + self.logs()) from exc

    def scraped_since(self, moment: float, scrapes: int) -> bool:
        """Whether every target's latest scrape is ``scrapes`` intervals (1 s) past ``moment``."""
        result = self.query("min(timestamp(up))")["data"]["result"]
        return bool(result) and float(result[0]["value"][1]) >= moment + scrapes - 1

    def logs(self) -> str:
        self.log.flush()
        return (self.base / "prometheus.log").read_text()[-3000:]

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as err:
            body = json.load(err)
        return body

    def query(self, expr: str) -> dict[str, Any]:
        """Instant query; returns the whole response (status, data or error)."""
        return dict(self.api("query", query=expr))

    def query_range(self, expr: str, seconds: float, step: str = "1s") -> dict[str, Any]:
        end = time.time()
        return dict(
            self.api("query_range", query=expr, start=str(end - seconds), end=str(end), step=step)
        )

    def targets_up(self) -> dict[str, str]:
        data = self.api("targets")["data"]["activeTargets"]
        return {t["labels"]["job"]: t["health"] for t in data}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.base, ignore_errors=True)
