"""A DSN from /probe's URL is rebuilt so that it can use nothing of the process's own."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict

from dbpulse.settings import ConfigError, load_settings
from dbpulse.settings.urlhosts import host_allowed
from dbpulse.sidecar.targets import UnknownTarget, resolve
from dbpulse.sidecar.urldsn import RefusedDsn, safe_url_dsn

HOSTS = ["db.internal", "10.0.3.*:5432", "[fd00::1]"]


def _safe(dsn: str, hosts: list[str] | None = None, **env: str) -> dict[str, str]:
    return {k: str(v) for k, v in conninfo_to_dict(safe_url_dsn(dsn, hosts or HOSTS, env)).items()}


def test_the_urls_own_server_user_and_password_are_kept() -> None:
    """host, port, dbname, user, password and sslmode come from the URL unchanged."""
    parts = _safe("postgresql://mon:own-pw@db.internal:6432/app?sslmode=require")
    assert (parts["host"], parts["port"], parts["dbname"], parts["user"]) == (
        "db.internal",
        "6432",
        "app",
        "mon",
    )
    assert (parts["password"], parts["sslmode"]) == ("own-pw", "require")


def test_no_ambient_credential_can_fill_a_gap() -> None:
    """Without a password in the URL it is set empty; pgpass, client cert and gss are off."""
    parts = _safe("postgresql://mon@db.internal/app")
    assert parts["password"] == ""
    assert not parts["passfile"].startswith("~")
    assert parts["sslcertmode"] == "disable"
    assert parts["sslcert"] == parts["sslkey"] == parts["passfile"]
    assert parts["require_auth"] == "password,md5,scram-sha-256,none"
    assert parts["hostaddr"] == ""
    assert parts["gssencmode"] == "disable"
    # every environment-backed keyword is explicit, so no PG* variable is consulted
    for key in ("sslrootcert", "options", "target_session_attrs", "client_encoding"):
        assert key in parts


@pytest.mark.parametrize(
    ("dsn", "reason"),
    [
        ("host=/var/run/postgresql user=postgres", "Unix sockets"),
        ("postgresql://postgres@%2Fvar%2Frun%2Fpostgresql/postgres", "Unix sockets"),
        ("host=@abstract user=postgres", "Unix sockets"),
        ("host=db.internal hostaddr=127.0.0.1 user=postgres", "not hostaddr"),
        ("host=db.internal user=u passfile=/root/.pgpass", "not passfile"),
        ("host=db.internal user=u service=prod", "not service"),
        ("host=db.internal user=u sslcert=/etc/client.crt", "not sslcert"),
        ("postgresql://db.internal/app", "must name a user"),
        ("host=evil.example user=u", "not in dsn_in_url_hosts"),
        ("host=db.internal,evil.example user=u", "not in dsn_in_url_hosts"),
        ("host=10.0.3.7 port=5433 user=u", "not in dsn_in_url_hosts"),
        ("postgresql://u:p@ss@db.internal/x", "cannot read it"),
    ],
)
def test_refused_dsns_say_why_without_quoting_the_dsn(dsn: str, reason: str) -> None:
    """Sockets, hostaddr, credential keys, hosts off the list are refused; no DSN text echoed."""
    with pytest.raises(RefusedDsn, match=reason) as info:
        safe_url_dsn(dsn, HOSTS, {})
    assert "ss@" not in str(info.value)
    assert "evil" not in str(info.value)


def test_an_empty_allowlist_or_pgservice_refuses_every_dsn() -> None:
    """No dsn_in_url_hosts refuses all; PGSERVICE in the environment (a service file could
    supply credentials) refuses all."""
    with pytest.raises(RefusedDsn, match="dsn_in_url_hosts is empty"):
        safe_url_dsn("postgresql://u@db.internal/x", [], {})
    with pytest.raises(RefusedDsn, match="PGSERVICE"):
        safe_url_dsn("postgresql://u@db.internal/x", HOSTS, {"PGSERVICE": "prod"})


def test_host_patterns_glob_the_host_and_pin_the_port() -> None:
    """A glob matches hosts case-insensitively; host:port pins the port; [v6] any port."""
    assert host_allowed("DB.internal", "1", HOSTS)
    assert host_allowed("10.0.3.99", "5432", HOSTS)
    assert not host_allowed("10.0.3.99", "5433", HOSTS)
    assert host_allowed("fd00::1", "6543", HOSTS)
    assert not host_allowed("db.internal.evil.example", "5432", HOSTS)


def test_loopback_hosts_need_a_pattern_that_names_them() -> None:
    """localhost, 127.x and ::1 (often trusted by local servers) never match a glob."""
    for host in ("localhost", "127.0.0.1", "127.1.2.3", "::1"):
        assert not host_allowed(host, "5432", ["*", "127.*", "*:5432"])
    assert host_allowed("127.0.0.2", "5432", ["127.0.0.2"])
    assert host_allowed("localhost", "5432", ["localhost:5432"])


def test_bad_patterns_are_config_errors() -> None:
    """A socket path or a non-numeric port in dsn_in_url_hosts fails at load."""
    with pytest.raises(ConfigError, match="sockets are refused"):
        load_settings(dsn_in_url_hosts=["/var/run/postgresql"])
    with pytest.raises(ConfigError, match="port must be a number"):
        load_settings(dsn_in_url_hosts=["db:http"])


def test_resolve_turns_a_refusal_into_404_text() -> None:
    """resolve() reports a refused URL DSN as an UnknownTarget with the reason."""
    settings = load_settings(allow_dsn_in_url=True, dsn_in_url_hosts=["db.internal"])
    with pytest.raises(UnknownTarget, match="Unix sockets"):
        resolve(settings, "host=/tmp user=postgres", None, {})


def test_password_file_is_never_added_to_a_url_dsn() -> None:
    """password_file's password goes to configured targets only, never to a URL DSN."""
    settings = load_settings(allow_dsn_in_url=True, dsn_in_url_hosts=["db.internal"])
    spec = resolve(settings, "postgresql://mon@db.internal/app", "file-secret", {})
    assert conninfo_to_dict(spec.dsn)["password"] == ""
    assert "file-secret" not in spec.dsn
