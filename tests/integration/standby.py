"""A real streaming standby of a test cluster, for the replication tests.

The standby is a cold copy of the primary's data directory (the primary is stopped for
the copy and started again), configured with ``standby.signal``, ``primary_conninfo``
and ``primary_slot_name``: ``pg_basebackup`` would do the same, but the PostgreSQL
builds of the version matrix do not ship it, and a copy works on every major. The
primary's replication slots are removed from the copy (a standby starts without any),
and the trust entries that initdb writes for ``replication`` on 127.0.0.1 let the
standby connect without a password.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from dbpulse.localpg import LocalPostgres, free_port

APPLICATION_NAME = "standby1"


@contextmanager
def standby_of(primary: LocalPostgres, slot: str) -> Iterator[LocalPostgres]:
    """Yields a running standby streaming from ``primary`` on the physical slot ``slot``."""
    with psycopg.connect(primary.dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", [slot])
    base = Path(tempfile.mkdtemp(prefix="dbpulse-standby-"))
    standby = LocalPostgres(bindir=primary.bindir, port=free_port(), base=base)
    primary.pg_ctl_stop("fast")
    try:
        # cp -a keeps the owner (the postgres system user when the tests run as root).
        subprocess.run(
            ["/bin/cp", "-a", str(primary.datadir), str(standby.datadir)], check=True, timeout=120
        )
    finally:
        primary.pg_ctl_start()
    shutil.copystat(primary.datadir.parent, base)
    shutil.chown(base, user=primary.datadir.owner(), group=primary.datadir.group())
    for leftover in [
        *(standby.datadir / "pg_replslot").iterdir(),
        standby.datadir / "postmaster.opts",
    ]:
        if leftover.is_dir():
            shutil.rmtree(leftover)
        else:
            leftover.unlink(missing_ok=True)
    conninfo = (
        f"host=127.0.0.1 port={primary.port} user=postgres application_name={APPLICATION_NAME}"
    )
    with (standby.datadir / "postgresql.conf").open("a", encoding="utf-8") as fh:
        # The copied file still names the primary's port and socket directory.
        fh.write(
            f"\nport = {standby.port}\nunix_socket_directories = '{base}'\n"
            f"primary_conninfo = '{conninfo}'\nprimary_slot_name = '{slot}'\n"
        )
    (standby.datadir / "standby.signal").touch()
    shutil.chown(standby.datadir / "standby.signal", user=primary.datadir.owner())
    try:
        standby.pg_ctl_start()
        yield standby
    finally:
        try:
            if (standby.datadir / "postmaster.pid").exists():
                standby.pg_ctl_stop("immediate")
        finally:
            shutil.rmtree(base, ignore_errors=True)
