"""How dbpulse turns an exception into the one line it logs or reports (pure)."""

from __future__ import annotations

from dbpulse.dsn import redact


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s text, password-free; its class name when it has none.

    libpq's messages run to several lines (DETAIL, HINT, the failed host list); the first
    says what went wrong, and a one-line reason keeps logs and /readyz readable.
    """
    lines = str(exc).strip().splitlines()
    return redact(lines[0]) if lines else type(exc).__name__
