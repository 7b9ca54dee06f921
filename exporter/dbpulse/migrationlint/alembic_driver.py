"""Runs Alembic in a child process for the linter (``python .../alembic_driver.py``).

A child, because the project's env.py configures logging, edits sys.path and imports the
application: none of that should happen inside dbpulse. A script run by path that imports
nothing from dbpulse, so it runs under the project's own interpreter too. Two modes:

- ``sql INI RANGE OUT``: ``alembic upgrade RANGE --sql`` with an output buffer that
  records, for every chunk of SQL Alembic writes, the revision file and line of the
  ``op.*`` call that wrote it (the innermost stack frame in a revision file) - so a
  finding points at the line of Python that produced the statement.
- ``run INI upgrade|downgrade TARGET``: one online step, for ``--roundtrip``, against the
  URL in ``DBPULSE_ALEMBIC_URL`` (the environment: argv is visible to ``ps``).

Exit 3 with a one-line reason on stderr when Alembic fails.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any, TextIO, cast

# The line the parent shows: env.py's own logging writes to the same stderr.
MARK = "dbpulse-alembic: "
URL_VARIABLE = "DBPULSE_ALEMBIC_URL"


class _Recorder:
    """A file-like object for Alembic's offline output that remembers who wrote what."""

    def __init__(self, revision_files: dict[str, str], env_file: str) -> None:
        self.revision_files = revision_files  # resolved path -> revision id
        self.env_file = env_file
        self.chunks: list[dict[str, Any]] = []

    def write(self, text: str) -> int:
        frame = sys._getframe(1)
        where: tuple[str, int] | None = None
        env: tuple[str, int] | None = None
        while frame is not None:
            path = str(Path(frame.f_code.co_filename).resolve())
            if path in self.revision_files:
                where = (path, frame.f_lineno)
                break
            if env is None and path == self.env_file:
                env = (path, frame.f_lineno)
            frame = frame.f_back  # type: ignore[assignment]
        found = where or env
        self.chunks.append(
            {
                "text": text,
                "file": found[0] if found else None,
                "line": found[1] if found else None,
                "revision": self.revision_files.get(found[0]) if where and found else None,
            }
        )
        return len(text)

    def flush(self) -> None:
        return None


class _NoRows:
    """What a statement run through the offline bind returns: nothing, so loops end.

    The seed's batched backfill stops when ``rowcount == 0`` and its NOT NULL check reads
    ``scalar()`` as the count of NULLs left: 0 lets both run through once, offline.
    """

    rowcount = 0

    def scalar(self) -> int:
        return 0

    scalar_one = scalar

    def scalar_one_or_none(self) -> None:
        return None

    def first(self) -> None:
        return None

    def fetchone(self) -> None:
        return None

    def fetchall(self) -> list[Any]:
        return []

    all = fetchall

    def scalars(self) -> _NoRows:
        return self

    mappings = scalars

    def __iter__(self) -> Any:
        return iter(())


class _OfflineBind:
    """``op.get_bind()`` under ``--sql``: runs each statement into the offline output.

    Alembic's own offline bind emits the statement but returns None, so any migration that
    reads a result (a batch loop, a sanity count) crashes ``upgrade --sql``. This one binds
    the parameters as literals, emits through ``op.execute`` (so the recorder sees the
    revision line) and returns ``_NoRows``.
    """

    def __init__(self, operations: Any) -> None:
        self._operations = operations
        self.dialect = operations.get_context().dialect

    def execute(self, statement: Any, parameters: Any = None, *args: Any, **kw: Any) -> _NoRows:
        import sqlalchemy as sa
        from sqlalchemy.sql.elements import TextClause

        if isinstance(statement, str):
            statement = sa.text(statement)
        if isinstance(parameters, dict) and parameters:
            if isinstance(statement, TextClause):
                statement = statement.bindparams(**parameters)
            else:
                statement = statement.params(**parameters)
        self._operations.execute(statement)
        return _NoRows()

    def exec_driver_sql(self, statement: str, *args: Any, **kw: Any) -> _NoRows:
        self._operations.execute(statement)
        return _NoRows()

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"op.get_bind().{name} is not available in offline (--sql) mode")


def _offline_bind(operations: Any) -> _OfflineBind:
    return _OfflineBind(operations)


def _config(ini: str, url: str | None, buffer: object | None = None) -> Any:
    from alembic.config import Config

    cfg = Config(ini, output_buffer=cast("TextIO | None", buffer))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    elif not cfg.get_main_option("sqlalchemy.url"):
        # Offline mode never connects; the URL only picks the dialect.
        cfg.set_main_option("sqlalchemy.url", "postgresql://")
    return cfg


def _sql(ini: str, rng: str, out: str) -> None:
    from alembic import command
    from alembic.operations import Operations
    from alembic.script import ScriptDirectory

    Operations.get_bind = _offline_bind  # type: ignore[assignment,method-assign]
    script = ScriptDirectory.from_config(_config(ini, None))
    revisions = list(script.walk_revisions())
    files = {str(Path(rev.path).resolve()): rev.revision for rev in revisions}
    env_file = str((Path(script.dir) / "env.py").resolve())
    recorder = _Recorder(files, env_file)
    command.upgrade(_config(ini, None, recorder), rng, sql=True)
    order = [rev.revision for rev in reversed(revisions)]
    document = {
        "chunks": recorder.chunks,
        "revisions": {rev.revision: str(Path(rev.path).resolve()) for rev in revisions},
        "order": order,
        "heads": list(script.get_heads()),
    }
    Path(out).write_text(json.dumps(document), encoding="utf-8")


def _redirect_engines(url: str) -> None:
    """Every PostgreSQL engine env.py creates goes to ``url`` (the throwaway database).

    Setting ``sqlalchemy.url`` is not enough: many env.py files build their URL from an
    environment variable or the application's settings, and the roundtrip must never run
    a downgrade against the database they name. The driver name (psycopg, asyncpg) stays
    theirs; host, port, user, password and database become the throwaway one's.
    """
    import sqlalchemy
    import sqlalchemy.engine
    import sqlalchemy.engine.create as create_module
    from sqlalchemy.engine import make_url

    target = make_url(url)
    original = create_module.create_engine

    def create_engine(name_or_url: Any, *args: Any, **kw: Any) -> Any:
        wanted = make_url(name_or_url)
        if wanted.get_backend_name() == "postgresql":
            wanted = wanted.set(
                username=target.username,
                password=target.password,
                host=target.host,
                port=target.port,
                database=target.database,
                query=target.query,
            )
        return original(wanted, *args, **kw)

    # engine_from_config calls the module-level name; env.py may import either re-export;
    # create_async_engine binds sqlalchemy.engine's at its own import (after this).
    create_module.create_engine = create_engine  # type: ignore[assignment]
    sqlalchemy.engine.create_engine = create_engine  # type: ignore[assignment]
    sqlalchemy.create_engine = create_engine  # type: ignore[assignment]
    asyncio_engine = sys.modules.get("sqlalchemy.ext.asyncio.engine")
    if asyncio_engine is not None:
        asyncio_engine._create_engine = create_engine  # type: ignore[attr-defined]


def _run(ini: str, url: str, verb: str, target: str) -> None:
    from alembic import command

    _redirect_engines(url)
    cfg = _config(ini, url)
    if verb == "upgrade":
        command.upgrade(cfg, target)
    else:
        command.downgrade(cfg, target)


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["sql"] and len(argv) == 4:
            _sql(argv[1], argv[2], argv[3])
        elif argv[:1] == ["run"] and len(argv) == 4 and os.environ.get(URL_VARIABLE):
            _run(argv[1], os.environ[URL_VARIABLE], argv[2], argv[3])
        else:
            print(
                f"usage: sql INI RANGE OUT | run INI upgrade|downgrade REV (URL: {URL_VARIABLE})",
                file=sys.stderr,
            )
            return 2
    except ImportError as err:
        print(f"{MARK}cannot import {err.name or err}: is Alembic installed?", file=sys.stderr)
        return 3
    except Exception as err:  # noqa: BLE001 - any failure of the user's project: one line
        if "DBPULSE_DRIVER_TRACEBACK" in os.environ:
            traceback.print_exc()
        lines = str(err).strip().splitlines()
        print(f"{MARK}{type(err).__name__}: {lines[0] if lines else ''}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
