"""`dbpulse sidecar` with targets: three real clusters probed over HTTP, one of them killed."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml

from dbpulse.localpg import LocalPostgres, free_port

PASSWORD = "pw-Mult1Target"
APP_DATABASES = ["shop_a", "shop_b", "shop_c"]


def _probe(url: str) -> tuple[int, str, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = resp.read().decode()
            return resp.status, body, time.monotonic() - started
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(), time.monotonic() - started


@pytest.fixture(scope="module")
def clusters() -> Iterator[list[LocalPostgres]]:
    """Three clusters; the first holds three application databases, each its own marker db."""
    with contextlib.ExitStack() as stack:
        started = [stack.enter_context(LocalPostgres()) for _ in range(3)]
        for index, cluster in enumerate(started):
            with psycopg.connect(cluster.dsn, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE only_on_c{index}")
                if index == 0:
                    for name in APP_DATABASES:
                        conn.execute(f"CREATE DATABASE {name}")
        yield started


def test_probes_answer_fast_while_one_cluster_is_dead(
    clusters: list[LocalPostgres], tmp_path: Path
) -> None:
    """Each target's probe shows its own server; after one cluster dies the others answer < 0.5 s."""
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    port = free_port()
    config = {
        "listen": f"127.0.0.1:{port}",
        "interval": 1,
        "connect_timeout": 2,
        "log_format": "json",
        "dsn_template": "postgresql://postgres@{host}:{port}/{dbname}",
        "password_file": str(password_file),
        "targets": [
            {"name": f"c{i}", "host": "127.0.0.1", "port": c.port, "discovery": i == 0}
            for i, c in enumerate(clusters)
        ],
        "discovery": {"include": ["shop_.*"], "interval": 1},
        "collectors": {"migrations": {"interval": 1}},
    }
    config_path = tmp_path / "dbpulse.yaml"
    config_path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        [sys.executable, "-m", "dbpulse", "sidecar", "--config", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout or []), daemon=True)
    reader.start()
    base = f"http://127.0.0.1:{port}/probe?target="
    try:
        # Every target up, with its own databases (the right data per target).
        deadline = time.monotonic() + 30
        texts: dict[str, str] = {}
        while time.monotonic() < deadline and len(texts) < 3:
            for i in range(3):
                with contextlib.suppress(OSError):
                    status, body, _ = _probe(f"{base}c{i}")
                    done = all(f'collector="migrations@{n}"}} 1.0' in body for n in APP_DATABASES)
                    if status == 200 and "pg_up 1.0" in body and (i or done):
                        texts[f"c{i}"] = body
            time.sleep(0.2)
        assert len(texts) == 3, f"not all targets up: {sorted(texts)}\n{''.join(output)[-3000:]}"
        for i in range(3):
            body = texts[f"c{i}"]
            assert f'datname="only_on_c{i}",server=' in body
            others = {f"only_on_c{j}" for j in range(3)} - {f"only_on_c{i}"}
            assert not any(f'datname="{name}"' in body for name in others)
        assert 'dbpulse_discovery_databases{state="polled"} 3.0' in texts["c0"]

        clusters[2].pg_ctl_stop("immediate")
        dead_seen = False
        for _ in range(20):
            for name in ("c0", "c1"):
                status, body, took = _probe(base + name)
                assert status == 200
                # Served from the snapshot: never the 5 s connect_timeout of a poll.
                assert took < 4.0, (name, took)
                assert "pg_up 1.0" in body
            status, body, took = _probe(base + "c2")
            assert status == 200
            assert took < 4.0, ("c2", took)
            dead_seen = dead_seen or "pg_up 0.0" in body
            time.sleep(0.25)
        assert dead_seen, "the killed cluster never reported pg_up 0"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        reader.join(timeout=5)
    assert code == 0
    log = "".join(output)
    assert PASSWORD not in log
    assert "database unreachable" in log
