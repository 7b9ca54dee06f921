"""Pool configuration lint, run once at ``instrument()`` time.

``PoolConfig.from_engine`` reads what it can from a live engine; ``findings`` is pure and
says which well-known anti-patterns the configuration shows:

- no ``pool_pre_ping``: the first query after a database restart or a proxy's idle
  timeout fails instead of reconnecting;
- no ``statement_timeout`` for PostgreSQL (``connect_args={"options": "-c
  statement_timeout=..."}``, ``?options=`` in the URL, or asyncpg's
  ``connect_args={"server_settings": {"statement_timeout": ...}}``): one runaway query
  can hold a connection, and the pool, forever;
- ``NullPool`` outside tests: every checkout opens a new connection.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool, QueuePool

from dbpulse.inprocess.compat import connect_args, pool_max_overflow, pool_pre_ping, pool_recycle

__all__ = ["PoolConfig", "findings", "running_under_tests"]


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """The pool settings that matter for the lint and the info metric."""

    pool_class: str
    dialect: str
    size: int | None
    max_overflow: int | None
    timeout: float | None
    pre_ping: bool
    recycle: int
    statement_timeout: bool | None  # None: could not tell

    def labels(self) -> dict[str, str]:
        """Label values for ``db_client_pool_config_info`` ('' where not applicable)."""
        return {
            "pool_class": self.pool_class,
            "size": "" if self.size is None else str(self.size),
            "max_overflow": "" if self.max_overflow is None else str(self.max_overflow),
            "timeout": "" if self.timeout is None else f"{self.timeout:g}",
            "pre_ping": str(self.pre_ping).lower(),
            "recycle": str(self.recycle),
        }

    @classmethod
    def from_engine(cls, engine: Engine) -> PoolConfig:
        pool = engine.pool
        size: int | None = None
        max_overflow: int | None = None
        timeout: float | None = None
        if isinstance(pool, QueuePool):
            size, max_overflow, timeout = pool.size(), pool_max_overflow(pool), pool.timeout()
        return cls(
            pool_class=type(pool).__name__,
            dialect=engine.dialect.name,
            size=size,
            max_overflow=max_overflow,
            timeout=timeout,
            pre_ping=pool_pre_ping(pool),
            recycle=pool_recycle(pool),
            statement_timeout=_has_statement_timeout(engine),
        )


def _has_statement_timeout(engine: Engine) -> bool | None:
    """Whether the URL or connect_args set statement_timeout (None: unknown)."""
    if "statement_timeout" in str(engine.url.query.get("options", "")):
        return True
    cparams = connect_args(engine)
    if cparams is None:
        return None
    if "statement_timeout" in str(cparams.get("options", "")):
        return True
    # asyncpg takes server settings as a dict rather than a libpq options string.
    server_settings = cparams.get("server_settings")
    return isinstance(server_settings, dict) and "statement_timeout" in server_settings


def running_under_tests() -> bool:
    """True inside a pytest run, where NullPool is a legitimate choice."""
    return "pytest" in sys.modules


def findings(config: PoolConfig, *, under_tests: bool) -> list[tuple[str, str]]:
    """(code, advice) for each anti-pattern in ``config``."""
    found: list[tuple[str, str]] = []
    pooled = config.pool_class not in ("NullPool", "StaticPool", "AssertionPool")
    # SQLite has no server to restart or proxy to time out: nothing to ping.
    if pooled and not config.pre_ping and config.dialect != "sqlite":
        found.append(
            (
                "no_pre_ping",
                "pool_pre_ping is off: after a database restart or an idle-timeout "
                "disconnect the next query fails; create_engine(..., pool_pre_ping=True)",
            )
        )
    if config.dialect == "postgresql" and config.statement_timeout is not True:
        found.append(
            (
                "no_statement_timeout",
                "no statement_timeout in connect_args or the URL: a runaway query holds "
                "its connection forever; connect_args={'options': '-c "
                "statement_timeout=30000'} (ignore if set on the role or database)",
            )
        )
    if config.pool_class == NullPool.__name__ and not under_tests:
        found.append(
            (
                "null_pool",
                "NullPool opens a new connection per checkout; use QueuePool (the "
                "default) unless an external pooler such as PgBouncer sits in front",
            )
        )
    return found
