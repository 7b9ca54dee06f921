"""Each SQLAlchemy internal named in inprocess/compat.py still means what dbpulse reads.

Run on the oldest supported 2.0 and the newest 2.1 by ``make test-sqlalchemy-matrix``, so
a release that moves one fails here, by name, before a metric silently goes wrong.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, create_engine, event, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.pool import Pool, QueuePool, SingletonThreadPool, StaticPool

from dbpulse.inprocess import compat


def test_pool_settings_are_read_as_configured() -> None:
    """max_overflow, pre_ping and recycle come back as create_engine() was given them."""
    engine = create_engine(
        "sqlite://", poolclass=QueuePool, max_overflow=7, pool_pre_ping=True, pool_recycle=42
    )
    assert isinstance(engine.pool, QueuePool)
    assert compat.pool_max_overflow(engine.pool) == 7
    assert compat.pool_pre_ping(engine.pool) is True
    assert compat.pool_recycle(engine.pool) == 42


def test_connect_args_are_found_in_the_creator() -> None:
    """The DBAPI connect() arguments, connect_args included, are recovered (no connection made)."""
    engine = create_engine(
        "postgresql+psycopg://u@h/db", connect_args={"options": "-c statement_timeout=5"}
    )
    found = compat.connect_args(engine)
    assert found is not None
    assert found["options"] == "-c statement_timeout=5"


def test_option_engine_resolves_to_its_engine() -> None:
    """engine.execution_options() gives an OptionEngine whose real engine is found."""
    engine = create_engine("sqlite://")
    assert compat.unproxied_engine(engine.execution_options(isolation_level="AUTOCOMMIT")) is engine
    assert compat.unproxied_engine(engine) is engine


def test_return_conn_is_called_on_every_checkin() -> None:
    """The wrapped check-in method exists and receives each returned connection's record."""
    engine = create_engine("sqlite://", poolclass=QueuePool)
    pool = engine.pool
    seen: list[Any] = []
    original = getattr(pool, compat.POOL_RETURN_CONN)

    def spy(record: Any) -> None:
        seen.append(record)
        original(record)

    setattr(pool, compat.POOL_RETURN_CONN, spy)
    fairy = pool.connect()
    record = compat.first_checkout_record(fairy)
    fairy.close()
    assert record is not None
    assert seen == [record]


def test_reentrant_checkout_has_no_first_record() -> None:
    """SingletonThreadPool's second checkout on one thread is re-entrant; open count is 1."""
    pool = create_engine("sqlite://", poolclass=SingletonThreadPool).pool
    assert isinstance(pool, SingletonThreadPool)
    # Read right after each checkout, as the pool wrapper does: the thread's second
    # checkout hands back the same fairy, counting it up.
    outer = pool.connect()
    assert compat.first_checkout_record(outer) is not None
    inner = pool.connect()
    assert compat.first_checkout_record(inner) is None
    assert compat.pool_open_connections(pool) == 1
    inner.close()
    outer.close()


def test_static_pool_connected_after_first_checkout() -> None:
    """A StaticPool reports its one connection only once it was opened."""
    pool: Pool = create_engine("sqlite://", poolclass=StaticPool).pool
    assert isinstance(pool, StaticPool)
    assert compat.static_pool_connected(pool) is False
    pool.connect().close()
    assert compat.static_pool_connected(pool) is True


class _Base(DeclarativeBase):
    pass


class _Parent(_Base):
    __tablename__ = "parent"
    id: Mapped[int] = mapped_column(primary_key=True)
    children: Mapped[list[_Child]] = relationship(lazy="select")


class _Child(_Base):
    __tablename__ = "child"
    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("parent.id"))


def test_lazy_load_marker_is_set_only_for_lazy_loads() -> None:
    """The ORM's load options name the lazy load's source object, and nothing for a select."""
    engine = create_engine("sqlite://")
    _Base.metadata.create_all(engine)
    marks: list[bool] = []

    def on_execute(state: Any) -> None:
        options = state.execution_options.get(compat.ORM_LOAD_OPTIONS)
        marks.append(getattr(options, compat.LAZY_LOADED_FROM, None) is not None)

    with Session(engine) as session:
        session.add(_Parent(id=1, children=[_Child(id=1)]))
        session.commit()
        event.listen(session, "do_orm_execute", on_execute)
        parent = session.scalars(select(_Parent)).one()
        assert len(parent.children) == 1
    assert marks == [False, True]
