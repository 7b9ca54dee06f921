"""FastAPI on asyncpg with dbpulse embedded: pool and query metrics, N+1 detection,
``/metrics`` and ``/health/database`` served by the application itself.

Run it (from a checkout, after ``pip install . fastapi uvicorn asyncpg``)::

    DATABASE_URL=postgresql+asyncpg://app:secret@127.0.0.1:5432/app \\
        uvicorn examples.fastapi_asyncpg.app:app

then ``curl 127.0.0.1:8000/authors/lazy`` (an N+1: one warning on the ``dbpulse``
logger, ``db_client_n_plus_one_total`` + 1), ``curl 127.0.0.1:8000/authors`` (the same
page with ``selectinload``: two statements) and ``curl 127.0.0.1:8000/metrics``. The
``X-DB-Query-Count`` response header says how many statements each request ran.
``postgresql+psycopg://`` (psycopg 3's async mode) works the same way.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations
# (Annotated[..., Depends(session)] names a local function) at runtime.
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import selectinload
from starlette.routing import Route

import dbpulse
from dbpulse.inprocess.middleware import DBPulseASGIMiddleware
from examples.fastapi_asyncpg.models import Author, Base, Book

AUTHORS = 10


def make_engine(url: str) -> AsyncEngine:
    """The async engine (AsyncAdaptedQueuePool by default), with a server-side timeout."""
    timeout = (
        {"server_settings": {"statement_timeout": "30000"}}  # asyncpg
        if "+asyncpg" in url
        else {"options": "-c statement_timeout=30000"}  # psycopg
    )
    return create_async_engine(url, pool_size=5, pool_pre_ping=True, connect_args=timeout)


async def seed(engine: AsyncEngine) -> None:
    """Create the tables and AUTHORS authors with two books each (once)."""
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with AsyncSession(engine) as session:
        if await session.scalar(select(Author).limit(1)) is None:
            for i in range(1, AUTHORS + 1):
                author = Author(id=i, name=f"author {i}")
                session.add(author)
                session.add_all(
                    [Book(id=i * 10 + j, author=author, title=f"book {j}") for j in range(2)]
                )
            await session.commit()


def create_app(url: str, registry: CollectorRegistry = REGISTRY) -> FastAPI:
    """The application; ``registry`` is where dbpulse's metrics go (and /metrics reads)."""
    engine = make_engine(url)
    dbpulse.instrument(engine, registry=registry)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await seed(engine)
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)
    app.state.engine = engine

    async def session() -> AsyncIterator[AsyncSession]:
        async with sessions() as s:
            yield s

    @app.get("/authors/lazy")
    async def authors_lazy(
        db: Annotated[AsyncSession, Depends(session)],
    ) -> list[dict[str, Any]]:
        """An N+1: one SELECT for the authors, then one per author for its books."""
        authors = (await db.scalars(select(Author).order_by(Author.id))).all()
        return [
            {"name": a.name, "books": len(await a.awaitable_attrs.books)}  # N+1 LINE
            for a in authors
        ]

    @app.get("/authors")
    async def authors(db: Annotated[AsyncSession, Depends(session)]) -> list[dict[str, Any]]:
        """The same page eager-loaded: two statements whatever the number of authors."""
        query = select(Author).options(selectinload(Author.books)).order_by(Author.id)
        return [{"name": a.name, "books": len(a.books)} for a in await db.scalars(query)]

    # /metrics and the health check live in the application's own router (one port).
    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.router.routes.append(Route("/health/database", dbpulse.HealthASGIApp(engine)))
    # Per-request query counts (X-DB-Query-Count) and the request as N+1 unit of work.
    app.add_middleware(DBPulseASGIMiddleware, registry=registry)
    return app


def __getattr__(name: str) -> Any:
    # `uvicorn examples.fastapi_asyncpg.app:app` builds the app from DATABASE_URL on first
    # access; importing this module for create_app() connects to nothing.
    if name == "app":
        return create_app(os.environ["DATABASE_URL"])
    raise AttributeError(name)
