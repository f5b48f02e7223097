"""Contacts in Teams, end to end: cards sent from the outbox into the contact's chat with the bot
(429s honoured, once; nobody without a conversation written to), the Acknowledge / Record
feedback / Not mine actions through /api/messages, outsiders refused with nothing changed,
repeats with one effect, contacts matched by email, and the learner's card after feedback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from app.bootstrap import build
from app.metrics import Metrics
from app.serve import _ticks
from app.settings import ChatSettings, Settings
from bot import teams_contacts
from bot.teams_contacts import CardPoster
from escalation.actions import Actor, close_concern
from escalation.sweep import sweep
from intake.mailbox import Mailbox
from intake.service import submit_concern
from intake.submission import Channel, parse_submission
from notifications.outbox import DispatchReport, lease_for, retry_delay
from notifications.senders import MaildirSender
from notifications.teams_contact_cards import FEEDBACK_MAX_CHARACTERS
from notifications.teams_dispatch import NO_CONVERSATION_REASON, dispatch_due_teams
from storage import repositories
from storage.db import transaction
from storage.outbox import SqlOutboxStore
from storage.tables import Concern, Contact, Event, OutboxMessage
from tests.integration.fake_teams import TeamsUser
from tests.integration.helpers import MONDAY_MORNING, concern_input, load_example_directory
from tests.integration.teams_harness import APP_ID, TENANT, TeamsHarness, teams_harness

SUPERVISOR_EMAIL = "jordan.sample@vale-general.example.nhs.uk"
SUPERVISOR = TeamsUser(
    teams_id="29:1supervisor",
    aad_object_id="5c0e0000-0000-4000-8000-00000000c001",
    name="Jordan Sample",
    email=SUPERVISOR_EMAIL,
)
OUTSIDER = TeamsUser(
    teams_id="29:1outsider",
    aad_object_id="5c0e0000-0000-4000-8000-00000000c0ff",
    name="Someone Else",
    email="someone.else@elsewhere.example.nhs.uk",
)
LEARNER = TeamsUser(
    teams_id="29:1learner",
    aad_object_id="6a1e0000-0000-4000-8000-00000000aa01",
    name="Priya Testlearner",
    email="priya.testlearner@example.nhs.uk",
)
PLACEMENT = {
    "organisation": "Vale General Hospitals NHS Trust",
    "department": "Emergency Department",
}
FEEDBACK = "Teaching moved to Thursdays [see here](https://evil.example) <at>Everyone</at>."


@pytest.fixture
def harness(sqlite_engine: Engine) -> Iterator[TeamsHarness]:
    load_example_directory(sqlite_engine)
    with teams_harness(sqlite_engine, clock=lambda: MONDAY_MORNING) as running:
        yield running


def set_teams_id(harness: TeamsHarness, email: str, aad_object_id: str | None) -> None:
    with transaction(harness.engine) as session:
        for contact in session.exec(select(Contact).where(Contact.email == email)).all():
            contact.teams_user_id = aad_object_id


def raise_concern(harness: TeamsHarness, *, in_teams: bool = False, **changes: Any) -> str:
    """A concern about the Emergency Department (its lead supervisor is told); `in_teams`: the
    learner raised it in Teams, as LEARNER."""
    parsed = parse_submission(concern_input(PLACEMENT, **changes))
    if in_teams:
        parsed = replace(
            parsed, learner=replace(parsed.learner, teams_user_id=LEARNER.aad_object_id)
        )
    return submit_concern(
        engine=harness.engine,
        concern=parsed,
        channel=Channel.TEAMS if in_teams else Channel.CLI,
        now=MONDAY_MORNING,
        policy=harness.policy,
    ).reference


def dispatch(
    harness: TeamsHarness,
    now: datetime = MONDAY_MORNING,
    *,
    clock: Any = None,
) -> DispatchReport:
    return harness.web.run(
        dispatch_due_teams(
            store=SqlOutboxStore(harness.engine),
            poster=CardPoster(harness.bot),
            now=now,
            clock=clock or (lambda: now),
        )
    )


def teams_rows(harness: TeamsHarness, **where: Any) -> list[OutboxMessage]:
    with transaction(harness.engine) as session:
        rows = session.exec(select(OutboxMessage).where(OutboxMessage.channel == "teams")).all()
    return [row for row in rows if all(getattr(row, k) == v for k, v in where.items())]


def concern(harness: TeamsHarness, reference: str) -> Concern:
    with transaction(harness.engine) as session:
        found = repositories.concern_by_reference(session, reference)
        assert found is not None
        return found


def events(harness: TeamsHarness, reference: str, kind: str | None = None) -> list[Event]:
    with transaction(harness.engine) as session:
        found = repositories.concern_by_reference(session, reference)
        assert found is not None
        return [
            event
            for event in repositories.events_of(session, found.id or 0)
            if kind is None or event.kind == kind
        ]


def cards_in(harness: TeamsHarness, user: TeamsUser) -> list[dict[str, Any]]:
    """The Adaptive Cards the bot sent into a person's chat (with the activity id)."""
    return [
        attachment["content"]
        for body in harness.fake.sent(user.conversation_id)
        for attachment in body.get("attachments") or ()
        if attachment.get("contentType") == "application/vnd.microsoft.card.adaptive"
    ]


def action_ids(card: dict[str, Any]) -> list[str]:
    return [action.get("id", "") for action in card.get("actions", [])]


def text_blocks(card: Any) -> list[str]:
    """The text of every TextBlock in a card, however deep (the only Markdown-rendering kind)."""
    found: list[str] = []
    if isinstance(card, dict):
        if card.get("type") == "TextBlock":
            found.append(str(card.get("text", "")))
        for value in card.values():
            found.extend(text_blocks(value))
    elif isinstance(card, list):
        for item in card:
            found.extend(text_blocks(item))
    return found


def pressed(harness: TeamsHarness, user: TeamsUser, verb: str, data: dict[str, Any], **kw: Any):  # type: ignore[no-untyped-def]
    """Press a button; the card that replaces the pressed one."""
    answer = harness.press(user, verb, data, **kw)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["statusCode"] == 200, body
    card: dict[str, Any] = body["value"]
    return card


def snapshot(harness: TeamsHarness, reference: str) -> tuple[Any, ...]:
    """Everything an action could change: the concern, its events, the outbox."""
    with transaction(harness.engine) as session:
        found = repositories.concern_by_reference(session, reference)
        assert found is not None
        events_now = [
            (e.kind, e.actor, e.at) for e in repositories.events_of(session, found.id or 0)
        ]
        outbox = [
            (row.idempotency_key, row.status) for row in session.exec(select(OutboxMessage)).all()
        ]
        contacts = [(c.id, c.teams_user_id) for c in session.exec(select(Contact)).all()]
        return (found.model_dump(), events_now, outbox, contacts)


@pytest.fixture
def posted(harness: TeamsHarness) -> tuple[str, str]:
    """A concern raised, the supervisor known in Teams and in a chat with the bot, and their
    card sent: (reference, the card's activity id)."""
    set_teams_id(harness, SUPERVISOR_EMAIL, SUPERVISOR.aad_object_id)
    harness.install(SUPERVISOR)
    reference = raise_concern(harness)
    report = dispatch(harness)
    assert report.sent == 1 and report.failed == 0, report.errors
    (row,) = teams_rows(harness, recipient_address=SUPERVISOR.aad_object_id)
    assert row.external_ref is not None
    conversation, _, activity_id = row.external_ref.rpartition(":")
    assert conversation == SUPERVISOR.conversation_id
    return reference, activity_id


# --- the outbox ------------------------------------------------------------------------------


def test_a_new_concern_reaches_the_contacts_chat_once(
    harness: TeamsHarness, posted: tuple[str, str]
) -> None:
    reference, activity_id = posted
    (card,) = cards_in(harness, SUPERVISOR)
    assert card["type"] == "AdaptiveCard"
    assert action_ids(card) == ["acknowledge", "record_feedback", "not_mine", "open_staff_page"]
    assert reference in json.dumps(card)
    # No text of the concern goes to Teams by default.
    assert "teaching" not in json.dumps(card).lower()
    (row,) = teams_rows(harness)
    assert row.status == "sent" and row.idempotency_key.endswith(":teams")
    assert row.external_ref == f"{SUPERVISOR.conversation_id}:{activity_id}"
    assert row.recipient_contact_id is not None
    # The email goes too; and nothing is sent twice.
    with transaction(harness.engine) as session:
        emails = session.exec(
            select(OutboxMessage).where(
                OutboxMessage.channel == "email",
                OutboxMessage.recipient_address == SUPERVISOR_EMAIL,
            )
        ).all()
    assert [email.idempotency_key + ":teams" for email in emails] == [row.idempotency_key]
    assert dispatch(harness, MONDAY_MORNING + timedelta(hours=1)).sent == 0
    assert len(cards_in(harness, SUPERVISOR)) == 1


def test_a_contact_the_bot_has_no_chat_with_gets_nothing_in_teams_but_the_email(
    harness: TeamsHarness,
) -> None:
    set_teams_id(harness, SUPERVISOR_EMAIL, SUPERVISOR.aad_object_id)
    raise_concern(harness)
    report = dispatch(harness)
    assert (report.sent, report.skipped, report.failed, report.retried) == (0, 1, 0, 0)
    (row,) = teams_rows(harness)
    assert row.status == "skipped" and row.last_error == NO_CONVERSATION_REASON
    assert row.attempts == 0
    assert harness.fake.calls == []
    with transaction(harness.engine) as session:
        email = session.exec(
            select(OutboxMessage).where(
                OutboxMessage.channel == "email",
                OutboxMessage.recipient_address == SUPERVISOR_EMAIL,
            )
        ).one()
    assert email.status == "pending"
    # Not tried again later, even once the contact has a chat with the bot.
    harness.install(SUPERVISOR)
    assert dispatch(harness, MONDAY_MORNING + timedelta(hours=1)).sent == 0
    assert cards_in(harness, SUPERVISOR) == []


def test_a_contact_without_a_teams_id_gets_no_teams_row(harness: TeamsHarness) -> None:
    raise_concern(harness)
    assert teams_rows(harness) == []


def test_a_429_waits_its_retry_after_from_the_429_and_the_card_is_sent_once(
    harness: TeamsHarness,
) -> None:
    set_teams_id(harness, SUPERVISOR_EMAIL, SUPERVISOR.aad_object_id)
    harness.install(SUPERVISOR)
    raise_concern(harness)
    harness.fake.fail_posts(times=1, status=429, retry_after=30)
    # The 429 comes 5 seconds into the batch: the wait counts from then.
    answered_at = MONDAY_MORNING + timedelta(seconds=5)
    first = dispatch(harness, clock=lambda: answered_at)
    assert (first.sent, first.held, first.retried, first.failed) == (0, 1, 0, 0)
    (row,) = teams_rows(harness)
    assert row.status == "pending" and row.attempts == 0, "a 429 is not a failed attempt"
    assert row.send_after == answered_at + timedelta(seconds=30)
    assert dispatch(harness, answered_at + timedelta(seconds=29)).sent == 0
    later = dispatch(harness, answered_at + timedelta(seconds=30))
    assert later.sent == 1
    posts = harness.fake.sent(SUPERVISOR.conversation_id)
    assert len(posts) == 2, "the throttled attempt and the one that got through"
    assert len(cards_in(harness, SUPERVISOR)) == 2
    assert dispatch(harness, MONDAY_MORNING + timedelta(hours=1)).sent == 0
    assert len(harness.fake.sent(SUPERVISOR.conversation_id)) == 2


def test_a_batch_that_outlives_its_lease_never_sends_what_another_dispatcher_took(
    harness: TeamsHarness,
) -> None:
    """Slow answers stretch one dispatcher's batch past its lease while it sends, and another
    instance's tick claims the rows: the card being sent is held for its send, the rest are the
    other dispatcher's, and every card goes exactly once."""
    set_teams_id(harness, SUPERVISOR_EMAIL, SUPERVISOR.aad_object_id)
    harness.install(SUPERVISOR)
    for _ in range(4):
        raise_concern(harness)
    lease_ends = MONDAY_MORNING + lease_for(20)
    now = [MONDAY_MORNING]
    others: list[DispatchReport] = []

    class SlowAnswers(CardPoster):
        async def post(self, reference: Mapping[str, Any], card: Mapping[str, Any]) -> str | None:
            posts = len(harness.fake.sent(SUPERVISOR.conversation_id))
            if posts == 1:  # while the second card waits for its answer, the lease runs out
                others.append(
                    await dispatch_due_teams(
                        store=SqlOutboxStore(harness.engine),
                        poster=CardPoster(harness.bot),
                        now=lease_ends + timedelta(seconds=1),
                    )
                )
            answer = await super().post(reference, card)
            if posts == 0:  # the first answer comes when the lease has nearly run out
                now[0] = lease_ends - timedelta(seconds=1)
            return answer

    report = harness.web.run(
        dispatch_due_teams(
            store=SqlOutboxStore(harness.engine),
            poster=SlowAnswers(harness.bot),
            now=MONDAY_MORNING,
            clock=lambda: now[0],
        )
    )
    (other,) = others
    assert (report.sent, other.sent) == (2, 2)
    assert [error.split(": ", 1)[1] for error in report.errors] == [
        "claimed by another dispatcher"
    ] * 2
    assert len(harness.fake.sent(SUPERVISOR.conversation_id)) == 4
    assert {row.status for row in teams_rows(harness)} == {"sent"}


def test_a_server_error_is_retried_with_backoff(harness: TeamsHarness) -> None:
    set_teams_id(harness, SUPERVISOR_EMAIL, SUPERVISOR.aad_object_id)
    harness.install(SUPERVISOR)
    raise_concern(harness)
    harness.fake.fail_posts(times=1, status=502)
    first = dispatch(harness)
    assert (first.sent, first.retried) == (0, 1)
    (row,) = teams_rows(harness)
    assert row.status == "pending" and row.attempts == 1
    assert row.send_after == MONDAY_MORNING + retry_delay(1)
    assert dispatch(harness, row.send_after).sent == 1


def test_a_refusal_that_does_not_go_away_is_given_up_in_the_end(harness: TeamsHarness) -> None:
    set_teams_id(harness, SUPERVISOR_EMAIL, SUPERVISOR.aad_object_id)
    harness.install(SUPERVISOR)
    raise_concern(harness)
    harness.fake.fail_posts(times=100, status=403)
    at = MONDAY_MORNING
    for _ in range(20):
        dispatch(harness, at)
        (row,) = teams_rows(harness)
        if row.status != "pending":
            break
        at = row.send_after
    assert row.status == "failed" and row.last_error == "refused: HTTP 403"


# --- the actions -----------------------------------------------------------------------------


def test_the_contact_acknowledges_and_the_card_says_who_and_when(
    harness: TeamsHarness, posted: tuple[str, str]
) -> None:
    reference, activity_id = posted
    card = pressed(
        harness, SUPERVISOR, "acknowledge", {"reference": reference}, reply_to_id=activity_id
    )
    assert concern(harness, reference).acknowledged_at == MONDAY_MORNING
    (event,) = events(harness, reference, "acknowledged")
    assert event.channel == "teams"
    shown = json.dumps(card)
    assert "Acknowledged by Dr Jordan Sample, Monday 23 November 2026 at 10:00" in shown
    # The facts stay; Acknowledge goes, what is left to do stays.
    assert reference in shown
    assert action_ids(card) == ["record_feedback", "not_mine", "open_staff_page"]


def test_feedback_is_recorded_and_reaches_the_learner_in_teams_with_the_answer_buttons(
    harness: TeamsHarness,
) -> None:
    set_teams_id(harness, SUPERVISOR_EMAIL, SUPERVISOR.aad_object_id)
    harness.install(SUPERVISOR)
    harness.install(LEARNER)
    reference = raise_concern(harness, in_teams=True)
    # The acknowledgement is the bot's own answer in the chat: not queued again for Teams.
    assert teams_rows(harness, recipient_role="learner") == []
    dispatch(harness)
    (row,) = teams_rows(harness, recipient_address=SUPERVISOR.aad_object_id)
    activity_id = str(row.external_ref).rpartition(":")[2]

    card = pressed(
        harness,
        SUPERVISOR,
        "record_feedback",
        {"reference": reference, "feedback": FEEDBACK},
        reply_to_id=activity_id,
    )
    assert "Feedback recorded (the learner has been told) by Dr Jordan Sample" in json.dumps(card)
    assert action_ids(card) == ["open_staff_page"]
    found = concern(harness, reference)
    assert found.feedback_at == MONDAY_MORNING and found.acknowledged_at == MONDAY_MORNING
    (event,) = events(harness, reference, "feedback_given")
    assert event.channel == "teams" and event.detail["text"] == FEEDBACK

    (to_learner,) = teams_rows(harness, recipient_role="learner")
    assert to_learner.kind == "learner_feedback"
    assert to_learner.recipient_address == LEARNER.aad_object_id
    assert dispatch(harness).sent == 1
    (learner_card,) = cards_in(harness, LEARNER)
    buttons = {
        action["verb"]: action["data"]
        for action in learner_card["actions"]
        if action["type"] == "Action.Execute"
    }
    answer = {"reference": reference, "pathway": 1, "round": 0}
    assert buttons == {"satisfied": answer, "remain_concerned": answer}
    # The feedback's text stays out of Teams (it is in their email and on the status page).
    assert "Thursdays" not in json.dumps(learner_card)
    # The learner's bot answers the button: satisfied closes the concern.
    pressed(harness, LEARNER, "satisfied", buttons["satisfied"])
    assert concern(harness, reference).status == "closed"


def test_not_mine_passes_the_concern_on(harness: TeamsHarness, posted: tuple[str, str]) -> None:
    reference, activity_id = posted
    card = pressed(
        harness, SUPERVISOR, "not_mine", {"reference": reference}, reply_to_id=activity_id
    )
    (event,) = events(harness, reference, "redirected")
    assert event.channel == "teams"
    assert "Passed on as not theirs by Dr Jordan Sample" in json.dumps(card)
    assert action_ids(card) == ["open_staff_page"]


def test_not_mine_keeps_the_reason_given_on_the_card(
    harness: TeamsHarness, posted: tuple[str, str]
) -> None:
    reference, activity_id = posted
    reason = "Not my trainee: they moved to the Acute Medical Unit <at>Everyone</at>."
    pressed(
        harness,
        SUPERVISOR,
        "not_mine",
        {"reference": reference, "reason": reason},
        reply_to_id=activity_id,
    )
    (event,) = events(harness, reference, "redirected")
    assert event.detail["reason"] == reason


DEAN = TeamsUser(
    teams_id="29:1dean",
    aad_object_id="5c0e0000-0000-4000-8000-00000000dea1",
    name="Morgan Example",
    email="morgan.example@example.nhs.uk",
)


def test_the_dean_acts_in_teams_with_their_staff_rights(
    harness: TeamsHarness, posted: tuple[str, str]
) -> None:
    """The dean is no contact of pathway 1, but their region's concerns are theirs to act on:
    found by the work email Teams gives for them, they acknowledge as staff; moving a concern
    on, staff must say why, as on the staff pages."""
    reference, _ = posted
    harness.fake.add_member(DEAN)
    card = pressed(harness, DEAN, "acknowledge", {"reference": reference})
    # Seen once, the dean's Teams account is matched to their directory entry by that email.
    assert "Acknowledged by Dr Morgan Example (Postgraduate Dean)" in json.dumps(card)
    (event,) = events(harness, reference, "acknowledged")
    assert event.actor.startswith("staff ") and event.channel == "teams"

    card = pressed(harness, DEAN, "not_mine", {"reference": reference, "reason": " "})
    assert "Say why" in json.dumps(card)
    assert events(harness, reference, "redirected") == []
    pressed(harness, DEAN, "not_mine", {"reference": reference, "reason": "Supervisor on leave"})
    (moved,) = events(harness, reference, "redirected")
    assert moved.actor.startswith("staff ")
    assert moved.detail["reason"] == "Supervisor on leave"


@pytest.mark.parametrize(
    "differs",
    [
        {"userRole": "guest"},
        {"userPrincipalName": "morgan.example_example.nhs.uk#EXT#@tenant.onmicrosoft.com"},
        {"tenantId": "another-tenant"},
        {"tenantId": None},
    ],
    ids=["guest role", "guest upn", "another tenant", "tenant not said"],
)
def test_an_email_from_outside_the_tenant_gives_no_staff_rights(
    harness: TeamsHarness, posted: tuple[str, str], differs: dict[str, Any]
) -> None:
    """The work email Teams gives counts only for a member of the bot's own tenant, not a
    guest: anyone else with the dean's email is refused, and nothing changes."""
    reference, _ = posted
    stranger = replace(DEAN, teams_id="29:1stranger", aad_object_id="5c0e-stranger")
    harness.fake.add_member(stranger)
    harness.fake.members[stranger.teams_id].update(differs)
    before = snapshot(harness, reference)
    card = pressed(harness, stranger, "acknowledge", {"reference": reference})
    assert "Only the people this concern was sent to" in json.dumps(card)
    assert snapshot(harness, reference) == before


def test_an_outsiders_press_is_refused_and_changes_nothing(
    harness: TeamsHarness, posted: tuple[str, str]
) -> None:
    reference, _ = posted
    harness.fake.add_member(OUTSIDER)
    before = snapshot(harness, reference)
    for verb in ("acknowledge", "not_mine"):
        card = pressed(harness, OUTSIDER, verb, {"reference": reference, "contact_id": 1})
        assert "Only the people this concern was sent to" in json.dumps(card)
    card = pressed(
        harness, OUTSIDER, "record_feedback", {"reference": reference, "feedback": FEEDBACK}
    )
    shown = json.dumps(card)
    assert "Only the people this concern was sent to" in shown
    # Their words are given back, shown literally and in the form, ready to send again.
    assert FEEDBACK in [run["text"] for run in _text_runs(card)]
    (form,) = [a for a in card["actions"] if a["id"] == "record_feedback"]
    (field,) = [item for item in form["card"]["body"] if item.get("type") == "Input.Text"]
    assert field["value"] == FEEDBACK
    assert all(FEEDBACK not in text for text in text_blocks(card))
    assert snapshot(harness, reference) == before
    assert harness.fake.updates() == []


def test_a_repeated_invoke_has_one_effect(harness: TeamsHarness, posted: tuple[str, str]) -> None:
    reference, activity_id = posted
    for _ in range(2):
        answer = harness.press(
            SUPERVISOR,
            "acknowledge",
            {"reference": reference},
            reply_to_id=activity_id,
            activity_id="invoke-ack-1",
        )
        assert answer.status_code == 200
    assert len(events(harness, reference, "acknowledged")) == 1
    # A second press (a new invoke) is the action's own refusal: already done.
    card = pressed(harness, SUPERVISOR, "acknowledge", {"reference": reference})
    assert "was already acknowledged" in json.dumps(card)
    assert len(events(harness, reference, "acknowledged")) == 1


def test_feedback_refused_because_the_concern_closed_is_given_back(
    harness: TeamsHarness, posted: tuple[str, str]
) -> None:
    reference, activity_id = posted
    with transaction(harness.engine) as session:
        locked = repositories.lock_concern(session, concern(harness, reference).id or 0)
        assert locked is not None
        close_concern(
            session=session,
            concern=locked,
            by=Actor(kind="staff", channel="web"),
            reason="Resolved with the department",
            now=MONDAY_MORNING,
            policy=harness.policy,
        )
    card = pressed(
        harness,
        SUPERVISOR,
        "record_feedback",
        {"reference": reference, "feedback": FEEDBACK},
        reply_to_id=activity_id,
    )
    assert "is closed" in json.dumps(card)
    assert FEEDBACK in [run["text"] for run in _text_runs(card)]
    assert events(harness, reference, "feedback_given") == []


def test_feedback_that_fails_to_save_is_given_back_and_changes_nothing(
    harness: TeamsHarness, posted: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, activity_id = posted

    def broken(**_: Any) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(teams_contacts, "record_feedback", broken)
    data = {"reference": reference, "feedback": FEEDBACK}
    card = pressed(harness, SUPERVISOR, "record_feedback", data, reply_to_id=activity_id)
    shown = json.dumps(card)
    assert "could not be recorded just now" in shown and "database" not in shown
    assert FEEDBACK in [run["text"] for run in _text_runs(card)]
    assert concern(harness, reference).feedback_at is None
    # The same card's form works once saving works again.
    monkeypatch.undo()
    pressed(harness, SUPERVISOR, "record_feedback", data, reply_to_id=activity_id)
    assert concern(harness, reference).feedback_at == MONDAY_MORNING


def test_a_contact_known_only_by_email_is_matched_when_they_press_and_remembered(
    harness: TeamsHarness, posted: tuple[str, str]
) -> None:
    reference, _ = posted
    set_teams_id(harness, SUPERVISOR_EMAIL, None)
    # Their Teams account is new: the connector's member lookup gives its email.
    user = replace(SUPERVISOR, teams_id="29:1newaccount", aad_object_id="5c0e-new-account")
    harness.fake.add_member(user)
    pressed(harness, user, "acknowledge", {"reference": reference})
    assert concern(harness, reference).acknowledged_at == MONDAY_MORNING
    with transaction(harness.engine) as session:
        supervisor = session.exec(select(Contact).where(Contact.email == SUPERVISOR_EMAIL)).one()
    assert supervisor.teams_user_id == user.aad_object_id
    assert any("/members/" in call.path for call in harness.fake.calls)


def test_a_contact_who_installs_the_app_is_matched_by_email_and_then_reachable(
    harness: TeamsHarness,
) -> None:
    harness.fake.add_member(SUPERVISOR)
    harness.install(SUPERVISOR)
    with transaction(harness.engine) as session:
        supervisor = session.exec(select(Contact).where(Contact.email == SUPERVISOR_EMAIL)).one()
    assert supervisor.teams_user_id == SUPERVISOR.aad_object_id
    raise_concern(harness)
    assert dispatch(harness).sent == 1
    assert len(cards_in(harness, SUPERVISOR)) == 1


def test_an_email_match_never_replaces_a_different_teams_id(harness: TeamsHarness) -> None:
    set_teams_id(harness, SUPERVISOR_EMAIL, "the-id-the-directory-gives")
    harness.fake.add_member(SUPERVISOR)
    harness.install(SUPERVISOR)
    with transaction(harness.engine) as session:
        supervisor = session.exec(select(Contact).where(Contact.email == SUPERVISOR_EMAIL)).one()
    assert supervisor.teams_user_id == "the-id-the-directory-gives"


def test_learners_words_never_reach_a_text_block(sqlite_engine: Engine) -> None:
    """With the summary shared, a learner's links and mentions are shown as typed, never as
    Markdown or a mention: they are in TextRuns only."""
    load_example_directory(sqlite_engine)
    injected = "Rota [click me](https://evil.example) <at>Everyone</at> **now**"
    with teams_harness(sqlite_engine, clock=lambda: MONDAY_MORNING, share_summary=True) as harness:
        # Whoever the unlisted ward's concern goes to reads their cards in one chat.
        with transaction(harness.engine) as session:
            for contact in session.exec(select(Contact)).all():
                contact.teams_user_id = SUPERVISOR.aad_object_id
        harness.install(SUPERVISOR)
        harness.install(LEARNER)
        learner = {
            "name": f"Priya {injected}",
            "email": "priya.testlearner@example.nhs.uk",
            "group": "foundation",
        }
        placement = {**PLACEMENT, "department": f"Ward {injected}"}
        parsed = parse_submission(concern_input(placement, summary=injected, learner=learner))
        parsed = replace(
            parsed, learner=replace(parsed.learner, teams_user_id=LEARNER.aad_object_id)
        )
        reference = submit_concern(
            engine=harness.engine,
            concern=parsed,
            channel=Channel.TEAMS,
            now=MONDAY_MORNING,
            policy=harness.policy,
        ).reference
        assert dispatch(harness).sent >= 1
        card = pressed(
            harness,
            SUPERVISOR,
            "record_feedback",
            {"reference": reference, "feedback": injected},
        )
        assert "Feedback recorded" in json.dumps(card)
        dispatch(harness)
        cards = [*cards_in(harness, SUPERVISOR), *cards_in(harness, LEARNER), card]
        assert cards_in(harness, LEARNER), "the learner's feedback card was sent"
        shown = [run["text"] for c in cards for run in _text_runs(c)]
        assert any("[click me](https://evil.example)" in text for text in shown)
        for c in cards:
            for text in text_blocks(c):
                assert "evil.example" not in text and "<at>" not in text, text


def _text_runs(card: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(card, dict):
        if card.get("type") == "TextRun":
            found.append(card)
        for value in card.values():
            found.extend(_text_runs(value))
    elif isinstance(card, list):
        for item in card:
            found.extend(_text_runs(item))
    return found


def test_the_other_copies_at_the_level_show_the_acknowledgement(
    harness: TeamsHarness, posted: tuple[str, str]
) -> None:
    reference, activity_id = posted
    # A second card at the same level: the acknowledgement reminder.
    reminder_at = concern(harness, reference).ack_reminder_at
    assert reminder_at is not None
    sweep(engine=harness.engine, now=reminder_at, policy=harness.policy)
    dispatch(harness, reminder_at)
    refs = [row.external_ref for row in teams_rows(harness)]
    assert len(refs) == 2 and all(refs)
    pressed(harness, SUPERVISOR, "acknowledge", {"reference": reference}, reply_to_id=activity_id)
    (update,) = harness.fake.updates()
    assert f"{update.conversation}:{update.activity_id}" in refs
    assert update.activity_id != activity_id
    (updated_card,) = [a["content"] for a in update.body["attachments"]]
    assert "Acknowledged by Dr Jordan Sample" in json.dumps(updated_card)
    assert "acknowledge" not in action_ids(updated_card)


def test_the_feedback_input_allows_what_the_product_accepts() -> None:
    from escalation.actions import MAX_FEEDBACK_CHARACTERS

    assert FEEDBACK_MAX_CHARACTERS == MAX_FEEDBACK_CHARACTERS


# --- the service -----------------------------------------------------------------------------


def test_the_services_teams_tick_sends_what_the_outbox_holds(
    harness: TeamsHarness, tmp_path: Path
) -> None:
    set_teams_id(harness, SUPERVISOR_EMAIL, SUPERVISOR.aad_object_id)
    harness.install(SUPERVISOR)
    raise_concern(harness)
    # The tick runs at the real time: the rows queued for Monday morning are made due now.
    with transaction(harness.engine) as session:
        for row in session.exec(select(OutboxMessage)).all():
            row.send_after = datetime.now(UTC) - timedelta(minutes=1)
    settings = Settings(_env_file=None, outbox_dir=tmp_path / "outbox")  # type: ignore[call-arg]
    product = build(
        settings,
        engine=harness.engine,
        chat=ChatSettings(
            _env_file=None,  # type: ignore[call-arg]
            teams_app_id=APP_ID,
            teams_app_password="not-a-real-secret",  # type: ignore[arg-type]
            teams_tenant_id=TENANT,
        ),
    )
    metrics = Metrics()
    mailbox = Mailbox(address=settings.mailbox_address, store=lambda batch: None)

    async def one_tick() -> set[str]:
        ticks = {
            tick.name: tick
            for tick in _ticks(
                product,
                sender=MaildirSender(tmp_path / "outbox"),
                metrics=metrics,
                mailbox=mailbox,
                teams=harness.bot,
            )
        }
        await ticks["teams_dispatch"].run()
        return set(ticks)

    names = harness.web.run(one_tick())
    assert "teams_dispatch" in names
    assert [row.status for row in teams_rows(harness)] == ["sent"]
    assert len(cards_in(harness, SUPERVISOR)) == 1
    assert metrics.registry.get_sample_value("concerns_teams_sent_total") == 1


def test_without_teams_there_is_no_teams_tick(sqlite_engine: Engine, tmp_path: Path) -> None:
    settings = Settings(_env_file=None, outbox_dir=tmp_path / "outbox")  # type: ignore[call-arg]
    product = build(settings, engine=sqlite_engine, chat=ChatSettings(_env_file=None))  # type: ignore[call-arg]
    mailbox = Mailbox(address=settings.mailbox_address, store=lambda batch: None)

    async def names() -> set[str]:
        ticks = _ticks(
            product, sender=MaildirSender(tmp_path / "outbox"), metrics=Metrics(), mailbox=mailbox
        )
        return {tick.name for tick in ticks}

    assert "teams_dispatch" not in asyncio.run(names())
