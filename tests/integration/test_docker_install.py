"""The container recipe without a Docker engine: the install script the Dockerfile runs,
run here for real, and the Dockerfile's own promises checked against the repository."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from dbpulse.localpg import free_port
from tests.integration.collector_helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
INSTALL = ROOT / "deploy" / "docker" / "install.sh"
EXAMPLE_CONFIG = ROOT / "config" / "dbpulse.example.yaml"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for ins in _instructions():
        if ins[0] == "FROM":
            stages.append([])
        stages[-1].append(ins)
    return stages


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv built by deploy/docker/install.sh from this repository."""
    had_build = (ROOT / "build").exists()
    target = tmp_path_factory.mktemp("image") / "venv"
    done = subprocess.run(
        ["sh", str(INSTALL), str(ROOT), str(target)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHON": sys.executable, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (ROOT / "build").exists() == had_build, "install.sh must not write into the repo"
    return target


def test_installed_cli_reports_the_project_version(venv: Path) -> None:
    """The venv's `dbpulse --version` prints the version in pyproject.toml."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    done = subprocess.run(
        [str(venv / "bin" / "dbpulse"), "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"dbpulse {version}"


def test_installed_cli_checks_the_example_config(venv: Path, tmp_path: Path) -> None:
    """The installed package validates config/dbpulse.example.yaml and shows --help."""
    exe = str(venv / "bin" / "dbpulse")
    # The example ships with the repository: its absence is a failure, not a reason to
    # check less.
    assert EXAMPLE_CONFIG.exists()
    done = subprocess.run(
        [exe, "check-config", str(EXAMPLE_CONFIG)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith(": ok")
    done = subprocess.run([exe, "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "sidecar" in done.stdout


def test_venv_runs_the_wheel_not_the_source_tree(venv: Path, tmp_path: Path) -> None:
    """`dbpulse` is imported from the venv's site-packages (a built wheel, not an editable)."""
    done = subprocess.run(
        # -I: neither the caller's PYTHONPATH nor the working directory may supply dbpulse.
        [str(venv / "bin" / "python"), "-I", "-c", "import dbpulse; print(dbpulse.__file__)"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    location = Path(done.stdout.strip()).resolve()
    assert venv.resolve() in location.parents
    assert "site-packages" in location.parts
    site = location.parent.parent
    assert not (site / "tests").exists(), "tests must not ship in the wheel"
    assert (site / "dbpulse" / "py.typed").exists()


def test_dockerfile_healthcheck_probes_a_running_sidecar(venv: Path, tmp_path: Path) -> None:
    """The Dockerfile's HEALTHCHECK command passes against a live sidecar and fails once it stops."""
    (healthcheck,) = [args for word, args in _instructions() if word == "HEALTHCHECK"]
    command = json.loads(healthcheck[healthcheck.index("CMD ") + 4 :])
    assert command[0] == "python"
    command[0] = str(venv / "bin" / "python")
    port = free_port()
    env = {**os.environ, "DBPULSE_LISTEN": f"127.0.0.1:{port}"}

    def check() -> int:
        return subprocess.run(command, env=env, capture_output=True, check=False).returncode

    # Liveness must not depend on the database: point at a port nothing listens on.
    sidecar = subprocess.Popen(
        [str(venv / "bin" / "dbpulse"), "sidecar", "--dsn", "postgresql://nobody@127.0.0.1:1/x"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def healthy() -> bool:
        assert sidecar.poll() is None, "sidecar exited"
        return check() == 0

    try:
        wait_for(healthy, timeout=30, interval=0.3)
    finally:
        sidecar.terminate()
        sidecar.wait(timeout=15)
    assert check() != 0


def test_dockerfile_shape() -> None:
    """Two python:3.11-slim stages; the builder runs install.sh; the final stage is minimal."""
    builder, final = _stages()
    assert builder[0] == ("FROM", "python:3.11-slim AS builder")
    assert final[0] == ("FROM", "python:3.11-slim")
    runs = [args for word, args in builder if word == "RUN"]
    copies = [args for word, args in builder if word == "COPY"]
    assert "deploy/docker/install.sh /usr/local/bin/dbpulse-install" in copies
    assert runs == ["sh /usr/local/bin/dbpulse-install /src /opt/venv"]
    final_args = dict(final)
    assert "--from=builder /opt/venv /opt/venv" in [a for w, a in final if w == "COPY"]
    assert final_args["USER"].split(":")[0] == "10001"
    assert "--uid 10001" in final_args["RUN"]
    assert json.loads(final_args["ENTRYPOINT"]) == ["dbpulse"]
    assert json.loads(final_args["CMD"]) == ["sidecar"]
    assert final_args["EXPOSE"] == "9189"
    assert "/opt/venv/bin" in final_args["ENV"]
    final_text = " ".join(a for _, a in final)
    for tool in ("gcc", "build-essential", "apt-get install", "pip install"):
        assert tool not in final_text, f"final stage must not install {tool}"


def test_dockerfile_copies_existing_paths() -> None:
    """Every path the Dockerfile COPYs from the context exists and is not .dockerignored."""
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for word, args in _instructions():
        if word != "COPY" or args.startswith("--from"):
            continue
        *sources, _dest = args.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not any(source == i or source.startswith(f"{i}/") for i in ignored), source
