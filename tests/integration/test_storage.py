"""Storage mechanisms on both databases: migrations, the append-only trail, UTC round trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from storage import migrate
from storage.db import create_db_engine, normalise_url, transaction
from storage.tables import Event, Learner
from tests.integration.helpers import concern_input, example_placement, load_example_directory
from tests.integration.test_submit import submit


def test_migrations_reach_the_newest_revision_and_can_run_again(engine: Engine) -> None:
    assert migrate.is_current(engine)
    migrate.upgrade(engine)
    assert migrate.is_current(engine)


@pytest.mark.parametrize("statement", ["UPDATE events SET kind = 'forged'", "DELETE FROM events"])
def test_the_audit_trail_cannot_be_rewritten(engine: Engine, statement: str) -> None:
    load_example_directory(engine)
    submit(engine, concern_input(example_placement(engine)))
    with pytest.raises(DBAPIError, match="append-only"), transaction(engine) as session:
        session.execute(text(statement))
    with transaction(engine) as session:
        kinds = {e.kind for e in session.exec(select(Event)).all()}
    assert kinds == {"received", "triaged", "routed"}


def test_datetimes_come_back_aware_and_in_utc(engine: Engine) -> None:
    moment = datetime(2026, 6, 1, 9, 30, tzinfo=timezone(timedelta(hours=1)))
    with transaction(engine) as session:
        session.add(Learner(name="x", email="x@example.nhs.uk", created_at=moment))
    with transaction(engine) as session:
        stored = session.exec(select(Learner)).one().created_at
    assert stored == moment and stored.tzinfo is not None and stored.utcoffset() == timedelta(0)


def test_a_naive_datetime_is_refused(engine: Engine) -> None:
    with pytest.raises(Exception, match="naive"), transaction(engine) as session:
        session.add(Learner(name="x", created_at=datetime(2026, 6, 1, 9, 30)))
        session.flush()


def test_sqlite_runs_with_wal_full_sync_and_foreign_keys(sqlite_engine: Engine) -> None:
    with sqlite_engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_any_postgresql_url_uses_psycopg_3() -> None:
    assert normalise_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalise_url("postgresql+psycopg2://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///./var/x.db") == "sqlite:///./var/x.db"


def test_a_sqlite_file_gets_its_folder(tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("x") / "nested" / "deeper"
    db = create_db_engine(f"sqlite:///{folder / 'concerns.db'}")
    migrate.upgrade(db)
    assert (folder / "concerns.db").exists()
    db.dispose()


def test_instances_starting_together_load_the_default_directory_once(engine: Engine) -> None:
    import threading

    from app.bootstrap import Product, build_policy, prepare_database
    from app.settings import Settings
    from storage.tables import DirectoryLoad, Organisation

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    product = Product(settings=settings, engine=engine, policy=build_policy(settings))
    errors: list[BaseException] = []

    def start() -> None:
        try:
            prepare_database(product)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with transaction(engine) as session:
        assert len(session.exec(select(DirectoryLoad)).all()) == 1
        keys = [o.key for o in session.exec(select(Organisation)).all()]
    assert len(keys) == len(set(keys)) >= 2


def test_the_migrations_build_exactly_the_tables_the_code_declares(engine: Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == []


def test_queue_message_says_whether_it_added_the_row(engine: Engine) -> None:
    """Callers rely on the answer (a contact without a new message is not counted as told)."""
    from storage.repositories import queue_message
    from storage.tables import OutboxMessage

    at = datetime(2026, 11, 23, 10, tzinfo=UTC)

    def message() -> OutboxMessage:
        return OutboxMessage(
            idempotency_key="digest:weekly:north-vale:2026-11-16:contact:1",
            channel="email",
            kind="digest_weekly",
            recipient_role="dean",
            recipient_address="dean@example.nhs.uk",
            subject="Weekly digest",
            body_text="text",
            created_at=at,
            send_after=at,
        )

    with transaction(engine) as session:
        assert queue_message(session, message()) is True
    with transaction(engine) as session:
        assert queue_message(session, message()) is False
    with transaction(engine) as session:
        assert len(session.exec(select(OutboxMessage)).all()) == 1


def test_answers_sent_to_an_address_are_counted_whatever_its_case(engine: Engine) -> None:
    """Loop protection: a learner's stored address may have capitals that their mail has not."""
    from storage.repositories import answers_sent_to, queue_message
    from storage.tables import OutboxMessage

    at = datetime(2026, 11, 23, 10, tzinfo=UTC)
    addresses = [
        "Jane.Smith@student.example.ac.uk",
        "jane.smith@STUDENT.example.ac.uk",
        "someone.else@student.example.ac.uk",
    ]
    with transaction(engine) as session:
        for n, address in enumerate(addresses):
            queue_message(
                session,
                OutboxMessage(
                    idempotency_key=f"LC-2026-000001:reply_not_applied:{n}",
                    channel="email",
                    kind="reply_not_applied",
                    recipient_role="learner",
                    recipient_address=address,
                    subject="We could not act on your reply",
                    body_text="text",
                    created_at=at,
                    send_after=at,
                ),
            )
    with transaction(engine) as session:
        for asked in ("jane.smith@student.example.ac.uk", " JANE.SMITH@student.example.ac.uk "):
            count = answers_sent_to(session, address=asked, since=at, kind="reply_not_applied")
            assert count == 2
