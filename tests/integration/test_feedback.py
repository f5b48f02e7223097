"""Recording feedback: who may, once per level, and what the learner is told."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from escalation.actions import (
    ActionRefused,
    Actor,
    learner_remains_concerned,
    learner_satisfied,
    record_feedback,
)
from escalation.sweep import sweep
from intake.service import submit_concern
from intake.submission import Channel, parse_submission
from storage import repositories
from storage.db import transaction
from storage.tables import Concern
from tests.integration.helpers import (
    MONDAY_MORNING,
    concern_input,
    example_placement,
    load_example_directory,
    policy,
)

LATER = MONDAY_MORNING + timedelta(days=1)
FEEDBACK = "We have moved teaching to Thursdays & protected it <in rotas>."


@pytest.fixture
def reference(sqlite_engine: Engine) -> str:
    load_example_directory(sqlite_engine)
    return submit_concern(
        engine=sqlite_engine,
        concern=parse_submission(concern_input(example_placement(sqlite_engine))),
        channel=Channel.CLI,
        now=MONDAY_MORNING,
        policy=policy(),
    ).reference


def _locked(session: Session, reference: str) -> Concern:
    concern = repositories.concern_by_reference(session, reference)
    assert concern is not None
    return concern


def _primary(engine: Engine, reference: str) -> int:
    with transaction(engine) as session:
        concern = _locked(session, reference)
        for assignment, contact in repositories.assignments_of(
            session, concern.id or 0, pathway=concern.pathway
        ):
            if assignment.part == "primary":
                return contact.id or 0
    raise AssertionError("no primary contact")


def _feedback(engine: Engine, reference: str, by: Actor, text: str = FEEDBACK) -> None:
    with transaction(engine) as session:
        record_feedback(
            session=session,
            concern=_locked(session, reference),
            by=by,
            text=text,
            now=LATER,
            policy=policy(),
        )


def test_a_current_contact_gives_feedback_once(sqlite_engine: Engine, reference: str) -> None:
    contact = Actor(kind="contact", channel="email", contact_id=_primary(sqlite_engine, reference))
    _feedback(sqlite_engine, reference, contact)

    with transaction(sqlite_engine) as session:
        concern = _locked(session, reference)
        assert concern.feedback_at is not None and concern.acknowledged_at is not None
        assert concern.close_after is not None and concern.close_after > LATER
        events = repositories.events_of(session, concern.id or 0)
        kinds = [event.kind for event in events]
        assert kinds[-2:] == ["acknowledged", "feedback_given"]
        assert events[-1].detail["text"] == FEEDBACK and events[-1].detail["pathway"] == 1
        outbox = repositories.outbox_of(session, concern.id or 0)
        to_learner = [m for m in outbox if m.kind == "learner_feedback"]
        assert len(to_learner) == 1
        body = to_learner[0].body_text
        assert FEEDBACK in body
        assert "status page" in body and "/concerns/status/link/" in body
        assert "&lt;in rotas&gt;" in to_learner[0].body_html

    with pytest.raises(ActionRefused, match="already recorded"):
        _feedback(sqlite_engine, reference, contact)


def test_only_the_levels_contacts_or_staff_may_give_feedback(
    sqlite_engine: Engine, reference: str
) -> None:
    with pytest.raises(ActionRefused, match="only its contacts"):
        _feedback(sqlite_engine, reference, Actor(kind="contact", channel="email", contact_id=-1))
    with pytest.raises(ActionRefused):
        _feedback(sqlite_engine, reference, Actor(kind="learner", channel="web"))
    with pytest.raises(ActionRefused, match="Write the feedback"):
        _feedback(sqlite_engine, reference, Actor(kind="staff", channel="web"), text="  ")
    with transaction(sqlite_engine) as session:
        assert _locked(session, reference).feedback_at is None

    _feedback(sqlite_engine, reference, Actor(kind="staff", channel="web"))
    with transaction(sqlite_engine) as session:
        concern = _locked(session, reference)
        learner_satisfied(session=session, concern=concern, channel="web", now=LATER)
    with pytest.raises(ActionRefused, match="closed"):
        _feedback(sqlite_engine, reference, Actor(kind="staff", channel="web"))


def _at_the_deans_level(engine: Engine) -> str:
    """A concern that starts with the dean (already raised at pathways 1 and 2)."""
    load_example_directory(engine)
    reference = submit_concern(
        engine=engine,
        concern=parse_submission(
            concern_input(example_placement(engine), raised_before="pathway1_and_2")
        ),
        channel=Channel.CLI,
        now=MONDAY_MORNING,
        policy=policy(),
    ).reference
    return reference


def test_remaining_concerned_at_the_deans_level_asks_the_dean_to_look_again(
    engine: Engine,
) -> None:
    """There is no level above the dean: "I remain concerned" starts a new round there (feedback
    owed again, so silence never closes it), and the dean and the learner are told, once."""
    reference = _at_the_deans_level(engine)
    _feedback(engine, reference, Actor(kind="staff", channel="web"))
    answered = LATER + timedelta(hours=2)
    with transaction(engine) as session:
        concern = _locked(session, reference)
        assert concern.pathway == 3 and concern.close_after is not None
        assert not learner_remains_concerned(
            session=session, concern=concern, channel="web", now=answered, policy=policy()
        )
    with transaction(engine) as session:
        concern = _locked(session, reference)
        assert (concern.pathway, concern.level_round, concern.status) == (3, 1, "open")
        assert concern.feedback_at is None and concern.close_after is None
        assert concern.feedback_due_at > answered and concern.ack_due_at > answered
        told = repositories.outbox_of(session, concern.id or 0)
        asked = {(m.kind, m.recipient_role) for m in told if m.kind.endswith("still_concerned")}
        # Again, before the dean's new feedback: refused, and nobody is told twice.
        with pytest.raises(ActionRefused, match="no feedback yet"):
            learner_remains_concerned(
                session=session, concern=concern, channel="web", now=answered, policy=policy()
            )
    # The level's own contacts (the dean), as escalation to it told them, and the learner.
    assert asked == {("still_concerned", "dean"), ("learner_still_concerned", "learner")}
    # Silence never closes it now: a month on, it is open and overdue at the top level.
    sweep(engine=engine, now=answered + timedelta(days=30), policy=policy())
    with transaction(engine) as session:
        concern = _locked(session, reference)
        assert concern.status == "open" and concern.overdue_at_dean_at is not None


def test_a_concern_overdue_at_the_deans_level_stays_marked_through_a_new_round(
    engine: Engine,
) -> None:
    """It heads the dean's reports until it is closed, whatever rounds it goes through."""
    reference = _at_the_deans_level(engine)
    late = MONDAY_MORNING + timedelta(days=40)
    sweep(engine=engine, now=late, policy=policy())
    with transaction(engine) as session:
        concern = _locked(session, reference)
        overdue_since = concern.overdue_at_dean_at
        assert overdue_since is not None
        record_feedback(
            session=session,
            concern=concern,
            by=Actor(kind="staff", channel="web"),
            text=FEEDBACK,
            now=late,
            policy=policy(),
        )
        learner_remains_concerned(
            session=session, concern=concern, channel="web", now=late, policy=policy()
        )
    with transaction(engine) as session:
        concern = _locked(session, reference)
        assert concern.level_round == 1 and concern.feedback_at is None
        assert concern.overdue_at_dean_at == overdue_since
        (event,) = [
            e
            for e in repositories.events_of(session, concern.id or 0)
            if e.kind == "learner_remains_concerned"
        ]
        assert event.detail["new_round"] == 1
