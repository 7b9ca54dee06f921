"""No piece of a password in any output: names, logs, /readyz, pg_up and doctor (issue 13.2).

The two DSNs are the ones a regex got wrong: a URL whose password is not percent-encoded
(libpq cannot parse it) and a key=value DSN whose password holds a backslash-escaped space.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from dbpulse.dsn import target_name
from dbpulse.localpg import free_port
from dbpulse.logging import configure_logging, get_logger
from tests.logging_state import restored_logging
from tests.sidecar_process import SidecarProcess, fetch

PIECES = ("p@ss", "ss:w", "rd%", "Leak", "Tail99")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """configure_logging is process-wide: later tests see the configuration they expect."""
    with restored_logging():
        yield


def _dsns(port: int) -> list[tuple[str, str]]:
    """(DSN, expected target name) pairs pointing at a closed port."""
    return [
        (f"postgresql://special:p@ss:w/rd%@127.0.0.1:{port}/db", "<unparseable dsn>"),
        (
            rf"host=127.0.0.1 port={port} dbname=app user=x password=Leak\ Tail99",
            f"127.0.0.1:{port}/app",
        ),
    ]


def _leaks(text: str) -> list[str]:
    return [piece for piece in PIECES if piece in text]


@pytest.mark.parametrize("which", [0, 1])
def test_structlog_pipeline_never_prints_the_password(which: int) -> None:
    """A log event carrying a configured DSN, or libpq's error about it, prints no piece."""
    dsn, name = _dsns(free_port())[which]
    assert target_name(dsn) == name  # the process names (so registers) every DSN it uses
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    log = get_logger(dsn=dsn)
    log.warning("database unreachable", reason=f'invalid token: "{dsn[20:]}"', raw=dsn)
    log.info(f"connecting to {dsn}")
    text = out.getvalue()
    assert text.count("\n") == 2
    assert _leaks(text) == [], text


@pytest.mark.parametrize("which", [0, 1])
def test_doctor_unreachable_prints_one_line_without_password(which: int) -> None:
    """doctor --dsn against a closed port: exit 2, one stderr line, no password piece."""
    dsn, name = _dsns(free_port())[which]
    result = subprocess.run(
        [sys.executable, "-m", "dbpulse", "doctor", "--dsn", dsn],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"dbpulse doctor: cannot connect to {name}"), lines[0]
    assert _leaks(result.stderr + result.stdout) == [], result.stderr


@pytest.mark.parametrize("which", [0, 1])
def test_sidecar_logs_readyz_and_pg_up_hold_no_password(which: int) -> None:
    """An unreachable target's pg_up, /readyz body, /metrics and every log line are clean."""
    dsn, name = _dsns(free_port())[which]
    sidecar = SidecarProcess(dsn)
    try:
        samples = sidecar.wait_for(lambda s: any(n == "pg_up" for n, _ in s))
        sidecar.wait_for(lambda _s: any("database unreachable" in ln for ln in sidecar.output))
        status, readyz = fetch(sidecar.url + "/readyz")
        _status, metrics = fetch(sidecar.url + "/metrics")
    finally:
        sidecar.stop()
    assert [v for (n, _), v in samples.items() if n == "pg_up"] == [0.0]
    assert any(f'"target": "{name}"' in line for line in sidecar.output)  # named, clean
    assert status == 503
    assert _leaks(readyz) == [], readyz
    assert _leaks(metrics) == [], [ln for ln in metrics.splitlines() if _leaks(ln)]
    logs = "".join(sidecar.output)
    assert _leaks(logs) == [], logs
    for line in sidecar.output:
        json.loads(line)


def test_explicitly_named_target_still_has_its_dsn_scrubbed() -> None:
    """With DBPULSE_TARGET set the DSN is never named, yet libpq's echo of it is scrubbed."""
    dsn, _name = _dsns(free_port())[0]
    sidecar = SidecarProcess(dsn, env={"DBPULSE_TARGET": "orders"})
    try:
        sidecar.wait_for(lambda _s: any("database unreachable" in ln for ln in sidecar.output))
        _status, readyz = fetch(sidecar.url + "/readyz")
    finally:
        sidecar.stop()
    assert _leaks(readyz) == [], readyz
    logs = "".join(sidecar.output)
    assert '"target": "orders"' in logs
    assert _leaks(logs) == [], logs
