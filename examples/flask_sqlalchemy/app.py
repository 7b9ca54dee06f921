"""Flask-SQLAlchemy with dbpulse embedded: pool and query metrics, N+1 detection,
``/metrics`` as a route of the app and ``/health/database`` beside it.

Run it (from a checkout, after ``pip install . flask-sqlalchemy``)::

    DATABASE_URL=postgresql+psycopg://app:secret@127.0.0.1:5432/app \\
        flask --app examples.flask_sqlalchemy.app run

then ``curl 127.0.0.1:5000/authors/lazy`` (an N+1), ``curl 127.0.0.1:5000/authors``
(``selectinload``: two statements) and ``curl 127.0.0.1:5000/metrics``.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, Response
from flask_sqlalchemy import SQLAlchemy
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from sqlalchemy import ForeignKey, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload
from werkzeug.middleware.dispatcher import DispatcherMiddleware

import dbpulse
from dbpulse.inprocess.middleware import DBPulseWSGIMiddleware

AUTHORS = 10


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Author(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "authors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    books: Mapped[list[Book]] = relationship(back_populates="author")


class Book(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "books"
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("authors.id"))
    title: Mapped[str]
    author: Mapped[Author] = relationship(back_populates="books")


def create_app(url: str, registry: CollectorRegistry = REGISTRY) -> Flask:
    """The application; ``registry`` is where dbpulse's metrics go (and /metrics reads)."""
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        "pool_pre_ping": True,
        "connect_args": {"options": "-c statement_timeout=30000"},
    }
    db.init_app(app)
    with app.app_context():
        dbpulse.instrument(db.engine, registry=registry)
        db.create_all()
        if db.session.scalar(select(Author).limit(1)) is None:
            for i in range(1, AUTHORS + 1):
                author = Author(id=i, name=f"author {i}")
                db.session.add(author)
                db.session.add_all(
                    [Book(id=i * 10 + j, author=author, title=f"book {j}") for j in range(2)]
                )
            db.session.commit()
        engine = db.engine

    @app.get("/authors/lazy")
    def authors_lazy() -> list[dict[str, Any]]:
        """An N+1: one SELECT for the authors, then one per author for its books."""
        authors = db.session.scalars(select(Author).order_by(Author.id)).all()
        return [{"name": a.name, "books": len(a.books)} for a in authors]  # N+1 LINE

    @app.get("/authors")
    def authors() -> list[dict[str, Any]]:
        """The same page eager-loaded: two statements whatever the number of authors."""
        query = select(Author).options(selectinload(Author.books)).order_by(Author.id)
        return [{"name": a.name, "books": len(a.books)} for a in db.session.scalars(query)]

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

    # Per-request query counts (X-DB-Query-Count) and the request as N+1 unit of work.
    app.wsgi_app = DBPulseWSGIMiddleware(app.wsgi_app, registry=registry)  # type: ignore[method-assign]
    app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, {"/health/database": dbpulse.HealthWSGIApp(engine)}
    )
    return app


def __getattr__(name: str) -> Any:
    # `flask --app examples.flask_sqlalchemy.app run` builds the app from DATABASE_URL.
    if name == "app":
        return create_app(os.environ["DATABASE_URL"])
    raise AttributeError(name)
