"""Pool names for instrumented engines: from the URL, never its user or password (pure)."""

from __future__ import annotations

from sqlalchemy.engine import Engine

__all__ = ["default_pool_name", "unique_name"]


def default_pool_name(engine: Engine) -> str:
    """``host:port/dbname`` from the engine's URL; never the user or password."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        return f"sqlite:{url.database or ':memory:'}"
    port = url.port or {"postgresql": 5432, "mysql": 3306}.get(url.get_backend_name(), 0)
    name = f"{url.host or 'localhost'}:{port}/{url.database or ''}"
    # An '@' here is the tail of a password typed without percent-encoding.
    return "<unparseable url>" if "@" in name else name


def unique_name(taken: set[str], wanted: str) -> str:
    """``wanted``, or ``wanted#2``, ``#3``... when another engine already uses it."""
    if wanted not in taken:
        return wanted
    n = 2
    while f"{wanted}#{n}" in taken:
        n += 1
    return f"{wanted}#{n}"
