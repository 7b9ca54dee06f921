"""A real streaming standby of a test cluster (pg_basebackup), for the replication tests.

The standby is another LocalPostgres on its own port, built with ``pg_basebackup -R``
(which writes ``primary_conninfo`` and ``standby.signal``) and, with ``slot``, a
physical replication slot created on the primary (``-C -S``). The trust entries that
initdb writes for ``replication`` on 127.0.0.1 let it connect without a password.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dbpulse.localpg import LocalPostgres, free_port


def _owner() -> str | None:
    # As root the clusters run as the postgres system user (see LocalPostgres).
    return "postgres" if os.geteuid() == 0 else None


@contextmanager
def standby_of(primary: LocalPostgres, slot: str | None = None) -> Iterator[LocalPostgres]:
    """Yields a running standby streaming from ``primary``; stops and removes it after."""
    base = Path(tempfile.mkdtemp(prefix="dbpulse-standby-"))
    user = _owner()
    if user is not None:
        shutil.chown(base, user=user)
    standby = LocalPostgres(bindir=primary.bindir, port=free_port(), base=base)
    slot_args = ["-C", "-S", slot] if slot else []
    result = subprocess.run(
        [
            str(primary.bindir / "pg_basebackup"),
            "-D",
            str(standby.datadir),
            "-d",
            f"host=127.0.0.1 port={primary.port} user=postgres application_name=standby1",
            "-R",
            "-X",
            "stream",
            "--no-sync",
            *slot_args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        user=user,
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"pg_basebackup failed: {result.stderr.strip()[-2000:]}")
    # The copied postgresql.conf still names the primary's port and socket directory.
    with (standby.datadir / "postgresql.conf").open("a", encoding="utf-8") as fh:
        fh.write(f"\nport = {standby.port}\nunix_socket_directories = '{base}'\n")
    try:
        standby.pg_ctl_start()
        yield standby
    finally:
        try:
            if (standby.datadir / "postmaster.pid").exists():
                standby.pg_ctl_stop("immediate")
        finally:
            shutil.rmtree(base, ignore_errors=True)
