"""`concerns retention`: closed concerns older than the retention period (8 years) go with every
row tied to them; newer closed ones and open ones stay; a dry run only lists."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select

from app import cli
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


@pytest.fixture
def database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Engine, dict[str, str], dict[str, Any]]]:
    path = tmp_path / "concerns.db"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONCERNS_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.delenv("CONCERNS_RETENTION_YEARS", raising=False)
    engine = create_db_engine(f"sqlite:///{path}")
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
    assert {name: _tied_to(engine, references[name]) for name in ("newer", "open")} == kept_before

    # The audit trail of what is kept is append-only again.
    with pytest.raises(IntegrityError, match="append-only"), transaction(engine) as session:
        session.execute(delete(Event))

    # A second run finds nothing more to remove.
    assert cli.main(["retention", "--now", NOW]) == 0
    assert "Removed 0 concern(s)." in capsys.readouterr().out


def test_a_bad_now_is_bad_input(
    database: tuple[Engine, dict[str, str], dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["retention", "--now", "last tuesday"]) == 2
    assert "--now" in capsys.readouterr().err
