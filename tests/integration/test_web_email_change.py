"""Right after sending the form, the learner corrects a mistyped email address: the concern points
at the new address, the acknowledgement goes again, and what was sent to the old one stops
working (status links, status-page access opened with them). Only the sending browser, only for a
while, never for an anonymous concern; a refusal changes nothing."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

import intake.web.status as status_module
from escalation.actions import Actor, close_concern
from escalation.links import LINK_PATH
from escalation.notify import facts_of, queue_to_learner
from intake.web.form import CHANGE_EMAIL_WITHIN
from intake.web.status import LINK_EXPIRED
from notifications.messages import MessageKind
from storage import repositories
from storage.db import transaction
from storage.outbox import SqlOutboxStore
from storage.tables import Concern, Event, Learner, OutboxMessage
from tests.integration.helpers import MONDAY_MORNING, Clock, load_example_directory, policy
from tests.integration.test_web_form import REFERENCE, answers, drawn_form
from tests.integration.test_web_status import HIDDEN, give_feedback
from tests.integration.webclient import WebClient, make_app, web_client

CHANGE = "/concerns/change-email"
OLD = "priya.testlearnr@example.nhs.uk"  # mistyped
NEW = "priya.testlearner@example.nhs.uk"
LINK = re.compile(re.escape(LINK_PATH) + r"(\S+)")


@dataclass
class World:
    engine: Engine
    clock: Clock
    learner: WebClient  # the browser that sent the form
    other: WebClient  # anyone else's browser

    def concern(self, reference: str) -> Concern:
        with transaction(self.engine) as session:
            concern = repositories.concern_by_reference(session, reference)
            assert concern is not None
            session.expunge(concern)
            return concern


@pytest.fixture
def world(engine: Engine) -> Iterator[World]:
    load_example_directory(engine)
    clock = Clock(MONDAY_MORNING)
    app = make_app(engine, clock=clock)
    with web_client(app) as learner, web_client(app) as other:
        yield World(engine=engine, clock=clock, learner=learner, other=other)


def send_form(world: World, **changes: str) -> tuple[str, str]:
    """Send the form from the learner's browser: the reference and the confirmation page."""
    token = world.learner.csrf("/concerns/new")
    sent = world.learner.post(
        "/concerns/new", data={"csrf_token": token, **answers(email=OLD, **changes)}
    )
    assert sent.status_code == 303, sent.text
    page = world.learner.get("/concerns/confirmation").text
    found = REFERENCE.search(page)
    assert found, page
    return found.group(1), page


def change(client: WebClient, email: str, **extra: str) -> httpx.Response:
    """Open the change page and send it with `email`."""
    shown = client.get(CHANGE)
    token = re.search(r'name="csrf_token" value="([^"]+)"', shown.text)
    reference = re.search(r'name="reference" value="([^"]+)"', shown.text)
    data = {
        "csrf_token": token.group(1) if token else client.csrf("/concerns/new"),
        "reference": reference.group(1) if reference else "",
        "email": email,
        **extra,
    }
    return client.post(CHANGE, data=data)


def everything(engine: Engine, reference: str) -> tuple[Any, ...]:
    """The concern, its learner, its events and its outbox, to compare before and after."""
    with transaction(engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None
        learners = session.exec(select(Learner.id, Learner.email, Learner.name)).all()
        return (
            concern.model_dump(),
            sorted(learners),
            [event.kind for event in repositories.events_of(session, concern.id or 0)],
            [
                (row.id, row.status, row.recipient_address)
                for row in repositories.outbox_of(session, concern.id or 0)
            ],
        )


def learner_emails(engine: Engine, reference: str) -> list[OutboxMessage]:
    with transaction(engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None
        rows = [
            row
            for row in repositories.outbox_of(session, concern.id or 0)
            if row.recipient_role == "learner" and row.channel == "email"
        ]
        for row in rows:
            session.expunge(row)
        return rows


def link_in(row: OutboxMessage) -> str:
    found = LINK.search(row.body_text)
    assert found, row.body_text
    return LINK_PATH + found.group(1)


def opens(client: WebClient, link: str, reference: str) -> bool:
    """Whether following `link` shows the concern's status page in this browser."""
    followed = client.get(link)
    if followed.status_code != 303:
        assert followed.status_code == 400 and LINK_EXPIRED in followed.text
        return False
    return reference in client.get("/concerns/status").text


def test_the_learner_corrects_the_address_and_the_new_one_gets_the_acknowledgement(
    world: World,
) -> None:
    reference, page = send_form(world)
    assert f'<strong id="email">{OLD}</strong>' in page
    assert f'href="{CHANGE}"' in page
    assert "raise your concern again" not in page
    [first] = learner_emails(world.engine, reference)
    old_link = link_in(first)
    before = world.concern(reference)

    shown = world.learner.get(CHANGE)
    assert shown.status_code == 200
    assert "<title>Change your email address" in shown.text
    assert f'<strong id="current-email">{OLD}</strong>' in shown.text
    assert reference in shown.text
    # The input is the one element with its id: its label names it.
    assert shown.text.count('id="email"') == 1
    world.clock.now += timedelta(minutes=5)
    done = change(world.learner, NEW)
    assert done.status_code == 200, done.text
    assert "<title>Email address changed" in done.text
    assert f'<strong id="email">{NEW}</strong>' in done.text

    after = world.concern(reference)
    assert after.link_version == before.link_version + 1 == 1
    with transaction(world.engine) as session:
        new_learner = session.get(Learner, after.learner_id)
        assert new_learner is not None
        # The old record (the mistyped address, the learner's name) is gone with its last
        # concern: retention would never reach it, and whoever owns that address would be found
        # by it when they raise a concern of their own, and carry our learner's name.
        assert session.get(Learner, before.learner_id) is None
        assert new_learner.email == NEW and new_learner.name == "Priya Testlearner"
        [changed] = [
            event
            for event in repositories.events_of(session, after.id or 0)
            if event.kind == "learner_email_changed"
        ]
        recorded = json.dumps(changed.detail)
        assert changed.actor == "learner" and changed.channel == "web"
    # Neither address is in the audit trail every member of staff on the concern sees.
    assert OLD not in recorded and NEW not in recorded and "priya" not in recorded
    gave_up, again = learner_emails(world.engine, reference)
    assert (gave_up.id, gave_up.recipient_address, gave_up.status) == (first.id, OLD, "failed")
    assert gave_up.last_error and "corrected their email address" in gave_up.last_error
    assert (again.recipient_address, again.kind, again.status) == (NEW, "learner_ack", "pending")
    assert again.idempotency_key != first.idempotency_key
    assert reference in again.subject

    # The link sent to the old address no longer opens it; the new one does.
    stranger = world.other
    assert not opens(stranger, old_link, reference)
    with web_client(make_app(world.engine, clock=world.clock)) as fresh:
        assert opens(fresh, link_in(again), reference)
    # The browser that sent the form may look at it now.
    assert reference in world.learner.get("/concerns/status").text


def test_a_link_without_a_version_still_opens_a_concern_never_corrected(world: World) -> None:
    reference, _ = send_form(world)
    links = policy().status_links
    assert links is not None
    # Signed as every link was before versions: the reference alone.
    bare = LINK_PATH + links.token_for(reference, MONDAY_MORNING)
    assert bare == link_in(learner_emails(world.engine, reference)[0])
    assert opens(world.other, bare, reference)

    change(world.learner, NEW)
    with web_client(make_app(world.engine, clock=world.clock)) as fresh:
        assert not opens(fresh, bare, reference)


ACTIONS = ["information", "satisfied", "concerned"]


def stranger_with_the_old_link(world: World, reference: str) -> dict[str, str]:
    """The stranger opens the old link while the concern has feedback to answer: the form their
    status page draws for each action (its CSRF token and hidden fields)."""
    assert opens(world.other, link_in(learner_emails(world.engine, reference)[0]), reference)
    give_feedback(world.engine, reference, world.clock.now)
    page = world.other.get("/concerns/status").text
    assert "I&#39;m satisfied" in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    return {"csrf_token": token.group(1), **dict(HIDDEN.findall(page)), "information": "Stranger"}


@pytest.mark.parametrize("action", ACTIONS)
def test_a_browser_that_opened_the_old_link_loses_its_access(world: World, action: str) -> None:
    reference, _ = send_form(world)
    stranger = world.other
    form = stranger_with_the_old_link(world, reference)

    assert change(world.learner, NEW).status_code == 200
    world.clock.now += timedelta(minutes=1)

    before = everything(world.engine, reference)
    acted = stranger.post(f"/concerns/status/{action}", data=form)
    assert acted.status_code == 403
    assert everything(world.engine, reference) == before
    shown = stranger.get("/concerns/status")
    assert reference not in shown.text
    assert "Check a concern you raised" in shown.text


@pytest.mark.parametrize("action", ACTIONS)
def test_an_action_checks_the_link_version_again_under_the_lock(
    world: World, action: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, _ = send_form(world)
    stranger = world.other
    form = stranger_with_the_old_link(world, reference)
    assert change(world.learner, NEW).status_code == 200
    # The stranger's request read the link version a moment before the change committed.
    monkeypatch.setattr(status_module, "link_version_of", lambda engine, reference: 0)

    before = everything(world.engine, reference)
    acted = stranger.post(f"/concerns/status/{action}", data=form)
    assert acted.status_code == 403
    assert everything(world.engine, reference) == before
    # And the access held is dropped, not just this action refused.
    assert reference not in stranger.get("/concerns/status").text


def test_doing_it_twice_changes_it_once(world: World) -> None:
    reference, _ = send_form(world)
    assert change(world.learner, NEW).status_code == 200
    once = everything(world.engine, reference)
    again = change(world.learner, NEW)
    assert again.status_code == 200
    assert "<title>Email address changed" in again.text
    assert everything(world.engine, reference) == once
    assert world.concern(reference).link_version == 1


def test_the_same_address_again_changes_nothing(world: World) -> None:
    reference, _ = send_form(world)
    before = everything(world.engine, reference)
    answer = change(world.learner, OLD.upper())
    assert answer.status_code == 200
    assert "<title>Email address not changed" in answer.text
    assert everything(world.engine, reference) == before
    # Nor does it open the concern: that takes the link or the code.
    assert reference not in world.learner.get("/concerns/status").text


def test_signing_out_ends_the_chance_to_change_the_address(world: World) -> None:
    reference, _ = send_form(world)
    assert opens(world.learner, link_in(learner_emails(world.engine, reference)[0]), reference)
    status = world.learner.get("/concerns/status").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', status)
    assert token
    out = world.learner.post("/concerns/status/sign-out", data={"csrf_token": token.group(1)})
    assert out.status_code == 303
    before = everything(world.engine, reference)

    # The next person at the same (shared) computer, a few minutes later.
    world.clock.now += timedelta(minutes=5)
    shown = world.learner.get(CHANGE)
    assert shown.status_code == 403 and OLD not in shown.text
    token = world.learner.csrf("/concerns/new")
    sent = world.learner.post(
        CHANGE, data={"csrf_token": token, "reference": reference, "email": NEW}
    )
    assert sent.status_code == 403
    assert everything(world.engine, reference) == before
    assert reference not in world.learner.get("/concerns/status").text


@pytest.mark.parametrize(
    "who",
    ["another browser", "after the time limit", "anonymous concern"],
)
def test_a_change_it_may_not_make_is_refused_and_changes_nothing(world: World, who: str) -> None:
    if who == "anonymous concern":
        token = world.learner.csrf("/concerns/new")
        world.learner.post(
            "/concerns/new",
            data={
                "csrf_token": token,
                **answers(confidentiality="anonymous", name="", email=""),
            },
        )
        page = world.learner.get("/concerns/confirmation").text
        assert CHANGE not in page
        found = REFERENCE.search(page)
        assert found
        reference = found.group(1)
        browser = world.learner
    else:
        reference, _ = send_form(world)
        browser = world.other if who == "another browser" else world.learner
        if who == "after the time limit":
            world.clock.now += CHANGE_EMAIL_WITHIN + timedelta(seconds=1)
    before = everything(world.engine, reference)

    shown = browser.get(CHANGE)
    assert shown.status_code == 403
    assert "<title>You cannot change the email address here" in shown.text
    assert "Nothing has been changed" in shown.text
    # Not "raise it again" (a second concern, the first still mailing the stranger): the quality
    # team, with the reference.
    assert "raise your concern" not in shown.text
    assert "contact your regional quality team" in shown.text
    token = browser.csrf("/concerns/new")
    sent = browser.post(CHANGE, data={"csrf_token": token, "reference": reference, "email": NEW})
    assert sent.status_code == 403
    assert "You cannot change the email address here" in sent.text
    assert everything(world.engine, reference) == before


def test_a_bad_address_is_shown_with_the_error_summary_and_changes_nothing(world: World) -> None:
    reference, _ = send_form(world)
    before = everything(world.engine, reference)
    answer = change(world.learner, "priya at example")
    assert answer.status_code == 400
    text = answer.text
    assert "<title>Error: Change your email address" in text
    assert "There is a problem" in text and 'href="#email"' in text
    assert "Enter an email address in the correct format" in text
    assert 'value="priya at example"' in text
    assert everything(world.engine, reference) == before


def test_without_the_csrf_token_it_is_refused_and_changes_nothing(world: World) -> None:
    reference, _ = send_form(world)
    before = everything(world.engine, reference)
    answer = world.learner.post(CHANGE, data={"reference": reference, "email": NEW})
    assert answer.status_code == 403
    assert everything(world.engine, reference) == before


def test_a_concern_still_waiting_to_be_raised_is_raised_first(engine: Engine) -> None:
    load_example_directory(engine)
    clock = Clock(MONDAY_MORNING)
    # As under `concerns serve`: the form only stores; the intake tick (not run here) raises.
    with web_client(make_app(engine, clock=clock, on_received=lambda: None)) as learner:
        world = World(engine=engine, clock=clock, learner=learner, other=learner)
        reference, _ = send_form(world)
        with transaction(engine) as session:
            assert repositories.concern_by_reference(session, reference) is None
        assert change(learner, NEW).status_code == 200
    [gave_up, again] = learner_emails(engine, reference)
    assert (gave_up.recipient_address, gave_up.status) == (OLD, "failed")
    assert (again.recipient_address, again.status) == (NEW, "pending")
    with transaction(engine) as session:
        kinds = list(session.exec(select(Event.kind)))
    assert kinds.count("received") == 1 and kinds.count("learner_email_changed") == 1


def test_the_old_record_stays_while_another_concern_is_its(world: World) -> None:
    first, _ = send_form(world)
    world.clock.now += timedelta(minutes=1)
    second, _ = send_form(world)  # another concern sent with the same address
    old_learner = world.concern(second).learner_id
    assert world.concern(first).learner_id == old_learner
    assert change(world.learner, NEW).status_code == 200  # the second one's
    assert world.concern(second).learner_id != old_learner
    assert world.concern(first).learner_id == old_learner
    with transaction(world.engine) as session:
        kept = session.get(Learner, old_learner)
        assert kept is not None and kept.email == OLD


def test_the_owner_of_the_mistyped_address_does_not_get_the_learners_name(world: World) -> None:
    reference, _ = send_form(world)
    assert change(world.learner, NEW).status_code == 200
    # Later, whoever owns the mistyped address raises a concern of their own.
    token = world.other.csrf("/concerns/new")
    sent = world.other.post(
        "/concerns/new",
        data={"csrf_token": token, **answers(email=OLD, name="Sam Stranger")},
    )
    assert sent.status_code == 303
    found = REFERENCE.search(world.other.get("/concerns/confirmation").text)
    assert found
    theirs = world.concern(found.group(1))
    with transaction(world.engine) as session:
        learner = session.get(Learner, theirs.learner_id)
        assert learner is not None
        assert (learner.email, learner.name) == (OLD, "Sam Stranger")
    assert world.concern(reference).learner_id != theirs.learner_id


def test_other_unsent_email_to_the_old_address_goes_to_the_new_one(world: World) -> None:
    reference, _ = send_form(world)
    give_feedback(world.engine, reference, world.clock.now)
    [_, feedback] = learner_emails(world.engine, reference)
    assert (feedback.kind, feedback.recipient_address) == ("learner_feedback", OLD)
    assert change(world.learner, NEW).status_code == 200

    rows = {
        (row.kind, row.recipient_address): row for row in learner_emails(world.engine, reference)
    }
    assert rows["learner_feedback", OLD].status == "failed"
    again = rows["learner_feedback", NEW]
    assert again.status == "pending"
    assert again.idempotency_key != feedback.idempotency_key
    assert (again.subject, again.body_text.split(LINK_PATH)[0]) == (
        feedback.subject,
        feedback.body_text.split(LINK_PATH)[0],
    )
    # Its link is signed for the new version: it opens the concern, the given-up one's no more.
    with web_client(make_app(world.engine, clock=world.clock)) as fresh:
        assert opens(fresh, link_in(again), reference)
        assert not opens(fresh, link_in(feedback), reference)
        assert again.body_html and link_in(again)[len(LINK_PATH) :] in again.body_html
        assert link_in(feedback)[len(LINK_PATH) :] not in again.body_html
    # Queued again under the learner's usual key, it is a repeat of the one sent again.
    with transaction(world.engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None
        queued = queue_to_learner(
            session,
            concern=concern,
            facts=facts_of(session, concern, policy(), now=world.clock()),
            kind=MessageKind.LEARNER_FEEDBACK,
            now=world.clock(),
        )
    assert not queued
    assert len(learner_emails(world.engine, reference)) == 4  # two acknowledgements, two feedback


def test_email_a_dispatcher_is_sending_is_left_to_it(world: World) -> None:
    reference, _ = send_form(world)
    store = SqlOutboxStore(world.engine)
    now = world.clock()
    [ack] = [
        claimed
        for claimed in store.claim_due(now=now, limit=10, lease=timedelta(minutes=5))
        if claimed.recipient_address == OLD
    ]
    assert store.hold(
        message_id=ack.id, claim_token=ack.claim_token, until=now + timedelta(minutes=1)
    )
    # The dispatcher is sending it to the old address when the learner corrects it.
    assert change(world.learner, NEW).status_code == 200
    assert store.mark_sent(message_id=ack.id, claim_token=ack.claim_token, now=now)
    rows = {(row.recipient_address, row.status) for row in learner_emails(world.engine, reference)}
    # The record is true: it went to the old address (its link no longer opens the concern),
    # and the acknowledgement goes to the new one.
    assert rows == {(OLD, "sent"), (NEW, "pending")}


def test_a_closed_concern_keeps_its_address(world: World) -> None:
    reference, _ = send_form(world)
    with transaction(world.engine) as session:
        found = repositories.concern_by_reference(session, reference)
        concern = repositories.lock_concern(session, found.id or 0) if found else None
        assert concern is not None
        close_concern(
            session=session,
            concern=concern,
            by=Actor(kind="staff", channel="web"),
            reason="Raised in error",
            now=world.clock.now,
            policy=policy(),
        )
    before = everything(world.engine, reference)
    answer = change(world.learner, NEW)
    assert answer.status_code == 403
    assert f'<strong id="reference">{reference}</strong> has been closed' in answer.text
    # The quality team cannot change a closed concern's address either: not promised.
    assert "They can change it" not in answer.text
    assert "contact your regional quality team" in answer.text
    # No fresh "we have received your concern" to anyone, nothing changed.
    assert everything(world.engine, reference) == before


def test_the_same_form_sent_again_keeps_the_note_of_its_first_sending(world: World) -> None:
    form = {**drawn_form(world.learner), **answers(email=OLD)}
    assert world.learner.post("/concerns/new", data=form).status_code == 303
    found = REFERENCE.search(world.learner.get("/concerns/confirmation").text)
    assert found
    reference = found.group(1)
    assert change(world.learner, NEW).status_code == 200

    # The browser sends the same form again a minute later (its history, a resend).
    world.clock.now += timedelta(minutes=1)
    assert world.learner.post("/concerns/new", data=form).status_code == 303
    page = world.learner.get("/concerns/confirmation").text
    assert reference in page
    # The corrected address is shown, not the mistyped one the form still holds...
    assert f'<strong id="email">{NEW}</strong>' in page and OLD not in page
    assert f'<strong id="current-email">{NEW}</strong>' in world.learner.get(CHANGE).text
    # ...and the time to correct it still runs from the first sending.
    world.clock.now += CHANGE_EMAIL_WITHIN - timedelta(seconds=30)
    assert world.learner.get(CHANGE).status_code == 403


def test_a_note_does_not_change_another_concern_named_in_the_form(world: World) -> None:
    mine, _ = send_form(world)
    token = world.other.csrf("/concerns/new")
    sent = world.other.post(
        "/concerns/new", data={"csrf_token": token, **answers(email=OLD, name="Sam Stranger")}
    )
    assert sent.status_code == 303
    found = REFERENCE.search(world.other.get("/concerns/confirmation").text)
    assert found
    theirs = found.group(1)
    before = everything(world.engine, theirs), everything(world.engine, mine)

    answer = change(world.learner, NEW, reference=theirs)
    assert answer.status_code == 403
    assert (everything(world.engine, theirs), everything(world.engine, mine)) == before
    assert theirs not in world.learner.get("/concerns/status").text


def test_only_contacts_already_told_of_the_concern_are_told_of_the_corrected_address(
    world: World,
) -> None:
    """The clinical tutor is assigned as the level's secondary contact but told nothing until
    the acknowledgement is late: a notice that 'the address we gave you was wrong' would be
    their first word of the concern, and of the learner's name."""
    reference, _ = send_form(world)
    world.clock.now += timedelta(minutes=5)
    assert change(world.learner, NEW).status_code == 200
    with transaction(world.engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None
        rows = repositories.outbox_of(session, concern.id or 0)
        assigned = {a.role for a, _ in repositories.assignments_of(session, concern.id or 0)}
        told_before = {
            row.recipient_role
            for row in rows
            if row.kind != "learner_address_corrected" and row.recipient_role != "learner"
        }
        noticed = {row.recipient_role for row in rows if row.kind == "learner_address_corrected"}
    assert "clinical_tutor" in assigned and "clinical_tutor" not in told_before
    assert "supervisor" in noticed
    assert noticed <= told_before, noticed - told_before
