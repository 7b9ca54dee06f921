"""Bad configuration on the command line: exit 2 and one clear stderr line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SECRET = "s3cret-Pw"


def _run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("DBPULSE_")}
    return subprocess.run(
        [sys.executable, "-m", "dbpulse", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **(env or {})},
        check=False,
    )


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def _file(tmp_path: Path, content: bytes | str) -> Path:
    path = tmp_path / "dbpulse.yaml"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"interval: \xff\xfe\n", "not UTF-8"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        ("collectors: " + "{a: " * 900 + "1" + "}" * 900 + "\n", "nested too deeply"),
        ("interval: 0.0001\n", "interval: must be at least 0.25 seconds"),
        (
            "collectors:\n  locks:\n    timeout: 0.001\n",
            "collectors.locks.timeout: must be at least 0.1 seconds",
        ),
        ("interval: 5\nlisten: 127.0.0.1:1\ninterval: 6\n", "duplicate key 'interval' at line 3"),
        ("collectors:\n  locks: {enabled: true, enabled: false}\n", "duplicate key 'enabled'"),
        ("interval: .nan\n", "interval: Input should be a finite number"),
    ],
)
def test_bad_config_file_is_one_line_and_exit_2(
    tmp_path: Path, content: bytes | str, expected: str
) -> None:
    """Non-UTF-8, deep nesting, too-short intervals, duplicate keys, NaN: one line, exit 2."""
    path = _file(tmp_path, content)
    line = _one_line_error(_run("check-config", str(path)))
    assert expected in line, line
    assert str(path) in line


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DBPULSE_COLLECTORS": "{bad"}, "DBPULSE_COLLECTORS"),
        ({"DBPULSE_COLLECTORS": "[" * 5000}, "DBPULSE_COLLECTORS"),
        ({"DBPULSE_INTERVALL": "3"}, "intervall: unknown setting (from environment variable"),
        ({"dbpulse_intervall": "3"}, "unknown setting"),
        ({"DBPULSE_COLLECTORS__LOCKS__INTERVALL": "3"}, "collectors.locks.intervall"),
    ],
)
def test_bad_environment_is_one_line_and_exit_2(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    """Unparseable or unknown DBPULSE_* variables, top-level or nested: one line, exit 2."""
    path = _file(tmp_path, "interval: 5\n")
    line = _one_line_error(_run("check-config", str(path), env=env))
    assert expected in line, line


def test_variables_dbpulse_documents_or_kubernetes_injects_are_not_settings(
    tmp_path: Path,
) -> None:
    """DBPULSE_PG_BINDIR, the suite's DBPULSE_TEST_* knobs and Kubernetes service links pass."""
    env = {
        "DBPULSE_PG_BINDIR": "/usr/lib/postgresql/15/bin",
        "DBPULSE_TEST_SQL_FUZZ_EXAMPLES": "10000",
        "DBPULSE_SERVICE_HOST": "10.0.0.1",
        "DBPULSE_SERVICE_PORT": "9189",
        "DBPULSE_SERVICE_PORT_METRICS": "9189",
        "DBPULSE_PORT": "tcp://10.0.0.1:9189",
        "DBPULSE_PORT_9189_TCP_ADDR": "10.0.0.1",
        "DBPULSE_METRICS_SERVICE_HOST": "10.0.0.2",
    }
    result = _run("check-config", str(_file(tmp_path, "interval: 5\n")), env=env)
    assert result.returncode == 0, result.stderr


def test_sidecar_interval_nan_says_finite() -> None:
    """--interval nan is refused as not a finite number (not 'less than 86400')."""
    line = _one_line_error(_run("sidecar", "--dsn", "postgresql://u@h/db", "--interval", "nan"))
    assert "finite" in line, line


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://a:{SECRET}@b:notaport/x",
        f"host=b port=54x32 user=a password={SECRET}",
        f"postgresql://a:{SECRET}@b:99999/x",
    ],
)
def test_sidecar_dsn_with_a_bad_port_is_refused_without_echo(dsn: str) -> None:
    """A DSN whose port is not a port fails at load, without printing the password."""
    result = _run("sidecar", "--dsn", dsn, "--listen", "127.0.0.1:0")
    line = _one_line_error(result)
    assert "dsn" in line
    assert "port" in line
    assert SECRET not in result.stderr + result.stdout


def test_target_dsn_with_a_bad_port_is_refused(tmp_path: Path) -> None:
    """targets[].dsn is checked the same way, naming the target's index."""
    path = _file(tmp_path, f"targets:\n  - name: a\n    dsn: postgresql://u:{SECRET}@h:nope/x\n")
    result = _run("check-config", str(path))
    line = _one_line_error(result)
    assert "targets.0.dsn" in line
    assert SECRET not in result.stderr + result.stdout


def test_check_config_says_what_an_empty_file_leaves_to_defaults(tmp_path: Path) -> None:
    """An empty file is valid but check-config says it sets nothing and a DSN is still needed."""
    result = _run("check-config", str(_file(tmp_path, "")))
    assert result.returncode == 0, result.stderr
    assert "sets nothing" in result.stdout
    assert "default" in result.stdout
    assert "no dsn and no targets" in result.stdout


def test_check_config_with_a_dsn_is_plain_ok(tmp_path: Path) -> None:
    """A file with a DSN gets the one-line ok it always had."""
    result = _run("check-config", str(_file(tmp_path, "dsn: postgresql://u@h/db\n")))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(": ok")
