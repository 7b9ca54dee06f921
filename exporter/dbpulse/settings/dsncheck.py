"""A configured DSN is checked at load for what would only fail later, in a log line.

``postgresql://a@b:notaport/x`` used to start, then log a resolver error every retry.
libpq's own parser reads the DSN (never a regex); the message never quotes it: a port
that is not a number is, in practice, part of a password whose ':' is not encoded.
A DSN libpq cannot read at all is left to the runtime, which names it
``<unparseable dsn>`` (``dsn.py``) and reports it unreachable without echoing it.
"""

from __future__ import annotations

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import SecretStr

__all__ = ["check_dsn"]


def check_dsn(value: SecretStr | None) -> SecretStr | None:
    """The DSN unchanged, or ValueError when its port cannot be a port."""
    if value is None:
        return None
    try:
        parts = conninfo_to_dict(value.get_secret_value())
    except psycopg.Error:
        return value
    for port in str(parts.get("port") or "").split(","):
        if port and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise ValueError(
                "the port must be a number from 1 to 65535"
                " (a ':' or '@' in the password must be percent-encoded: %3A, %40)"
            )
    return value
