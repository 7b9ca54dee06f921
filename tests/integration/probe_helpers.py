"""Serving a MultiTarget over real HTTP for /probe tests, and a GET that keeps error bodies."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable

from dbpulse.http import Endpoints, start_server
from dbpulse.sidecar.multitarget import MultiTarget


def serve_multi(multi: MultiTarget) -> tuple[str, Callable[[], None]]:
    """Start ``multi`` behind a real server; returns its base URL and a stop function."""
    server, _ = start_server(
        "127.0.0.1",
        0,
        Endpoints(registry=multi, probe=multi.probe),  # type: ignore[arg-type]
    )
    multi.start()

    def stop() -> None:
        server.shutdown()
        multi.stop()

    return f"http://127.0.0.1:{server.server_address[1]}", stop


def get(url: str) -> tuple[int, str]:
    """Status and body, for error statuses too (urllib raises on those)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
