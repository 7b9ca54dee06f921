"""A tiny ORM schema (users with posts) for the N+1 and middleware tests."""

from __future__ import annotations

from sqlalchemy import Engine, ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    posts: Mapped[list[Post]] = relationship(back_populates="author")


class Post(Base):
    __tablename__ = "posts"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(100))
    author: Mapped[User] = relationship(back_populates="posts")


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
