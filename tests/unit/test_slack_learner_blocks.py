"""The learner's Slack blocks: messages without email-only words or the feedback's text, with
everything typed made inert; the modal's questions, limits and checks."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.slack_learner_views import (
    ANSWER,
    MAX_OPTIONS,
    NOT_SAVED,
    NOTICE_BLOCK,
    HomeEntry,
    Place,
    answers_from_state,
    check,
    concern_modal,
    department_option_groups,
    form_again,
    home_view,
    not_added_reply,
    not_saved_message,
    organisation_options,
    received_view,
    unslack,
)
from intake.web.form_fields import FIELDS, NOT_LISTED
from notifications.messages import ConcernFacts, LearnerIdentity, MessageKind, build_message
from notifications.slack_learners import FEEDBACK_ACTIONS_BLOCK, learner_message
from notifications.slack_text import LEARNER_REMAINS_CONCERNED, LEARNER_SATISFIED
from routing.model import Confidentiality, Role

INJECTION = "<!channel> ask <@U123> or see <https://x|y> & <!here>"
LIVE = ("<!channel>", "<@U123>", "<https://x|y>", "<!here>")

FACTS = ConcernFacts(
    reference="LC-2026-000042",
    summary="SECRET-SUMMARY",
    description="SECRET-DESCRIPTION",
    place=f"Ward 9 (as given: {INJECTION})",
    pathway=1,
    risk_level="medium",
    rating="A",
    reasons=("SECRET-REASON",),
    interventions=("Programme review",),
    patient_safety=True,
    hotspot=False,
    confidentiality=Confidentiality.CONFIDENTIAL,
    learner=LearnerIdentity(name="Priya Learner", email="priya@example.nhs.uk"),
    learner_group="foundation",
    ack_due_at=datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
    feedback_due_at=datetime(2026, 12, 7, 10, 0, tzinfo=UTC),
    timezone=ZoneInfo("Europe/London"),
    staff_url="http://127.0.0.1:8000/staff/concerns/LC-2026-000042",
    why=f"Because {INJECTION}",
    feedback="SECRET-FEEDBACK",
    status_url="http://127.0.0.1:8000/concerns/status/signed",
)

LEARNER_KINDS = [
    MessageKind.LEARNER_ACK,
    MessageKind.LEARNER_FEEDBACK,
    MessageKind.LEARNER_ESCALATED,
    MessageKind.LEARNER_CLOSED,
    MessageKind.LEARNER_REOPENED,
    MessageKind.LEARNER_STILL_CONCERNED,
]


@pytest.mark.parametrize("kind", LEARNER_KINDS)
def test_learner_messages_fit_slack_and_are_inert(kind: MessageKind) -> None:
    message = build_message(kind, facts=FACTS, recipient_role=Role.LEARNER)
    chat = learner_message(kind, message, FACTS)
    shown = json.dumps({"text": chat.text, "blocks": chat.blocks})
    for words in ("this email", "reply with", "SECRET-"):
        assert words not in shown
    for live in LIVE:
        assert live not in shown
    assert FACTS.reference in chat.text
    # The patient-safety signpost is kept, first after the headline.
    assert "incident reporting" in json.dumps(chat.blocks[1])
    has_buttons = any(block.get("block_id") == FEEDBACK_ACTIONS_BLOCK for block in chat.blocks)
    assert has_buttons is (kind is MessageKind.LEARNER_FEEDBACK)


def test_feedback_buttons_carry_the_reference() -> None:
    message = build_message(MessageKind.LEARNER_FEEDBACK, facts=FACTS, recipient_role=Role.LEARNER)
    chat = learner_message(MessageKind.LEARNER_FEEDBACK, message, FACTS)
    [actions] = [b for b in chat.blocks if b.get("block_id") == FEEDBACK_ACTIONS_BLOCK]
    values = {e["action_id"]: e.get("value") for e in actions["elements"]}
    assert values[LEARNER_SATISFIED] == values[LEARNER_REMAINS_CONCERNED] == FACTS.reference
    assert "email we sent you" in json.dumps(chat.blocks)


@pytest.mark.parametrize(
    ("pathway", "promised", "never"),
    [
        (1, "moves to the next level straight away", "highest level"),
        (2, "moves to the next level straight away", "highest level"),
        # The dean's is the last level: 'I remain concerned' asks the dean's team to look again.
        (3, "already at the highest level", "next level"),
    ],
)
def test_remaining_concerned_asks_to_confirm_what_happens_at_this_level(
    pathway: int, promised: str, never: str
) -> None:
    facts = replace(FACTS, pathway=pathway)
    message = build_message(MessageKind.LEARNER_FEEDBACK, facts=facts, recipient_role=Role.LEARNER)
    chat = learner_message(MessageKind.LEARNER_FEEDBACK, message, facts)
    [actions] = [b for b in chat.blocks if b.get("block_id") == FEEDBACK_ACTIONS_BLOCK]
    [remain] = [e for e in actions["elements"] if e["action_id"] == LEARNER_REMAINS_CONCERNED]
    confirm = remain["confirm"]
    assert promised in confirm["text"]["text"]
    assert never not in json.dumps(confirm)
    # Slack refuses a dialog over its limits.
    assert len(confirm["title"]["text"]) <= 100
    assert len(confirm["text"]["text"]) <= 300
    assert len(confirm["confirm"]["text"]) <= 30


PLACES = [
    Place("vale", "Vale General", (("ed", "Emergency Department"), ("w7", "Ward 7"))),
    Place("river", "Riverside Surgery", (("gp", "General Practice"),)),
]


def test_the_modal_asks_every_question_of_the_web_form() -> None:
    view = concern_modal(PLACES, values={}, public_url="https://concerns.example")
    inputs = {block["block_id"]: block for block in view["blocks"] if block["type"] == "input"}
    assert set(inputs) == set(FIELDS)
    assert all(block["element"]["action_id"] == ANSWER for block in inputs.values())
    confidentiality = inputs["confidentiality"]["element"]["options"]
    assert [option["value"] for option in confidentiality] == ["named", "confidential", "anonymous"]
    assert "https://concerns.example/concerns/new" in json.dumps(view)
    for block in inputs.values():
        for option in block["element"].get("options", []):
            assert len(option["text"]["text"]) <= 75


def test_a_big_directory_switches_to_lists_loaded_as_you_type() -> None:
    many = [Place(f"org{n}", f"Organisation {n}", (("d", "Dept"),)) for n in range(MAX_OPTIONS)]
    assert organisation_options(many, "") == {"external": True}
    assert department_option_groups(many, "") == {"external": True}
    found = organisation_options(many, "Organisation 7")["options"]
    assert [option["value"] for option in found][:2] == ["org7", "org70"]
    assert len(found) <= MAX_OPTIONS and found[-1]["value"] == NOT_LISTED
    view = concern_modal(many, values={}, public_url="https://x")
    inputs = {block["block_id"]: block for block in view["blocks"] if block["type"] == "input"}
    assert inputs["organisation"]["element"]["type"] == "external_select"


def test_answers_read_back_from_the_prefilled_modal() -> None:
    values = {
        "group": "nursing",
        "organisation": "vale",
        "department": "vale/w7",
        "description": "Nobody signs off my competencies",
        "frequency": "often",
        "harm": "learners_affected",
        "raised-before": "no",
        "about-supervisor": "no",
        "cannot-raise-locally": "yes",
        "confidentiality": "confidential",
        "name": "Sam",
        "email": "sam@example.nhs.uk",
    }
    view = concern_modal(PLACES, values=values, public_url="https://x")
    state: dict[str, dict[str, dict[str, object]]] = {}
    for block in view["blocks"]:
        if block["type"] != "input":
            continue
        element = block["element"]
        selected: dict[str, object] = {"type": element["type"]}
        if "initial_option" in element:
            selected["selected_option"] = element["initial_option"]
        if "initial_options" in element:
            selected["selected_options"] = element["initial_options"]
        if "initial_value" in element:
            selected["value"] = element["initial_value"]
        state[block["block_id"]] = {ANSWER: selected}
    answers = answers_from_state({"values": state})
    assert {name: answers[name] for name in values} == values
    outcome = check(answers, public_url="https://x")
    assert outcome.errors == {}
    assert outcome.concern is not None
    assert outcome.concern.placement.organisation == "vale"
    assert outcome.concern.placement.department == "w7"
    assert outcome.concern.cannot_raise_locally


def test_check_refuses_anonymous_and_a_department_elsewhere() -> None:
    refused = check({"confidentiality": "anonymous"}, public_url="https://x")
    assert refused.concern is None
    assert "https://x/concerns/new" in refused.errors["confidentiality"]
    elsewhere = check(
        {"organisation": "vale", "department": "river/gp", "confidentiality": "named"},
        public_url="https://x",
    )
    assert "department" in elsewhere.errors


def test_home_shows_typed_text_inert() -> None:
    view = home_view(
        [
            HomeEntry(
                reference="LC-2026-000001",
                place=INJECTION,
                status_words="Open",
                where_now="Pathway 1",
                next_step="Feedback due by Monday",
                summary=INJECTION,
            )
        ]
    )
    shown = json.dumps(view)
    assert "LC-2026-000001" in shown
    for live in LIVE:
        assert live not in shown


# --- after a failure ----------------------------------------------------------------------------


def _submitted(blocks: list[dict[str, Any]], values: dict[str, Any]) -> dict[str, Any]:
    return {"id": "V1", "blocks": blocks, "state": {"values": values}}


def test_the_form_again_keeps_every_answer_and_says_why_once() -> None:
    many = [Place(key=f"org-{n}", name=f"Org {n}") for n in range(MAX_OPTIONS + 5)]
    blocks = concern_modal(many, values={"name": "Priya"}, public_url="https://x.example")["blocks"]
    picked = {"text": {"type": "plain_text", "text": "Org 7"}, "value": "org-7"}
    values = {
        "organisation": {ANSWER: {"type": "external_select", "selected_option": picked}},
        "description": {ANSWER: {"type": "plain_text_input", "value": "What I wrote"}},
        "name": {ANSWER: {"type": "plain_text_input", "value": None}},
        "harm": {ANSWER: {"type": "radio_buttons", "selected_option": {"value": "minor"}}},
        "cannot-raise-locally": {
            ANSWER: {"type": "checkboxes", "selected_options": [{"value": "yes"}]}
        },
    }
    form = form_again(_submitted(blocks, values), notice=NOT_SAVED)
    assert form is not None
    again = form_again(_submitted(form["blocks"], values), notice=NOT_SAVED)
    assert again is not None
    assert [b.get("block_id") for b in again["blocks"]].count(NOTICE_BLOCK) == 1
    assert again["blocks"][0]["text"]["text"].startswith(
        "*We could not save your concern just now.*\n"
    )
    elements = {b["block_id"]: b["element"] for b in again["blocks"] if b["type"] == "input"}
    assert elements["organisation"]["type"] == "external_select"
    assert elements["organisation"]["initial_option"] == picked
    assert elements["description"]["initial_value"] == "What I wrote"
    assert "initial_value" not in elements["name"]  # emptied by the learner: stays empty
    assert elements["harm"]["initial_option"]["value"] == "minor"
    assert elements["cannot-raise-locally"]["initial_options"][0]["value"] == "yes"
    assert "initial_option" not in elements["frequency"]
    # The blocks it was built from are left as they were.
    assert (
        "initial_value"
        not in next(b for b in blocks if b.get("block_id") == "description")["element"]
    )


def test_without_a_submitted_form_there_is_nothing_to_show_again() -> None:
    assert form_again({"id": "V1", "blocks": []}, notice=NOT_SAVED) is None


def test_the_learners_words_come_back_quoted_and_inert() -> None:
    text = not_saved_message({"description": f"Line one {INJECTION}\nLine two", "site": ""})
    assert ">Line one &lt;!channel&gt;" in text and "\n>Line two" in text
    assert "Site" not in text
    for live in LIVE:
        assert live not in text
    assert INJECTION not in not_added_reply(INJECTION)
    assert "&lt;!channel&gt;" in not_added_reply(INJECTION)


def test_the_received_view_says_where_the_confirmation_goes() -> None:
    assert "here in Slack and by email" in json.dumps(received_view("LC-2026-000001"))
    elsewhere = json.dumps(received_view("LC-2026-000001", in_slack=False))
    assert "by email with" in elsewhere and "Slack" not in elsewhere


def test_unslack_gives_back_the_text_as_typed() -> None:
    """Slack links what looks like an address or a web address; the people handling a concern
    read the learner's words in email and on the web, where Slack's markup is noise."""
    assert unslack("Ring <mailto:a.b@nhs.net|a.b@nhs.net> &amp; ask") == "Ring a.b@nhs.net & ask"
    assert unslack("See <https://rota.example/x>") == "See https://rota.example/x"
    assert unslack("See <https://rota.example/x|rota.example/x>") == "See rota.example/x"
    assert unslack("The <https://rota.example/x|rota>") == "The rota (https://rota.example/x)"
    # What the learner typed with angle brackets reaches us escaped, and stays as typed.
    assert unslack("&lt;b&gt; &lt;https://x.example|y&gt;") == "<b> <https://x.example|y>"
    assert unslack("Ask <@U0SOMEONE>") == "Ask <@U0SOMEONE>"
