"""A sidecar's JSON log stream stays JSON when APScheduler logs (issue 13.8)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from tests.sidecar_process import SidecarProcess


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections and never answers: every poll hangs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]


def test_every_line_is_json_while_apscheduler_warns(silent_port: int) -> None:
    """Hung polls make APScheduler skip runs; its warnings arrive as JSON like ours."""
    sidecar = SidecarProcess(f"postgresql://dbpulse@127.0.0.1:{silent_port}/db", interval=0.5)
    try:
        sidecar.wait_for(
            lambda _s: any("maximum number of running instances" in ln for ln in sidecar.output)
        )
    finally:
        sidecar.stop()
    parsed = []
    for line in sidecar.output:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}")
    assert any(str(p.get("logger", "")).startswith("apscheduler") for p in parsed)
