"""Contacts' Slack messages: the facts their role may see, buttons where they act, no concern text
by default, and nothing a person typed able to ping or disguise a link."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from notifications.messages import (
    CONTACT_STEPS,
    ConcernFacts,
    LearnerIdentity,
    MessageKind,
    build_message,
)
from notifications.slack_contacts import (
    ACTION_IDS,
    ACTIONS_BLOCK,
    OPEN_STAFF_PAGE,
    after_action,
    contact_message,
    not_done_with_text,
)
from notifications.slack_text import ACKNOWLEDGE, NOT_MINE, RECORD_FEEDBACK, SlackMessage
from routing.model import Confidentiality, Role

INJECTION = "<!channel> ask <@U123> or see <https://x|y> & <!here>"
SUMMARY = f"Rota gaps on nights {INJECTION}"
DESCRIPTION = "SECRET-DESCRIPTION the registrar left me alone"

FACTS = ConcernFacts(
    reference="LC-2026-000042",
    summary=SUMMARY,
    description=DESCRIPTION,
    place=f"Emergency Department, Vale General Hospital (as given: {INJECTION})",
    pathway=1,
    risk_level="medium",
    rating="A",
    reasons=("SECRET-REASON from the text",),
    interventions=("Programme review",),
    patient_safety=False,
    hotspot=False,
    confidentiality=Confidentiality.NAMED,
    learner=LearnerIdentity(name="Priya <@U999> Learner", email="priya@example.nhs.uk"),
    learner_group="foundation",
    ack_due_at=datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
    feedback_due_at=datetime(2026, 12, 7, 10, 0, tzinfo=UTC),
    timezone=ZoneInfo("Europe/London"),
    staff_url="http://127.0.0.1:8000/staff/concerns/LC-2026-000042",
    why="SECRET-WHY a contact typed this",
    history=("SECRET-HISTORY",),
    feedback="SECRET-FEEDBACK",
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


def slack_message(
    kind: MessageKind = MessageKind.NEW_CONCERN,
    *,
    facts: ConcernFacts = FACTS,
    role: Role = Role.SUPERVISOR,
    share_summary: bool = False,
) -> SlackMessage:
    message = build_message(kind, facts=facts, recipient_role=role)
    return contact_message(kind, message, facts, share_summary=share_summary)


def everything(message: SlackMessage) -> str:
    return message.text + json.dumps(message.blocks)


def buttons(message: SlackMessage) -> list[dict[str, Any]]:
    (actions,) = [block for block in message.blocks if block.get("block_id") == ACTIONS_BLOCK]
    return list(actions["elements"])


def mrkdwn_texts(blocks: list[dict[str, Any]]) -> list[str]:
    """Every mrkdwn text in the blocks (the only text Slack reads for mentions and links)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(blocks)
    return found


@pytest.mark.parametrize("kind", CONTACT_KINDS)
def test_no_free_text_of_the_concern_by_default(kind: MessageKind) -> None:
    text = everything(slack_message(kind))
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


def test_a_new_concern_shows_reference_place_risk_deadlines_link_and_buttons() -> None:
    message = slack_message()
    text = everything(message)
    assert "LC-2026-000042" in message.text
    assert "Emergency Department, Vale General Hospital" in text
    assert "medium (A)" in text
    # The deadlines, in London time as people read them.
    assert "Wednesday 25 November 2026 at 10:00" in text
    assert "Monday 7 December 2026 at 10:00" in text
    elements = buttons(message)
    assert [element["action_id"] for element in elements] == [
        ACKNOWLEDGE,
        RECORD_FEEDBACK,
        NOT_MINE,
        OPEN_STAFF_PAGE,
    ]
    assert all(element["value"] == FACTS.reference for element in elements[:3])
    assert elements[3]["url"] == FACTS.staff_url
    assert "confirm" in elements[2], "passing a concern on is confirmed first"


def test_no_acknowledge_button_on_a_concern_already_acknowledged() -> None:
    """Sooner deadlines told after the contact acknowledged ask only for feedback."""
    acknowledged = replace(FACTS, acknowledged_at=datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    message = slack_message(MessageKind.DEADLINES_CHANGED, facts=acknowledged)
    acting = [e["action_id"] for e in buttons(message) if "value" in e]
    assert acting == [RECORD_FEEDBACK, NOT_MINE]


@pytest.mark.parametrize("kind", CONTACT_KINDS)
def test_buttons_only_where_the_recipient_acts(kind: MessageKind) -> None:
    acting = [e["action_id"] for e in buttons(slack_message(kind)) if "value" in e]
    assert acting == [ACTION_IDS[step] for step in CONTACT_STEPS.get(kind, ())]
    if kind in (MessageKind.ESCALATED_OUT, MessageKind.HIGH_RISK_ALERT):
        assert acting == []
    if kind in (MessageKind.NEW_CONCERN, MessageKind.REDIRECTED_IN, MessageKind.REOPENED):
        assert ACKNOWLEDGE in acting


def test_the_summary_only_with_the_setting_and_escaped() -> None:
    message = slack_message(share_summary=True)
    summary_blocks = [text for text in mrkdwn_texts(message.blocks) if "Summary" in text]
    assert len(summary_blocks) == 1
    assert "Rota gaps on nights" in summary_blocks[0]
    assert "SECRET-DESCRIPTION" not in everything(message)
    assert "Rota gaps" not in message.text, "the notification text never carries it"


def test_a_long_summary_is_cut_to_one_short_line() -> None:
    long = replace(FACTS, summary="word " * 200 + "\nsecond line")
    (summary,) = [
        text
        for text in mrkdwn_texts(slack_message(facts=long, share_summary=True).blocks)
        if "Summary" in text
    ]
    assert len(summary) < 250
    assert "\n" not in summary


def test_the_learners_own_words_for_the_place_stay_off_slack_by_default() -> None:
    shown = everything(slack_message())
    assert "Emergency Department, Vale General Hospital (more on the staff page)" in shown
    assert "as given" not in shown and "channel" not in shown
    only_words = replace(FACTS, place=f"(as given: {INJECTION})")
    assert "see the staff page" in everything(slack_message(facts=only_words))
    assert "as given" in everything(slack_message(share_summary=True))


@pytest.mark.parametrize("share_summary", [False, True])
def test_mentions_pings_and_links_in_typed_text_are_inert(share_summary: bool) -> None:
    message = slack_message(share_summary=share_summary)
    for text in [*mrkdwn_texts(message.blocks), message.text]:
        assert "<!" not in text and "<@" not in text and "<http" not in text, text
    shown = "\n".join(mrkdwn_texts(message.blocks))
    assert "Priya &lt;@U999&gt; Learner" in shown
    if not share_summary:
        return  # the place's typed words are left out altogether (test above)
    # Still there for people to read, as plain text.
    assert "&lt;!channel&gt;" in shown
    assert "&lt;@U123&gt;" in shown
    assert "&lt;https://x|y&gt;" in shown
    assert "&amp; &lt;!here&gt;" in shown
    assert "Priya &lt;@U999&gt; Learner" in shown


@pytest.mark.parametrize("role", [Role.SUPERVISOR, Role.FOUNDATION_SCHOOL])
def test_a_confidential_learner_is_not_named_below_the_dean(role: Role) -> None:
    confidential = replace(FACTS, confidentiality=Confidentiality.CONFIDENTIAL)
    text = everything(slack_message(facts=confidential, role=role))
    assert "Priya" not in text and "priya@example.nhs.uk" not in text
    assert "asked for confidentiality" in text


def test_the_dean_sees_a_confidential_learner_as_the_email_does() -> None:
    confidential = replace(FACTS, confidentiality=Confidentiality.CONFIDENTIAL)
    text = everything(slack_message(MessageKind.ESCALATED_IN, facts=confidential, role=Role.DEAN))
    assert "priya@example.nhs.uk" in text


def test_an_anonymous_learner_is_never_named() -> None:
    anonymous = replace(FACTS, confidentiality=Confidentiality.ANONYMOUS, learner=None)
    assert "an anonymous learner" in everything(slack_message(facts=anonymous, role=Role.DEAN))


def test_after_an_action_only_the_buttons_that_still_apply_remain() -> None:
    blocks = slack_message().blocks
    updated = after_action(
        blocks, outcome="*Acknowledged* by Dr Sample", still_open=(RECORD_FEEDBACK, NOT_MINE)
    )
    (actions,) = [block for block in updated if block.get("block_id") == ACTIONS_BLOCK]
    assert [e["action_id"] for e in actions["elements"]] == [
        RECORD_FEEDBACK,
        NOT_MINE,
        OPEN_STAFF_PAGE,
    ]
    assert "*Acknowledged* by Dr Sample" in mrkdwn_texts(updated)
    done = after_action(blocks, outcome="Feedback recorded")
    (actions,) = [block for block in done if block.get("block_id") == ACTIONS_BLOCK]
    assert [e["action_id"] for e in actions["elements"]] == [OPEN_STAFF_PAGE]
    # The message sent is not changed in place.
    assert [e["action_id"] for e in buttons(slack_message())][:3] == [
        ACKNOWLEDGE,
        RECORD_FEEDBACK,
        NOT_MINE,
    ]


def test_unrecorded_feedback_comes_back_whole_with_the_reason_and_inert() -> None:
    typed = "Line one\nline two " + INJECTION + " " + "x" * 3000
    message = not_done_with_text(
        doing="Your feedback on",
        reference="LC-2026-000042",
        reason="LC-2026-000042 is closed <now>",
        text=typed,
    )
    assert message.blocks == []
    assert (
        "Your feedback on *LC-2026-000042* was not recorded: LC-2026-000042 is closed &lt;now&gt;"
        in (message.text)
    )
    # Every character they typed is there (escaped, so nothing pings or links).
    inert = typed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert f"```{inert}```" in message.text
    for live in ("<!channel>", "<!here>", "<@U123>", "<https://x|y>"):
        assert live not in message.text
