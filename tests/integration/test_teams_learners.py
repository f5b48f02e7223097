"""Learners in Teams, through the real /api/messages: a message offers the concern form as an
Adaptive Card; sending it raises the concern through `submit_concern`; "My concerns" lists
them; adding information and answering feedback go through the shared services; only the
learner can act on their concern; what they typed is shown literally and never lost."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot import teams_learners
from bot.teams_app import ADAPTIVE_CARD
from escalation.actions import Actor, record_feedback
from notifications import teams_learner_cards as cards
from storage import repositories
from storage.db import transaction
from storage.tables import Concern, Learner, OutboxMessage
from tests.integration.fake_teams import TeamsUser
from tests.integration.helpers import MONDAY_MORNING, load_example_directory
from tests.integration.teams_harness import TeamsHarness, teams_harness

LEARNER = TeamsUser(
    teams_id="29:1learner",
    aad_object_id="6a1e0000-0000-4000-8000-00000000aa01",
    name="Sam Learner",
    email="sam.learner@nhs.example",
)
OUTSIDER = TeamsUser(
    teams_id="29:1outsider",
    aad_object_id="6a1e0000-0000-4000-8000-00000000bb02",
    name="Olly Outsider",
    email="olly.outsider@nhs.example",
)


@pytest.fixture
def harness(sqlite_engine: Engine) -> Iterator[TeamsHarness]:
    load_example_directory(sqlite_engine)
    with teams_harness(sqlite_engine, clock=lambda: MONDAY_MORNING) as running:
        running.fake.add_member(LEARNER)
        running.fake.add_member(OUTSIDER)
        yield running


# --- helpers ----------------------------------------------------------------------------------


def answers(**changes: str) -> dict[str, str]:
    """A complete, valid form as Teams sends it (input id -> value)."""
    values = {
        "group": "foundation",
        "organisation": "Vale General Hospitals NHS Trust",
        "department": "vale-general/emergency",
        "programme": "Foundation Programme FY1",
        "description": "Left without a senior on nights, twice this month.",
        "frequency": "occasionally",
        "harm": "learners_affected",
        "raised-before": "no",
        "raised-with": "",
        "about-supervisor": "no",
        "cannot-raise-locally": "no",
        "confidentiality": "named",
        "name": LEARNER.name,
        "email": LEARNER.email,
    }
    values.update(changes)
    return values


def card_of(answer: httpx.Response) -> dict[str, Any]:
    """The card an Action.Execute press was answered with (it replaces the pressed card)."""
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["statusCode"] == 200, body
    assert body["type"] == ADAPTIVE_CARD
    card: dict[str, Any] = body["value"]
    assert card["type"] == "AdaptiveCard"
    return card


def sent_cards(harness: TeamsHarness, user: TeamsUser) -> list[dict[str, Any]]:
    return [
        attachment["content"]
        for activity in harness.fake.sent(user.conversation_id)
        for attachment in activity.get("attachments") or ()
        if attachment.get("contentType") == ADAPTIVE_CARD
    ]


def elements(node: Any) -> Iterator[dict[str, Any]]:
    """Every element and action in a card, however deep (show cards included)."""
    if isinstance(node, dict):
        if "type" in node:
            yield node
        for value in node.values():
            yield from elements(value)
    elif isinstance(node, list):
        for item in node:
            yield from elements(item)


def inputs(card: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        element["id"]: element
        for element in elements(card)
        if str(element["type"]).startswith("Input.")
    }


def text_blocks(card: dict[str, Any]) -> str:
    return "\n".join(e["text"] for e in elements(card) if e["type"] == "TextBlock")


def text_runs(card: dict[str, Any]) -> str:
    return "\n".join(e["text"] for e in elements(card) if e["type"] == "TextRun")


def verbs(card: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["verb"]: e for e in elements(card) if e["type"] == "Action.Execute"}


def raise_by_teams(harness: TeamsHarness, user: TeamsUser = LEARNER, **changes: str) -> Concern:
    harness.say(user, "hello")
    card = card_of(harness.press(user, cards.RAISE_CONCERN, answers(**changes)))
    assert "We have received your concern" in text_blocks(card), text_blocks(card)
    with transaction(harness.engine) as session:
        concern = session.exec(select(Concern).order_by(Concern.id.desc())).first()  # type: ignore[union-attr]
        assert concern is not None
        return concern


def snapshot(harness: TeamsHarness, concern: Concern) -> tuple[Any, ...]:
    """The concern's row, its audit trail and its outbox, to compare before and after."""
    with transaction(harness.engine) as session:
        row = session.get(Concern, concern.id)
        assert row is not None
        return (
            row.model_dump(),
            [event.model_dump() for event in repositories.events_of(session, concern.id or 0)],
            [message.model_dump() for message in repositories.outbox_of(session, concern.id or 0)],
        )


def concern_count(engine: Engine) -> int:
    with transaction(engine) as session:
        return int(session.exec(select(func.count()).select_from(Concern)).one())


def give_feedback(harness: TeamsHarness, concern: Concern) -> None:
    with transaction(harness.engine) as session:
        locked = repositories.lock_concern(session, concern.id or 0)
        assert locked is not None
        record_feedback(
            session=session,
            concern=locked,
            by=Actor(kind="staff", channel="web"),
            text="We have arranged senior cover for nights.",
            now=MONDAY_MORNING,
            policy=harness.policy,
        )


def current(harness: TeamsHarness, concern: Concern) -> Concern:
    with transaction(harness.engine) as session:
        row = session.get(Concern, concern.id)
        assert row is not None
        session.expunge(row)
        return row


# --- raising a concern ------------------------------------------------------------------------


def test_a_message_is_answered_with_the_web_forms_questions(harness: TeamsHarness) -> None:
    harness.say(LEARNER, "Nobody signs off my competencies.")
    [form] = sent_cards(harness, LEARNER)
    found = inputs(form)
    assert set(found) >= set(teams_learners.form_fields.FIELDS)
    assert found["description"]["isMultiline"] is True
    assert found["description"]["maxLength"] == teams_learners.form_fields.DESCRIPTION_LIMIT
    # What they wrote starts the description; Teams' name and email start the identity.
    assert found["description"]["value"] == "Nobody signs off my competencies."
    assert found["name"]["value"] == LEARNER.name
    assert found["email"]["value"] == LEARNER.email
    organisation = found["organisation"]
    assert organisation["style"] == "filtered"
    assert {
        "title": "Vale General Hospitals NHS Trust",
        "value": "Vale General Hospitals NHS Trust",
    } in organisation["choices"]
    assert organisation["choices"][-1]["value"] == teams_learners.form_fields.NOT_LISTED
    assert found["department"]["style"] == "filtered"
    assert {
        "title": "Emergency Department (Vale General Hospitals NHS Trust)",
        "value": "vale-general/emergency",
    } in found["department"]["choices"]
    assert [c["value"] for c in found["confidentiality"]["choices"]] == [
        "named",
        "confidential",
        "anonymous",
    ]
    words = text_blocks(form)
    for hint in teams_learners.form_fields.CONFIDENTIALITY_HINTS.values():
        if "We do not keep" not in hint:
            assert hint in words
    assert "Teams knows who you are" in words
    assert harness.policy.public_url.rstrip("/") + "/concerns/new" in words
    assert list(verbs(form)) == [cards.RAISE_CONCERN, cards.MY_CONCERNS]


def test_a_learner_raises_a_concern_and_their_teams_id_is_kept(harness: TeamsHarness) -> None:
    harness.say(LEARNER, "hello")
    answer = harness.press(LEARNER, cards.RAISE_CONCERN, answers())
    card = card_of(answer)
    words = text_blocks(card)
    with transaction(harness.engine) as session:
        concern = session.exec(select(Concern)).one()
        learner = session.get(Learner, concern.learner_id)
        assert learner is not None
        assert learner.teams_user_id == LEARNER.aad_object_id
        assert learner.email == LEARNER.email
        channels = {event.channel for event in repositories.events_of(session, concern.id or 0)}
    assert "teams" in channels
    assert concern.reference in words
    assert "What happens next" in words
    assert cards.MY_CONCERNS in verbs(card)
    # My concerns now lists it, with what happens next.
    listed = card_of(harness.press(LEARNER, cards.MY_CONCERNS))
    assert concern.reference in text_blocks(listed)
    assert "Feedback due by" in text_blocks(listed)
    assert cards.SATISFIED not in verbs(listed)  # no feedback yet
    assert "Add information" in [e.get("title") for e in elements(listed)]


def test_a_concern_raised_in_teams_is_counted_in_metrics(harness: TeamsHarness) -> None:
    raised = 'concerns_raised_total{channel="teams"}'
    assert f"{raised} 0.0" in harness.web.get("/metrics").text
    harness.say(LEARNER, "hello")
    harness.press(LEARNER, cards.RAISE_CONCERN, answers())
    assert f"{raised} 1.0" in harness.web.get("/metrics").text


@pytest.mark.parametrize(
    ("changes", "says", "told"),
    [
        pytest.param(
            {
                "organisation": "not-listed",
                "organisation-other": "Hilltop Health",
                "department": "not-listed",
                "department-other": "Clinic B",
            },
            "so we have sent your concern to the regional quality team",
            ["quality.northvale@example.nhs.uk"],
            id="organisation-not-listed",
        ),
        pytest.param(
            {"department": "not-listed", "department-other": "The new day unit"},
            "so we have sent your concern to your organisation's clinical tutor or Freedom to "
            "Speak Up guardian",
            None,
            id="department-not-listed",
        ),
    ],
)
def test_the_received_card_says_who_has_a_concern_whose_placement_is_not_listed(
    harness: TeamsHarness, changes: dict[str, str], says: str, told: list[str] | None
) -> None:
    # The card once said both "gone to your placement" and "the regional team will find the
    # right people first"; it now says the one the routing rules did.
    harness.say(LEARNER, "hello")
    card = card_of(harness.press(LEARNER, cards.RAISE_CONCERN, answers(**changes)))
    words = text_blocks(card)
    assert says in words
    assert "has gone to" not in words
    assert "find the right people first" not in words
    with transaction(harness.engine) as session:
        concern = session.exec(select(Concern)).one()
        sent_to = sorted(
            message.recipient_address or ""
            for message in session.exec(
                select(OutboxMessage).where(
                    OutboxMessage.concern_id == concern.id,
                    OutboxMessage.kind == "new_concern",
                    OutboxMessage.channel == "email",
                )
            )
        )
    if told is not None:
        assert sent_to == told
    else:
        assert "quality.northvale@example.nhs.uk" not in sent_to
        assert sent_to


def test_the_teams_id_is_kept_only_when_the_typed_email_is_theirs(harness: TeamsHarness) -> None:
    harness.press(LEARNER, cards.RAISE_CONCERN, answers(email="someone.else@nhs.example"))
    with transaction(harness.engine) as session:
        learner = session.exec(select(Learner)).one()
    assert learner.email == "someone.else@nhs.example"
    assert learner.teams_user_id is None
    listed = card_of(harness.press(LEARNER, cards.MY_CONCERNS))
    assert "You have no concerns raised from Teams" in text_blocks(listed)


def test_a_kept_teams_id_is_never_replaced(harness: TeamsHarness) -> None:
    raise_by_teams(harness)
    # Someone else types the learner's email: their Teams email does not match, nothing binds.
    harness.press(OUTSIDER, cards.RAISE_CONCERN, answers(name="Olly", email=LEARNER.email))
    # A second Teams account whose Teams email is the learner's: still not bound, since the
    # learner's record already has its Teams account.
    twin = TeamsUser(
        teams_id="29:1twin",
        aad_object_id="6a1e0000-0000-4000-8000-00000000cc03",
        name="Sam Twin",
        email=LEARNER.email,
    )
    harness.fake.add_member(twin)
    harness.press(twin, cards.RAISE_CONCERN, answers())
    with transaction(harness.engine) as session:
        learner = session.exec(select(Learner).where(Learner.email == LEARNER.email)).one()
    assert learner.teams_user_id == LEARNER.aad_object_id
    assert concern_count(harness.engine) == 3
    for other in (OUTSIDER, twin):
        listed = card_of(harness.press(other, cards.MY_CONCERNS))
        assert "You have no concerns raised from Teams" in text_blocks(listed)
    listed = card_of(harness.press(LEARNER, cards.MY_CONCERNS))
    assert len([e for e in elements(listed) if e["type"] == "Action.ShowCard"]) == 3


def test_validation_errors_answer_the_form_again_with_the_answers_kept(
    harness: TeamsHarness,
) -> None:
    typed = answers(description="", email="not-an-email", frequency="")
    card = card_of(harness.press(LEARNER, cards.RAISE_CONCERN, typed))
    found = inputs(card)
    assert found["programme"]["value"] == "Foundation Programme FY1"
    assert found["email"]["value"] == "not-an-email"
    assert found["group"]["value"] == "foundation"
    assert found["department"]["value"] == "vale-general/emergency"
    words = text_blocks(card)
    assert "There is a problem" in words
    assert "Enter what happened" in words
    assert "Select how often this happens" in words
    assert "Enter an email address in the correct format" in words
    # Each message sits right under the input it is about.
    body = card["body"]
    index = next(i for i, e in enumerate(body) if e.get("id") == "description")
    assert body[index + 1]["text"] == "Enter what happened"
    assert list(verbs(card)) == [cards.RAISE_CONCERN, cards.MY_CONCERNS]
    assert concern_count(harness.engine) == 0


def test_anonymous_is_refused_with_the_web_form_and_nothing_is_stored(
    harness: TeamsHarness,
) -> None:
    card = card_of(
        harness.press(LEARNER, cards.RAISE_CONCERN, answers(confidentiality="anonymous"))
    )
    words = text_blocks(card)
    assert "Teams knows who you are" in words
    links = [e["url"] for e in elements(card) if e["type"] == "Action.OpenUrl"]
    assert links == [harness.policy.public_url.rstrip("/") + "/concerns/new"]
    assert inputs(card)["description"]["value"] == answers()["description"]
    assert concern_count(harness.engine) == 0
    with transaction(harness.engine) as session:
        assert session.exec(select(func.count()).select_from(Learner)).one() == 0


def test_learner_text_is_shown_only_in_text_runs(harness: TeamsHarness) -> None:
    sneaky = "[click here](https://evil.example) <at>Dean</at> **now**"
    harness.say(LEARNER, sneaky)
    [form] = sent_cards(harness, LEARNER)
    assert "evil.example" not in text_blocks(form)
    concern = raise_by_teams(
        harness,
        description=sneaky,
        **{
            "organisation": "not-listed",
            "organisation-other": sneaky,
            "department": "not-listed",
            "department-other": "<at>Ward</at>",
        },
    )
    card = card_of(harness.press(LEARNER, cards.MY_CONCERNS))
    assert concern.reference in text_blocks(card)
    assert "evil.example" in text_runs(card)
    assert "evil.example" not in text_blocks(card)
    assert "<at>" not in text_blocks(card)
    added = card_of(
        harness.press(
            LEARNER,
            cards.ADD_INFORMATION,
            {"reference": concern.reference, cards.INFORMATION: sneaky},
        )
    )
    assert "evil.example" not in text_blocks(added)
    assert "<at>" not in json.dumps([e for e in elements(added) if e["type"] == "TextBlock"])


# --- following a concern up -------------------------------------------------------------------


def test_adding_information_reaches_the_concern(harness: TeamsHarness) -> None:
    concern = raise_by_teams(harness)
    listed = card_of(harness.press(LEARNER, cards.MY_CONCERNS))
    [show] = [e for e in elements(listed) if e["type"] == "Action.ShowCard"]
    box_id = cards.information_input_id(concern.reference)
    assert box_id in inputs(show["card"])
    [send] = [e for e in elements(show["card"]) if e["type"] == "Action.Execute"]
    assert send["verb"] == cards.ADD_INFORMATION
    assert send["data"] == {"reference": concern.reference}
    card = card_of(
        harness.press(
            LEARNER,
            cards.ADD_INFORMATION,
            {**send["data"], box_id: "It happened again last night."},
        )
    )
    assert f"Added to your concern {concern.reference}" in text_blocks(card)
    with transaction(harness.engine) as session:
        added = [
            event
            for event in repositories.events_of(session, concern.id or 0)
            if event.kind == "learner_added_information"
        ]
    assert [(event.channel, event.detail["text"]) for event in added] == [
        ("teams", "It happened again last night.")
    ]


def test_a_confidential_learners_name_is_kept_from_contacts_in_what_they_add(
    harness: TeamsHarness,
) -> None:
    concern = raise_by_teams(
        harness,
        confidentiality="confidential",
        description=f"Left without a senior on nights. {LEARNER.name}",
    )
    assert concern.description == "Left without a senior on nights. [name removed]"
    box_id = cards.information_input_id(concern.reference)
    harness.press(
        LEARNER,
        cards.ADD_INFORMATION,
        {"reference": concern.reference, box_id: f"Again. Write to {LEARNER.email}"},
    )
    with transaction(harness.engine) as session:
        added = [
            event.detail["text"]
            for event in repositories.events_of(session, concern.id or 0)
            if event.kind == "learner_added_information"
        ]
    assert added == ["Again. Write to [name removed]"]


def test_another_user_cannot_act_on_the_learners_concern(harness: TeamsHarness) -> None:
    concern = raise_by_teams(harness)
    give_feedback(harness, concern)
    before = snapshot(harness, concern)
    for verb, data in (
        (cards.ADD_INFORMATION, {"reference": concern.reference, cards.INFORMATION: "mine now"}),
        (cards.SATISFIED, {"reference": concern.reference}),
        (cards.REMAIN_CONCERNED, {"reference": concern.reference}),
    ):
        card = card_of(harness.press(OUTSIDER, verb, data))
        assert "Only the learner who raised this concern" in text_blocks(card)
        assert "Nothing has been changed" in text_blocks(card)
    assert snapshot(harness, concern) == before
    # And an unknown reference is refused in the same words.
    card = card_of(harness.press(OUTSIDER, cards.SATISFIED, {"reference": "LC-2026-999999"}))
    assert "Only the learner who raised this concern" in text_blocks(card)


def test_after_feedback_the_learner_is_satisfied_and_it_closes(harness: TeamsHarness) -> None:
    concern = raise_by_teams(harness)
    give_feedback(harness, concern)
    listed = card_of(harness.press(LEARNER, cards.MY_CONCERNS))
    buttons = verbs(listed)
    assert buttons[cards.SATISFIED]["data"]["reference"] == concern.reference
    assert buttons[cards.REMAIN_CONCERNED]["data"]["reference"] == concern.reference
    assert "Feedback has been given" in text_blocks(listed)
    card = card_of(harness.press(LEARNER, cards.SATISFIED, buttons[cards.SATISFIED]["data"]))
    assert "satisfied with the feedback" in text_blocks(card)
    assert "Closed" in text_blocks(card)
    assert cards.SATISFIED not in verbs(card)
    after = current(harness, concern)
    assert after.status == "closed"
    # Pressing again changes nothing and says why.
    before = snapshot(harness, concern)
    again = card_of(harness.press(LEARNER, cards.SATISFIED, buttons[cards.SATISFIED]["data"]))
    assert "already closed" in text_blocks(again)
    assert snapshot(harness, concern) == before


def test_after_feedback_remaining_concerned_escalates(harness: TeamsHarness) -> None:
    concern = raise_by_teams(harness)
    assert concern.pathway == 1
    give_feedback(harness, concern)
    buttons = verbs(card_of(harness.press(LEARNER, cards.MY_CONCERNS)))
    card = card_of(
        harness.press(LEARNER, cards.REMAIN_CONCERNED, buttons[cards.REMAIN_CONCERNED]["data"])
    )
    assert "moved to the next level" in text_blocks(card)
    after = current(harness, concern)
    assert after.pathway == 2
    with transaction(harness.engine) as session:
        kinds = [
            (event.kind, event.channel)
            for event in repositories.events_of(session, concern.id or 0)
        ]
    assert ("learner_remains_concerned", "teams") in kinds
    # The same button pressed again (the concern moved on) changes nothing.
    before = snapshot(harness, concern)
    again = card_of(
        harness.press(LEARNER, cards.REMAIN_CONCERNED, buttons[cards.REMAIN_CONCERNED]["data"])
    )
    assert "Nothing has been changed" in text_blocks(again)
    assert snapshot(harness, concern) == before


def test_feedback_buttons_without_feedback_change_nothing(harness: TeamsHarness) -> None:
    concern = raise_by_teams(harness)
    before = snapshot(harness, concern)
    card = card_of(harness.press(LEARNER, cards.REMAIN_CONCERNED, {"reference": concern.reference}))
    assert "no feedback yet" in text_blocks(card)
    assert snapshot(harness, concern) == before


def test_information_that_cannot_be_saved_is_given_back(
    harness: TeamsHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    concern = raise_by_teams(harness)
    before = snapshot(harness, concern)

    def broken(**_: Any) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(teams_learners, "add_learner_information", broken)
    typed = "It happened again on Tuesday."
    card = card_of(
        harness.press(
            LEARNER,
            cards.ADD_INFORMATION,
            {"reference": concern.reference, cards.INFORMATION: typed},
        )
    )
    assert "try again" in text_blocks(card)
    assert typed in text_runs(card)
    box = inputs(card)[cards.information_input_id(concern.reference)]
    assert box["value"] == typed
    assert snapshot(harness, concern) == before


def test_a_concern_that_cannot_be_saved_gives_the_form_back(
    harness: TeamsHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**_: Any) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(teams_learners, "submit_concern", broken)
    card = card_of(harness.press(LEARNER, cards.RAISE_CONCERN, answers()))
    assert "could not save your concern" in text_blocks(card)
    assert inputs(card)["description"]["value"] == answers()["description"]
    assert concern_count(harness.engine) == 0


def test_status_words_show_the_learners_concerns(harness: TeamsHarness) -> None:
    concern = raise_by_teams(harness)
    harness.say(LEARNER, "  My Concerns ")
    shown = sent_cards(harness, LEARNER)[-1]
    assert concern.reference in text_blocks(shown)
    assert "Pathway 1" in text_blocks(shown)
    harness.say(LEARNER, "STATUS")
    assert concern.reference in text_blocks(sent_cards(harness, LEARNER)[-1])
