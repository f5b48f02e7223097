"""The learner's status page: look-up by reference and code or signed link, a learner-safe
timeline, adding information, and answering feedback."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from escalation.actions import Actor, record_feedback
from intake.service import submit_concern
from intake.submission import Channel, parse_submission
from intake.web.security import RateLimitRules
from intake.web.status import INFORMATION_LIMIT, NOT_RIGHT
from notifications.messages import when
from routing.deadlines import silence_close_at
from storage import migrate, repositories
from storage.db import create_db_engine, transaction
from storage.tables import Concern
from tests.integration.helpers import (
    MONDAY_MORNING,
    Clock,
    concern_input,
    example_placement,
    load_example_directory,
    policy,
    rate_by_hand,
)
from tests.integration.webclient import WebClient, make_app, web_client

STATUS = "/concerns/status"
FEEDBACK = "We have protected your teaching time from next week."
LINK = re.compile(r"/concerns/status/link/(\S+)")


@dataclass
class World:
    engine: Engine
    clock: Clock
    client: WebClient


def make_world(engine: Engine, rules: RateLimitRules | None = None) -> Iterator[World]:
    clock = Clock(MONDAY_MORNING + timedelta(hours=1))
    with web_client(make_app(engine, clock=clock, rate_limits=rules)) as client:
        yield World(engine=engine, clock=clock, client=client)


@pytest.fixture
def world(sqlite_engine: Engine) -> Iterator[World]:
    load_example_directory(sqlite_engine)
    yield from make_world(sqlite_engine)


def raise_concern(engine: Engine, confidentiality: str) -> tuple[str, str | None]:
    changes: dict[str, object] = {"confidentiality": confidentiality}
    if confidentiality == "anonymous":
        changes["learner"] = {"group": "foundation", "programme": "Foundation Programme FY1"}
    submitted = submit_concern(
        engine=engine,
        concern=parse_submission(concern_input(example_placement(engine), **changes)),
        channel=Channel.WEB,
        now=MONDAY_MORNING,
        policy=policy(),
    )
    return submitted.reference, submitted.code


def look_up(client: WebClient, reference: str, code: str) -> httpx.Response:
    token = client.csrf(STATUS)
    return client.post(STATUS, data={"csrf_token": token, "reference": reference, "code": code})


def give_feedback(engine: Engine, reference: str, at: datetime) -> None:
    with transaction(engine) as session:
        found = repositories.concern_by_reference(session, reference)
        assert found is not None
        concern = repositories.lock_concern(session, found.id or 0)
        assert concern is not None
        record_feedback(
            session=session,
            concern=concern,
            by=Actor(kind="staff", channel="web"),
            text=FEEDBACK,
            now=at,
            policy=policy(),
        )


def concern_now(engine: Engine, reference: str) -> Concern:
    """The concern as it is stored now (read in a transaction of its own)."""
    with transaction(engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None
        return concern


def event_kinds(engine: Engine, reference: str) -> list[str]:
    with transaction(engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None
        return [event.kind for event in repositories.events_of(session, concern.id or 0)]


def learner_link(engine: Engine, reference: str) -> str:
    with transaction(engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None
        bodies = [
            message.body_text
            for message in repositories.outbox_of(session, concern.id or 0)
            if message.recipient_role == "learner"
        ]
    found = LINK.search(bodies[0])
    assert found, "no status link in the learner's email"
    return "/concerns/status/link/" + found.group(1)


HIDDEN = re.compile(r'<input type="hidden" name="(reference|feedback)" value="([^"]*)">')


def post_action(client: WebClient, path: str, **data: str) -> httpx.Response:
    """Press an action's button as the status page draws it: its CSRF token, the concern it is
    for and (answers to feedback) the feedback it answers."""
    page = client.get(STATUS).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token, page
    hidden = dict(HIDDEN.findall(page))
    return client.post(path, data={"csrf_token": token.group(1), **hidden, **data})


# --- look-up ------------------------------------------------------------------------------------


def test_an_anonymous_learner_looks_up_with_reference_and_code(world: World) -> None:
    reference, code = raise_concern(world.engine, "anonymous")
    assert code is not None
    form = world.client.get(STATUS)
    assert form.status_code == 200 and 'name="code"' in form.text

    # Lower case, spaces and no dashes are all fine.
    answer = look_up(world.client, f" {reference.lower()} ", code.replace("-", "").lower())
    assert answer.status_code == 303 and answer.headers["location"] == STATUS
    assert code not in str(world.client._client.cookies)

    page = world.client.get(STATUS)
    assert page.status_code == 200
    assert reference in page.text and "We received your concern" in page.text
    assert "Where it is now" in page.text and "Pathway 1: your placement" in page.text
    assert "Feedback due by" in page.text
    assert "I&#39;m satisfied" not in page.text and "I'm satisfied" not in page.text


def test_a_wrong_code_and_an_unknown_reference_get_the_same_answer(world: World) -> None:
    reference, _ = raise_concern(world.engine, "anonymous")
    named, _ = raise_concern(world.engine, "named")
    wrong_code = look_up(world.client, reference, "AAAA-BBBB-CCCC")
    unknown = look_up(world.client, "LC-2026-999999", "AAAA-BBBB-CCCC")
    not_anonymous = look_up(world.client, named, "AAAA-BBBB-CCCC")
    assert wrong_code.status_code == unknown.status_code == not_anonymous.status_code == 400
    assert wrong_code.text == unknown.text == not_anonymous.text
    assert NOT_RIGHT in wrong_code.text and "<title>Error: " in wrong_code.text
    assert world.client.get(STATUS).text.count('name="code"') == 1


def test_missing_fields_show_the_error_summary(world: World) -> None:
    answer = look_up(world.client, "", "")
    assert answer.status_code == 400
    assert "There is a problem" in answer.text
    assert "Enter your reference" in answer.text and "Enter your follow-up code" in answer.text


def test_look_ups_are_rate_limited(sqlite_engine: Engine) -> None:
    load_example_directory(sqlite_engine)
    for world in make_world(sqlite_engine, RateLimitRules(status_lookups="3/15 minutes")):
        for _ in range(3):
            assert look_up(world.client, "LC-2026-999999", "AAAA").status_code == 400
        limited = look_up(world.client, "LC-2026-999999", "AAAA")
        assert limited.status_code == 429 and "You have tried too many times" in limited.text


def test_look_ups_are_rate_limited_per_reference(sqlite_engine: Engine) -> None:
    load_example_directory(sqlite_engine)
    for world in make_world(sqlite_engine, RateLimitRules(lookups_per_reference="2/15 minutes")):
        reference, code = raise_concern(world.engine, "anonymous")
        assert code is not None
        for _ in range(2):
            assert look_up(world.client, reference, "AAAA").status_code == 400
        # Even the right code waits: the reference is being guessed at, however it is written
        # (what follows the longest reference is ignored by the look-up, and by the count).
        assert look_up(world.client, reference.lower(), code).status_code == 429
        padded = f" {reference}{' ' * 30}Y"
        assert look_up(world.client, padded, code).status_code == 429


def test_a_look_up_without_csrf_is_refused(world: World) -> None:
    reference, code = raise_concern(world.engine, "anonymous")
    world.client.get(STATUS)
    answer = world.client.post(STATUS, data={"reference": reference, "code": code or ""})
    assert answer.status_code == 403
    assert "We received your concern" not in world.client.get(STATUS).text


# --- signed links ----------------------------------------------------------------------------


def test_the_link_in_the_learners_email_opens_the_status_page(world: World) -> None:
    reference, _ = raise_concern(world.engine, "confidential")
    answer = world.client.get(learner_link(world.engine, reference))
    assert answer.status_code == 303 and answer.headers["location"] == STATUS
    page = world.client.get(STATUS)
    assert page.status_code == 200 and reference in page.text


def test_tampered_or_expired_links_are_refused(world: World) -> None:
    reference, _ = raise_concern(world.engine, "named")
    links = policy().status_links
    assert links is not None
    token = links.token_for(reference, world.clock.now)
    tampered = ("A" if token[0] != "A" else "B") + token[1:]
    old = links.token_for(reference, world.clock.now - timedelta(days=181))
    for bad in (tampered, old, "nonsense"):
        answer = world.client.get(f"/concerns/status/link/{bad}")
        assert answer.status_code == 400
        assert "link you used has expired" in answer.text and 'name="code"' in answer.text
    assert reference not in world.client.get(STATUS).text


# --- what the learner sees -----------------------------------------------------------------------


def test_the_timeline_is_learner_safe(world: World) -> None:
    reference, _ = raise_concern(world.engine, "confidential")
    with transaction(world.engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None
        contacts = [
            (contact.name, contact.email)
            for _, contact in repositories.assignments_of(session, concern.id or 0)
        ]
        reasons = list(concern.risk_reasons)
    assert contacts
    give_feedback(world.engine, reference, MONDAY_MORNING + timedelta(minutes=30))
    world.client.get(learner_link(world.engine, reference))
    post_action(world.client, STATUS + "/concerned")
    page = world.client.get(STATUS).text

    for words in (
        "We received your concern",
        "Acknowledged at pathway 1",
        "Feedback given at pathway 1",
        FEEDBACK,
        "Moved to pathway 2",
        "You told us you remain concerned after feedback at pathway 1",
        "Feedback due by",
    ):
        assert words in page, words
    for name, email in contacts:
        assert not name or name not in page
        assert not email or email not in page
    assert "Priya Testlearner" not in page and "priya.testlearner" not in page
    for reason in reasons:
        assert reason not in page


# --- actions ---------------------------------------------------------------------------------


@pytest.fixture
def signed_in(world: World) -> str:
    reference, code = raise_concern(world.engine, "anonymous")
    assert code is not None
    assert look_up(world.client, reference, code).status_code == 303
    return reference


def test_adding_information_stores_an_event(world: World, signed_in: str) -> None:
    answer = post_action(world.client, STATUS + "/information", information="It happened again <b>")
    assert answer.status_code == 303
    assert event_kinds(world.engine, signed_in)[-1] == "learner_added_information"
    page = world.client.get(STATUS).text
    assert "Your information has been added to your concern." in page
    assert "You added information" in page and "It happened again &lt;b&gt;" in page

    empty = post_action(world.client, STATUS + "/information", information="  ")
    assert empty.status_code == 400 and "Enter the information you want to add" in empty.text
    long = post_action(world.client, STATUS + "/information", information="x" * 5001)
    assert long.status_code == 400 and "5,000 characters or fewer" in long.text
    assert event_kinds(world.engine, signed_in).count("learner_added_information") == 1


def test_information_a_confidential_learner_adds_reaches_contacts_without_their_name(
    world: World,
) -> None:
    """As the form's own words are: someone signing "Priya" under what they add must not be named
    to their supervisor through it. The same words sent twice at once are still added once."""
    reference, _ = raise_concern(world.engine, "confidential")
    assert world.client.get(learner_link(world.engine, reference)).status_code in (302, 303)
    page = world.client.get(STATUS).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    signed = "It happened again. Priya (priya.testlearner@example.nhs.uk)"
    form = {"csrf_token": token.group(1), **dict(HIDDEN.findall(page)), "information": signed}
    for _ in range(2):
        assert world.client.post(STATUS + "/information", data=form).status_code == 303
    with transaction(world.engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None
        added = [
            event.detail["text"]
            for event in repositories.events_of(session, concern.id or 0)
            if event.kind == "learner_added_information"
        ]
    assert added == ["It happened again. [name removed] ([name removed])"]


def test_information_that_raises_the_risk_rates_the_concern_again(
    world: World, signed_in: str
) -> None:
    """Added words are read as the concern's own are: an anonymous learner has no other way to
    tell anyone that a patient has now been harmed, and it must not wait for someone to read it."""

    def state() -> tuple[str, int, bool, list[str]]:
        concern = concern_now(world.engine, signed_in)
        with transaction(world.engine) as session:
            alerts = [
                message.recipient_role
                for message in repositories.outbox_of(session, concern.id or 0)
                if message.kind == "high_risk_alert"
            ]
            return concern.risk_level, concern.impact, concern.patient_safety, alerts

    assert state() == ("medium", 3, False, [])
    triaged = event_kinds(world.engine, signed_in).count("triaged")
    post_action(world.client, STATUS + "/information", information="It happened again on Friday.")
    assert state() == ("medium", 3, False, [])
    assert event_kinds(world.engine, signed_in).count("triaged") == triaged

    harmed = "Last night we were left unsupervised with no senior cover and a patient was harmed."
    assert post_action(world.client, STATUS + "/information", information=harmed).status_code == 303
    level, impact, patient_safety, alerts = state()
    assert (level, impact, patient_safety) == ("high", 4, True)
    # The dean and quality team are alerted at once, as for a concern raised high risk.
    assert sorted(alerts) == ["dean", "quality_team"]
    assert event_kinds(world.engine, signed_in)[-3:] == [
        "learner_added_information",
        "triaged",
        "high_risk_alert",
    ]


def test_information_rated_high_under_a_staff_rating_tells_the_dean_and_quality_team(
    world: World, signed_in: str
) -> None:
    """The dean rated the concern down; the learner then writes that a patient was harmed. The
    staff rating stands (nobody else is alerted as for a high-risk concern), but the people who
    set ratings are told at once, and only once."""
    with transaction(world.engine) as session:
        found = repositories.concern_by_reference(session, signed_in)
        assert found is not None
        concern = repositories.lock_concern(session, found.id or 0)
        assert concern is not None
        rate_by_hand(session, concern, likelihood=2, impact=2, now=world.clock.now)

    def told() -> list[tuple[str, str]]:
        concern = concern_now(world.engine, signed_in)
        with transaction(world.engine) as session:
            return sorted(
                (message.kind, message.recipient_role)
                for message in repositories.outbox_of(session, concern.id or 0)
                if message.kind in ("high_risk_alert", "rated_high_over_override")
                and message.channel == "email"
            )

    harmed = "Last night we were left unsupervised with no senior cover and a patient was harmed."
    for _ in range(2):
        world.clock.now += timedelta(minutes=5)
        assert post_action(world.client, STATUS + "/information", information=harmed).status_code
    concern = concern_now(world.engine, signed_in)
    assert (concern.risk_level, concern.likelihood, concern.impact) == ("low", 2, 2)
    assert concern.auto_impact == 4
    assert told() == [
        ("rated_high_over_override", "dean"),
        ("rated_high_over_override", "quality_team"),
    ]
    with transaction(world.engine) as session:
        [alert] = [
            message
            for message in repositories.outbox_of(session, concern.id or 0)
            if message.kind == "rated_high_over_override" and message.recipient_role == "dean"
        ]
    assert "triage now rates the concern high risk: " in alert.body_text
    assert "The rating staff set (" in alert.body_text and "still stands" in alert.body_text
    assert event_kinds(world.engine, signed_in).count("rated_high_over_override") == 1


def test_information_that_raises_nothing_never_lowers_the_rating(world: World) -> None:
    """Another open concern about the department raised this one's likelihood; it closes. The
    learner adding 'It happened again' must not be what lowers their concern's rating."""
    earlier, _ = raise_concern(world.engine, "named")
    reference, code = raise_concern(world.engine, "anonymous")
    assert code is not None and look_up(world.client, reference, code).status_code == 303

    raised = concern_now(world.engine, reference).likelihood
    with transaction(world.engine) as session:
        session.execute(
            text("UPDATE concerns SET status = 'closed' WHERE reference = :r"), {"r": earlier}
        )
    triaged = event_kinds(world.engine, reference).count("triaged")
    post_action(world.client, STATUS + "/information", information="It happened again.")
    assert concern_now(world.engine, reference).likelihood == raised
    assert event_kinds(world.engine, reference).count("triaged") == triaged


def test_information_is_not_rerated_for_a_concern_raised_about_the_department_since(
    world: World, signed_in: str
) -> None:
    """Only the learner's words decide a re-rating: another concern about the department since
    (one more related concern) must not make 'Thanks.' alert the dean and shorten deadlines."""
    raise_concern(world.engine, "named")
    triaged = event_kinds(world.engine, signed_in).count("triaged")
    post_action(world.client, STATUS + "/information", information="Thanks.")
    concern = concern_now(world.engine, signed_in)
    assert (concern.risk_level, concern.likelihood) == ("medium", 3)
    assert event_kinds(world.engine, signed_in).count("triaged") == triaged


def test_the_same_information_sent_twice_at_once_is_added_once(
    world: World, signed_in: str
) -> None:
    """A second press of "Add information" without JavaScript (the browser shows the second
    answer): added once, and both told it was added. The same words later are added again."""
    page = world.client.get(STATUS).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    form = {"csrf_token": token.group(1), **dict(HIDDEN.findall(page)), "information": "Again."}
    for _ in range(2):
        assert world.client.post(STATUS + "/information", data=form).status_code == 303
    assert event_kinds(world.engine, signed_in).count("learner_added_information") == 1
    world.clock.now += timedelta(minutes=3)
    assert world.client.post(STATUS + "/information", data=form).status_code == 303
    assert event_kinds(world.engine, signed_in).count("learner_added_information") == 2


def test_satisfied_closes_the_concern(world: World, signed_in: str) -> None:
    early = post_action(world.client, STATUS + "/satisfied")
    assert early.status_code == 400 and "has no feedback yet" in early.text

    give_feedback(world.engine, signed_in, world.clock.now)
    page = world.client.get(STATUS).text
    assert "I&#39;m satisfied" in page and "I remain concerned" in page
    # The learner is told when it closes if they say nothing (10 working days of silence).
    close_after = concern_now(world.engine, signed_in).close_after
    assert close_after is not None
    closes = when(close_after, policy().calendar.timezone)
    assert f"If we do not hear from you, it closes on {closes}." in page
    # Writing to us is not silence: the closing date moves to the working days after it.
    world.clock.now += timedelta(minutes=20)
    post_action(world.client, STATUS + "/information", information="Nothing has changed yet.")
    concern = concern_now(world.engine, signed_in)
    expected = silence_close_at(
        feedback_at=world.clock.now, calendar=policy().calendar, policy=policy().deadlines
    )
    assert concern.close_after == expected and concern.next_due_at <= expected
    later = when(expected, policy().calendar.timezone)
    assert later != closes
    page = world.client.get(STATUS).text
    assert f"If we do not hear from you, it closes on {later}." in page
    # With JavaScript, a second press of an action's button is ignored (nhsuk-frontend's
    # prevent-double-click): satisfied, remain concerned and add information alike.
    assert page.count('data-prevent-double-click="true"') == 3
    assert post_action(world.client, STATUS + "/satisfied").status_code == 303
    assert event_kinds(world.engine, signed_in)[-1] == "closed"
    page = world.client.get(STATUS).text
    assert "Your concern is now closed" in page and "Closed" in page
    assert "You told us you are satisfied with the feedback." in page
    assert "Add information" not in page and "I remain concerned" not in page


def test_remaining_concerned_moves_it_to_pathway_2(world: World, signed_in: str) -> None:
    give_feedback(world.engine, signed_in, world.clock.now)
    assert post_action(world.client, STATUS + "/concerned").status_code == 303
    with transaction(world.engine) as session:
        concern = repositories.concern_by_reference(session, signed_in)
        assert concern is not None and concern.pathway == 2
    page = world.client.get(STATUS).text
    assert "Your concern has moved to pathway 2" in page
    assert "Pathway 2: your school or university" in page and "Moved to pathway 2" in page
    # The new level has not given feedback yet.
    assert "I remain concerned" not in page


@pytest.mark.parametrize(
    ("path", "told", "last"),
    [
        ("/concerned", "Your concern has moved to pathway 2", "contacts_told"),
        ("/satisfied", "Your concern is now closed", "closed"),
    ],
)
def test_an_answer_sent_twice_at_once_is_taken_once_and_both_told_so(
    world: World, signed_in: str, path: str, told: str, last: str
) -> None:
    """A second tap while the first is still on its way, without JavaScript or on a network
    slower than its one-second guard: the browser shows the second answer. It is taken once,
    and told what the first did, not that nothing was changed."""
    give_feedback(world.engine, signed_in, world.clock.now)
    page = world.client.get(STATUS).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    form = {"csrf_token": token.group(1), **dict(HIDDEN.findall(page))}
    assert world.client.post(STATUS + path, data=form).status_code == 303
    world.clock.now += timedelta(seconds=5)
    again = world.client.post(STATUS + path, data=form)
    assert again.status_code == 303
    shown = world.client.get(STATUS).text
    assert told in shown and "nothing has been changed" not in shown
    kinds = event_kinds(world.engine, signed_in)
    assert kinds[-1] == last
    assert kinds.count("escalated") + kinds.count("closed") == 1
    # Later, the same page's answer is one from a page the concern has moved on from.
    world.clock.now += timedelta(minutes=3)
    late = world.client.post(STATUS + path, data=form)
    assert late.status_code == 400
    assert event_kinds(world.engine, signed_in) == kinds


def test_actions_without_csrf_are_refused_and_change_nothing(world: World, signed_in: str) -> None:
    give_feedback(world.engine, signed_in, world.clock.now)
    before = event_kinds(world.engine, signed_in)
    for path, data in (
        ("/information", {"information": "more"}),
        ("/satisfied", {}),
        ("/concerned", {}),
        ("/sign-out", {}),
    ):
        answer = world.client.post(STATUS + path, data={**data, "csrf_token": "forged"})
        assert answer.status_code == 403
    assert event_kinds(world.engine, signed_in) == before
    assert signed_in in world.client.get(STATUS).text


def test_information_sent_after_the_session_ended_is_shown_back_to_copy(
    world: World, signed_in: str
) -> None:
    """Sent from our own page with a token of a session gone: nothing is added, the learner is
    asked to look the concern up again, and what they wrote is there to copy. From another
    site's page the words are never shown back."""
    before = event_kinds(world.engine, signed_in)
    world.client.clear_cookies()
    written = "It happened again on Friday <b>night</b>."
    ours = world.client.post(
        STATUS + "/information",
        data={"csrf_token": "gone", "reference": signed_in, "information": written},
        headers={"Sec-Fetch-Site": "same-origin"},
    )
    assert ours.status_code == 403
    assert "What you wrote" in ours.text
    assert "It happened again on Friday &lt;b&gt;night&lt;/b&gt;." in ours.text
    elsewhere = world.client.post(
        STATUS + "/information",
        data={"csrf_token": "gone", "reference": signed_in, "information": "Ring 0900 000 000"},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert elsewhere.status_code == 403 and "0900" not in elsewhere.text
    assert event_kinds(world.engine, signed_in) == before


def test_a_page_older_than_the_session_changes_nothing_and_is_shown_again(world: World) -> None:
    """The session ended and the learner opened the concern again in another tab: the first
    tab's page carries the old session's token. Access is open, so they are not asked to look
    it up again; nothing is changed, and the page is shown as it is now with what they wrote."""
    reference, code = raise_concern(world.engine, "anonymous")
    assert code is not None
    assert look_up(world.client, reference, code).status_code == 303
    give_feedback(world.engine, reference, world.clock.now)
    old = world.client.csrf(STATUS)
    world.client.clear_cookies()
    assert look_up(world.client, reference, code).status_code == 303
    before = event_kinds(world.engine, reference)
    written = "It happened again on Friday <b>night</b>."
    stale = {"csrf_token": old, "reference": reference}
    same_origin = {"Sec-Fetch-Site": "same-origin"}
    added = world.client.post(
        STATUS + "/information", data={**stale, "information": written}, headers=same_origin
    )
    assert added.status_code == 403
    assert "This page was out of date" in added.text
    assert "What you wrote" not in added.text  # not the look-up page: access is still open
    assert ">It happened again on Friday &lt;b&gt;night&lt;/b&gt;.</textarea>" in added.text
    assert f"Reference {reference}" in added.text
    for path in ("/satisfied", "/concerned"):
        pressed = world.client.post(STATUS + path, data=stale, headers=same_origin)
        assert pressed.status_code == 403
        assert "This page was out of date" in pressed.text and "I remain concerned" in pressed.text
    # Too long, or empty: said so, with all of it kept (sent again as shown, it would be cut).
    tail = "x" * INFORMATION_LIMIT + "TAILEND"
    too_long = world.client.post(
        STATUS + "/information", data={**stale, "information": tail}, headers=same_origin
    )
    assert too_long.status_code == 400 and "5,000 characters or fewer" in too_long.text
    assert "TAILEND</textarea>" in too_long.text
    empty = world.client.post(
        STATUS + "/information", data={**stale, "information": " "}, headers=same_origin
    )
    assert empty.status_code == 400
    summary = re.search(r'href="#information">\s*Enter the information you want to add', empty.text)
    assert summary, "the error is not linked to the information box"
    # From another site's page, with the session's access open: refused, nothing shown back.
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://elsewhere.example"}):
        forged = world.client.post(
            STATUS + "/information",
            data={**stale, "information": "Ring 0900 000 000"},
            headers=headers,
        )
        assert forged.status_code == 403 and "0900" not in forged.text
        assert f"Reference {reference}" not in forged.text
    assert event_kinds(world.engine, reference) == before
    assert concern_now(world.engine, reference).status == "open"
    # The page it shows works: its token is this session's.
    assert post_action(world.client, STATUS + "/information", information="More").status_code == 303


def test_a_page_older_than_the_session_of_a_closed_concern_says_it_has_closed(
    world: World,
) -> None:
    """Sent from a page older than the session once the concern has closed, information is not
    asked for again (it can no longer be added), nor an answer to feedback."""
    reference, code = raise_concern(world.engine, "anonymous")
    assert code is not None
    assert look_up(world.client, reference, code).status_code == 303
    give_feedback(world.engine, reference, world.clock.now)
    old = world.client.csrf(STATUS)
    assert post_action(world.client, STATUS + "/satisfied").status_code == 303
    world.client.clear_cookies()
    assert look_up(world.client, reference, code).status_code == 303
    stale = {"csrf_token": old, "reference": reference}
    same_origin = {"Sec-Fetch-Site": "same-origin"}
    added = world.client.post(
        STATUS + "/information", data={**stale, "information": "And more"}, headers=same_origin
    )
    assert added.status_code == 403
    assert f"{reference} is closed: information can no longer be added here" in added.text
    assert "This page was out of date" not in added.text
    assert ">And more</textarea>" in added.text
    pressed = world.client.post(STATUS + "/concerned", data=stale, headers=same_origin)
    assert pressed.status_code == 403 and "your concern has moved on since" in pressed.text
    assert concern_now(world.engine, reference).status == "closed"


def test_access_ends_after_30_minutes_unused(world: World, signed_in: str) -> None:
    for _ in range(3):  # used every 29 minutes: still open, well past 30 minutes in all
        world.clock.now += timedelta(minutes=29)
        assert signed_in in world.client.get(STATUS).text
    token = world.client.csrf(STATUS)
    world.clock.now += timedelta(minutes=31)
    page = world.client.get(STATUS)
    assert signed_in not in page.text and "after 30 minutes without using" in page.text
    late = "It happened again on Friday night."
    answer = world.client.post(
        STATUS + "/information",
        data={"csrf_token": token, "reference": signed_in, "information": late},
    )
    # Nothing is added, and what the learner wrote is there to copy before they look it up.
    assert answer.status_code == 403 and "What you wrote has not been sent" in answer.text
    assert late in answer.text
    assert "learner_added_information" not in event_kinds(world.engine, signed_in)


def test_access_ends_4_hours_after_it_was_granted_however_it_is_used(
    world: World, signed_in: str
) -> None:
    for _ in range(11):  # 3 h 40 min, used every 20 minutes
        world.clock.now += timedelta(minutes=20)
        assert signed_in in world.client.get(STATUS).text
    world.clock.now += timedelta(minutes=21)
    page = world.client.get(STATUS).text
    # The page says why, in words that fit this case as well as the idle one.
    assert signed_in not in page and "4 hours after you first opened it" in page


def test_a_browser_holds_at_most_five_concerns_and_a_clock_a_moment_behind_is_forgiven(
    world: World,
) -> None:
    raised = [raise_concern(world.engine, "anonymous") for _ in range(6)]
    for reference, code in raised:
        assert code is not None and look_up(world.client, reference, code).status_code == 303
    cookie = world.client.cookie_header()
    assert len(cookie) < 1500  # the session stays small however many are looked up
    # The first looked up has gone; the other five are still held.
    first, _ = raised[0]
    page = world.client.get(STATUS).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    for index, (reference, _) in enumerate(raised):
        answer = world.client.post(
            STATUS + "/information",
            data={"csrf_token": token.group(1), "reference": reference, "information": "x"},
        )
        assert answer.status_code == (403 if index == 0 else 303), reference
    assert "learner_added_information" not in event_kinds(world.engine, first)
    # Another instance whose clock is 30 seconds behind still lets the learner in.
    world.clock.now -= timedelta(seconds=30)
    assert raised[-1][0] in world.client.get(STATUS).text


def test_each_action_names_its_concern_whatever_else_the_browser_opened(world: World) -> None:
    """Two concerns looked up in one browser (two tabs, or another's link opened in it): an
    action acts on the concern its page showed, never on the one opened last."""
    first, first_code = raise_concern(world.engine, "anonymous")
    second, second_code = raise_concern(world.engine, "anonymous")
    assert first_code and second_code
    for reference in (first, second):
        give_feedback(world.engine, reference, world.clock.now)
    assert look_up(world.client, first, first_code).status_code == 303
    first_page = world.client.get(STATUS).text
    assert look_up(world.client, second, second_code).status_code == 303  # opened last
    hidden = dict(HIDDEN.findall(first_page))
    assert hidden["reference"] == first
    token = re.search(r'name="csrf_token" value="([^"]+)"', first_page)
    assert token
    pressed = world.client.post(
        STATUS + "/satisfied", data={"csrf_token": token.group(1), **hidden}
    )
    assert pressed.status_code == 303
    assert event_kinds(world.engine, first)[-1] == "closed"
    assert "closed" not in event_kinds(world.engine, second)
    # The page then shows the concern acted on.
    assert first in world.client.get(STATUS).text
    # An action naming no concern, or one this browser has not looked up, changes nothing.
    other, _ = raise_concern(world.engine, "anonymous")
    for named in ({}, {"reference": other}):
        refused = world.client.post(
            STATUS + "/information",
            data={"csrf_token": token.group(1), "information": "more", **named},
        )
        assert refused.status_code == 403
    assert "learner_added_information" not in event_kinds(world.engine, other)


def test_an_answer_from_a_page_the_concern_has_moved_on_from_changes_nothing(
    world: World, signed_in: str
) -> None:
    give_feedback(world.engine, signed_in, world.clock.now)
    stale = world.client.get(STATUS).text  # a second tab, left open
    assert post_action(world.client, STATUS + "/concerned").status_code == 303
    give_feedback(world.engine, signed_in, world.clock.now)  # at pathway 2
    token = re.search(r'name="csrf_token" value="([^"]+)"', stale)
    assert token
    pressed = world.client.post(
        STATUS + "/satisfied", data={"csrf_token": token.group(1), **dict(HIDDEN.findall(stale))}
    )
    assert pressed.status_code == 400
    assert "your concern has moved on since, so nothing has been changed" in pressed.text
    assert "closed" not in event_kinds(world.engine, signed_in)
    # The current page's answer counts.
    assert post_action(world.client, STATUS + "/satisfied").status_code == 303
    assert event_kinds(world.engine, signed_in)[-1] == "closed"


def test_information_refused_because_the_concern_closed_is_kept_on_the_page(
    world: World, signed_in: str
) -> None:
    page = world.client.get(STATUS).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    with transaction(world.engine) as session:
        concern = repositories.concern_by_reference(session, signed_in)
        assert concern is not None
        concern.status = "closed"
    text = "The rota is still short on nights."
    answer = world.client.post(
        STATUS + "/information",
        data={"csrf_token": token.group(1), "reference": signed_in, "information": text},
    )
    assert answer.status_code == 400
    assert "information can no longer be added here" in answer.text
    assert text in answer.text and 'id="information"' in answer.text


def test_signing_out_ends_access(world: World, signed_in: str) -> None:
    assert post_action(world.client, STATUS + "/sign-out").status_code == 303
    page = world.client.get(STATUS).text
    assert "You have signed out" in page and signed_in not in page


def test_find_for_follow_up_normalises_and_refuses_what_is_not_anonymous(world: World) -> None:
    from intake.follow_up import find_for_follow_up, normalise_code

    reference, code = raise_concern(world.engine, "anonymous")
    named, _ = raise_concern(world.engine, "named")
    assert code is not None
    assert normalise_code(" abcd efgh-jklm ") == "ABCD-EFGH-JKLM"
    with transaction(world.engine) as session:
        found = find_for_follow_up(session, reference=reference.lower(), code=code.lower())
        assert found is not None and found.reference == reference
        assert find_for_follow_up(session, reference=reference, code="") is None
        assert find_for_follow_up(session, reference=named, code=code) is None
        assert find_for_follow_up(session, reference="", code=code) is None


# --- two presses at once, on PostgreSQL (several instances share it) ----------------------------


def press_together(
    engine: Engine, client: WebClient, reference: str, paths: tuple[str, str]
) -> list[int]:
    """Press two of the page's buttons at once (two tabs, or a second press on a slow phone):
    both requests read the concern, then wait for its lock, which the test holds until both
    are waiting. Returns their status codes."""
    page = client.get(STATUS).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    data = {"csrf_token": token.group(1), **dict(HIDDEN.findall(page))}
    holder = engine.raw_connection()
    try:
        cursor = holder.cursor()
        cursor.execute("SELECT id FROM concerns WHERE reference = %s FOR UPDATE", (reference,))

        def waiting_for_locks() -> int:
            with engine.connect() as connection:
                return int(
                    connection.execute(
                        text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
                    ).scalar_one()
                )

        async def both() -> list[httpx.Response]:
            pressed = [
                asyncio.ensure_future(client.post_async(STATUS + path, data=data)) for path in paths
            ]
            deadline = time.monotonic() + 30
            while await asyncio.to_thread(waiting_for_locks) < 2:
                assert time.monotonic() < deadline, "the presses never waited for the lock"
                await asyncio.sleep(0.02)
            await asyncio.to_thread(holder.commit)
            return list(await asyncio.gather(*pressed))

        return [answer.status_code for answer in client.run(both())]
    finally:
        holder.close()


@pytest.mark.parametrize(
    ("paths", "codes"),
    [(("/concerned", "/concerned"), [303, 303]), (("/satisfied", "/concerned"), [303, 400])],
    ids=["twice", "both"],
)
def test_two_answers_pressed_at_once_change_the_concern_once(
    postgres_url: str, paths: tuple[str, str], codes: list[int]
) -> None:
    """The second answer, once it has the lock, sees the concern as the first left it (the same
    answer is told what the first did; the other is refused as answering feedback the concern
    has moved on from), never applied to the state the request read before it waited (which
    moved it up twice, failed with an error page, or moved up a concern just closed)."""
    engine = create_db_engine(postgres_url)
    migrate.upgrade(engine)
    load_example_directory(engine)
    for world in make_world(engine):
        reference, code = raise_concern(engine, "anonymous")
        assert code is not None
        give_feedback(engine, reference, world.clock.now)
        assert look_up(world.client, reference, code).status_code == 303
        assert sorted(press_together(engine, world.client, reference, paths)) == codes
        kinds = event_kinds(engine, reference)
        assert kinds.count("escalated") + kinds.count("closed") == 1
        with transaction(engine) as session:
            concern = repositories.concern_by_reference(session, reference)
            assert concern is not None
            moved = concern.pathway == 2 and concern.status == "open"
            closed = concern.pathway == 1 and concern.status == "closed"
            assert moved or closed
    engine.dispose()
