"""The collectors' sections: schedule and limits per collector, and their fixed names."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field, model_validator

from dbpulse.settings.base import MIN_INTERVAL, MIN_TIMEOUT, Strict, floor

__all__ = [
    "COLLECTOR_NAMES",
    "CollectorSettings",
    "CollectorsSettings",
    "MigrationsSettings",
    "RegressionsSettings",
    "SlowChangingSettings",
    "StatementsSettings",
    "TablesSettings",
]

COLLECTOR_NAMES = (
    "activity",
    "statements",
    "locks",
    "progress",
    "database",
    "migrations",
    "regressions",
    "tables",
    "stat_io",
    "replication",
    "replication_slots",
    "bgwriter",
    "archiver",
    "wal",
    "settings",
    "server",
    "roles",
)


class CollectorSettings(Strict):
    """Per-collector schedule and limits."""

    enabled: bool = True
    interval: float | None = Field(
        default=None,
        gt=0,
        le=86400,
        description="seconds between polls; default: top-level interval",
    )
    timeout: float = Field(
        default=5.0,
        gt=0,
        le=600,
        description="statement_timeout for this collector's queries, seconds",
    )
    stale_after: float | None = Field(
        default=None,
        gt=0,
        description="drop its series when the last success is older; default 3 x interval",
    )

    _check_min_interval = floor(MIN_INTERVAL, "interval")

    _check_min_timeout = floor(MIN_TIMEOUT, "timeout")


class StatementsSettings(CollectorSettings):
    """pg_stat_statements: top-N selection under a series budget."""

    top_n: int = Field(default=200, ge=1, le=5000, description="statements exported per poll")
    max_series: int = Field(
        default=2000, ge=10, le=100000, description="hard cap on series this collector emits"
    )
    hold_seconds: float = Field(
        default=600.0,
        ge=0,
        description="a statement that entered the top-N stays at least this long (no flapping)",
    )
    text_max_length: int = Field(
        default=2000,
        ge=0,
        le=10000,
        description="query text shown at /debug/statements (never a label); a longer text "
        "is cut, with its tail and a hash of the whole beside it",
    )


class MigrationsSettings(CollectorSettings):
    """Schema hazards left by migrations; catalog queries, so polled less often."""

    interval: float | None = Field(
        default=300.0, gt=0, le=86400, description="seconds between polls (catalog scans)"
    )
    max_series: int = Field(
        default=200, ge=1, le=10000, description="series per metric family, worst first"
    )
    unused_index_min_bytes: int = Field(
        default=1_048_576, ge=0, description="unused indexes smaller than this are not reported"
    )
    seq_scan_min_scans: int = Field(
        default=1000, ge=0, description="sequential scans since stats reset to count as heavy"
    )
    seq_scan_min_rows: int = Field(
        default=10_000, ge=0, description="live rows a table needs for its seq scans to matter"
    )


class ActivitySettings(CollectorSettings):
    """pg_stat_activity: sessions by state, and by who and what they wait for."""

    detail_max_series: int = Field(
        default=100,
        ge=2,
        le=10000,
        description="series of pg_stat_activity_detail_count; smaller groups fold into (other)",
    )


class SlowChangingSettings(CollectorSettings):
    """Views that change only on a reload or restart (pg_settings, pg_roles, the version):
    polled every minute by default rather than at the top-level interval."""

    interval: float | None = Field(
        default=60.0, gt=0, le=86400, description="seconds between polls (rarely changes)"
    )


class RegressionsSettings(CollectorSettings):
    """Statements slower than their own baseline, their plans and advice (per database)."""

    interval: float | None = Field(
        default=60.0, gt=0, le=86400, description="seconds between polls (reads counters only)"
    )
    factor: float = Field(
        default=2.0, gt=1, description="recent time per call / baseline that is a regression"
    )
    clear_factor: float = Field(
        default=1.5, gt=1, description="a regression clears when its ratio falls below this"
    )
    min_calls: int = Field(
        default=20, ge=1, description="calls in the recent window needed to judge a statement"
    )
    min_extra_seconds: float = Field(
        default=0.001, ge=0, description="recent minus baseline time per call, at least"
    )
    recent_window: float = Field(
        default=600.0, gt=0, description="seconds of polls that make up 'recent'"
    )
    baseline_half_life: float = Field(
        default=21600.0, gt=0, description="seconds after which old calls weigh half"
    )
    top_n: int = Field(default=20, ge=1, le=1000, description="regressions exported, worst first")
    explain: bool = Field(
        default=True, description="plan regressed and top statements (EXPLAIN, never ANALYZE)"
    )
    explain_top: int = Field(
        default=10, ge=0, le=1000, description="top statements by total time kept planned"
    )
    explain_per_poll: int = Field(default=3, ge=0, le=100, description="EXPLAINs per poll, at most")
    explain_period: float = Field(
        default=3600.0, ge=0, description="seconds before the same statement is planned again"
    )
    explain_timeout: float = Field(
        default=0.5, gt=0, le=60, description="statement_timeout of each EXPLAIN, seconds"
    )

    @model_validator(mode="after")
    def _clear_below_factor(self) -> RegressionsSettings:
        if self.clear_factor > self.factor:
            raise ValueError("clear_factor must not exceed factor")
        return self


class TablesSettings(CollectorSettings):
    """Per-table and per-index statistics: the worst tables under a series budget."""

    interval: float | None = Field(
        default=60.0, gt=0, le=86400, description="seconds between polls (reads every table)"
    )
    top_n: int = Field(
        default=20, ge=1, le=10000, description="tables exported per target, worst first"
    )
    max_series: int = Field(
        default=1200,
        ge=30,
        le=100000,
        description="hard cap on the per-table and per-index series of a target",
    )
    hold_seconds: float = Field(
        default=600.0,
        ge=0,
        description="a table that entered the top-N stays at least this long (no flapping)",
    )


class CollectorsSettings(Strict):
    activity: ActivitySettings = Field(default_factory=ActivitySettings)
    statements: StatementsSettings = Field(default_factory=StatementsSettings)
    locks: CollectorSettings = Field(default_factory=CollectorSettings)
    progress: CollectorSettings = Field(default_factory=CollectorSettings)
    database: CollectorSettings = Field(default_factory=CollectorSettings)
    migrations: MigrationsSettings = Field(default_factory=MigrationsSettings)
    regressions: RegressionsSettings = Field(default_factory=RegressionsSettings)
    tables: TablesSettings = Field(default_factory=TablesSettings)
    stat_io: CollectorSettings = Field(default_factory=CollectorSettings)
    replication: CollectorSettings = Field(default_factory=CollectorSettings)
    replication_slots: CollectorSettings = Field(default_factory=CollectorSettings)
    bgwriter: CollectorSettings = Field(default_factory=CollectorSettings)
    archiver: CollectorSettings = Field(default_factory=CollectorSettings)
    wal: CollectorSettings = Field(default_factory=CollectorSettings)
    settings: SlowChangingSettings = Field(default_factory=SlowChangingSettings)
    server: SlowChangingSettings = Field(default_factory=SlowChangingSettings)
    roles: SlowChangingSettings = Field(default_factory=SlowChangingSettings)

    def items(self) -> Iterator[tuple[str, CollectorSettings]]:
        for name in COLLECTOR_NAMES:
            yield name, getattr(self, name)
