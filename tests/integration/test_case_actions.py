"""Case actions by staff and contacts: escalate by hand, close, reopen, override triage, redirect.

Each action is one event in the audit trail and queues what it causes; an action that does not
apply is refused with a reason and changes nothing. Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from escalation.actions import (
    ActionRefused,
    Actor,
    acknowledge,
    add_learner_information,
    close_concern,
    escalate_by_hand,
    learner_remains_concerned,
    learner_satisfied,
    override_triage,
    record_feedback,
    redirect,
    reopen_concern,
)
from escalation.sweep import sweep
from intake.service import submit_concern
from intake.submission import Channel, parse_submission
from storage import repositories
from storage import staff as accounts
from storage.db import transaction
from storage.tables import Concern, Contact, Escalation, Event, OutboxMessage
from tests.integration.helpers import (
    MONDAY_MORNING,
    concern_input,
    load_example_directory,
    policy,
)

EMERGENCY = {"organisation": "vale-general", "department": "emergency"}
STAFF = Actor(kind="staff", channel="web")
LEARNER = Actor(kind="learner", channel="web")
LATER = MONDAY_MORNING + timedelta(hours=2)


@pytest.fixture
def db(engine: Engine) -> Engine:
    load_example_directory(engine)
    return engine


def raise_concern(engine: Engine, **changes: Any) -> str:
    return submit_concern(
        engine=engine,
        concern=parse_submission(concern_input(EMERGENCY, **changes)),
        channel=Channel.CLI,
        now=MONDAY_MORNING,
        policy=policy(),
    ).reference


def act(engine: Engine, reference: str, action: Callable[..., Any], **arguments: Any) -> Any:
    with transaction(engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None
        locked = repositories.lock_concern(session, concern.id or 0)
        return action(session=session, concern=locked, **arguments)


def snapshot(engine: Engine, reference: str) -> dict[str, Any]:
    """Everything an action could change: the row, its trail, its outbox, its contacts."""
    with transaction(engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None
        return {
            "concern": concern.model_dump(),
            "events": [e.kind for e in repositories.events_of(session, concern.id or 0)],
            "outbox": [m.idempotency_key for m in repositories.outbox_of(session, concern.id or 0)],
            "contacts": sorted(
                (a.pathway, a.contact_id, a.part)
                for a, _ in repositories.assignments_of(session, concern.id or 0)
            ),
        }


def refused(engine: Engine, reference: str, action: Callable[..., Any], **arguments: Any) -> str:
    """The refusal's message; asserts that nothing at all changed."""
    before = snapshot(engine, reference)
    with pytest.raises(ActionRefused) as refusal:
        act(engine, reference, action, **arguments)
    assert snapshot(engine, reference) == before
    return str(refusal.value)


def new_events(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return after["events"][len(before["events"]) :]


def new_messages(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [key for key in after["outbox"] if key not in before["outbox"]]


def contact_id(engine: Engine, email: str, role: str = "supervisor") -> int:
    with transaction(engine) as session:
        contact = session.exec(
            select(Contact).where(Contact.email == email, Contact.role == role)
        ).one()
        return contact.id or 0


def holders(engine: Engine, reference: str, part: str) -> list[int]:
    with transaction(engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None
        return [
            a.contact_id
            for a, _ in repositories.assignments_of(
                session, concern.id or 0, pathway=concern.pathway
            )
            if a.part == part
        ]


def primary(engine: Engine, reference: str) -> Actor:
    return Actor(
        kind="contact", channel="email", contact_id=holders(engine, reference, "primary")[0]
    )


def give_feedback(engine: Engine, reference: str, at: Any = LATER) -> None:
    act(
        engine,
        reference,
        record_feedback,
        by=primary(engine, reference),
        text="We have protected teaching on Thursdays.",
        now=at,
        policy=policy(),
    )


# --- escalate by hand --------------------------------------------------------------------------


def test_staff_escalate_by_hand_with_a_reason(db: Engine) -> None:
    reference = raise_concern(db)
    before = snapshot(db, reference)
    act(
        db,
        reference,
        escalate_by_hand,
        by=STAFF,
        reason="The trust has not responded to three concerns this month",
        now=LATER,
        policy=policy(),
    )
    after = snapshot(db, reference)
    assert after["concern"]["pathway"] == 2
    assert new_events(before, after) == ["escalated", "contacts_told"]
    kinds = {key.split(":")[1] for key in new_messages(before, after)}
    assert kinds == {"escalated_in", "escalated_out", "learner_escalated"}
    with transaction(db) as session:
        event = session.exec(select(Event).where(Event.kind == "escalated")).one()
        assert event.actor == "staff" and event.channel == "web"
        assert "three concerns" in event.detail["reason"]
        told = {m.kind: m.body_text for m in session.exec(select(OutboxMessage)).all()}
    # The new level reads staff's reason; the learner is not shown staff's notes.
    assert "three concerns" in told["escalated_in"]
    assert "three concerns" not in told["learner_escalated"]
    assert "The people handling your concern moved it" in told["learner_escalated"]


def test_a_current_contact_may_escalate_but_an_earlier_level_may_not(db: Engine) -> None:
    reference = raise_concern(db)
    first_level = primary(db, reference)
    act(
        db,
        reference,
        escalate_by_hand,
        by=first_level,
        reason="This needs the school",
        now=LATER,
        policy=policy(),
    )
    message = refused(
        db,
        reference,
        escalate_by_hand,
        by=first_level,
        reason="Again",
        now=LATER,
        policy=policy(),
    )
    assert "pathway 2" in message


@pytest.mark.parametrize(
    ("who", "reason", "expected"),
    [
        (LEARNER, "please", "Only the people handling"),
        (STAFF, "   ", "Say why"),
        (STAFF, "x" * 2_001, "2,000 characters"),
    ],
)
def test_escalate_by_hand_refusals(db: Engine, who: Actor, reason: str, expected: str) -> None:
    reference = raise_concern(db)
    message = refused(
        db, reference, escalate_by_hand, by=who, reason=reason, now=LATER, policy=policy()
    )
    assert expected in message


def test_no_escalation_above_the_dean(db: Engine) -> None:
    reference = raise_concern(db, raised_before="pathway1_and_2")
    assert snapshot(db, reference)["concern"]["pathway"] == 3
    message = refused(
        db, reference, escalate_by_hand, by=STAFF, reason="Higher", now=LATER, policy=policy()
    )
    assert "no higher level" in message


# --- close and reopen ----------------------------------------------------------------------------


def test_staff_close_with_a_reason_and_the_learner_is_told(db: Engine) -> None:
    reference = raise_concern(db)
    before = snapshot(db, reference)
    act(
        db,
        reference,
        close_concern,
        by=STAFF,
        reason="Duplicate of an earlier concern",
        now=LATER,
        policy=policy(),
    )
    after = snapshot(db, reference)
    assert after["concern"]["status"] == "closed"
    assert after["concern"]["closed_reason"] == "Duplicate of an earlier concern"
    assert after["concern"]["next_due_at"] is None
    assert new_events(before, after) == ["closed"]
    assert [k.split(":")[1] for k in new_messages(before, after)] == ["learner_closed"]
    with transaction(db) as session:
        (closing,) = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == "learner_closed")
        ).all()
    assert "Duplicate" not in closing.body_text
    assert "The people handling your concern closed it" in closing.body_text
    # A closed concern takes no sweep step, however late it gets.
    assert sweep(engine=db, now=LATER + timedelta(days=60), policy=policy()).applied == []


def test_close_refusals(db: Engine) -> None:
    reference = raise_concern(db)
    assert "Only staff" in refused(
        db,
        reference,
        close_concern,
        by=primary(db, reference),
        reason="x",
        now=LATER,
        policy=policy(),
    )
    assert "Say why" in refused(
        db, reference, close_concern, by=STAFF, reason="", now=LATER, policy=policy()
    )
    act(db, reference, close_concern, by=STAFF, reason="Resolved", now=LATER, policy=policy())
    assert "already closed" in refused(
        db, reference, close_concern, by=STAFF, reason="Again", now=LATER, policy=policy()
    )


def test_reopen_restarts_the_level_and_its_messages_are_queued_afresh(db: Engine) -> None:
    reference = raise_concern(db)
    give_feedback(db, reference)
    act(db, reference, learner_satisfied, channel="web", now=LATER + timedelta(hours=1))
    before = snapshot(db, reference)
    reopened_at = MONDAY_MORNING + timedelta(days=3)
    act(
        db,
        reference,
        reopen_concern,
        by=STAFF,
        reason="The learner wrote again: teaching stopped",
        now=reopened_at,
        policy=policy(),
    )
    after = snapshot(db, reference)
    concern = after["concern"]
    assert concern["status"] == "open" and concern["closed_at"] is None
    assert concern["level_round"] == 1 and concern["pathway"] == 1
    assert concern["feedback_at"] is None and concern["acknowledged_at"] is None
    assert concern["feedback_due_at"] > reopened_at and concern["next_due_at"] is not None
    assert new_events(before, after) == ["reopened"]
    assert sorted(k.split(":")[1:3] for k in new_messages(before, after)) == [
        ["learner_reopened", "p1r1"],
        ["reopened", "p1r1"],
    ]

    # The new round owes its steps again: feedback this round reaches the learner (a new key).
    give_feedback(db, reference, at=reopened_at + timedelta(hours=1))
    keys = snapshot(db, reference)["outbox"]
    assert f"{reference}:learner_feedback:p1:learner" in keys
    assert f"{reference}:learner_feedback:p1r1:learner" in keys
    assert len(keys) == len(set(keys))


def test_reopen_refusals(db: Engine) -> None:
    reference = raise_concern(db)
    assert "nothing to reopen" in refused(
        db, reference, reopen_concern, by=STAFF, reason="x", now=LATER, policy=policy()
    )
    act(db, reference, close_concern, by=STAFF, reason="Resolved", now=LATER, policy=policy())
    assert "Only staff" in refused(
        db, reference, reopen_concern, by=LEARNER, reason="x", now=LATER, policy=policy()
    )
    assert "Say why" in refused(
        db, reference, reopen_concern, by=STAFF, reason=" ", now=LATER, policy=policy()
    )


def test_feedback_on_a_closed_concern_is_refused(db: Engine) -> None:
    reference = raise_concern(db)
    contact = primary(db, reference)
    act(db, reference, close_concern, by=STAFF, reason="Resolved", now=LATER, policy=policy())
    message = refused(
        db, reference, record_feedback, by=contact, text="Late", now=LATER, policy=policy()
    )
    assert "closed" in message
    assert "closed" in refused(db, reference, acknowledge, by=contact, now=LATER)


# --- triage override ---------------------------------------------------------------------------


def test_override_keeps_the_automatic_rating_and_a_high_rating_alerts_the_dean(db: Engine) -> None:
    reference = raise_concern(db)
    before = snapshot(db, reference)
    auto = (before["concern"]["auto_likelihood"], before["concern"]["auto_impact"])
    assert before["concern"]["risk_level"] == "medium"
    act(
        db,
        reference,
        override_triage,
        by=STAFF,
        likelihood=5,
        impact=5,
        reason="Second report this week of unsupervised night shifts",
        now=LATER,
        policy=policy(),
    )
    after = snapshot(db, reference)
    concern = after["concern"]
    assert (concern["likelihood"], concern["impact"]) == (5, 5)
    assert concern["rating"] == "R" and concern["risk_level"] == "high"
    assert (concern["auto_likelihood"], concern["auto_impact"]) == auto
    assert concern["override_reason"].startswith("Second report")
    assert concern["interventions"][0].startswith("Urgent risk review")
    # High risk has shorter deadlines, counted from when the concern reached its level.
    assert concern["feedback_due_at"] < before["concern"]["feedback_due_at"]
    assert new_events(before, after) == ["triage_overridden", "high_risk_alert"]
    # The dean and quality team are alerted; the contacts acting on it are given the sooner
    # deadlines the rating brings.
    kinds = {k.split(":")[1] for k in new_messages(before, after)}
    assert kinds == {"high_risk_alert", "deadlines_changed"}
    with transaction(db) as session:
        (notice,) = session.exec(
            select(OutboxMessage).where(
                OutboxMessage.kind == "deadlines_changed", OutboxMessage.channel == "email"
            )
        ).all()
        # Staff rated it, not the learner: the notice says so.
        assert "after the region's staff reviewed its rating" in notice.body_text
        assert "what the learner told us" not in notice.body_text
        event = session.exec(select(Event).where(Event.kind == "triage_overridden")).one()
        assert event.detail["was"]["level"] == "medium"
        assert event.detail["automatic"] == {"likelihood": auto[0], "impact": auto[1]}


def test_whoever_sets_the_rating_is_not_told_the_deadlines_it_brings(db: Engine) -> None:
    """A dean rating a concern at pathway 3, where they are its contact, knows what they did:
    the sooner deadlines go to the level's other acting contacts, not back to them."""
    reference = raise_concern(db)
    contact = primary(db, reference)
    with transaction(db) as session:
        found = session.get(Contact, contact.contact_id)
        assert found is not None
        member = accounts.save_staff(
            session,
            email=found.email.upper(),
            role="dean",
            scope=None,
            follows_directory=False,
            now=MONDAY_MORNING,
        )
        by = Actor(kind="staff", channel="web", staff_id=member.id)
    before = snapshot(db, reference)
    act(
        db,
        reference,
        override_triage,
        by=by,
        likelihood=5,
        impact=5,
        reason="Second report this week of unsupervised night shifts",
        now=LATER,
        policy=policy(),
    )
    after = snapshot(db, reference)
    assert after["concern"]["feedback_due_at"] < before["concern"]["feedback_due_at"]
    kinds = {k.split(":")[1] for k in new_messages(before, after)}
    assert kinds == {"high_risk_alert"}


@pytest.mark.parametrize(
    ("who", "likelihood", "impact", "reason", "expected"),
    [
        (Actor(kind="contact", channel="web", contact_id=1), 5, 5, "r", "Only staff"),
        (STAFF, 6, 1, "r", "from 1 to 5"),
        (STAFF, 0, 3, "r", "from 1 to 5"),
        (STAFF, 4, 4, "", "Say why"),
    ],
)
def test_override_refusals(
    db: Engine, who: Actor, likelihood: int, impact: int, reason: str, expected: str
) -> None:
    reference = raise_concern(db)
    message = refused(
        db,
        reference,
        override_triage,
        by=who,
        likelihood=likelihood,
        impact=impact,
        reason=reason,
        now=LATER,
        policy=policy(),
    )
    assert expected in message


def test_override_to_the_current_rating_is_refused(db: Engine) -> None:
    reference = raise_concern(db)
    current = snapshot(db, reference)["concern"]
    message = refused(
        db,
        reference,
        override_triage,
        by=STAFF,
        likelihood=current["likelihood"],
        impact=current["impact"],
        reason="Same",
        now=LATER,
        policy=policy(),
    )
    assert "already rated" in message


# --- redirect ("not mine") ---------------------------------------------------------------------


def test_not_mine_passes_the_concern_to_the_other_supervisor(db: Engine) -> None:
    reference = raise_concern(db)
    lead = contact_id(db, "jordan.sample@vale-general.example.nhs.uk")
    other = contact_id(db, "taylor.specimen@vale-general.example.nhs.uk")
    assert holders(db, reference, "primary") == [lead]
    deadlines = snapshot(db, reference)["concern"]["feedback_due_at"]
    before = snapshot(db, reference)

    went_to = act(
        db,
        reference,
        redirect,
        by=Actor(kind="contact", channel="slack", contact_id=lead),
        now=LATER,
        policy=policy(),
    )

    after = snapshot(db, reference)
    assert went_to == other
    assert holders(db, reference, "primary") == [other]
    assert holders(db, reference, "redirected") == [lead]
    assert new_events(before, after) == ["redirected"]
    assert new_messages(before, after) == [f"{reference}:redirected_in:p1:contact:{other}"]
    assert after["concern"]["feedback_due_at"] == deadlines
    # The one who said "not mine" can no longer act; the new primary can.
    lead_actor = Actor(kind="contact", channel="email", contact_id=lead)
    assert "only its contacts" in refused(db, reference, acknowledge, by=lead_actor, now=LATER)
    act(
        db,
        reference,
        acknowledge,
        by=Actor(kind="contact", channel="web", contact_id=other),
        now=LATER,
    )


def test_reminders_go_to_whoever_has_it_now(db: Engine) -> None:
    reference = raise_concern(db)
    lead = contact_id(db, "jordan.sample@vale-general.example.nhs.uk")
    other = contact_id(db, "taylor.specimen@vale-general.example.nhs.uk")
    act(
        db,
        reference,
        redirect,
        by=Actor(kind="contact", channel="web", contact_id=lead),
        now=LATER,
        policy=policy(),
    )
    reminder_at = snapshot(db, reference)["concern"]["ack_reminder_at"]
    sweep(engine=db, now=reminder_at, policy=policy())
    with transaction(db) as session:
        reminders = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == "ack_reminder")
        ).all()
        assert [m.recipient_contact_id for m in reminders] == [other]


def test_a_chain_of_not_mine_never_returns_to_someone_who_declined(db: Engine) -> None:
    reference = raise_concern(db)
    lead = contact_id(db, "jordan.sample@vale-general.example.nhs.uk")
    second = act(
        db,
        reference,
        redirect,
        by=Actor(kind="contact", channel="web", contact_id=lead),
        now=LATER,
        policy=policy(),
    )
    third = act(
        db,
        reference,
        redirect,
        by=Actor(kind="contact", channel="web", contact_id=second),
        now=LATER,
        policy=policy(),
    )
    assert third not in (lead, second)
    with transaction(db) as session:
        role = session.get(Contact, third)
        assert role is not None and role.role in ("clinical_tutor", "speak_up_guardian")
    assert sorted(holders(db, reference, "redirected")) == sorted([lead, second])


def test_staff_redirect_to_a_named_contact_and_its_limits(db: Engine) -> None:
    reference = raise_concern(db)
    other = contact_id(db, "taylor.specimen@vale-general.example.nhs.uk")
    act(
        db,
        reference,
        redirect,
        by=STAFF,
        reason="Taylor supervises this learner",
        to_contact_id=other,
        now=LATER,
        policy=policy(),
    )
    assert holders(db, reference, "primary") == [other]
    assert "already has" in refused(
        db,
        reference,
        redirect,
        by=STAFF,
        reason="again",
        to_contact_id=other,
        now=LATER,
        policy=policy(),
    )
    assert "Say why" in refused(
        db,
        reference,
        redirect,
        by=STAFF,
        now=LATER,
        policy=policy(),
    )
    assert "not in the directory" in refused(
        db,
        reference,
        redirect,
        by=STAFF,
        reason="x",
        to_contact_id=999_999,
        now=LATER,
        policy=policy(),
    )


def test_a_concern_about_the_supervisor_never_goes_back_to_pathway_1(db: Engine) -> None:
    reference = raise_concern(db, about_pathway1_contact=True)
    assert snapshot(db, reference)["concern"]["pathway"] == 2
    supervisor = contact_id(db, "taylor.specimen@vale-general.example.nhs.uk")
    message = refused(
        db,
        reference,
        redirect,
        by=STAFF,
        reason="x",
        to_contact_id=supervisor,
        now=LATER,
        policy=policy(),
    )
    assert "cannot handle it there" in message


def test_redirect_refusals(db: Engine) -> None:
    reference = raise_concern(db)
    assert "Only the people handling" in refused(
        db, reference, redirect, by=LEARNER, now=LATER, policy=policy()
    )
    outsider = contact_id(db, "lee.standin@riverside-surgery.example.nhs.uk")
    assert "only its contacts" in refused(
        db,
        reference,
        redirect,
        by=Actor(kind="contact", channel="web", contact_id=outsider),
        now=LATER,
        policy=policy(),
    )
    give_feedback(db, reference)
    assert "already given" in refused(
        db, reference, redirect, by=STAFF, reason="x", now=LATER, policy=policy()
    )


def test_acknowledging_is_for_the_people_handling_it(db: Engine) -> None:
    reference = raise_concern(db)
    assert "Only the people handling" in refused(db, reference, acknowledge, by=LEARNER, now=LATER)


def test_each_escalation_row_is_unique_whatever_route_it_took(db: Engine) -> None:
    reference = raise_concern(db)
    act(db, reference, escalate_by_hand, by=STAFF, reason="Now", now=LATER, policy=policy())
    due = snapshot(db, reference)["concern"]["feedback_due_at"]
    sweep(engine=db, now=due, policy=policy())
    with Session(db) as session:
        rows = session.exec(select(Escalation)).all()
        assert sorted((r.from_pathway, r.to_pathway) for r in rows) == [(1, 2), (2, 3)]
        concern = session.exec(select(Concern)).one()
        assert concern.pathway == 3


def test_the_next_level_reads_the_feedback_given_and_what_the_learner_added(db: Engine) -> None:
    """The history an escalated concern arrives with quotes the last level's feedback and what
    the learner added since (a confidential learner's words without their name or number), not
    only that they happened."""
    reference = raise_concern(db, confidentiality="confidential")
    act(
        db,
        reference,
        add_learner_information,
        text="Priya Testlearner again: last night I was alone from 2am. Call 07700 900123.",
        channel="web",
        inbound_id=None,
        now=LATER,
        policy=policy(),
    )
    act(
        db,
        reference,
        record_feedback,
        by=primary(db, reference),
        text="Dear Priya, we have asked the rota team to add a second nurse on nights.",
        now=LATER + timedelta(hours=1),
        policy=policy(),
    )
    act(
        db,
        reference,
        learner_remains_concerned,
        channel="web",
        now=LATER + timedelta(hours=2),
        policy=policy(),
    )
    with transaction(db) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None and concern.pathway == 2
        arrived = [
            message
            for message in repositories.outbox_of(session, concern.id or 0)
            if message.kind == "escalated_in" and message.channel == "email"
        ]
    assert arrived
    for message in arrived:
        text = " ".join(message.body_text.split())
        assert (
            "feedback given to the learner (pathway 1): \u201cDear [name removed], we have asked "
            "the rota team to add a second nurse on nights.\u201d" in text
        )
        assert "last night I was alone from 2am." in text
        assert "Priya" not in text and "Testlearner" not in text and "07700" not in text
