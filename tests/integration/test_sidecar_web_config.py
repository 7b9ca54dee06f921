"""The sidecar with --web.config.file: a bad file exits 2 in one line; /debug/* gated and guarded."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from dbpulse.http import start_server
from tests.tlscerts import TLS_ONLY, Pki, bcrypt_hash, https_get, write_pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """A CA, a server cert for 127.0.0.1 and a client cert, written as PEM files."""
    return write_pki(tmp_path)


BAD_CONFIGS = {
    "unknown key": (
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  colour: red\n",
        "unknown setting",
    ),
    "bad client auth": (
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: Sometimes\n",
        "client_auth_type",
    ),
    "not bcrypt": ("basic_auth_users:\n  alice: plaintext-password\n", "not a bcrypt hash"),
    "missing key": (
        "tls_server_config:\n  cert_file: server.crt\n",
        "missing one of key or key_file",
    ),
    "missing file": (
        "tls_server_config:\n  cert_file: nowhere.crt\n  key_file: server.key\n",
        "cannot read TLS file",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_web_config_is_one_line_and_exit_2(pki: Pki, case: str) -> None:
    """`dbpulse sidecar --web.config.file BAD`: exit 2, one line naming the problem, no traceback."""
    text, expected = BAD_CONFIGS[case]
    config = pki.dir / "web.yml"
    config.write_text(text)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dbpulse",
            "sidecar",
            "--dsn",
            "postgresql://dbpulse@127.0.0.1:1/postgres",
            "--listen",
            "127.0.0.1:0",
            "--web.config.file",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert expected in lines[0]
    assert str(config) in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "plaintext-password" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("enabled", [True, False])
def test_sidecar_debug_pages_only_when_enabled_and_behind_auth(pki: Pki, enabled: bool) -> None:
    """debug_endpoints: false answers 404 on /debug/*; true serves them behind basic auth."""
    from dbpulse.settings import Settings
    from dbpulse.sidecar.daemon import Sidecar

    config = pki.dir / "web.yml"
    config.write_text(TLS_ONLY + f"basic_auth_users:\n  ops: {bcrypt_hash('pw')}\n")
    settings = Settings.model_validate(
        {"dsn": "postgresql://u@127.0.0.1:1/x", "debug_endpoints": enabled}
    )
    sidecar = Sidecar.build(settings)
    server, _ = start_server("127.0.0.1", 0, sidecar.endpoints(), web_config_file=config)
    try:
        port = server.server_address[1]
        _, anonymous = https_get(port, pki.ca_file, "/debug/locks")
        assert anonymous.startswith(b"HTTP/1.1 401")
        token = base64.b64encode(b"ops:pw").decode()
        auth = f"Authorization: Basic {token}\r\n"
        _, reply = https_get(port, pki.ca_file, "/debug/locks", headers=auth)
        assert reply.startswith(b"HTTP/1.1 200" if enabled else b"HTTP/1.1 404"), reply[:200]
    finally:
        server.shutdown()
        sidecar.close()


def test_serve_metrics_in_process_takes_the_web_config(tmp_path: Path) -> None:
    """An application's serve_metrics(web_config_file=...) puts /metrics behind the same auth."""
    import urllib.error
    import urllib.request

    from prometheus_client import CollectorRegistry, Gauge

    from dbpulse.http import serve_metrics

    registry = CollectorRegistry(auto_describe=False)
    Gauge("app_gauge", "an application value", registry=registry).set(5)
    config = tmp_path / "web.yml"
    config.write_text(f"basic_auth_users:\n  app: {bcrypt_hash('pw')}\n")
    server = serve_metrics(0, registry=registry, web_config_file=config)
    assert server is not None
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=10)
        assert refused.value.code == 401
        token = base64.b64encode(b"app:pw").decode()
        request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert b"app_gauge 5.0" in resp.read()
    finally:
        server.shutdown()
