"""A real Alembic project on disk, shaped like issue 16's migration (for watch-migration).

Revisions, one step each kind the seed's decision matrix uses:

- r1: add a nullable column, then backfill it in committed batches (autocommit_block);
- r2: ``create_index(..., postgresql_concurrently=True)`` in ``autocommit_block()``;
- r3: a foreign key ``NOT VALID``, then ``VALIDATE CONSTRAINT`` in its own transaction;
- r4: a unique CIC on a column with duplicates: fails in milliseconds, leaves an INVALID
  index (``SWALLOW=1`` makes the migration catch the error and carry on, exit 0).

``STEP_PAUSE`` seconds of idle time after each statement stand for the application code
a real migration runs between steps (and keep each finished statement on view).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psycopg

ROWS = 2000
BATCH = 500

SCHEMA = f"""
CREATE TABLE customers (id int PRIMARY KEY);
INSERT INTO customers SELECT g FROM generate_series(1, 50) g;
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, ref int NOT NULL);
INSERT INTO orders SELECT g, 1 + g % 50, g % 1000 FROM generate_series(1, {ROWS}) g;
"""

ENV_PY = """
import os

from alembic import context
from sqlalchemy import create_engine, pool

engine = create_engine(os.environ["MIGRATION_URL"], poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
"""

HEADER = """
import os
import time

import sqlalchemy as sa
from alembic import op


def pause():
    time.sleep(float(os.environ.get("STEP_PAUSE", "0")))
"""

REVISIONS = {
    "r1": (
        None,
        f"""
def upgrade():
    op.add_column("orders", sa.Column("code", sa.Integer(), nullable=True))
    pause()
    with op.get_context().autocommit_block():
        for start in range(0, {ROWS}, {BATCH}):
            op.execute(
                sa.text("UPDATE orders SET code = id % 7 WHERE id > :lo AND id <= :hi")
                .bindparams(lo=start, hi=start + {BATCH})
            )
            pause()
""",
    ),
    "r2": (
        "r1",
        """
def upgrade():
    with op.get_context().autocommit_block():
        op.create_index("orders_code_idx", "orders", ["code"], postgresql_concurrently=True)
        pause()
""",
    ),
    "r3": (
        "r2",
        """
def upgrade():
    op.execute(
        "ALTER TABLE orders ADD CONSTRAINT orders_customer_fk"
        " FOREIGN KEY (customer_id) REFERENCES customers (id) NOT VALID"
    )
    pause()
    with op.get_context().autocommit_block():
        op.execute("ALTER TABLE orders VALIDATE CONSTRAINT orders_customer_fk")
        pause()
""",
    ),
    "r4": (
        "r3",
        """
def upgrade():
    with op.get_context().autocommit_block():
        try:
            op.create_index(
                "orders_ref_key", "orders", ["ref"], unique=True, postgresql_concurrently=True
            )
        except sa.exc.IntegrityError:
            if os.environ.get("SWALLOW") != "1":
                raise
        pause()
""",
    ),
}


def write_project(root: Path) -> Path:
    """Write alembic.ini, env.py and the revisions under ``root``; return the ini's path."""
    versions = root / "migrations" / "versions"
    versions.mkdir(parents=True)
    (root / "migrations" / "env.py").write_text(ENV_PY, encoding="utf-8")
    for revision, (down, body) in REVISIONS.items():
        text = f"revision = {revision!r}\ndown_revision = {down!r}\n{HEADER}\n{body}"
        text += "\n\ndef downgrade():\n    pass\n"
        (versions / f"{revision}.py").write_text(text, encoding="utf-8")
    ini = root / "alembic.ini"
    ini.write_text("[alembic]\nscript_location = %(here)s/migrations\n", encoding="utf-8")
    return ini


def create_schema(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in SCHEMA.split(";\n"):
            if statement.strip():
                conn.execute(statement)


def alembic(ini: Path, *args: str) -> list[str]:
    """The command line that runs Alembic with this interpreter."""
    return [sys.executable, "-m", "alembic", "-c", str(ini), *args]


def migration_env(dsn: str, *, pause: float = 0.0, swallow: bool = False) -> dict[str, str]:
    """Environment variables the project's env.py and revisions read."""
    return {
        "MIGRATION_URL": dsn.replace("postgresql://", "postgresql+psycopg://", 1),
        "STEP_PAUSE": str(pause),
        "SWALLOW": "1" if swallow else "0",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
    }
