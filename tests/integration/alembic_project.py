"""Write a small real Alembic project into a directory, for the linter's tests."""

from __future__ import annotations

from pathlib import Path

ENV_PY = """
from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config


def run_offline():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online():
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as connection:
        context.configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
"""

HEADER = '''"""{doc}"""
from alembic import op
import sqlalchemy as sa

revision = "{rev}"
down_revision = {down}
branch_labels = None
depends_on = None

'''


def write_project(root: Path, revisions: list[tuple[str, str]]) -> Path:
    """``revisions``: (id, body with upgrade()/downgrade()) in order; returns alembic.ini."""
    scripts = root / "migrations"
    (scripts / "versions").mkdir(parents=True)
    (scripts / "env.py").write_text(ENV_PY, encoding="utf-8")
    ini = root / "alembic.ini"
    ini.write_text(
        "[alembic]\nscript_location = %(here)s/migrations\nsqlalchemy.url =\n", encoding="utf-8"
    )
    down = "None"
    for rev, body in revisions:
        text = HEADER.format(doc=rev, rev=rev, down=down) + body.strip("\n") + "\n"
        (scripts / "versions" / f"{rev}.py").write_text(text, encoding="utf-8")
        down = repr(rev)
    return ini


def line_of(ini: Path, rev: str, needle: str) -> int:
    """The 1-based line of ``needle`` in revision ``rev``'s file."""
    lines = (ini.parent / "migrations" / "versions" / f"{rev}.py").read_text().splitlines()
    return next(i for i, line in enumerate(lines, start=1) if needle in line)
