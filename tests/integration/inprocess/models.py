"""The demo's users-with-posts schema, seeded small for the N+1 and middleware tests."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from dbpulse.demo.models import Base, Post, User

__all__ = ["Post", "User", "seed"]


def seed(engine: Engine, users: int = 8, posts_each: int = 2) -> None:
    """Create the tables and ``users`` users with ``posts_each`` posts each."""
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        for i in range(1, users + 1):
            user = User(id=i, name=f"user{i}")
            session.add(user)
            for j in range(posts_each):
                session.add(Post(id=i * 100 + j, author=user, title=f"post {j}"))
        session.commit()
