"""The database engine: SQLite by default (WAL, synchronous=FULL, foreign keys), or PostgreSQL."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Dialect, Engine, make_url
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, create_engine

SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalise_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever driver the operator's URL names (or omits)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername != "postgresql+psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_db_engine(url: str) -> Engine:
    """Build the engine for a database URL; SQLite files get their folder created."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, hide_parameters=True)

    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    # Bound parameters can hold a confidential learner's identity: never put them in errors/logs.
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}, "hide_parameters": True}
    if in_memory:
        # One shared connection, or every session would see its own empty database.
        kwargs["poolclass"] = StaticPool
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)
    _configure_sqlite(engine, in_memory=in_memory)
    _SQLITE_WRITERS[engine] = threading.RLock()
    return engine


# SQLite lets one transaction write at a time, and a writer that finds the database locked
# sleeps in growing steps (1, 2, 5, 10 ms ...) before it looks again. The writes a person waits
# on (driver_transaction: a form submission, the mailbox's commit before its 250) queue on a
# lock in the process instead, and the next goes the moment the last commits. Everything else
# (ORM transactions) and other processes still wait through SQLite's busy timeout.
_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()


def writer_turn(engine: Engine) -> AbstractContextManager[object]:
    """Hold this around a write transaction of one's own (PostgreSQL needs nothing)."""
    return _SQLITE_WRITERS.get(engine) or nullcontext()


def _configure_sqlite(engine: Engine, *, in_memory: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN instead of the sqlite3 module.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(_READ_ONLY):
            # A look that writes nothing (`reading`): in WAL mode a reader never waits for the
            # writer, so it takes no lock at all.
            connection.exec_driver_sql("BEGIN")
            return
        # Take the write lock at the start: two writers never both read then fight to upgrade,
        # which is how SQLite claims a due row as PostgreSQL does with FOR UPDATE SKIP LOCKED.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class DriverStatement:
    """A statement compiled once for a dialect and run on the driver's own connection.

    For the two writes a person waits on (a form submission, an email before its 250), where
    SQLAlchemy's work per execution (an execution context, events, result objects) cost about as
    much as the database's own. SQLAlchemy still writes the SQL, its paramstyle and the columns'
    conversions (a UTC datetime as SQLite stores it, JSON); only the call is the driver's.
    """

    def __init__(
        self, statement: Any, dialect: Dialect, column_keys: Sequence[str] | None = None
    ) -> None:
        self._compiled = statement.compile(dialect=dialect, column_keys=column_keys)
        self.sql: str = self._compiled.string
        self._positions: Sequence[str] | None = self._compiled.positiontup
        self._processors = {
            name: process
            for name, bind in self._compiled.binds.items()
            if (process := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }

    def parameters(self, values: dict[str, Any]) -> Any:
        """The driver's parameters for one row's values, converted as SQLAlchemy would."""
        parameters = self._compiled.construct_params(values)
        for name, process in self._processors.items():
            parameters[name] = process(parameters[name])
        if self._positions is None:
            return parameters
        return tuple(parameters[name] for name in self._positions)


@contextmanager
def driver_transaction(engine: Engine) -> Iterator[Any]:
    """A write transaction on the driver's own connection (for DriverStatement), from the engine's
    pool, checked (PostgreSQL) and set up (SQLite) as every connection is; SQLite's write lock is
    taken at the start, as in every transaction of ours. Yields a cursor; commits on success and
    rolls back on any error."""
    with writer_turn(engine):
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            if engine.dialect.name == "sqlite":
                cursor.execute("BEGIN IMMEDIATE")
            yield cursor
            cursor.close()
            connection.commit()
        except BaseException:
            try:
                connection.rollback()
            except Exception:  # the connection is broken: the pool must not hand it out again
                connection.invalidate()
            raise
        finally:
            connection.close()


def serialise(session: Session, name: str) -> None:
    """Hold a named lock until the transaction ends, so instances take turns at a one-off job.

    PostgreSQL takes a transaction-level advisory lock; SQLite needs nothing more, because
    BEGIN IMMEDIATE already gives the transaction the database's single write lock.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})


_READ_ONLY = "concerns_read_only"


@contextmanager
def reading(engine: Engine) -> Iterator[Session]:
    """A unit of work that only reads (a metrics scrape, a health check): on SQLite it takes no
    write lock, so it answers while another transaction or process is writing instead of
    waiting up to the busy timeout behind it. Nothing written in it is kept."""
    with Session(engine.execution_options(**{_READ_ONLY: True})) as session:
        try:
            yield session
        finally:
            session.rollback()


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: commits on success, rolls back on any error."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session
