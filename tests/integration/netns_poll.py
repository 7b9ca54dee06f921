"""Runs inside a network namespace for test_faults_network: one poll across a link the test drops.

Protocol on stdout, one line each: ``ready`` (connected), ``inflight`` (the poll's query
is being sent), then the outcome: ``ok`` or ``ExceptionClass: first line``.
"""

from __future__ import annotations

import sys

from dbpulse.errors import first_line
from dbpulse.logging import configure_logging
from dbpulse.sidecar.connection import ConnectionManager

# A statement_timeout this long puts the client-side deadline at 2 x 30 + 2 = 62 s, far
# beyond keepalive detection, so whatever ends the poll is the kernel, not the deadline.
STATEMENT_TIMEOUT = 30.0


def main(dsn: str) -> None:
    configure_logging(fmt="json", stream=sys.stderr)  # stdout carries the protocol
    conns = ConnectionManager(dsn, target="netns", connect_timeout=2)
    with conns.transaction(STATEMENT_TIMEOUT) as conn:
        conn.execute("SELECT 1")
    print("ready", flush=True)
    sys.stdin.readline()
    try:
        with conns.transaction(STATEMENT_TIMEOUT) as conn:
            print("inflight", flush=True)
            conn.execute("SELECT pg_sleep(1)")
        outcome = "ok"
    except Exception as exc:
        outcome = f"{type(exc).__name__}: {first_line(exc)}"
    print(outcome, flush=True)
    conns.close()


if __name__ == "__main__":
    main(sys.argv[1])
