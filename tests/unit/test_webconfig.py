"""The web config file: exporter-toolkit's format accepted, its errors refused, the auth rules."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path
from typing import Any

import pytest

from dbpulse.http.auth import Guard
from dbpulse.http.tlscontext import build_context
from dbpulse.http.webconfig import load_web_config, parse_duration
from dbpulse.http.webreload import WebSource
from dbpulse.settings import ConfigError
from tests.tlscerts import bcrypt_hash, issue, make_ca


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    """server.crt, server.key and ca.crt in tmp_path."""
    ca = make_ca()
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem())
    issue(ca, "dbpulse", server=True).write(tmp_path, "server")
    return tmp_path


def _write(directory: Path, text: str) -> Path:
    path = directory / "web-config.yml"
    path.write_text(text)
    return path


# Spelled as exporter-toolkit's docs and test data spell them (spaces before colons too).
FULL = """
tls_server_config :
  cert_file : "server.crt"
  key_file : "server.key"
  client_auth_type : "VerifyClientCertIfGiven"
  client_ca_file : "ca.crt"
  min_version: TLS12
  max_version: TLS13
  cipher_suites:
  - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
  - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
  - TLS_AES_128_GCM_SHA256
  prefer_server_cipher_suites: true
  curve_preferences:
  - CurveP256
http_server_config:
  http2: false
  headers:
    Strict-Transport-Security: max-age=31536000
    X-Frame-Options: sameorigin
basic_auth_users:
  alice: $2y$10$mDwo.lAisC94iLAyP81MCesa29IzH37oigHC/42V2pdJlUprsJPze
rate_limit:
  interval: 100ms
  burst: 10
"""


def test_every_documented_key_loads(certs: Path) -> None:
    """A file using every documented key loads, paths relative to the file, into a TLS context."""
    config = load_web_config(_write(certs, FULL))
    tls = config.tls_server_config
    assert tls.cert_file == certs / "server.crt"
    assert tls.client_ca_file == certs / "ca.crt"
    assert config.rate_limit.interval == pytest.approx(0.1)
    context = build_context(tls)
    assert context.verify_mode == ssl.CERT_OPTIONAL
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_empty_file_is_plain_http(tmp_path: Path) -> None:
    """An empty web config (allowed by exporter-toolkit) means no TLS and no auth."""
    source = WebSource(_write(tmp_path, ""))
    assert (source.tls, source.current().config.basic_auth_users) == (False, {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tls_server_config:\n  cert_file: a\n  key_file: b\n  keyfile: c\n", "unknown setting"),
        ("tls_config:\n  cert_file: a\n", "unknown setting"),
        ("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS14\n", "TLS13"),
        ("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [RC4]\n", "RC4"),
        ("tls_server_config:\n  key_file: b\n", "missing one of cert or cert_file"),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n",
            "without a Client Auth Policy",
        ),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_allowed_sans: [x]\n",
            "client_allowed_sans requires",
        ),
        ("http_server_config:\n  headers:\n    Server: dbpulse\n", "can not be configured"),
        ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n", "invalid value"),
        ("basic_auth_users:\n  bob: hunter2\n", "not a bcrypt hash"),
        ("rate_limit:\n  interval: fast\n", "not a duration"),
        ("- a list\n", "top level must be a mapping"),
        ("tls_server_config: [\n", "line"),
        ("a: " + "[" * 5000 + "\n", "nested too deeply"),
    ],
)
def test_bad_config_is_one_config_error(tmp_path: Path, text: str, message: str) -> None:
    """Each mistake exporter-toolkit refuses is a ConfigError naming it, never echoing a secret."""
    with pytest.raises(ConfigError) as caught:
        load_web_config(_write(tmp_path, text))
    assert message in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_go_durations() -> None:
    """Go/Prometheus durations parse as exporter-toolkit's rate_limit.interval does."""
    assert parse_duration("1m30s") == 90.0
    assert parse_duration("250ms") == pytest.approx(0.25)
    assert parse_duration("0") == 0.0
    with pytest.raises(ValueError, match="unit"):
        parse_duration(5)


def _call(guard: Guard, path: str, auth: str | None = None) -> tuple[str, dict[str, str]]:
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": path}
    if auth is not None:
        environ["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(auth.encode()).decode()
    got: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
        got["status"], got["headers"] = status, dict(headers)

    b"".join(guard(environ, start_response))
    return got["status"], got["headers"]


def _inner(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\n"]


def test_guard_auth_rules(tmp_path: Path) -> None:
    """Only /healthz, /readyz and excluded paths skip auth; headers go on every answer."""
    path = _write(
        tmp_path,
        f"basic_auth_users:\n  alice: {bcrypt_hash('pw')}\n"
        "basic_auth_excluded_paths: [/custom]\n"
        "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n",
    )
    guard = Guard(_inner, WebSource(path))
    for open_path in ("/healthz", "/readyz", "/custom"):
        assert _call(guard, open_path)[0] == "200 OK", open_path
    for closed in ("/metrics", "/debug/locks", "/probe", "/", "/healthz/"):
        status, headers = _call(guard, closed)
        assert status == "401 Unauthorized", closed
        assert headers["WWW-Authenticate"] == "Basic"
        assert headers["X-Content-Type-Options"] == "nosniff"
    assert _call(guard, "/metrics", "alice:pw")[0] == "200 OK"
    assert _call(guard, "/metrics", "alice:pw")[0] == "200 OK"  # from the cache
    assert _call(guard, "/metrics", "alice:PW")[0] == "401 Unauthorized"
    assert _call(guard, "/metrics", "mallory:pw")[0] == "401 Unauthorized"
    assert _call(guard, "/metrics", "alice")[0] == "401 Unauthorized"  # no colon
    assert _call(guard, "/metrics", "alice:" + "x" * 100)[0] == "401 Unauthorized"


def test_rate_limit_answers_429(tmp_path: Path) -> None:
    """rate_limit with burst 2 and a long interval: the third request at once gets 429."""
    guard = Guard(_inner, WebSource(_write(tmp_path, "rate_limit:\n  interval: 1h\n  burst: 2\n")))
    statuses = [_call(guard, "/metrics")[0] for _ in range(3)]
    assert statuses == ["200 OK", "200 OK", "429 Too Many Requests"]
    assert _call(guard, "/healthz")[0] == "200 OK"  # kubelet's probes are never limited


def test_bad_reload_keeps_last_good_config(tmp_path: Path) -> None:
    """A broken edit of the file is refused and the old users stay in force (never open)."""
    path = _write(tmp_path, f"basic_auth_users:\n  alice: {bcrypt_hash('pw')}\n")
    source = WebSource(path, check_every=0)
    path.write_text("basic_auth_users:\n  alice: not-a-hash\n")
    assert list(source.current().config.basic_auth_users) == ["alice"]
    assert source.reloads == 0
    path.write_text(f"basic_auth_users:\n  bob: {bcrypt_hash('pw')}\n")
    assert list(source.current().config.basic_auth_users) == ["bob"]
    assert source.reloads == 1


def test_client_auth_types_map_to_python_ssl(certs: Path) -> None:
    """Each client_auth_type gets the nearest verify mode; RequireAnyClientCert needs a CA."""
    base = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
    modes = {
        "RequestClientCert": ssl.CERT_NONE,
        "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
        "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
        "RequireAnyClientCert": ssl.CERT_REQUIRED,
    }
    for mode, verify in modes.items():
        text = base + f"  client_auth_type: {mode}\n  client_ca_file: ca.crt\n"
        context = WebSource(_write(certs, text)).current().context
        assert context is not None
        assert context.verify_mode == verify, mode
    with pytest.raises(ConfigError, match="needs client_ca_file"):
        WebSource(_write(certs, base + "  client_auth_type: RequireAnyClientCert\n"))
