"""`concerns retention`: closed concerns older than the retention period (8 years) go with every
row tied to them; newer closed ones and open ones stay; a dry run only lists. On SQLite and on
PostgreSQL, since each has its own events guard (migrations 0001 and 0007) for retention to pass."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import delete, insert, inspect, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, func, select

from app import bootstrap, cli
from escalation import retention
from escalation.actions import Actor, close_concern
from intake.service import submit_concern
from intake.submission import Channel, parse_submission
from storage import migrate, repositories
from storage.db import create_db_engine, transaction
from storage.tables import (
    AccessRecord,
    Concern,
    ConcernContact,
    Escalation,
    Event,
    InboundMessage,
    Learner,
    OutboxMessage,
    Removal,
    id_of,
)
from tests.integration.helpers import (
    concern_input,
    example_placement,
    load_example_directory,
    policy,
)

NOW = "2026-11-23T10:00:00+00:00"
TIED = (ConcernContact, Escalation, Event, OutboxMessage, InboundMessage)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Engine, dict[str, str], dict[str, Any]]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'concerns.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONCERNS_DATABASE_URL", url)
    monkeypatch.delenv("CONCERNS_RETENTION_YEARS", raising=False)
    engine = create_db_engine(url)
    if request.param == "postgresql":
        # The command leaves its own engine to the end of its process; in this process psycopg
        # would warn about the open connection, so the command is given this engine instead.
        monkeypatch.setattr(bootstrap, "build", functools.partial(bootstrap.build, engine=engine))
    migrate.upgrade(engine)
    load_example_directory(engine)
    place = example_placement(engine)
    old_learner = {
        "name": "Old Learner",
        "email": "old.learner@example.nhs.uk",
        "group": "foundation",
        "programme": "Foundation Programme FY1",
    }
    plan: dict[str, tuple[str, str | None, dict[str, Any]]] = {
        # name: (raised, closed, changes)
        "old": ("2016-03-01T10:00", "2017-01-10T10:00", {"learner": old_learner}),
        "old_anonymous": ("2016-06-01T10:00", "2017-02-10T10:00", {"confidentiality": "anonymous"}),
        "newer": ("2020-01-06T10:00", "2020-02-03T10:00", {}),
        "open": ("2016-04-04T10:00", None, {}),
    }
    references: dict[str, str] = {}
    for name, (raised, closed, changes) in plan.items():
        if changes.get("confidentiality") == "anonymous":
            changes["learner"] = {"group": "foundation", "programme": "Foundation Programme FY1"}
        reference = submit_concern(
            engine=engine,
            concern=parse_submission(concern_input(place, **changes)),
            channel=Channel.WEB,
            now=_at(raised),
            policy=policy(),
        ).reference
        references[name] = reference
        if closed is not None:
            with transaction(engine) as session:
                found = repositories.concern_by_reference(session, reference)
                assert found is not None
                concern = repositories.lock_concern(session, id_of(found))
                assert concern is not None
                close_concern(
                    session=session,
                    concern=concern,
                    by=Actor(kind="staff", channel="web"),
                    reason="Resolved",
                    now=_at(closed),
                    policy=policy(),
                )
    with transaction(engine) as session:
        old = repositories.concern_by_reference(session, references["old"])
        assert old is not None
        session.add(
            InboundMessage(
                dedupe_key="retention-test",
                received_at=_at("2016-03-02T10:00"),
                mail_from="old.learner@example.nhs.uk",
                size=4,
                sha256="0" * 64,
                raw=b"test",
                concern_id=id_of(old),
            )
        )
        learner_id = old.learner_id
    yield engine, references, {"old_learner_id": learner_id}
    engine.dispose()


def _rows(engine: Engine) -> dict[str, int]:
    with transaction(engine) as session:
        counts = {
            table.__tablename__: session.exec(select(func.count()).select_from(table)).one()
            for table in (Concern, Learner, *TIED)
        }
    return {str(name): int(count) for name, count in counts.items()}


def _tied_to(engine: Engine, reference: str) -> int:
    with transaction(engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        if concern is None:
            return 0
        return sum(
            int(
                session.exec(
                    select(func.count())
                    .select_from(table)
                    .where(col(table.concern_id) == id_of(concern))
                ).one()
            )
            for table in TIED
        )


def test_a_dry_run_lists_and_changes_nothing(
    database: tuple[Engine, dict[str, str], dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine, references, _ = database
    before = _rows(engine)
    assert cli.main(["retention", "--dry-run", "--now", NOW]) == 0
    out = capsys.readouterr().out
    assert f"{references['old']}  closed 2017-01-10" in out
    assert f"{references['old_anonymous']}  closed 2017-02-10" in out
    assert references["newer"] not in out and references["open"] not in out
    assert "nothing removed" in out
    assert _rows(engine) == before


def test_old_closed_concerns_go_with_their_rows_and_the_rest_stay(
    database: tuple[Engine, dict[str, str], dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine, references, ids = database
    assert _tied_to(engine, references["old"]) > 0
    kept_before = {name: _tied_to(engine, references[name]) for name in ("newer", "open")}

    assert cli.main(["retention", "--now", NOW]) == 0
    out = capsys.readouterr().out
    assert "Removed 2 concern(s)." in out

    with transaction(engine) as session:
        left = set(session.exec(select(Concern.reference)).all())
        assert left == {references["newer"], references["open"]}
        assert session.get(Learner, ids["old_learner_id"]) is None
        # The learner of the kept concerns is still there.
        kept = repositories.concern_by_reference(session, references["open"])
        assert kept is not None and kept.learner_id is not None
        assert session.get(Learner, kept.learner_id) is not None
        records = session.exec(
            select(AccessRecord).where(AccessRecord.kind == "retention_removed")
        ).all()
        assert {record.reference for record in records} == {
            references["old"],
            references["old_anonymous"],
        }
        assert all(r.staff_id is None and r.channel == "cli" for r in records)
        # Nothing tied to a removed concern is left behind.
        for table in TIED:
            orphans = session.exec(
                select(func.count())
                .select_from(table)
                .where(
                    col(table.concern_id).is_not(None),
                    col(table.concern_id).not_in(select(Concern.id)),
                )
            ).one()
            assert orphans == 0, table.__tablename__
        # Retention named each concern to the events guard only inside its own transaction.
        assert session.exec(select(func.count()).select_from(Removal)).one() == 0
    assert {name: _tied_to(engine, references[name]) for name in ("newer", "open")} == kept_before

    # The audit trail of what is kept is append-only again.
    with pytest.raises(DBAPIError, match="append-only"), transaction(engine) as session:
        session.execute(delete(Event))

    # A second run finds nothing more to remove.
    assert cli.main(["retention", "--now", NOW]) == 0
    assert "Removed 0 concern(s)." in capsys.readouterr().out


def _event_kinds(engine: Engine, reference: str) -> list[str]:
    with transaction(engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None
        return list(
            session.exec(
                select(Event.kind).where(Event.concern_id == id_of(concern)).order_by(col(Event.id))
            ).all()
        )


def _concern_id(engine: Engine, reference: str) -> int:
    with transaction(engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None
        return id_of(concern)


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM events WHERE concern_id = :concern_id",
        "UPDATE events SET kind = 'forged' WHERE concern_id = :concern_id",
    ],
)
def test_outside_retention_the_audit_trail_cannot_be_rewritten(
    database: tuple[Engine, dict[str, str], dict[str, Any]], statement: str
) -> None:
    """Even an expired concern's events stay put unless retention names the concern."""
    engine, references, _ = database
    concern_id = _concern_id(engine, references["old"])
    before = _event_kinds(engine, references["old"])
    assert before
    with pytest.raises(DBAPIError, match="append-only"), transaction(engine) as session:
        session.execute(text(statement), {"concern_id": concern_id})
    assert _event_kinds(engine, references["old"]) == before


def test_a_removal_lets_through_only_the_delete_of_that_concerns_events(
    database: tuple[Engine, dict[str, str], dict[str, Any]],
) -> None:
    engine, references, _ = database
    named, other = _concern_id(engine, references["old"]), _concern_id(engine, references["newer"])
    kept = {name: _event_kinds(engine, references[name]) for name in ("old", "newer")}
    refused = (
        # Another concern's events.
        delete(Event).where(col(Event.concern_id) == other),
        # Every event, the named concern's among them.
        delete(Event),
        # An update, even of the named concern's events.
        update(Event).where(col(Event.concern_id) == named).values(kind="forged"),
    )
    for statement in refused:
        with pytest.raises(DBAPIError, match="append-only"), transaction(engine) as session:
            session.execute(insert(Removal).values(concern_id=named))
            session.execute(statement)
    # A concern still open is never removed, even when named.
    still_open = _concern_id(engine, references["open"])
    open_kinds = _event_kinds(engine, references["open"])
    with pytest.raises(DBAPIError, match="append-only"), transaction(engine) as session:
        session.execute(insert(Removal).values(concern_id=still_open))
        session.execute(delete(Event).where(col(Event.concern_id) == still_open))
    assert _event_kinds(engine, references["open"]) == open_kinds
    assert {name: _event_kinds(engine, references[name]) for name in kept} == kept
    with transaction(engine) as session:
        assert session.exec(select(func.count()).select_from(Removal)).one() == 0

    # The delete the guard is there to let through (retention's own, as remove_concern does it).
    with transaction(engine) as session:
        session.execute(insert(Removal).values(concern_id=named))
        session.execute(delete(Event).where(col(Event.concern_id) == named))
        session.execute(delete(Removal).where(col(Removal.concern_id) == named))
    assert _event_kinds(engine, references["old"]) == []
    assert _event_kinds(engine, references["newer"]) == kept["newer"]


def test_a_bad_now_is_bad_input(
    database: tuple[Engine, dict[str, str], dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["retention", "--now", "last tuesday"]) == 2
    assert "--now" in capsys.readouterr().err


def test_the_removals_guard_migrates_down_to_the_plain_guard_and_back(engine: Engine) -> None:
    """0007 down: no `removals`, and the 0001 guard refuses every delete; up again: as before."""
    config = migrate.alembic_config(engine)
    # Raised on the current schema (the code writes today's columns), then taken down.
    load_example_directory(engine)
    reference = submit_concern(
        engine=engine,
        concern=parse_submission(concern_input(example_placement(engine))),
        channel=Channel.WEB,
        now=_at("2026-11-23T10:00"),
        policy=policy(),
    ).reference
    concern_id = _concern_id(engine, reference)
    command.downgrade(config, "0006")
    assert "removals" not in inspect(engine).get_table_names()
    with pytest.raises(DBAPIError, match="append-only"), transaction(engine) as session:
        session.execute(delete(Event).where(col(Event.concern_id) == concern_id))

    command.upgrade(config, "head")
    assert migrate.is_current(engine)
    with transaction(engine) as session:
        # Closed, as retention removes only closed concerns.
        session.execute(
            update(Concern).where(col(Concern.id) == concern_id).values(status="closed")
        )
        session.execute(insert(Removal).values(concern_id=concern_id))
        session.execute(delete(Event).where(col(Event.concern_id) == concern_id))
        session.execute(delete(Removal).where(col(Removal.concern_id) == concern_id))
    assert _event_kinds(engine, reference) == []


def _mail(
    engine: Engine,
    key: str,
    *,
    received: str,
    status: str,
    concern: str | None = None,
    dealt_with: str | None = None,
) -> int:
    with transaction(engine) as session:
        found = repositories.concern_by_reference(session, concern) if concern else None
        row = InboundMessage(
            dedupe_key=f"retention-mail-{key}",
            received_at=_at(received),
            mail_from="someone@example.org",
            size=4,
            sha256="1" * 64,
            raw=b"mail",
            status=status,
            concern_id=id_of(found) if found is not None else None,
            processed_at=_at(received),
            dealt_with_by="dean@example.nhs.uk" if dealt_with else None,
            dealt_with_at=_at(dealt_with) if dealt_with else None,
        )
        session.add(row)
        session.flush()
        return id_of(row)


def _sent(engine: Engine, key: str, *, sent: str | None, status: str = "sent") -> int:
    """A digest-like message about no one concern, sent (or not yet) at `sent`."""
    with transaction(engine) as session:
        row = OutboxMessage(
            idempotency_key=f"retention-digest-{key}",
            channel="email",
            kind="digest_weekly",
            recipient_role="dean",
            recipient_address="dean@example.nhs.uk",
            subject="Weekly digest",
            body_text="Summary: quotes a concern",
            created_at=_at(sent or "2016-01-01T07:00"),
            send_after=_at(sent or "2016-01-01T07:00"),
            status=status,
            sent_at=_at(sent) if sent and status == "sent" else None,
        )
        session.add(row)
        session.flush()
        return id_of(row)


def _ids(engine: Engine, table: type[InboundMessage | OutboxMessage]) -> set[int]:
    with transaction(engine) as session:
        return {id_of(row) for row in session.exec(select(table)).all()}


def _records(engine: Engine, kind: str) -> list[dict[str, Any]]:
    with transaction(engine) as session:
        rows = session.exec(select(AccessRecord).where(AccessRecord.kind == kind)).all()
        assert all(row.staff_id is None and row.channel == "cli" for row in rows)
        return [dict(row.detail or {}) for row in rows]


def test_old_mail_and_digests_tied_to_no_concern_go_once_finished_with(
    database: tuple[Engine, dict[str, str], dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine, references, _ = database
    gone_mail = {
        _mail(engine, "bounce", received="2017-05-01T09:00", status="ignored"),
        _mail(
            engine,
            "dealt-with",
            received="2016-01-01T09:00",
            status="dealt_with",
            dealt_with="2018-01-01T09:00",
        ),
    }
    kept_mail = {
        # Still waiting for staff, or for processing, however old.
        _mail(engine, "kept-aside", received="2016-01-01T09:00", status="quarantined"),
        _mail(engine, "unprocessed", received="2016-01-01T09:00", status="received"),
        # Too recent.
        _mail(engine, "recent", received="2024-05-01T09:00", status="ignored"),
        # Old, but dealt with this year: it may yet be put back.
        _mail(
            engine,
            "marked-lately",
            received="2016-01-01T09:00",
            status="dealt_with",
            dealt_with="2026-11-20T09:00",
        ),
        # Tied to a concern still kept: it goes with that concern, not before.
        _mail(
            engine,
            "tied",
            received="2016-01-01T09:00",
            status="processed",
            concern=references["open"],
        ),
    }
    gone_sent = {_sent(engine, "old", sent="2017-06-05T07:00")}
    kept_sent = {
        _sent(engine, "recent", sent="2025-06-02T07:00"),
        _sent(engine, "waiting", sent=None, status="pending"),
    }
    mail, sent = _ids(engine, InboundMessage), _ids(engine, OutboxMessage)

    assert cli.main(["retention", "--dry-run", "--now", NOW]) == 0
    assert "2 email(s) received and 1 message(s) sent, tied to no concern" in (
        capsys.readouterr().out
    )
    assert (_ids(engine, InboundMessage), _ids(engine, OutboxMessage)) == (mail, sent)

    assert cli.main(["retention", "--now", NOW]) == 0
    out = capsys.readouterr().out
    assert "Removed 2 email(s) received and 1 message(s) sent, tied to no concern." in out
    mail_left, sent_left = _ids(engine, InboundMessage), _ids(engine, OutboxMessage)
    assert not gone_mail & mail_left and kept_mail <= mail_left
    assert not gone_sent & sent_left and kept_sent <= sent_left
    (record,) = _records(engine, "retention_removed_mail")
    assert record["rows"] == 2 and record["finished_before"].startswith("2018-11-23")
    assert [record["rows"] for record in _records(engine, "retention_removed_messages")] == [1]

    assert cli.main(["retention", "--now", NOW]) == 0
    assert "Removed 0 email(s) received and 0 message(s) sent" in capsys.readouterr().out


@pytest.mark.parametrize("count", [4, 5])
def test_old_mail_goes_in_batches_each_recorded(
    database: tuple[Engine, dict[str, str], dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    count: int,
) -> None:
    engine, _, _ = database
    monkeypatch.setattr(retention, "UNATTACHED_BATCH", 2)
    for number in range(count):
        _mail(engine, f"old-{number}", received="2017-05-01T09:00", status="ignored")
    now = datetime.fromisoformat(NOW)
    assert retention.remove_unattached(engine, "mail", now=now, years=8) == count
    with transaction(engine) as session:
        assert retention.count_unattached(session, "mail", now=now, years=8) == 0
    batches = [record["rows"] for record in _records(engine, "retention_removed_mail")]
    assert batches == ([2, 2, 1] if count == 5 else [2, 2])
