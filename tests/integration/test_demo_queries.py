"""The demo models' query budgets, held by dbpulse's own pytest plugin on real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import Session, joinedload, selectinload

from dbpulse.demo import workload
from dbpulse.demo.models import Post, User
from dbpulse.testing import QueryBudgetError, QueryLog, assert_max_queries


@pytest.fixture
def demo_engine(fresh_db: str, dbpulse_instrument: Callable[..., Any]) -> Iterator[Engine]:
    """The demo's tables (20 users with 3 posts each) in a fresh database, instrumented."""
    engine = create_engine(fresh_db.replace("postgresql://", "postgresql+psycopg://", 1))
    workload.setup_schema(engine, orders=100)
    dbpulse_instrument(engine, pool_name="demo")
    yield engine
    engine.dispose()


@pytest.mark.max_queries(2)
def test_users_with_posts_eagerly_take_two_statements(demo_engine: Engine) -> None:
    """selectinload(User.posts): one statement for users, one for all their posts."""
    with Session(demo_engine) as session:
        users = session.scalars(select(User).options(selectinload(User.posts))).all()
        assert sum(len(u.posts) for u in users) == 60


@pytest.mark.max_queries(1)
def test_posts_with_authors_joined_take_one_statement(demo_engine: Engine) -> None:
    """joinedload(Post.author): the many-to-one side in a single statement."""
    with Session(demo_engine) as session:
        posts = session.scalars(select(Post).options(joinedload(Post.author))).all()
        assert {p.author.name for p in posts} == {f"user{i}" for i in range(20)}


@pytest.mark.dbpulse_n_plus_one("off")  # provoked on purpose
def test_lazy_loop_breaks_the_budget_and_names_the_relationship(demo_engine: Engine) -> None:
    """The lazy loop runs 21 statements; the failure lists them and says to selectinload(User.posts)."""
    with (
        pytest.raises(QueryBudgetError) as caught,
        assert_max_queries(2),
        Session(demo_engine) as session,
    ):
        assert sum(len(u.posts) for u in session.scalars(select(User)).all()) == 60
    message = str(caught.value)
    assert message.startswith("dbpulse: the block ran 21 statements, at most 2 allowed")
    assert "20 x SELECT posts.id" in message
    assert "User.posts" in message
    assert ".options(selectinload(User.posts))" in message


@pytest.mark.dbpulse_n_plus_one("off")  # the scenario exists to show one
def test_demo_n_plus_one_scenario_is_what_it_says(
    demo_engine: Engine, dbpulse_queries: QueryLog
) -> None:
    """The demo's N+1 scenario: 21 statements for the lazy loop, 2 for its fixed twin, User.posts named."""
    said: list[str] = []
    assert workload.n_plus_one(demo_engine, said.append) == 120
    assert said == ["N+1: 20 users -> 21 queries (fixed twin: 2 queries)"]
    assert dbpulse_queries.count == 23
    assert dbpulse_queries.lazy_loads == {"User.posts": 20}
    assert [f.relationship for f in dbpulse_queries.n_plus_one] == ["User.posts"]
