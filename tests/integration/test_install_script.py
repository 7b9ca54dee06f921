"""``.ci/install-system-deps`` stops only the services it just installed (issue 13.8):
Prometheus and Debian's postgres_exporter, which start themselves on install.

The script runs against stub commands on PATH that record their calls, so no real
package is installed and no real process is ever signalled.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "install-system-deps"
RECORDERS = ("apt-get", "service", "systemctl", "pkill", "killall", "pg_ctlcluster")
REAL = ("ls", "basename", "dirname", "cat")


def _stub_path(tmp_path: Path, prometheus_installed: bool) -> tuple[Path, Path]:
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()

    def stub(name: str, body: str) -> None:
        path = bin_dir / name
        path.write_text(f"#!/bin/bash\n{body}\n")
        path.chmod(0o755)

    for name in RECORDERS:
        stub(name, f'echo "{name} $*" >> "{log}"')
    stub("id", "echo 0")  # as root, so the script goes on to install
    stub("initdb", "exit 0")  # PostgreSQL counts as present
    status = "install ok installed" if prometheus_installed else ""
    stub("dpkg-query", f'[ -n "{status}" ] && echo "{status}" || exit 1')
    for name in REAL:
        found = shutil.which(name)
        assert found is not None
        (bin_dir / name).symlink_to(found)
    return bin_dir, log


@pytest.mark.parametrize("installed_before", [False, True])
def test_only_a_freshly_installed_service_is_stopped(
    tmp_path: Path, installed_before: bool
) -> None:
    """No blanket pkill/killall, no existing cluster stopped; the service only if fresh."""
    bin_dir, log = _stub_path(tmp_path, installed_before)
    result = subprocess.run(
        ["/bin/bash", str(SCRIPT)],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path), "LANG": os.environ.get("LANG", "C")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    assert any(c.startswith("apt-get install") and "prometheus" in c for c in calls), calls
    assert not [c for c in calls if c.startswith(("pkill", "killall"))], calls
    # PostgreSQL was already there: whatever clusters exist are the user's.
    assert not [c for c in calls if c.startswith("pg_ctlcluster")], calls
    stops = [c for c in calls if c.startswith(("service prometheus", "systemctl"))]
    fresh = ["service prometheus stop", "service prometheus-postgres-exporter stop"]
    assert stops == ([] if installed_before else fresh)
