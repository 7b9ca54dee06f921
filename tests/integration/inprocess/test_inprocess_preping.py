"""Pool gauges while checkouts pre-ping: every caller is pending or used, never both."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, text

from tests.integration.collector_helpers import wait_for
from tests.integration.inprocess.conftest import Instrumented

THREADS = 3
ROUNDS = 30


def _pending_and_used(registry: CollectorRegistry, name: str) -> tuple[float, float]:
    """pending and used from ONE collection (two separate reads could mix two instants)."""
    found: dict[str, float] = {}
    for family in registry.collect():
        for s in family.samples:
            if s.labels.get("pool_name") != name:
                continue
            if s.name == "db_client_connection_pending_requests":
                found["pending"] = s.value
            elif s.name == "db_client_connection_count" and s.labels.get("state") == "used":
                found["used"] = s.value
    return found["pending"], found["used"]


class _GatedPing:
    """Wraps the dialect's do_ping: counts pings in progress, blocks them until released."""

    def __init__(self, engine: Engine, during: Callable[[], None]) -> None:
        self._original: Callable[[Any], bool] = engine.dialect.do_ping
        self._during = during  # run inside every pre-ping, once released
        self.release = threading.Event()
        self._lock = threading.Lock()
        self.in_progress = 0
        self.done = 0

    def __call__(self, dbapi_connection: Any) -> bool:
        with self._lock:
            self.in_progress += 1
        try:
            self.release.wait()
            self._during()
            return self._original(dbapi_connection)
        finally:
            with self._lock:
                self.in_progress -= 1
                self.done += 1


def test_pre_pinging_checkout_is_used_not_pending(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """Checkouts held in pre-ping count as used only; pending+used never exceeds the callers."""
    engine, inst = instrumented(pg_url, pool_size=2, max_overflow=0, pool_pre_ping=True)
    name = inst.pool_name
    # Open both connections once: pre-ping skips a connection's first (fresh) checkout.
    warm = [engine.connect() for _ in range(2)]
    for c in warm:
        c.close()
    samples: list[tuple[float, float]] = []
    # A sample taken inside each pre-ping is one taken while that pre-ping is in
    # progress, however quick the ping; the sampler thread adds samples at random moments.
    ping = _GatedPing(engine, lambda: samples.append(_pending_and_used(registry, name)))
    engine.dialect.do_ping = ping  # type: ignore[method-assign]
    errors: list[BaseException] = []
    stop = threading.Event()

    def work() -> None:
        try:
            for _ in range(ROUNDS):
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
        except BaseException as e:  # the test fails on any of them, below
            errors.append(e)

    def sample() -> None:
        while not stop.is_set():
            samples.append(_pending_and_used(registry, name))

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for t in threads:
        t.start()
    try:
        # Two callers are inside their pre-ping with a connection each; the third waits.
        wait_for(lambda: ping.in_progress == 2 and _pending_and_used(registry, name)[0] >= 1)
        assert _pending_and_used(registry, name) == (1, 2)
    finally:
        ping.release.set()  # from here on pre-pings run through (and on any failure above)
    sampler = threading.Thread(target=sample)
    sampler.start()
    for t in threads:
        t.join()
    stop.set()
    sampler.join()
    assert errors == []
    assert ping.done == THREADS * ROUNDS  # every checkout pre-pinged: the window was open
    over = [(p, u) for p, u in samples if p + u > THREADS]
    assert len(samples) >= THREADS * ROUNDS
    assert over == [], f"{len(over)} of {len(samples)} samples: {over[:5]}"
    assert _pending_and_used(registry, name) == (0, 0)
