"""DSN helpers that keep passwords out of everything dbpulse prints (pure)."""

from __future__ import annotations

import re

from psycopg.conninfo import conninfo_to_dict

_URL_PASSWORD = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@"
)
_KV_PASSWORD = re.compile(
    r"(?P<key>\bpassword\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|[^\s&]*)", re.IGNORECASE
)

REDACTED = "***"


def redact(text: str) -> str:
    """Replace any password in URL or key=value form inside ``text``."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
    return _KV_PASSWORD.sub(lambda m: f"{m['key']}{REDACTED}", text)


def target_name(dsn: str) -> str:
    """A stable, password-free name for a target: ``host:port/dbname``."""
    try:
        parts = conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - any parse failure falls back to a redacted DSN
        return redact(dsn)
    host = str(parts.get("host") or "localhost")
    if host.startswith("/"):
        host = "localhost"
    port = str(parts.get("port") or "5432")
    dbname = str(parts.get("dbname") or parts.get("user") or "postgres")
    return f"{host}:{port}/{dbname}"
