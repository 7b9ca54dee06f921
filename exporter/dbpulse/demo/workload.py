"""Scripted trouble for the demo and the end-to-end tests.

Each scenario provokes one of the failure modes dbpulse exists to show, and returns
when it is over. Scenarios use the instrumented engine (so the in-process metrics see
them) or raw connections (when the point is what the server sees).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

import psycopg
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, selectinload

from dbpulse.demo.models import Account, Base, Post, User

Say = Callable[[str], None]


def setup_schema(engine: Engine, orders: int = 300_000) -> None:
    """Create and fill the demo tables (idempotent)."""
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        if session.scalar(select(User.id).limit(1)) is None:
            users = [User(name=f"user{i}") for i in range(20)]
            session.add_all(users)
            session.flush()
            session.add_all(
                Post(user_id=u.id, title=f"post {j} of {u.name}") for u in users for j in range(3)
            )
            session.add_all(Account(id=i, balance=100) for i in range(1, 4))
            session.commit()
    with engine.begin() as conn:
        have = conn.scalar(text("SELECT count(*) FROM orders")) or 0
        if have < orders:
            conn.execute(
                text(
                    "INSERT INTO orders (customer_id, amount, note)"
                    " SELECT g % 5000, g % 977, md5(g::text) FROM generate_series(1, :n) g"
                ),
                {"n": orders - have},
            )
        conn.execute(text("ANALYZE orders"))


def pool_pressure(engine: Engine, say: Say, hold: float = 2.0, callers: int = 6) -> int:
    """More callers than the pool holds, each keeping its connection: waits, then timeouts."""
    timeouts = 0
    lock = threading.Lock()

    def worker() -> None:
        nonlocal timeouts
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_sleep(:s)"), {"s": hold})
        except PoolTimeout:
            with lock:
                timeouts += 1

    threads = [threading.Thread(target=worker) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    say(f"pool pressure: {callers} callers on a small pool, {timeouts} timed out waiting")
    # A failover or an operator's pg_terminate_backend kills pooled connections; the next
    # checkout's pre-ping finds them dead and the pool replaces them.
    with engine.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'demo-app' AND pid <> pg_backend_pid()"
            )
        )
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return timeouts


def slow_query(engine: Engine, say: Say, seconds: float = 1.2) -> None:
    """One statement slower than the slow-query threshold."""
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_sleep(:s)"), {"s": seconds})
    say(f"slow query: pg_sleep({seconds}) took {seconds}s")


def n_plus_one(engine: Engine, say: Say) -> int:
    """The classic loop: one query for users, then one lazy load of posts per user."""
    with Session(engine) as session:
        users = session.scalars(select(User)).all()
        titles = sum(len(user.posts) for user in users)
    with Session(engine) as session:
        fixed = session.scalars(select(User).options(selectinload(User.posts))).all()
        titles_fixed = sum(len(user.posts) for user in fixed)
    say(f"N+1: {len(users)} users -> {len(users) + 1} queries (fixed twin: 2 queries)")
    return titles + titles_fixed


def lock_wait(dsn: str, say: Say, hold: float = 4.0) -> None:
    """A forgotten transaction holds a row lock; another session queues behind it."""
    blocker = psycopg.connect(dsn, application_name="demo-forgotten-tx")
    try:
        blocker.execute("UPDATE accounts SET balance = balance - 1 WHERE id = 1")
        done = threading.Event()

        def waiter() -> None:
            with psycopg.connect(dsn, application_name="demo-waiter", autocommit=True) as conn:
                conn.execute("SET lock_timeout = '30s'")
                conn.execute("UPDATE accounts SET balance = balance + 1 WHERE id = 1")
            done.set()

        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(hold)
        say(f"lock wait: a session waited {hold:.0f}s behind an idle-in-transaction session")
    finally:
        blocker.rollback()
        blocker.close()
    thread.join(timeout=30)


def index_build(dsn: str, say: Say, hold: float = 4.0) -> None:
    """CREATE INDEX CONCURRENTLY, held in 'waiting for old snapshots' by an open transaction."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP INDEX IF EXISTS orders_customer_idx")
    snapshot_holder = psycopg.connect(dsn, application_name="demo-old-snapshot")
    builder_error: list[BaseException] = []

    def build() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True, application_name="demo-migration") as conn:
                conn.execute(
                    "CREATE INDEX CONCURRENTLY orders_customer_idx ON orders (customer_id, amount)"
                )
        except psycopg.Error as exc:
            builder_error.append(exc)

    # READ COMMITTED would drop its snapshot after each statement; REPEATABLE READ keeps
    # it, which is what holds the build in "waiting for old snapshots".
    snapshot_holder.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    try:
        snapshot_holder.execute("SELECT count(*) FROM accounts")
        thread = threading.Thread(target=build)
        thread.start()
        time.sleep(hold)
    finally:
        snapshot_holder.rollback()
        snapshot_holder.close()
    thread.join(timeout=120)
    if builder_error:
        say(f"index build failed: {builder_error[0]}")
    else:
        say(
            f"index build: CREATE INDEX CONCURRENTLY waited {hold:.0f}s"
            " for an old snapshot, then finished"
        )


def migration_hazards(engine: Engine, dsn: str, say: Say) -> None:
    """What a careless migration leaves behind: an INVALID index and a NOT VALID constraint.

    The failing build goes through the instrumented engine, so the application side
    counts the error too. posts.user_id's foreign key has no index from the start.
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP INDEX IF EXISTS orders_note_unique")
        conn.execute("ALTER TABLE posts DROP CONSTRAINT IF EXISTS posts_title_not_empty")
        conn.execute(
            "ALTER TABLE posts ADD CONSTRAINT posts_title_not_empty CHECK (title <> '') NOT VALID"
        )
    failed = False
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        try:
            # customer_id repeats, so the unique build fails after its first phase.
            conn.execute(
                text("CREATE UNIQUE INDEX CONCURRENTLY orders_note_unique ON orders (customer_id)")
            )
        except DBAPIError:
            failed = True
    outcome = "failed and left an INVALID index" if failed else "unexpectedly succeeded"
    say(f"migration hazards: a unique CREATE INDEX CONCURRENTLY {outcome}; a NOT VALID check")


def maintenance(dsn: str, say: Say, seconds: float = 3.0) -> None:
    """Long operations made slow on purpose: a throttled VACUUM and ANALYZE, a streaming COPY."""
    for command in ("VACUUM orders", "ANALYZE orders"):
        with psycopg.connect(dsn, autocommit=True, application_name="demo-maintenance") as conn:
            # A cost delay makes the command crawl; the statement timeout ends it for us.
            conn.execute("SET vacuum_cost_delay = '20ms'")
            conn.execute("SET vacuum_cost_limit = 1")
            conn.execute(f"SET statement_timeout = '{int(seconds * 1000)}ms'")
            with contextlib.suppress(psycopg.errors.QueryCanceled):
                conn.execute(command)
    with psycopg.connect(dsn, autocommit=True) as conn:
        # Committed first, so the sidecar can name the table the COPY is loading.
        conn.execute("CREATE TABLE IF NOT EXISTS orders_staging (LIKE orders)")
    with psycopg.connect(dsn, application_name="demo-loader") as conn:
        with conn.cursor() as cur, cur.copy("COPY orders_staging FROM STDIN") as copy:
            deadline = time.monotonic() + seconds
            row = 0
            while time.monotonic() < deadline:
                for _ in range(200):
                    row += 1
                    copy.write_row((row, row % 5000, row % 977, "staged"))
                time.sleep(0.05)
        conn.rollback()
    say(f"maintenance: a throttled VACUUM and ANALYZE and a {seconds:.0f}s streaming COPY")
