"""Prometheus exporter-toolkit's web config file (``--web.config.file``), parsed and checked.

The same YAML that node_exporter, postgres_exporter and Prometheus take, so a Kubernetes
Secret made for them works unchanged: ``tls_server_config``, ``http_server_config``,
``basic_auth_users`` (bcrypt hashes) and ``rate_limit``. Unknown keys are errors, as
exporter-toolkit's strict YAML decoding makes them. Relative file names are relative to
the web config file's directory (exporter-toolkit's ``SetDirectory``).

Pure apart from reading the one YAML file; certificates are loaded in ``tlscontext``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dbpulse.settings.errors import ConfigError, problems_of

__all__ = ["HTTPServerConfig", "RateLimit", "TLSServerConfig", "WebConfig", "load_web_config"]

ClientAuth = Literal[
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "RequireClientCert",  # exporter-toolkit keeps this old name of RequireAnyClientCert
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
]
TLSVersion = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
Curve = Literal["CurveP256", "CurveP384", "CurveP521", "X25519"]
# exporter-toolkit's allowed response headers, and the values it checks (None: any).
HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
# What Go's bcrypt.Cost accepts: $2$/$2a$/$2b$/$2x$/$2y$, a two-digit cost, 53 characters.
BCRYPT = re.compile(r"\$2[abxy]?\$(\d\d)\$[./A-Za-z0-9]{53}")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TLSServerConfig(_Strict):
    cert: str | None = None
    key: str | None = None
    client_ca: str | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    client_auth_type: ClientAuth = "NoClientCert"
    client_ca_file: Path | None = None
    client_allowed_sans: list[str] | None = None
    min_version: TLSVersion = "TLS12"
    max_version: TLSVersion = "TLS13"
    cipher_suites: list[str] = Field(default_factory=list)
    prefer_server_cipher_suites: bool = True
    curve_preferences: list[Curve] = Field(default_factory=list)

    @field_validator("cipher_suites")
    @classmethod
    def _known_ciphers(cls, value: list[str]) -> list[str]:
        from dbpulse.http.tlscontext import CIPHERS  # the name table lives with its use

        unknown = [name for name in value if name not in CIPHERS]
        if unknown:
            raise ValueError(f"unknown cipher: {unknown[0]}")
        return value

    @property
    def enabled(self) -> bool:
        """exporter-toolkit's ``IsEnabled``: any TLS field set means TLS (or an error)."""
        return any(
            (self.cert_file, self.cert, self.key_file, self.key, self.client_ca_file)
        ) or bool(self.client_ca or self.client_auth_type != "NoClientCert")

    def problem(self) -> str | None:
        """What exporter-toolkit's ``ConfigToTLSConfig`` refuses, before any file is read."""
        if not (self.cert_file or self.cert):
            return "missing one of cert or cert_file"
        if not (self.key_file or self.key):
            return "missing one of key or key_file"
        if (self.client_ca_file or self.client_ca) and self.client_auth_type == "NoClientCert":
            return "client CA's have been configured without a Client Auth Policy"
        if self.client_allowed_sans is not None and self.client_auth_type not in (
            "RequireAnyClientCert",
            "RequireClientCert",
            "RequireAndVerifyClientCert",
        ):
            return (
                "client_allowed_sans requires client_auth_type to be one of "
                "RequireAnyClientCert or RequireAndVerifyClientCert"
            )
        return None

    def files(self) -> list[Path]:
        """The files a change of which means reloading (the config file aside)."""
        return [p for p in (self.cert_file, self.key_file, self.client_ca_file) if p]


class HTTPServerConfig(_Strict):
    # Accepted for compatibility; cheroot speaks HTTP/1.1 only, so it changes nothing.
    http2: bool = True
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _allowed_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if name not in HEADERS:
                raise ValueError(f"HTTP header {name!r} can not be configured")
            allowed = HEADERS[name]
            if allowed is not None and text not in allowed:
                raise ValueError(f"invalid value for {name}: expected one of {allowed}")
        return value


class RateLimit(_Strict):
    interval: float = 0.0  # seconds between requests; 0 turns the limiter off
    burst: int = Field(default=0, ge=0)

    @field_validator("interval", mode="before")
    @classmethod
    def _go_duration(cls, value: object) -> float:
        return parse_duration(value)


class WebConfig(_Strict):
    tls_server_config: TLSServerConfig = Field(default_factory=TLSServerConfig)
    http_server_config: HTTPServerConfig = Field(default_factory=HTTPServerConfig)
    basic_auth_users: dict[str, str] = Field(default_factory=dict)
    # Newer exporter-toolkit samples: paths open without a password (besides ours).
    basic_auth_excluded_paths: list[str] = Field(default_factory=list)
    rate_limit: RateLimit = Field(default_factory=RateLimit)

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt_hashes(cls, value: dict[str, str]) -> dict[str, str]:
        for user, hashed in value.items():
            match = BCRYPT.fullmatch(hashed)
            # Never echo the hash: it is a secret (exporter-toolkit's config_util.Secret).
            if match is None:
                raise ValueError(f"user {user!r}: not a bcrypt hash")
            if not 4 <= int(match.group(1)) <= 31:
                raise ValueError(f"user {user!r}: bcrypt cost must be between 4 and 31")
        return value


def parse_duration(value: object) -> float:
    """A Go/Prometheus duration (``1s``, ``1m30s``, ``250ms``, ``0``) in seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value == 0:
            return 0.0
        raise ValueError("a duration needs a unit, e.g. 1s or 100ms")
    text = str(value).strip()
    if text in ("0", ""):
        return 0.0
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r} (e.g. 1s, 100ms, 1m30s)")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def _resolve(config: WebConfig, directory: Path) -> WebConfig:
    tls = config.tls_server_config
    paths = {
        name: directory / path
        for name in ("cert_file", "key_file", "client_ca_file")
        if (path := getattr(tls, name)) is not None
    }
    return config.model_copy(update={"tls_server_config": tls.model_copy(update=paths)})


def load_web_config(path: Path) -> WebConfig:
    """Read and check ``path``; every problem is a ConfigError naming the file."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise ConfigError([("", f"cannot read web config file: {reason or exc}")], source) from None
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise ConfigError([("", "YAML nested too deeply")], source) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError([("", f"{problem}{where}")], source) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([("", "top level must be a mapping")], source)
    try:
        config = WebConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(problems_of(exc), source) from None
    tls = config.tls_server_config
    if tls.enabled and (problem := tls.problem()) is not None:
        raise ConfigError([("tls_server_config", problem)], source)
    return _resolve(config, path.parent)
