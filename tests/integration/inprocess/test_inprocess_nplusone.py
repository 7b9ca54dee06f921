"""N+1 detection: the classic lazy-load loop is reported once; its eager twin is quiet."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, selectinload

from dbpulse.inprocess.nplusone import NPlusOneError
from dbpulse.inprocess.scope import scope
from tests.integration.inprocess.conftest import Instrumented, value
from tests.integration.inprocess.models import Post, User, seed
from tests.logcapture import capture_logs

N1 = "db_client_n_plus_one_total"


def _reports(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == "N+1 query pattern"]


def test_lazy_load_loop_is_reported_once_with_relationship_and_fix(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """Looping over users touching user.posts: one report naming User.posts, the line and selectinload."""
    engine, inst = instrumented(pg_url)
    seed(engine, users=8)
    with Session(engine) as session, capture_logs() as logs:
        titles = [len(user.posts) for user in session.scalars(select(User))]  # N+1 LINE
    assert titles == [2] * 8
    reports = _reports(logs)
    assert len(reports) == 1
    report = reports[0]
    assert report["relationship"] == "User.posts"
    assert report["db_collection_name"] == "posts"
    assert report["unit_of_work"] == "session"
    assert "selectinload(User.posts)" in str(report["fix"])
    assert str(report["caller"]).startswith(__file__ + ":")
    assert value(registry, N1, pool_name=inst.pool_name, db_collection_name="posts") == 1


def test_eager_loading_twins_stay_quiet(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """The same loop with selectinload or joinedload reports nothing."""
    engine, inst = instrumented(pg_url)
    seed(engine, users=8)
    with Session(engine) as session, capture_logs() as logs:
        for user in session.scalars(select(User).options(selectinload(User.posts))):
            assert len(user.posts) == 2
        for post in session.scalars(select(Post).options(joinedload(Post.author))):
            assert post.author.name
    assert _reports(logs) == []
    assert value(registry, N1, pool_name=inst.pool_name, db_collection_name="posts") == 0


def test_below_threshold_is_not_reported(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """Four lazy loads with the default threshold of five are fine."""
    engine, inst = instrumented(pg_url)
    seed(engine, users=4)
    with Session(engine) as session, capture_logs() as logs:
        for user in session.scalars(select(User)):
            _ = user.posts
    assert _reports(logs) == []
    assert value(registry, N1, pool_name=inst.pool_name, db_collection_name="posts") == 0


def test_each_transaction_is_its_own_unit(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """Outside a request the unit is the Session's transaction: counts restart after commit."""
    engine, inst = instrumented(pg_url, instrument_kw={"n_plus_one_threshold": 3})
    seed(engine, users=4)
    with Session(engine) as session:
        for i in range(1, 3):
            user = session.get(User, i)
            assert user is not None
            _ = user.posts
        session.commit()
        for i in range(3, 5):
            user = session.get(User, i)
            assert user is not None
            _ = user.posts
    assert value(registry, N1, pool_name=inst.pool_name, db_collection_name="posts") == 0


def test_many_to_one_lazy_loads_are_caught_too(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """post.author in a loop (many-to-one) is reported as Post.author."""
    engine, inst = instrumented(pg_url)
    seed(engine, users=8, posts_each=1)
    with Session(engine) as session, capture_logs() as logs:
        for post in session.scalars(select(Post)):
            _ = post.author
    assert [r["relationship"] for r in _reports(logs)] == ["Post.author"]
    assert value(registry, N1, pool_name=inst.pool_name, db_collection_name="users") == 1


def test_strict_mode_raises(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """n_plus_one_strict=True raises NPlusOneError at the offending lazy load."""
    engine, _ = instrumented(pg_url, instrument_kw={"n_plus_one_strict": True})
    seed(engine, users=8)
    with Session(engine) as session:
        users = session.scalars(select(User)).all()
        for user in users[:4]:
            _ = user.posts
        with pytest.raises(NPlusOneError, match=r"User\.posts"):
            _ = users[4].posts


def test_repeated_statement_in_a_request_scope(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """Inside a request, the same SELECT fingerprint five times (not lazy) is reported."""
    engine, inst = instrumented(pg_url)
    seed(engine, users=6)
    with scope(unit_of_work=True), Session(engine) as session, capture_logs() as logs:
        for i in range(1, 7):
            session.execute(select(User.name).where(User.id == i)).scalar_one()
    reports = _reports(logs)
    assert len(reports) == 1
    assert reports[0]["kind"] == "repeated statement"
    assert reports[0]["fingerprint"] == "SELECT users.name FROM users WHERE users.id = ?::INTEGER"
    assert value(registry, N1, pool_name=inst.pool_name, db_collection_name="users") == 1


def test_lazy_loads_in_a_request_scope_use_the_request_as_unit(
    registry: CollectorRegistry, pg_url: str, instrumented: Instrumented
) -> None:
    """Lazy loads spread over several sessions in one request add up (and so do the gets)."""
    engine, inst = instrumented(pg_url)
    seed(engine, users=6)
    with scope(unit_of_work=True), capture_logs() as logs:
        for i in range(1, 7):
            with Session(engine) as session:
                user = session.get(User, i)
                assert user is not None
                _ = user.posts
    reports = _reports(logs)
    lazy = [(r["relationship"], r["unit_of_work"]) for r in reports if r["kind"] == "lazy load"]
    assert lazy == [("User.posts", "request")]
    # The six identical session.get() SELECTs are a repeated statement of their own.
    assert [r["kind"] for r in reports].count("repeated statement") == 1
    assert value(registry, N1, pool_name=inst.pool_name, db_collection_name="posts") == 1
    assert value(registry, N1, pool_name=inst.pool_name, db_collection_name="users") == 1
