"""Shared fixtures: the databases every storage test runs against (SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from storage import migrate
from storage.db import create_db_engine
from tests.postgres import PostgresServer

_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the whole test session."""
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty PostgreSQL database of its own for one test."""
    return postgres_server.create_database(f"test_{next(_database_numbers)}")


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """A migrated, empty database: each storage test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'concerns.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    db = create_db_engine(url)
    migrate.upgrade(db)
    yield db
    db.dispose()


@pytest.fixture
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A migrated SQLite file database, for tests that are about behaviour, not the database."""
    db = create_db_engine(f"sqlite:///{tmp_path_factory.mktemp('db') / 'concerns.db'}")
    migrate.upgrade(db)
    yield db
    db.dispose()
