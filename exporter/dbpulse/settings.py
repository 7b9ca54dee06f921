"""The one settings model: CLI flags, then ``DBPULSE_*`` environment, then a YAML file.

Unknown keys are errors at every level (``extra="forbid"``) so that a typo in a config
file is reported instead of silently falling back to a default.
"""

from __future__ import annotations

import contextvars
import ipaddress
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

COLLECTOR_NAMES = ("activity", "statements", "locks", "progress", "database", "migrations")

_config_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "dbpulse_config_file", default=None
)


class ConfigError(Exception):
    """Configuration that cannot be used; ``problems`` are ``(field.path, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        super().__init__("; ".join(f"{path}: {msg}" for path, msg in problems))

    def lines(self) -> list[str]:
        prefix = f"{self.source}: " if self.source else ""
        return [
            f"{prefix}{path}: {msg}" if path else f"{prefix}{msg}" for path, msg in self.problems
        ]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class CollectorSettings(_Strict):
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
        default=200, ge=0, le=10000, description="query text kept for /debug (never a label)"
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


class CollectorsSettings(_Strict):
    activity: CollectorSettings = Field(default_factory=CollectorSettings)
    statements: StatementsSettings = Field(default_factory=StatementsSettings)
    locks: CollectorSettings = Field(default_factory=CollectorSettings)
    progress: CollectorSettings = Field(default_factory=CollectorSettings)
    database: CollectorSettings = Field(default_factory=CollectorSettings)
    migrations: MigrationsSettings = Field(default_factory=MigrationsSettings)

    def items(self) -> Iterator[tuple[str, CollectorSettings]]:
        for name in COLLECTOR_NAMES:
            yield name, getattr(self, name)


_PROBE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class ProbeSettings(_Strict):
    """A named read-only SQL query whose numeric columns become gauges."""

    name: str = Field(description="probe name: lower case, digits and _; job probe:<name>")
    sql: str = Field(min_length=1, description="one SELECT; runs in a read-only transaction")
    interval: float | None = Field(
        default=None, gt=0, le=86400, description="seconds between runs; default: interval"
    )
    timeout: float = Field(default=5.0, gt=0, le=600, description="statement_timeout, seconds")
    stale_after: float | None = Field(
        default=None, gt=0, description="drop its series when older; default 3 x interval"
    )
    labels: list[str] = Field(
        default_factory=list, description="result columns used as labels, not values"
    )
    metric: str | None = Field(
        default=None, description="metric name prefix; default dbpulse_probe_<name>"
    )
    help: str = Field(default="", description="HELP text of the gauges")
    max_rows: int = Field(default=100, ge=1, le=10000, description="rows read (series bound)")
    remaining_column: str | None = Field(
        default=None, description="column counting work left (watch-migration ends at 0)"
    )
    total_column: str | None = Field(
        default=None, description="column with the total amount of work, for a progress bar"
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _PROBE_NAME.match(value):
            raise ValueError("must start with a-z and hold only a-z, 0-9 and _ (max 63)")
        return value

    @field_validator("metric")
    @classmethod
    def _check_metric(cls, value: str | None) -> str | None:
        if value is not None and not _METRIC_NAME.match(value):
            raise ValueError("must be a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)")
        return value

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not _LABEL_NAME.match(name) or name.startswith("__")]
        if bad:
            raise ValueError(f"not usable as Prometheus label names: {', '.join(bad)}")
        if len(set(value)) != len(value):
            raise ValueError("label columns must be distinct")
        return value

    def metric_prefix(self) -> str:
        return self.metric or f"dbpulse_probe_{self.name}"


class TelemetrySettings(_Strict):
    """OpenTelemetry traces (off by default: no provider is created, nothing is exported).

    Unset fields fall back to the standard ``OTEL_*`` environment variables
    (``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`` / ``_PROTOCOL`` / ``_HEADERS``,
    ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``), then to the defaults below.
    """

    enabled: bool = Field(default=False, description="export spans over OTLP")
    protocol: Literal["grpc", "http/protobuf"] | None = Field(
        default=None, description="OTLP transport; default OTEL_EXPORTER_OTLP_PROTOCOL or grpc"
    )
    endpoint: str | None = Field(
        default=None, description="collector URL; default OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="extra OTLP request headers (e.g. an API key)"
    )
    service_name: str | None = Field(
        default=None, description="service.name; default OTEL_SERVICE_NAME or dbpulse"
    )
    sample_ratio: float = Field(
        default=1.0, ge=0, le=1, description="fraction of root spans kept (parent-based)"
    )
    timeout: float = Field(default=10.0, gt=0, le=120, description="OTLP export timeout, s")
    slow_query_seconds: float = Field(
        default=5.0,
        gt=0,
        description="an active query older than this in pg_stat_activity becomes a span",
    )


_TARGET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


class TargetSettings(_Strict):
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

    @field_validator("name")
    @classmethod
    def _check_target_name(cls, value: str) -> str:
        if not _TARGET_NAME.match(value):
            raise ValueError(
                "must be 1-128 of A-Z, a-z, 0-9, _ . : - (starting with a letter or digit)"
            )
        return value


class DiscoverySettings(_Strict):
    """Per-database collectors (migrations) on every database of a server."""

    enabled: bool = Field(default=False, description="default for targets[].discovery")
    include: list[str] = Field(
        default_factory=lambda: [".*"], description="regexes; a database must match one"
    )
    exclude: list[str] = Field(
        default_factory=list, description="regexes; a database matching one is skipped"
    )
    interval: float = Field(
        default=300.0, gt=0, le=86400, description="seconds between database list refreshes"
    )
    max_databases: int = Field(
        default=50, ge=1, le=10000, description="databases polled per server (one connection each)"
    )

    @field_validator("include", "exclude")
    @classmethod
    def _check_patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from exc
        return value


class _YamlFileSource(PydanticBaseSettingsSource):
    """Reads the file named by ``--config`` (held in a context variable for one load)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # pragma: no cover - __call__ does the work

    def __call__(self) -> dict[str, Any]:
        path = _config_file.get()
        if path is None:
            return {}
        return read_yaml(path)


class Settings(BaseSettings):
    """Everything dbpulse reads from its configuration."""

    model_config = SettingsConfigDict(
        env_prefix="DBPULSE_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    dsn: SecretStr | None = Field(
        default=None, description="libpq connection string or URL of the database to watch"
    )
    target: str | None = Field(
        default=None, description="name for the target label; default host:port/dbname"
    )
    listen: str = Field(default="0.0.0.0:9189", description="HOST:PORT the HTTP server binds")
    interval: float = Field(
        default=15.0, gt=0, le=86400, description="default seconds between polls"
    )
    lock_timeout: float = Field(
        default=0.1, gt=0, le=60, description="lock_timeout on every sidecar query, seconds"
    )
    connect_timeout: float = Field(default=5.0, gt=0, le=120, description="seconds to connect")
    max_connections: int = Field(
        default=1, ge=1, le=10, description="connections the poller may hold to the target"
    )
    stale_after: float | None = Field(
        default=None, gt=0, description="/readyz fails when no poll reached the database this long"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: console on a TTY, JSON lines otherwise"
    )
    collectors: CollectorsSettings = Field(default_factory=CollectorsSettings)
    probes: list[ProbeSettings] = Field(
        default_factory=list, description="custom SQL probes exported as gauges"
    )
    telemetry: TelemetrySettings = Field(
        default_factory=TelemetrySettings, description="OpenTelemetry traces over OTLP"
    )

    targets: list[TargetSettings] = Field(
        default_factory=list, description="named servers served on /probe?target=NAME"
    )
    dsn_template: str | None = Field(
        default=None,
        description="DSN for targets given by host, e.g. postgresql://u@{host}:{port}/{dbname}",
    )
    password_file: Path | None = Field(
        default=None, description="file whose first line is the password added to target DSNs"
    )
    allow_dsn_in_url: bool = Field(
        default=False, description="accept /probe?target=<DSN> (off: only configured names)"
    )
    targets_idle_timeout: float = Field(
        default=600.0, gt=0, description="drop a target's poller when not probed this long"
    )
    max_connections_total: int = Field(
        default=100, ge=1, le=10000, description="connections all targets may hold together"
    )
    workers: int = Field(
        default=32, ge=1, le=256, description="threads polling targets (shared by all targets)"
    )
    first_probe_wait: float = Field(
        default=1.0, ge=0, le=2, description="seconds a new target's first probe waits for its poll"
    )
    discovery: DiscoverySettings = Field(default_factory=DiscoverySettings)

    @field_validator("probes", "targets")
    @classmethod
    def _check_unique_names(
        cls, value: list[ProbeSettings] | list[TargetSettings], info: ValidationInfo
    ) -> list[ProbeSettings] | list[TargetSettings]:
        names = [item.name for item in value]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            what = "probe" if info.field_name == "probes" else "target"
            raise ValueError(f"{what} names must be unique: {', '.join(duplicates)}")
        return value

    @field_validator("dsn_template")
    @classmethod
    def _check_dsn_template(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                value.format(host="h", port=5432, dbname="d")
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(
                    f"only {{host}}, {{port}} and {{dbname}} can be filled in ({exc!r})"
                ) from None
        return value

    @model_validator(mode="after")
    def _check_target_dsns(self) -> Settings:
        for target in self.targets:
            if target.dsn is None and (target.host is None or self.dsn_template is None):
                raise ValueError(
                    f"targets: {target.name!r} needs a dsn, or a host and a top-level dsn_template"
                )
        return self

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Flags arrive as init kwargs and win; then the environment; then the file.
        return (init_settings, env_settings, _YamlFileSource(settings_cls))

    def collector_interval(self, name: str) -> float:
        interval = getattr(self.collectors, name).interval
        return float(interval if interval is not None else self.interval)

    def collector_stale_after(self, name: str) -> float:
        stale = getattr(self.collectors, name).stale_after
        return float(stale if stale is not None else 3 * self.collector_interval(name))

    def readiness_stale_after(self) -> float:
        if self.stale_after is not None:
            return self.stale_after
        return 3 * min(self.collector_interval(n) for n, c in self.collectors.items() if c.enabled)


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:9189`` for IPv6) and check both parts."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError("must be HOST:PORT, e.g. 0.0.0.0:9189")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError("port must be between 0 and 65535")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - binding all interfaces is the sidecar's job
    if not host.replace("-", "").replace(".", "").isalnum():
        try:
            ipaddress.ip_address(host)
        except ValueError as exc:
            raise ValueError(f"{host!r} is not a host name or address") from exc
    return host, port


def read_yaml(path: Path) -> dict[str, Any]:
    """Load a YAML mapping, turning every failure into a ConfigError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([("", f"cannot read config file: {exc.strerror}")], str(path)) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError([("", f"{problem}{where}")], str(path)) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([("", "top level must be a mapping of settings")], str(path))
    bad_keys = [repr(key) for key in data if not isinstance(key, str)]
    if bad_keys:
        raise ConfigError(
            [("", f"setting names must be strings, got {', '.join(bad_keys)}")], str(path)
        )
    return data


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        path = ".".join(str(part) for part in err["loc"])
        msg = "unknown setting" if err["type"] == "extra_forbidden" else err["msg"]
        msg = msg.removeprefix("Value error, ")
        env_name = "DBPULSE_" + "__".join(str(p) for p in err["loc"]).upper()
        if env_name in os.environ:
            # The file may be fine; say where the bad value really came from.
            msg = f"{msg} (from environment variable {env_name})"
        problems.append((path, msg))
    return problems


@contextmanager
def _using_file(path: Path | None) -> Iterator[None]:
    token = _config_file.set(path)
    try:
        yield
    finally:
        _config_file.reset(token)


def load_settings(config_file: Path | None = None, **flags: Any) -> Settings:
    """Build the settings; raise ConfigError (never ValidationError) when they are wrong."""
    overrides = {key: value for key, value in flags.items() if value is not None}
    if config_file is not None:
        read_yaml(config_file)  # surface file errors with the file's name first
    with _using_file(config_file):
        try:
            return Settings(**overrides)
        except ValidationError as exc:
            raise ConfigError(_problems(exc), str(config_file) if config_file else None) from exc
