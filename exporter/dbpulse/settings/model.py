"""``Settings``: the top-level model, its cross-field checks, and the order of its sources."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from dbpulse.settings.base import MIN_INTERVAL, MIN_TIMEOUT, floor
from dbpulse.settings.collectors import CollectorsSettings
from dbpulse.settings.dsncheck import check_dsn
from dbpulse.settings.listen import parse_listen
from dbpulse.settings.probes import ProbeSettings
from dbpulse.settings.targets import DiscoverySettings, TargetSettings
from dbpulse.settings.telemetry import TelemetrySettings
from dbpulse.settings.urlhosts import check_pattern
from dbpulse.settings.yamlfile import YamlFileSource, config_file

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Everything dbpulse reads from its configuration."""

    model_config = SettingsConfigDict(
        env_prefix="DBPULSE_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
        allow_inf_nan=False,  # as in Strict: NaN passes every bound
    )

    dsn: SecretStr | None = Field(
        default=None, description="libpq connection string or URL of the database to watch"
    )
    target: str | None = Field(
        default=None, description="name for the target label; default host:port/dbname"
    )
    listen: str = Field(default="0.0.0.0:9189", description="HOST:PORT the HTTP server binds")
    web_config_file: Path | None = Field(
        default=None,
        description="exporter-toolkit web config (TLS, basic auth), as --web.config.file",
    )
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
    debug_endpoints: bool = Field(
        default=True, description="serve /debug/<collector> (JSON views of the last poll)"
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
    dsn_in_url_hosts: list[str] = Field(
        default_factory=list,
        description="hosts a /probe DSN may name: host or host:port, * globs; empty: none",
    )
    dsn_in_url_max_connections: int = Field(
        default=4, ge=1, le=100, description="connections all /probe DSNs may hold together"
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

    _check_min_interval = floor(MIN_INTERVAL, "interval")

    _check_min_timeout = floor(MIN_TIMEOUT, "connect_timeout")

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

    @field_validator("dsn")
    @classmethod
    def _check_dsn(cls, value: SecretStr | None) -> SecretStr | None:
        return check_dsn(value)

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

    @field_validator("dsn_in_url_hosts")
    @classmethod
    def _check_dsn_in_url_hosts(cls, value: list[str]) -> list[str]:
        return [check_pattern(pattern) for pattern in value]

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
        path = config_file()
        if path is None:
            return (init_settings, env_settings)
        return (init_settings, env_settings, YamlFileSource(settings_cls, path))

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
