"""A property of the ladder: whatever people do and however the sweeps fall, a concern's pathway
never goes down, never skips a level, and no message a step owes is lost to a repeated key."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import select

from escalation.actions import (
    ActionRefused,
    Actor,
    acknowledge,
    close_concern,
    escalate_by_hand,
    learner_remains_concerned,
    learner_satisfied,
    override_triage,
    record_feedback,
    redirect,
    reopen_concern,
)
from escalation.ladder import clock_of
from escalation.plan import next_due_at
from escalation.sweep import sweep
from intake.service import submit_concern
from intake.submission import Channel, parse_submission
from storage import migrate, repositories
from storage.db import create_db_engine, transaction
from storage.tables import Escalation, Event, OutboxMessage
from tests.integration.helpers import MONDAY_MORNING, concern_input, load_example_directory, policy

STAFF = Actor(kind="staff", channel="web")
PLACEMENTS = (
    {"organisation": "vale-general", "department": "emergency"},
    {"organisation": "riverside-surgery", "department": "general-practice"},
)
GAPS = (
    timedelta(minutes=30),
    timedelta(hours=5),
    timedelta(days=1),
    timedelta(days=3),
    timedelta(days=8),
    timedelta(days=20),
)


def _primary(session: Any, concern: Any) -> Actor:
    rows = repositories.assignments_of(session, concern.id, pathway=concern.pathway)
    ids = [row.contact_id for row, _ in rows if row.part == "primary"]
    return Actor(kind="contact", channel="email", contact_id=ids[0] if ids else None)


Operation = Callable[[Any, Any, datetime], Any]

OPERATIONS: dict[str, Operation] = {
    "acknowledge": lambda s, c, now: acknowledge(session=s, concern=c, by=_primary(s, c), now=now),
    "feedback": lambda s, c, now: record_feedback(
        session=s, concern=c, by=_primary(s, c), text="Done", now=now, policy=policy()
    ),
    "satisfied": lambda s, c, now: learner_satisfied(session=s, concern=c, channel="web", now=now),
    "remains_concerned": lambda s, c, now: learner_remains_concerned(
        session=s, concern=c, channel="web", now=now, policy=policy()
    ),
    "escalate": lambda s, c, now: escalate_by_hand(
        session=s, concern=c, by=STAFF, reason="By hand", now=now, policy=policy()
    ),
    "close": lambda s, c, now: close_concern(
        session=s, concern=c, by=STAFF, reason="Resolved", now=now, policy=policy()
    ),
    "reopen": lambda s, c, now: reopen_concern(
        session=s, concern=c, by=STAFF, reason="Raised again", now=now, policy=policy()
    ),
    "override_high": lambda s, c, now: override_triage(
        session=s,
        concern=c,
        by=STAFF,
        likelihood=5,
        impact=5,
        reason="R",
        now=now,
        policy=policy(),
    ),
    "override_low": lambda s, c, now: override_triage(
        session=s,
        concern=c,
        by=STAFF,
        likelihood=1,
        impact=2,
        reason="G",
        now=now,
        policy=policy(),
    ),
    "not_mine": lambda s, c, now: redirect(
        session=s, concern=c, by=_primary(s, c), now=now, policy=policy()
    ),
}

steps = st.lists(
    st.tuples(st.sampled_from([*OPERATIONS, "sweep", "sweep"]), st.sampled_from(GAPS)),
    min_size=1,
    max_size=14,
)

_engine: Engine | None = None
_numbers = itertools.count()


@pytest.fixture(scope="module")
def shared_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One database for every example: each example raises concerns of its own in it."""
    engine = create_db_engine(f"sqlite:///{tmp_path_factory.mktemp('ladder') / 'c.db'}")
    migrate.upgrade(engine)
    load_example_directory(engine)
    yield engine
    engine.dispose()


def _state(engine: Engine, reference: str) -> tuple[int, str, int]:
    with transaction(engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None
        # The stored next-due moment always agrees with the pure planner.
        assert concern.next_due_at == next_due_at(clock=clock_of(concern))
        return concern.pathway, concern.status, concern.level_round


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=steps, placement=st.sampled_from(PLACEMENTS), start=st.sampled_from((1, 2)))
def test_the_pathway_never_goes_down_or_skips_and_no_owed_message_is_lost(
    shared_engine: Engine, plan: list[tuple[str, timedelta]], placement: dict[str, str], start: int
) -> None:
    engine = shared_engine
    # Different days per example, so concerns of earlier examples are never due in this one's
    # sweeps... and if they are, they are swept too, which the checks below ignore.
    now = MONDAY_MORNING + timedelta(days=400 * next(_numbers))
    reference = submit_concern(
        engine=engine,
        concern=parse_submission(concern_input(placement, about_pathway1_contact=start == 2)),
        channel=Channel.CLI,
        now=now,
        policy=policy(),
    ).reference
    pathway, _, round_ = _state(engine, reference)
    assert pathway == start

    for name, gap in plan:
        now += gap
        if name == "sweep":
            sweep(engine=engine, now=now, policy=policy())
        else:
            try:
                with transaction(engine) as session:
                    found = repositories.concern_by_reference(session, reference)
                    assert found is not None
                    concern = repositories.lock_concern(session, found.id or 0)
                    OPERATIONS[name](session, concern, now)
            except ActionRefused:
                pass
        new_pathway, _, new_round = _state(engine, reference)
        assert new_pathway in (pathway, pathway + 1), f"{name}: {pathway} -> {new_pathway}"
        assert new_round in (round_, round_ + 1)
        pathway, round_ = new_pathway, new_round

    with transaction(engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None
        moves = session.exec(select(Escalation).where(Escalation.concern_id == concern.id)).all()
        # One step at a time from where it started to where it is.
        assert sorted((m.from_pathway, m.to_pathway) for m in moves) == [
            (level, level + 1) for level in range(start, concern.pathway)
        ]
        events = session.exec(select(Event).where(Event.concern_id == concern.id)).all()
        assert sum(1 for event in events if event.kind == "escalated") == len(moves)
        messages = session.exec(
            select(OutboxMessage).where(OutboxMessage.concern_id == concern.id)
        ).all()
        keys = [message.idempotency_key for message in messages]
        assert len(keys) == len(set(keys))
        # Every move and every reopening told the learner (the learner has an email address):
        # a key that repeated an earlier one would have silently dropped the message.
        learner_kinds = [m.kind for m in messages if m.recipient_role == "learner"]
        assert learner_kinds.count("learner_escalated") == len(moves)
        reopenings = sum(1 for event in events if event.kind == "reopened")
        assert learner_kinds.count("learner_reopened") == reopenings
        feedbacks = sum(1 for event in events if event.kind == "feedback_given")
        assert learner_kinds.count("learner_feedback") == feedbacks
        closings = sum(1 for event in events if event.kind == "closed" and event.actor != "learner")
        assert learner_kinds.count("learner_closed") == closings
