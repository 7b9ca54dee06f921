"""What the doctor knows about a database: plain data, filled by ``fetch``, judged by ``checks``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Row = dict[str, Any]


@dataclass(frozen=True)
class ServerSetting:
    """One row of pg_settings as the doctor's own session saw it."""

    value: str
    source: str
    boot_value: str


@dataclass(frozen=True)
class RoleSetting:
    """One pg_db_role_setting row: applies to a role, a database, or both."""

    for_role: bool
    for_database: bool
    config: tuple[str, ...]


@dataclass(frozen=True)
class PoolPlan:
    """The application's connection pools, from the doctor's flags."""

    pool_size: int
    max_overflow: int
    workers: int
    replicas: int

    @property
    def demand(self) -> int:
        return (self.pool_size + self.max_overflow) * self.workers * self.replicas


# What reading pg_stat_statements as the doctor's role did: the view's own answer to
# "is it loaded?" when shared_preload_libraries is hidden from the role.
StatementsProbe = Literal["readable", "not_loaded", "denied"]


@dataclass(frozen=True)
class Facts:
    target: str
    datname: str
    role: str
    server_version: int
    settings: dict[str, ServerSetting]
    role_settings: list[RoleSetting] = field(default_factory=list)
    pg_stat_statements_installed: bool = False
    # None when the extension is not installed, so there was no view to read.
    pg_stat_statements_probe: StatementsProbe | None = None
    # The role the doctor connected as (``role`` may be another one, from --role): the
    # grants that would let the doctor see more are for this one.
    login_role: str = ""
    # Member of pg_read_all_stats (or superuser): sees other roles' sessions and statements.
    reads_all_stats: bool = True
    # False when --role names a role the server does not have.
    role_exists: bool = True
    invalid_indexes: list[Row] = field(default_factory=list)
    not_valid_constraints: list[Row] = field(default_factory=list)
    fk_missing_index: list[Row] = field(default_factory=list)
    long_transactions: list[Row] = field(default_factory=list)
    tables_without_pk: list[Row] = field(default_factory=list)
    # The top statements by execution time, planned: queryid, query (scrubbed), plan
    # (EXPLAIN JSON, generic, never ANALYZE) or error; None when they were not looked at.
    top_plans: list[Row] | None = None
    # What advice needs about the tables those plans read (sidecar.explain.catalog_rows).
    plan_catalog: dict[str, list[Row]] = field(default_factory=dict)

    @property
    def grantee(self) -> str:
        return self.login_role or self.role

    def int_setting(self, name: str, default: int = 0) -> int:
        setting = self.settings.get(name)
        try:
            return int(setting.value) if setting else default
        except ValueError:
            return default
