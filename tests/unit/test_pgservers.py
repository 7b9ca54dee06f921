"""The version matrix's server cache: soname links, cache lookup and where it lives."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests import pgservers


def test_sonames_linked_from_the_package_list_and_file_names(tmp_path: Path) -> None:
    """npm drops symlinks: the package's list and each lib*.so.X.Y file bring them back."""
    home = tmp_path / "native"
    lib = home / "lib"
    lib.mkdir(parents=True)
    for name in ("libicuuc.so.60.2", "libpq.so.5.17", "libz.so.1"):
        (lib / name).write_bytes(b"")
    listed = [{"source": "native/lib/libpq.so.5.17", "target": "native/lib/libpq.so"}]
    (home / "pg-symlinks.json").write_text(json.dumps(listed), encoding="utf-8")
    pgservers._link_sonames(home)
    assert os.readlink(lib / "libicuuc.so.60") == "libicuuc.so.60.2"
    assert os.readlink(lib / "libpq.so.5") == "libpq.so.5.17"
    assert os.readlink(lib / "libpq.so") == "libpq.so.5.17"
    assert not (lib / "libz.so").exists()  # already its soname: nothing to link
    pgservers._link_sonames(home)  # a second run leaves the links as they are
    assert os.readlink(lib / "libpq.so") == "libpq.so.5.17"


def test_only_a_complete_unpack_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A version's bindir is found once its unpack finished, never half-way through."""
    monkeypatch.setenv("DBPULSE_TEST_PG_CACHE", str(tmp_path))
    home = tmp_path / pgservers.PINNED[16]
    (home / "bin").mkdir(parents=True)
    assert pgservers.cached_bindir(16) is None
    (home / pgservers.COMPLETE).write_text("done", encoding="utf-8")
    assert pgservers.cached_bindir(16) == home / "bin"
    assert pgservers.cached_bindir(12) is None  # not a pinned major


def test_fetch_command_names_the_majors() -> None:
    """Skip and failure messages tell the command that fetches exactly what is missing."""
    assert pgservers.fetch_command([13, 18]) == "python -m tests.pgservers 13 18"
    assert pgservers.fetch_command().endswith(" ".join(str(m) for m in sorted(pgservers.PINNED)))


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to postgres")
def test_a_cache_the_postgres_user_cannot_reach_is_refused(tmp_path: Path) -> None:
    """As root, a cache behind a directory closed to others is refused with what to do."""
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    with pytest.raises(SystemExit, match="DBPULSE_TEST_PG_CACHE"):
        pgservers._check_reachable(closed)
