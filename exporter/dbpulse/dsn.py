"""DSN naming and redaction that keep passwords out of everything dbpulse prints.

Every DSN is read with libpq's own parser (``conninfo_to_dict``), never a regex: a
password libpq would split differently from a pattern (an unencoded ``@`` or ``%``,
a backslash-escaped space) then cannot leak in part. A DSN libpq cannot read, or reads
ambiguously, is named ``<unparseable dsn>`` and never echoed.

DSNs the process was configured with are also remembered (``target_name`` and
``remember`` register them), so ``redact`` replaces them wholesale, and their passwords
and the fragments libpq's error messages quote back, wherever they appear in any text.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from dbpulse.dsn_text import (
    REDACTED,
    UNPARSEABLE,
    URI_PREFIXES,
    parse,
    quoted_fragments,
    scrub_keyvalue,
    scrub_uris,
)

__all__ = ["REDACTED", "UNPARSEABLE", "forget", "parse", "redact", "remember", "target_name"]


@dataclass(frozen=True, slots=True)
class _Known:
    raw: str  # the DSN exactly as configured
    replacement: str  # what it becomes in any output
    secrets: tuple[str, ...]  # passwords (or, unparsed, password candidates) to scrub
    parsed: bool  # False: also scrub quoted fragments of it (libpq's parse errors)


_KNOWN: dict[str, _Known] = {}
# Configured DSNs register first; the cap keeps DSNs from URLs (/probe) from growing it
# without bound or slowing every log line.
_MAX_KNOWN = 256
_LOCK = threading.Lock()


def _uri_password_candidate(dsn: str) -> str:
    """For an unparseable URI, everything that might be its password (over-approximated:
    a raw password may hold '/', '?' or '@', so it may reach up to the last '@')."""
    rest = dsn.split("://", 1)[1]
    userinfo = rest[: rest.rfind("@")] if "@" in rest else ""
    return userinfo.split(":", 1)[1] if ":" in userinfo else ""


def remember(dsn: str) -> None:
    """Register a DSN the process uses, so ``redact`` scrubs it from any text."""
    if not dsn or dsn in _KNOWN:
        return
    parts = parse(dsn)
    if parts is None:
        candidate = _uri_password_candidate(dsn) if dsn.startswith(URI_PREFIXES) else ""
        known = _Known(dsn, UNPARSEABLE, (candidate,) if candidate else (), parsed=False)
    else:
        password = parts.get("password", "")
        known = _Known(dsn, _safe(dsn), (password,) if password else (), parsed=True)
    with _LOCK:
        if len(_KNOWN) < _MAX_KNOWN:
            _KNOWN[dsn] = known


def forget(dsn: str) -> None:
    """Stop scrubbing ``dsn`` specially (e.g. a /probe DSN whose connections are closed)."""
    with _LOCK:
        _KNOWN.pop(dsn, None)


def _safe(dsn: str) -> str:
    """A parseable DSN with its password replaced, still readable as a DSN."""
    return scrub_keyvalue(scrub_uris(dsn))


def _secrets() -> tuple[list[_Known], list[str]]:
    with _LOCK:
        known = sorted(_KNOWN.values(), key=lambda k: -len(k.raw))
    secrets = {s for k in known for s in k.secrets}
    ambient = os.environ.get("PGPASSWORD")  # libpq's implicit password is a secret too
    if ambient:
        secrets.add(ambient)
    return known, sorted(secrets, key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with every DSN password, known DSN and unparseable DSN taken out."""
    known, secrets = _secrets()
    # Known DSNs go to sentinels first, so that scrubbing their passwords afterwards
    # cannot mangle the replacement texts. A sentinel is NULs around one private-use
    # character: libpq strings cannot hold a NUL, so no password can match inside one.
    sentinels: dict[str, str] = {}
    for i, k in enumerate(known):
        if k.raw in text:
            sentinel = f"\x00{chr(0xF0000 + i)}\x00"
            text = text.replace(k.raw, sentinel)
            sentinels[sentinel] = k.replacement
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    unparsed = [k.raw for k in known if not k.parsed]
    if unparsed and '"' in text:
        for start, end in reversed(quoted_fragments(text, unparsed)):
            text = text[:start] + REDACTED + text[end:]
    text = scrub_keyvalue(scrub_uris(text))
    for sentinel, replacement in sentinels.items():
        text = text.replace(sentinel, replacement)
    return text


def target_name(dsn: str) -> str:
    """A stable, password-free name for a target: ``host:port/dbname``.

    Naming a DSN also registers it with ``redact`` (every configured target is named).
    """
    remember(dsn)
    parts = parse(dsn)
    if parts is None:
        return UNPARSEABLE
    host = parts.get("host") or "localhost"
    if host.startswith("/"):
        host = "localhost"
    port = parts.get("port") or "5432"
    dbname = parts.get("dbname") or parts.get("user") or "postgres"
    return f"{host}:{port}/{dbname}"
