"""SQLModel with dbpulse embedded: the engine SQLModel hands out is a SQLAlchemy
``Engine``, so ``dbpulse.instrument`` takes it as it is.

    DATABASE_URL=postgresql+psycopg://app:secret@127.0.0.1:5432/app \\
        python -m examples.sqlmodel_heroes.app

prints each team with its heroes twice: lazily (an N+1, one warning on the ``dbpulse``
logger) and with ``selectinload`` (two statements), with the statement counts.
"""

# No `from __future__ import annotations`: SQLModel reads the annotations at class
# creation to build the relationships.
import logging
import os

from prometheus_client import REGISTRY, CollectorRegistry
from sqlalchemy import Engine
from sqlalchemy.orm import selectinload
from sqlmodel import Field, Relationship, Session, SQLModel, create_engine, select

import dbpulse


class Team(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str
    heroes: list["Hero"] = Relationship(back_populates="team")


class Hero(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str
    team_id: int | None = Field(default=None, foreign_key="team.id")
    team: Team | None = Relationship(back_populates="heroes")


def make_engine(url: str, registry: CollectorRegistry = REGISTRY) -> Engine:
    """SQLModel's engine, instrumented, with its tables and six teams of two heroes."""
    engine = create_engine(
        url, pool_pre_ping=True, connect_args={"options": "-c statement_timeout=30000"}
    )
    dbpulse.instrument(engine, registry=registry)
    SQLModel.metadata.create_all(engine)
    with Session(engine) as session:
        if session.exec(select(Team)).first() is None:
            for i in range(6):
                team = Team(name=f"team {i}")
                session.add_all([Hero(name=f"hero {i}.{j}", team=team) for j in range(2)])
            session.commit()
    return engine


def heroes_by_team(engine: Engine, *, eager: bool) -> dict[str, list[str]]:
    """Each team's heroes; lazily (one SELECT per team) unless ``eager``."""
    query = select(Team).order_by(Team.name)
    if eager:
        # SQLModel types the class attribute as the list it holds on instances.
        query = query.options(selectinload(Team.heroes))  # type: ignore[arg-type]
    with Session(engine) as session:
        return {team.name: sorted(h.name for h in team.heroes) for team in session.exec(query)}


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    engine = make_engine(os.environ["DATABASE_URL"])
    for eager in (False, True):
        with dbpulse.query_counter() as counted:
            teams = heroes_by_team(engine, eager=eager)
        print(f"eager={eager}: {len(teams)} teams in {counted.count} statements")


if __name__ == "__main__":
    main()
