"""A throwaway local PostgreSQL cluster, for the tests and for ``dbpulse demo``.

Finds server binaries (PATH, ``pg_config --bindir``, /usr/lib/postgresql/*/bin), runs
initdb + pg_ctl in a temporary directory with pg_stat_statements preloaded, and removes
everything on stop. PostgreSQL refuses to run as root, so as root it runs the server as
the ``postgres`` system user that Debian's packages create.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

INSTALL_HINT = (
    "no PostgreSQL server binaries (initdb, pg_ctl) found on PATH, via pg_config, or under "
    "/usr/lib/postgresql/*/bin; install them with: apt-get install postgresql postgresql-contrib"
)


class PostgresNotFound(RuntimeError):
    """No usable server binaries on this machine."""


def find_bindir() -> Path:
    """The directory holding initdb and pg_ctl, newest major version first."""
    candidates: list[Path] = []
    env_dir = os.environ.get("DBPULSE_PG_BINDIR")
    if env_dir:
        candidates.append(Path(env_dir))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(  # noqa: S603 - a binary found on this machine, no shell
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
            candidates.append(Path(out))
        except (subprocess.SubprocessError, OSError):
            pass
    versioned = Path("/usr/lib/postgresql").glob("*/bin")
    candidates.extend(sorted(versioned, key=_major, reverse=True))
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    raise PostgresNotFound(INSTALL_HINT)


def _major(path: Path) -> int:
    name = path.parent.name
    return int(name) if name.isdigit() else 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalPostgres:
    """One cluster. Use as a context manager, or call start()/stop()."""

    bindir: Path = field(default_factory=find_bindir)
    port: int = field(default_factory=free_port)
    settings: dict[str, str] = field(default_factory=dict)
    base: Path | None = None
    _owned_base: bool = False

    @property
    def datadir(self) -> Path:
        assert self.base is not None, "cluster not started"  # noqa: S101 - programming error
        return self.base / "data"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def dsn_for(
        self, dbname: str = "postgres", user: str = "postgres", password: str | None = None
    ) -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"

    def _run_as(self) -> str | None:
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError as exc:
            raise PostgresNotFound(
                "running as root needs a 'postgres' system user to own the cluster "
                "(apt-get install postgresql creates it)"
            ) from exc
        return "postgres"

    def _pg(self, tool: str, *args: str, timeout: float = 120) -> None:
        user = self._run_as()
        result = subprocess.run(  # noqa: S603 - our own argv, no shell
            [str(self.bindir / tool), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            user=user,
            cwd=str(self.base),
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{tool} failed ({result.returncode}): {result.stderr.strip()[-2000:]}"
            )

    def start(self) -> LocalPostgres:
        if self.base is None:
            self.base = Path(tempfile.mkdtemp(prefix="dbpulse-pg-"))
            self._owned_base = True
        user = self._run_as()
        if user is not None:
            shutil.chown(self.base, user=user)
        self._pg(
            "initdb",
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.base}'",
            "shared_preload_libraries": "'pg_stat_statements'",
            "pg_stat_statements.track": "all",
            "track_io_timing": "on",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "120",
            "log_min_messages": "warning",
            **self.settings,
        }
        with (self.datadir / "postgresql.conf").open("a", encoding="utf-8") as fh:
            fh.write("\n# dbpulse throwaway cluster\n")
            fh.writelines(f"{key} = {value}\n" for key, value in conf.items())
        self.pg_ctl_start()
        return self

    def pg_ctl_start(self) -> None:
        assert self.base is not None  # noqa: S101 - programming error
        self._pg(
            "pg_ctl",
            "-D",
            str(self.datadir),
            "-l",
            str(self.base / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def pg_ctl_stop(self, mode: str = "fast") -> None:
        self._pg("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self) -> None:
        self.pg_ctl_stop()
        self.pg_ctl_start()

    def stop(self) -> None:
        if self.base is None:
            return
        try:
            if (self.datadir / "postmaster.pid").exists():
                self.pg_ctl_stop("immediate")
        finally:
            if self._owned_base:
                shutil.rmtree(self.base, ignore_errors=True)
            self.base = None

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
