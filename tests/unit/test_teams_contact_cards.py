"""Teams cards for contacts and learners: the facts a role may see, the actions where they act,
no concern text by default, and nothing from outside ever in a TextBlock (the only element that
renders Markdown links)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from escalation.actions import MAX_FEEDBACK_CHARACTERS
from notifications.messages import (
    CONTACT_STEPS,
    ConcernFacts,
    LearnerIdentity,
    MessageKind,
    build_message,
)
from notifications.teams_contact_cards import (
    FEEDBACK_INPUT,
    FEEDBACK_MAX_CHARACTERS,
    VERBS,
    answered_card,
    contact_card,
    learner_card,
    refused_card,
)
from routing.model import Confidentiality, Role

INJECTION = "[click](https://evil.example) <at>Everyone</at> **bold** \u202eevil"
SUMMARY = f"Rota gaps on nights {INJECTION}"

FACTS = ConcernFacts(
    reference="LC-2026-000042",
    summary=SUMMARY,
    description="SECRET-DESCRIPTION the registrar left me alone",
    place=f"Emergency Department, Vale General Hospital (as given: {INJECTION})",
    pathway=1,
    risk_level="medium",
    rating="A",
    reasons=("SECRET-REASON from the text",),
    interventions=("Programme review",),
    patient_safety=False,
    hotspot=False,
    confidentiality=Confidentiality.NAMED,
    learner=LearnerIdentity(name=f"Priya {INJECTION}", email="priya@example.nhs.uk"),
    learner_group="foundation",
    ack_due_at=datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
    feedback_due_at=datetime(2026, 12, 7, 10, 0, tzinfo=UTC),
    timezone=ZoneInfo("Europe/London"),
    staff_url="http://127.0.0.1:8000/staff/concerns/LC-2026-000042",
    why="SECRET-WHY a contact typed this",
    history=("SECRET-HISTORY",),
    feedback="SECRET-FEEDBACK",
    status_url="http://127.0.0.1:8000/concerns/status?t=signed",
)

CONTACT_KINDS = [
    MessageKind.NEW_CONCERN,
    MessageKind.HIGH_RISK_ALERT,
    MessageKind.ACK_REMINDER,
    MessageKind.ACK_MISSED,
    MessageKind.ACK_MISSED_SECONDARY,
    MessageKind.FEEDBACK_REMINDER,
    MessageKind.ESCALATED_IN,
    MessageKind.ESCALATED_OUT,
    MessageKind.OVERDUE_AT_DEAN,
    MessageKind.REDIRECTED_IN,
    MessageKind.REOPENED,
    MessageKind.STILL_CONCERNED,
    MessageKind.LEARNER_ADDRESS_CORRECTED,
    MessageKind.RATED_HIGH_OVER_OVERRIDE,
]
LEARNER_KINDS = [
    MessageKind.LEARNER_FEEDBACK,
    MessageKind.LEARNER_ESCALATED,
    MessageKind.LEARNER_CLOSED,
    MessageKind.LEARNER_REOPENED,
    MessageKind.LEARNER_STILL_CONCERNED,
]


def contact(
    kind: MessageKind = MessageKind.NEW_CONCERN,
    *,
    share_summary: bool = False,
    facts: ConcernFacts = FACTS,
) -> dict[str, Any]:
    message = build_message(kind, facts=facts, recipient_role=Role.SUPERVISOR)
    return contact_card(kind, message, facts, share_summary=share_summary, contact_id=7)


def learner(kind: MessageKind, facts: ConcernFacts = FACTS) -> dict[str, Any]:
    message = build_message(kind, facts=facts, recipient_role=Role.LEARNER)
    return learner_card(kind, message, facts)


def walk(node: Any, kind: str) -> list[dict[str, Any]]:
    """Every element of a type, however deep."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if node.get("type") == kind:
            found.append(node)
        for value in node.values():
            found.extend(walk(value, kind))
    elif isinstance(node, list):
        for item in node:
            found.extend(walk(item, kind))
    return found


def assert_outside_words_only_in_text_runs(card: dict[str, Any]) -> None:
    for block in walk(card, "TextBlock"):
        for marker in ("evil.example", "<at>", "**bold**", "Priya", "Rota gaps"):
            assert marker not in block["text"], block
    for run in walk(card, "TextRun"):
        assert "\u202e" not in run["text"], "bidirectional overrides are removed"


@pytest.mark.parametrize("kind", CONTACT_KINDS)
@pytest.mark.parametrize("share_summary", [False, True])
def test_a_contacts_card_never_puts_outside_words_in_a_text_block(
    kind: MessageKind, share_summary: bool
) -> None:
    assert_outside_words_only_in_text_runs(contact(kind, share_summary=share_summary))


@pytest.mark.parametrize("kind", CONTACT_KINDS)
def test_no_free_text_of_the_concern_by_default(kind: MessageKind) -> None:
    text = json.dumps(contact(kind))
    for secret in (
        "Rota gaps",
        "SECRET-DESCRIPTION",
        "SECRET-REASON",
        "SECRET-WHY",
        "SECRET-HISTORY",
        "SECRET-FEEDBACK",
    ):
        assert secret not in text, (kind, secret)
    assert FACTS.reference in text
    # The learner's own words for the place stay out too (their name is shown: named concern).
    assert "(as given" not in text


def test_the_shared_summary_is_one_line_shown_literally() -> None:
    card = contact(share_summary=True)
    runs = [run["text"] for run in walk(card, "TextRun")]
    assert (
        "Rota gaps on nights [click](https://evil.example) <at>Everyone</at> **bold** evil" in runs
    )
    assert "SECRET-DESCRIPTION" not in json.dumps(card)


@pytest.mark.parametrize("kind", CONTACT_KINDS)
def test_buttons_where_the_contact_acts_and_always_the_staff_page(kind: MessageKind) -> None:
    card = contact(kind)
    ids = [action["id"] for action in card["actions"]]
    assert ids == [*(VERBS[step] for step in CONTACT_STEPS.get(kind, ())), "open_staff_page"]
    assert card["actions"][-1]["url"] == FACTS.staff_url
    for execute in walk(card, "Action.Execute"):
        assert execute["data"] == {"reference": FACTS.reference, "contact_id": 7}


def test_no_acknowledge_button_on_a_concern_already_acknowledged() -> None:
    """Sooner deadlines told after the contact acknowledged ask only for feedback."""
    acknowledged = replace(FACTS, acknowledged_at=datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    card = contact(MessageKind.DEADLINES_CHANGED, facts=acknowledged)
    ids = [action["id"] for action in card["actions"]]
    assert ids == ["record_feedback", "not_mine", "open_staff_page"]


def test_a_new_concern_shows_the_facts_and_the_three_actions() -> None:
    card = contact()
    text = json.dumps(card)
    assert "Emergency Department, Vale General Hospital (more on the staff page)" in text
    assert "medium (A)" in text
    assert "Wednesday 25 November 2026 at 10:00" in text
    acknowledge, feedback, not_mine, _ = card["actions"]
    assert (acknowledge["type"], acknowledge["verb"]) == ("Action.Execute", "acknowledge")
    # Record feedback opens a form on the card; its text goes with the record_feedback verb.
    assert feedback["type"] == "Action.ShowCard"
    (field,) = walk(feedback["card"], "Input.Text")
    assert field["id"] == FEEDBACK_INPUT and field["isMultiline"] is True
    assert field["maxLength"] == FEEDBACK_MAX_CHARACTERS == MAX_FEEDBACK_CHARACTERS
    (send,) = walk(feedback["card"], "Action.Execute")
    assert send["verb"] == "record_feedback"
    # Not mine is asked first (it cannot be undone from Teams).
    (confirm,) = walk(not_mine["card"], "Action.Execute")
    assert confirm["verb"] == "not_mine"
    # With a box for why, which is optional (a contact need not say; staff must).
    (reason,) = walk(not_mine["card"], "Input.Text")
    assert reason["id"] == "reason" and not reason.get("isRequired")


def test_a_confidential_learner_is_not_named_to_the_supervisor() -> None:
    facts = replace(FACTS, confidentiality=Confidentiality.CONFIDENTIAL)
    message = build_message(MessageKind.NEW_CONCERN, facts=facts, recipient_role=Role.SUPERVISOR)
    card = contact_card(MessageKind.NEW_CONCERN, message, facts, share_summary=True)
    assert "Priya" not in json.dumps(card) and "priya@" not in json.dumps(card)


def test_the_answered_card_says_who_did_what_and_keeps_only_what_is_left() -> None:
    posted = contact()
    before = json.dumps(posted)
    outcome = f"Acknowledged by Dr {INJECTION}, Monday 23 November 2026 at 10:00."
    card = answered_card(
        posted, reference=FACTS.reference, outcome=outcome, still_open=("record_feedback",)
    )
    assert [action["id"] for action in card["actions"]] == ["record_feedback", "open_staff_page"]
    assert any(
        run["text"].startswith("Acknowledged by Dr [click]") for run in walk(card, "TextRun")
    )
    assert_outside_words_only_in_text_runs(card)
    assert json.dumps(posted) == before, "the posted card is not changed in place"
    # Answered again (another action later): one outcome, the newest.
    again = answered_card(card, reference=FACTS.reference, outcome="Feedback recorded by X.")
    assert "Acknowledged by" not in json.dumps(again)
    assert [action["id"] for action in again["actions"]] == ["open_staff_page"]


def test_a_refusal_keeps_the_buttons_and_gives_the_feedback_back() -> None:
    posted = contact()
    typed = f"We fixed it {INJECTION}"
    card = refused_card(
        posted,
        reference=FACTS.reference,
        reason="LC-2026-000042 is closed",
        feedback=typed,
        data={"reference": FACTS.reference, "contact_id": 7},
    )
    assert [action["id"] for action in card["actions"]] == [
        action["id"] for action in posted["actions"]
    ]
    (field,) = [field for field in walk(card, "Input.Text") if field["id"] == "feedback"]
    assert field["value"] == typed.replace("\u202e", "")
    assert typed.replace("\u202e", "") in [run["text"] for run in walk(card, "TextRun")]
    assert_outside_words_only_in_text_runs(card)


def test_a_refusal_without_the_posted_card_still_gives_the_feedback_back() -> None:
    card = refused_card(None, reference="LC-1", reason="Not yours", feedback="my words")
    (field,) = walk(card, "Input.Text")
    assert field["value"] == "my words"


@pytest.mark.parametrize("kind", LEARNER_KINDS)
def test_a_learners_card_has_no_email_only_words_and_no_feedback_text(kind: MessageKind) -> None:
    card = learner(kind)
    text = json.dumps(card).lower()
    assert "this email" not in text and "reply with" not in text
    assert "secret-feedback" not in text
    assert_outside_words_only_in_text_runs(card)
    assert card["actions"][-1]["url"] == FACTS.status_url


def test_after_feedback_the_learner_answers_with_two_buttons() -> None:
    message = build_message(MessageKind.LEARNER_FEEDBACK, facts=FACTS, recipient_role=Role.LEARNER)
    card = learner_card(MessageKind.LEARNER_FEEDBACK, message, FACTS, level_round=2)
    # The level and round of the feedback answered: stale buttons are refused by the bot.
    answer = {"reference": FACTS.reference, "pathway": 1, "round": 2}
    executes = walk(card, "Action.Execute")
    assert [(action["title"], action["verb"], action["data"]) for action in executes] == [
        ("I'm satisfied", "satisfied", answer),
        ("I remain concerned", "remain_concerned", answer),
    ]


@pytest.mark.parametrize(
    "kind",
    [MessageKind.LEARNER_ESCALATED, MessageKind.LEARNER_CLOSED, MessageKind.LEARNER_REOPENED],
)
def test_other_learner_cards_have_no_answer_buttons(kind: MessageKind) -> None:
    assert walk(learner(kind), "Action.Execute") == []
    assert walk(learner(kind, replace(FACTS, status_url=None)), "Action.OpenUrl") == []
