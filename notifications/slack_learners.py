"""Slack messages for learners (Block Kit), built from the same `Message` their email is made from.

A learner who raised a concern in Slack hears back there as well as by email. The Slack message
keeps what the email says about where the concern is and what happens next, without what only
makes sense in an email ("reply to this email"): in Slack the learner adds information by
replying in the thread of the message that confirmed their concern, and answers feedback with
the buttons. Like every chat message it carries no free text of the concern, and not the
feedback's text either: the feedback is in the learner's email and on their status page.
Everything shown is escaped, so nothing can ping anyone or disguise a link.
"""

from __future__ import annotations

from typing import Any

from notifications.messages import STATUS_LINK_INVITATION, ConcernFacts, Message, MessageKind
from notifications.slack_text import (
    LEARNER_REMAINS_CONCERNED,
    LEARNER_SATISFIED,
    SlackMessage,
    escape,
)

# The block holding the feedback buttons, found again when the message is updated after a click.
FEEDBACK_ACTIONS_BLOCK = "concern_learner_feedback_actions"
# The status page link button: Slack sends a click on it to the app too, which only acks.
OPEN_STATUS_PAGE = "concern_open_status_page"

ADD_INFORMATION_HERE = (
    "To add information, reply in this thread: the people handling your concern will see it."
)
ADD_INFORMATION_IN_THREAD = (
    "To add information, reply in the thread of the message that confirmed your concern: the "
    "people handling it will see it."
)
FEEDBACK_WHERE = (
    "The feedback itself is not posted in Slack: read it in the email we sent you, or on your "
    "concern's status page."
)
FEEDBACK_ANSWER = "Then tell us what you think:"
STILL_CONCERNED_AFTER_CLOSING = (
    "If you remain concerned, reply in the thread of the message that confirmed your concern: "
    "the people handling it will see your reply and can reopen it."
)

# Slack's limits: a header is at most 150 characters, a section's text 3,000.
HEADER_MAX = 150
SECTION_MAX = 3000


def learner_message(kind: MessageKind, message: Message, facts: ConcernFacts) -> SlackMessage:
    """The Slack version of a learner's message: headline, where it stands, what to do next."""
    paragraphs = [text for text in message.paragraphs if _fits_slack(text, facts)]
    if kind is MessageKind.LEARNER_ACK:
        paragraphs.append(ADD_INFORMATION_HERE)
    elif kind is MessageKind.LEARNER_FEEDBACK:
        paragraphs.extend((FEEDBACK_WHERE, FEEDBACK_ANSWER))
    elif kind is MessageKind.LEARNER_CLOSED:
        paragraphs.append(STILL_CONCERNED_AFTER_CLOSING)
    else:
        paragraphs.append(ADD_INFORMATION_IN_THREAD)

    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": message.headline[:HEADER_MAX]},
        }
    ]
    if message.signpost:
        blocks.append(_section(f"*Important:* {escape(message.signpost)}"))
    blocks.extend(_section(escape(text)) for text in paragraphs)
    if kind is MessageKind.LEARNER_FEEDBACK:
        blocks.append(
            feedback_buttons(facts.reference, pathway=facts.pathway, status_url=facts.status_url)
        )
    elif facts.status_url:
        blocks.append(
            {
                "type": "actions",
                "elements": [_status_button(facts.status_url)],
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"Reference {escape(facts.reference)}"}],
        }
    )
    return SlackMessage(text=escape(f"{message.headline} ({facts.reference})"), blocks=blocks)


def feedback_buttons(
    reference: str, *, pathway: int, status_url: str | None = None
) -> dict[str, Any]:
    """'I'm satisfied' and 'I remain concerned', each carrying the concern's reference. What
    'I remain concerned' asks to confirm depends on the level: at the dean's (pathway 3) there is
    no next level, and the dean's team is asked to look again."""
    if pathway >= 3:
        confirm_title, confirm_text, confirm_button = (
            "Ask the dean's team to look again?",
            "Your concern is already at the highest level: the dean's team is asked straight "
            "away to look at it again and to give you new feedback.",
            "Yes, ask them",
        )
    else:
        confirm_title, confirm_text, confirm_button = (
            "Move it to the next level?",
            "Your concern moves to the next level straight away, and the people there are told.",
            "Yes, move it",
        )
    elements: list[dict[str, Any]] = [
        {
            "type": "button",
            "action_id": LEARNER_SATISFIED,
            "text": {"type": "plain_text", "text": "I'm satisfied"},
            "style": "primary",
            "value": reference,
        },
        {
            "type": "button",
            "action_id": LEARNER_REMAINS_CONCERNED,
            "text": {"type": "plain_text", "text": "I remain concerned"},
            "value": reference,
            "confirm": {
                "title": {"type": "plain_text", "text": confirm_title},
                "text": {"type": "plain_text", "text": confirm_text},
                "confirm": {"type": "plain_text", "text": confirm_button},
                "deny": {"type": "plain_text", "text": "Not now"},
            },
        },
    ]
    if status_url:
        elements.append(_status_button(status_url))
    return {"type": "actions", "block_id": FEEDBACK_ACTIONS_BLOCK, "elements": elements}


def _fits_slack(text: str, facts: ConcernFacts) -> bool:
    """False for what only an email can say, and for text a chat message must not carry."""
    lowered = text.lower()
    if "this email" in lowered or "reply with" in lowered:
        return False
    if text.startswith(STATUS_LINK_INVITATION):
        return False  # a button instead
    if facts.feedback is not None and (text == facts.feedback or text.startswith("Feedback from")):
        return False
    return bool(text.strip())


def _section(text: str) -> dict[str, Any]:
    if len(text) > SECTION_MAX:
        text = text[: SECTION_MAX - 1] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _status_button(url: str) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": OPEN_STATUS_PAGE,
        "text": {"type": "plain_text", "text": "Open the status page"},
        "url": url,
    }
