"""The sweep on a real database: each step once, in order, up the ladder; safe when raced."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import select

from escalation.sweep import sweep
from intake.service import submit_concern
from intake.submission import Channel, parse_submission
from storage import repositories
from storage.db import transaction
from storage.directory import example_directory_path, load_directory_file
from storage.tables import Concern, Escalation, OutboxMessage
from tests.integration.helpers import (
    LONDON,
    MONDAY_MORNING,
    concern_input,
    example_placement,
    load_example_directory,
    policy,
)


@pytest.fixture
def db(engine: Engine) -> Engine:
    load_example_directory(engine)
    return engine


def raise_medium_concern(engine: Engine) -> str:
    raw = concern_input(example_placement(engine))
    return submit_concern(
        engine=engine,
        concern=parse_submission(raw),
        channel=Channel.CLI,
        now=MONDAY_MORNING,
        policy=policy(),
    ).reference


def state(engine: Engine, reference: str) -> Concern:
    with transaction(engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None
        return concern


def event_kinds(engine: Engine, reference: str) -> list[str]:
    with transaction(engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None
        return [e.kind for e in repositories.events_of(session, concern.id or 0)]


def outbox_count(engine: Engine) -> int:
    with transaction(engine) as session:
        return int(session.exec(select(func.count()).select_from(OutboxMessage)).one())


def test_a_missed_acknowledgement_at_a_level_with_no_next_contact_says_nobody_else_was_told(
    db: Engine,
) -> None:
    """A concern whose placement was not given is with the quality team's mailbox alone: its
    reminder must not say that the next contact at the level has been told."""
    raw = concern_input({"organisation": "A hospice not in the directory", "department": "Ward 2"})
    reference = submit_concern(
        engine=db,
        concern=parse_submission(raw),
        channel=Channel.CLI,
        now=MONDAY_MORNING,
        policy=policy(),
    ).reference
    ack_due = state(db, reference).ack_due_at
    assert "ack_missed" in [s.kind for s in sweep(engine=db, now=ack_due, policy=policy()).applied]
    kinds = Counter(m.kind for m in _messages(db, reference))
    assert kinds["ack_missed_secondary"] == 0
    missed = [m for m in _messages(db, reference) if m.kind == "ack_missed"]
    assert missed and not any("next contact" in m.body_text for m in missed)


def test_a_medium_concern_climbs_the_ladder_one_level_at_a_time(db: Engine) -> None:
    reference = raise_medium_concern(db)
    rules = policy()

    # Before anything is due, the sweep does nothing.
    assert sweep(engine=db, now=MONDAY_MORNING + timedelta(minutes=5), policy=rules).applied == []

    # Half of the 2-day acknowledgement window: a reminder, once.
    first_reminder = state(db, reference).ack_reminder_at
    assert [s.kind for s in sweep(engine=db, now=first_reminder, policy=rules).applied] == [
        "ack_reminder"
    ]
    assert sweep(engine=db, now=first_reminder, policy=rules).applied == []

    ack_due = state(db, reference).ack_due_at
    assert [s.kind for s in sweep(engine=db, now=ack_due, policy=rules).applied] == ["ack_missed"]
    kinds = Counter(m.kind for m in _messages(db, reference))
    assert kinds["ack_missed_secondary"] == 1, "the clinical tutor is told"
    missed = [m for m in _messages(db, reference) if m.kind == "ack_missed"]
    assert missed and all("next contact at this level has been told" in m.body_text for m in missed)

    for level in (1, 2):
        concern = state(db, reference)
        assert concern.pathway == level
        applied = sweep(engine=db, now=concern.feedback_due_at, policy=rules).applied
        assert [(s.kind, s.pathway, s.to_pathway) for s in applied] == [
            ("escalate", level, level + 1)
        ]
        assert sweep(engine=db, now=concern.feedback_due_at, policy=rules).applied == []
        # The new level's clock starts at the escalation.
        assert state(db, reference).level_reached_at == concern.feedback_due_at

    at_dean = state(db, reference)
    assert at_dean.pathway == 3
    applied = sweep(engine=db, now=at_dean.feedback_due_at, policy=rules).applied
    assert [s.kind for s in applied] == ["overdue_at_dean"]
    assert state(db, reference).overdue_at_dean_at == at_dean.feedback_due_at

    later = at_dean.feedback_due_at + timedelta(days=60)
    assert sweep(engine=db, now=later, policy=rules).applied == []
    assert state(db, reference).next_due_at is None

    kinds_in_order = [
        k for k in event_kinds(db, reference) if k in {"escalated", "overdue_at_dean"}
    ]
    assert kinds_in_order == ["escalated", "escalated", "overdue_at_dean"]
    with transaction(db) as session:
        moves = session.exec(select(Escalation.from_pathway, Escalation.to_pathway)).all()
    assert sorted(moves) == [(1, 2), (2, 3)]
    told = Counter((m.kind, m.recipient_role) for m in _messages(db, reference))
    assert told[("escalated_in", "foundation_school")] == 1
    assert told[("escalated_in", "dean")] == 1
    assert told[("learner_escalated", "learner")] == 2
    messages = _messages(db, reference)
    learners = [m.body_text or "" for m in messages if m.kind == "learner_escalated"]
    assert "Why: You were not given feedback at pathway 1 by its deadline" in learners[0]
    assert all("to the learner" not in text for text in learners)
    assert told[("overdue_at_dean", "quality_team")] == 1


def test_after_downtime_the_sweep_catches_up_with_one_step_not_a_burst(db: Engine) -> None:
    reference = raise_medium_concern(db)
    month_later = MONDAY_MORNING + timedelta(days=30)
    applied = sweep(engine=db, now=month_later, policy=policy()).applied
    assert [(s.kind, s.to_pathway) for s in applied] == [("escalate", 2)]
    concern = state(db, reference)
    assert concern.pathway == 2
    assert concern.feedback_due_at > month_later, "the new level's deadlines run from now"


def test_nothing_routine_is_queued_for_outside_working_hours(db: Engine) -> None:
    reference = raise_medium_concern(db)
    saturday_night = datetime(2026, 12, 12, 23, 0, tzinfo=LONDON)
    sweep(engine=db, now=saturday_night, policy=policy())
    swept = [m for m in _messages(db, reference) if m.created_at == saturday_night]
    # The escalation's messages, the learner's included: a passed deadline writes to nobody at
    # night or at a weekend.
    assert {m.kind for m in swept} >= {"escalated_in", "escalated_out", "learner_escalated"}
    for message in swept:
        local = message.send_after.astimezone(LONDON)
        assert local.weekday() < 5 and 9 <= local.hour < 17, message.kind


def test_a_concern_closes_after_the_learner_stays_silent_after_feedback(db: Engine) -> None:
    reference = raise_medium_concern(db)
    feedback_at = MONDAY_MORNING + timedelta(days=2)
    with transaction(db) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None
        concern.feedback_at = feedback_at
        concern.close_after = feedback_at + timedelta(days=14)
        from escalation.ladder import refresh_next_due

        refresh_next_due(concern)
    applied = sweep(engine=db, now=feedback_at + timedelta(days=14), policy=policy()).applied
    assert [s.kind for s in applied] == ["close_after_silence"]
    closed = state(db, reference)
    assert closed.status == "closed" and closed.closed_reason
    assert sweep(engine=db, now=feedback_at + timedelta(days=40), policy=policy()).applied == []


def test_racing_sweeps_apply_each_step_once(db: Engine) -> None:
    references = [raise_medium_concern(db) for _ in range(6)]
    due = state(db, references[0]).feedback_due_at
    before = outbox_count(db)
    reports = []

    def run() -> None:
        reports.append(sweep(engine=db, now=due, policy=policy()))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    applied = [step for report in reports for step in report.applied]
    assert sorted(s.reference for s in applied) == sorted(references)
    assert all(report.failed == [] for report in reports)
    with transaction(db) as session:
        assert session.exec(select(func.count()).select_from(Escalation)).one() == 6
        keys = session.exec(select(OutboxMessage.idempotency_key)).all()
    assert len(keys) == len(set(keys))
    assert outbox_count(db) > before


def _messages(engine: Engine, reference: str) -> list[OutboxMessage]:
    with transaction(engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None
        return list(repositories.outbox_of(session, concern.id or 0))


def test_a_supervisor_who_left_the_directory_is_replaced_not_written_to(
    db: Engine, tmp_path: Path
) -> None:
    emergency = {"organisation": "vale-general", "department": "emergency"}
    reference = submit_concern(
        engine=db,
        concern=parse_submission(concern_input(emergency)),
        channel=Channel.CLI,
        now=MONDAY_MORNING,
        policy=policy(),
    ).reference
    old = "jordan.sample@vale-general.example.nhs.uk"
    assert any(m.recipient_address == old for m in _messages(db, reference))
    changed = tmp_path / "directory.yaml"
    text = (
        example_directory_path().read_text().replace(old, "jordan.new@vale-general.example.nhs.uk")
    )
    changed.write_text(text)
    with transaction(db) as session:
        load_directory_file(session, changed, now=MONDAY_MORNING)

    reminder_at = state(db, reference).ack_reminder_at
    assert [s.kind for s in sweep(engine=db, now=reminder_at, policy=policy()).applied] == [
        "ack_reminder"
    ]
    reminders = [m for m in _messages(db, reference) if m.kind == "ack_reminder"]
    assert [m.recipient_address for m in reminders] == ["jordan.new@vale-general.example.nhs.uk"]
    assert "contact_replaced" in event_kinds(db, reference)
    # The next step finds the replacement already recorded: no second replacement.
    sweep(engine=db, now=state(db, reference).ack_due_at, policy=policy())
    assert event_kinds(db, reference).count("contact_replaced") == 1
