"""Named database servers for ``/probe?target=NAME`` and per-server database discovery."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator

from dbpulse.settings.base import MIN_INTERVAL, Strict, floor
from dbpulse.settings.dsncheck import check_dsn

__all__ = ["DiscoverySettings", "TargetSettings"]

_TARGET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


class TargetSettings(Strict):
    """One named database server for /probe: its own DSN, or a host for dsn_template."""

    name: str = Field(description="the name Prometheus passes as /probe?target=NAME")
    dsn: SecretStr | None = Field(
        default=None, description="libpq URL or key=value string; else dsn_template is used"
    )
    host: str | None = Field(default=None, description="{host} in dsn_template")
    port: int = Field(default=5432, ge=1, le=65535, description="{port} in dsn_template")
    dbname: str = Field(default="postgres", description="{dbname} in dsn_template")
    max_connections: int = Field(
        default=1, ge=1, le=10, description="connections for server-wide collectors"
    )
    discovery: bool | None = Field(
        default=None, description="poll every database of this server; default discovery.enabled"
    )

    @field_validator("dsn")
    @classmethod
    def _check_dsn(cls, value: SecretStr | None) -> SecretStr | None:
        return check_dsn(value)

    @field_validator("name")
    @classmethod
    def _check_target_name(cls, value: str) -> str:
        if not _TARGET_NAME.match(value):
            raise ValueError(
                "must be 1-128 of A-Z, a-z, 0-9, _ . : - (starting with a letter or digit)"
            )
        return value


class DiscoverySettings(Strict):
    """Per-database collectors (migrations) on every database of a server."""

    enabled: bool = Field(default=False, description="default for targets[].discovery")
    include: list[str] = Field(
        default_factory=lambda: [".*"], description="regexes; a database must match one"
    )
    exclude: list[str] = Field(
        default_factory=list, description="regexes; a database matching one is skipped"
    )
    interval: float = Field(
        default=300.0,
        gt=0,
        le=86400,
        description="seconds between database list refreshes",
    )
    max_databases: int = Field(
        default=50, ge=1, le=10000, description="databases polled per server (one connection each)"
    )

    _check_min_interval = floor(MIN_INTERVAL, "interval")

    @field_validator("include", "exclude")
    @classmethod
    def _check_patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from exc
        return value
