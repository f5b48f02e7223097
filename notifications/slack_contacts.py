"""Slack messages for contacts (Block Kit), built from the same `Message` the email is made from.

A chat workspace is not the place for a concern's sensitive text: a contact's Slack message holds
the reference, the place, the risk, the deadlines and who raised it (as the role may see it:
`Message.facts` already hides a confidential learner's identity), a link to the staff page and,
where the recipient acts, the buttons Acknowledge / Record feedback / Not mine. The concern's
own words (summary, description, the learner's answers) are left out unless the operator chose
to share the one-line summary. Anything a person typed is escaped, so it can neither ping nor
disguise a link.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from notifications.messages import (
    AS_GIVEN,
    ConcernFacts,
    ContactStep,
    Message,
    MessageKind,
    contact_steps,
)
from notifications.slack_text import (
    ACKNOWLEDGE,
    FEEDBACK_MODAL,
    NOT_MINE,
    NOT_MINE_MODAL,
    RECORD_FEEDBACK,
    SlackMessage,
    escape,
)

# The link button to the staff page: Slack sends a click on it to the app too, which only acks.
OPEN_STAFF_PAGE = "concern_open_staff_page"
# The block holding the link and the buttons, found again when the message is updated.
ACTIONS_BLOCK = "concern_actions"
# The feedback modal's text input, as its submission names it.
FEEDBACK_BLOCK = "feedback"
FEEDBACK_INPUT = "text"
# Slack's own limit for a plain-text input.
FEEDBACK_MAX_CHARACTERS = 3000
# The Not mine modal's reason
REASON_BLOCK = "reason"
REASON_INPUT = "text"
REASON_MAX_CHARACTERS = 1000
# A shared summary is one line; a longer one is cut, so a pasted essay stays out of chat.
SUMMARY_MAX_CHARACTERS = 200
FIELD_MAX_CHARACTERS = 2000

# The action of each step a message asks of its contact (`contact_steps`).
ACTION_IDS: Mapping[ContactStep, str] = {
    ContactStep.ACKNOWLEDGE: ACKNOWLEDGE,
    ContactStep.RECORD_FEEDBACK: RECORD_FEEDBACK,
    ContactStep.NOT_MINE: NOT_MINE,
}

BUTTON_LABELS: Mapping[str, str] = {
    ACKNOWLEDGE: "Acknowledge",
    RECORD_FEEDBACK: "Record feedback",
    NOT_MINE: "Not mine",
}


def contact_message(
    kind: MessageKind, message: Message, facts: ConcernFacts, *, share_summary: bool
) -> SlackMessage:
    """The Slack DM for a contact: the message's facts for their role, a link, and buttons."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(message.headline, limit=150)},
        {"type": "section", "text": _mrkdwn(f"*{escape(facts.reference)}*")},
    ]
    if share_summary and facts.summary.strip():
        blocks.append(
            {"type": "section", "text": _mrkdwn(f"*Summary:* {escape(_one_line(facts.summary))}")}
        )
    # Slack shows at most 10 fields in a section; the rows come in sections of up to 10.
    rows = [
        _field(label, value if share_summary else _without_learners_words(value))
        for label, value in message.facts
    ]
    for start in range(0, len(rows), 10):
        blocks.append(
            {"type": "section", "fields": [_mrkdwn(row) for row in rows[start : start + 10]]}
        )
    steps = contact_steps(kind, facts)
    elements: list[dict[str, Any]] = [_button(ACTION_IDS[step], facts.reference) for step in steps]
    link = message.link or facts.staff_url
    elements.append(
        {
            "type": "button",
            "action_id": OPEN_STAFF_PAGE,
            "text": _plain("Open the staff page"),
            "url": link,
        }
    )
    blocks.append({"type": "actions", "block_id": ACTIONS_BLOCK, "elements": elements})
    if steps:
        blocks.append(
            {
                "type": "context",
                "elements": [
                    _mrkdwn(
                        "The concern's own words are on the staff page, not in Slack."
                        if not share_summary
                        else "The full concern is on the staff page."
                    )
                ],
            }
        )
    # The fallback text shows in notifications and is read by screen readers: no concern text.
    return SlackMessage(text=escape(message.subject), blocks=blocks)


def after_action(
    blocks: Iterable[Mapping[str, Any]], *, outcome: str, still_open: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """A sent message's blocks once someone acted: buttons no longer useful are taken away and
    the outcome (already escaped by the caller) is shown under the facts."""
    keep = set(still_open) | {OPEN_STAFF_PAGE}
    updated: list[dict[str, Any]] = []
    for block in blocks:
        copy = dict(block)
        if copy.get("block_id") == ACTIONS_BLOCK:
            copy["elements"] = [
                element for element in copy.get("elements", []) if element.get("action_id") in keep
            ]
            updated.append({"type": "context", "elements": [_mrkdwn(outcome)]})
        updated.append(copy)
    return updated


def feedback_modal(*, reference: str, private_metadata: str) -> dict[str, Any]:
    """The modal a contact writes the learner's feedback in."""
    return {
        "type": "modal",
        "callback_id": FEEDBACK_MODAL,
        "private_metadata": private_metadata,
        "title": _plain("Record feedback"),
        "submit": _plain("Send to the learner"),
        "close": _plain("Cancel"),
        "blocks": [
            {
                "type": "section",
                "text": _mrkdwn(
                    f"Feedback on *{escape(reference)}*. The learner reads exactly what you write "
                    "here, by email or on their status page; it stops the feedback clock."
                ),
            },
            {
                "type": "input",
                "block_id": FEEDBACK_BLOCK,
                "label": _plain("What the learner should be told"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": FEEDBACK_INPUT,
                    "multiline": True,
                    "max_length": FEEDBACK_MAX_CHARACTERS,
                },
            },
        ],
    }


def not_mine_modal(*, reference: str, private_metadata: str) -> dict[str, Any]:
    """The modal a contact passes a concern on from, saying why it is not theirs. The reason is
    optional for a contact (the directory then records that they said it is not theirs); staff
    moving a concern must give one, as on the staff pages."""
    return {
        "type": "modal",
        "callback_id": NOT_MINE_MODAL,
        "private_metadata": private_metadata,
        "title": _plain("Not mine"),
        "submit": _plain("Pass it on"),
        "close": _plain("Cancel"),
        "blocks": [
            {
                "type": "section",
                "text": _mrkdwn(
                    f"*{escape(reference)}* goes to whoever else holds the same role for this "
                    "concern in the directory. Its deadlines do not restart."
                ),
            },
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "optional": True,
                "label": _plain("Why it is not yours"),
                "hint": _plain(
                    "For example: this learner is not in my department. The next person and "
                    "the regional team see this; the learner does not. Staff moving a concern "
                    "must say why."
                ),
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_INPUT,
                    "multiline": True,
                    "max_length": REASON_MAX_CHARACTERS,
                },
            },
        ],
    }


def not_done_with_text(*, doing: str, reference: str, reason: str, text: str) -> SlackMessage:
    """A DM to a contact whose action was not recorded (their feedback, or passing a concern
    on): why, and what they wrote, given back so it is not lost (the modal it was typed in has
    closed). Nothing changed on the concern.

    Plain text only: their words can be longer than a block allows, and are escaped like any
    typed text, so they cannot ping anyone or disguise a link.
    """
    return SlackMessage(
        text=(
            f"{doing} *{escape(reference)}* was not recorded: {escape(reason)}\n"
            "Nothing has changed on the concern. Here is what you wrote, so it is not lost:\n"
            f"```{escape(text)}```"
        )
    )


def _button(action_id: str, reference: str) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": _plain(BUTTON_LABELS[action_id]),
        "value": reference,
    }
    if action_id == ACKNOWLEDGE:
        button["style"] = "primary"
    if action_id == NOT_MINE:
        # Passing a concern on cannot be undone from Slack: ask first.
        button["confirm"] = {
            "title": _plain("Pass this concern on?"),
            "text": _plain(
                "It goes to someone else in the directory who holds the same role, and you will "
                "not be asked about it again at this level."
            ),
            "confirm": _plain("Not mine"),
            "deny": _plain("Keep it"),
        }
    return button


def _without_learners_words(value: str) -> str:
    """A place without the learner's own words for it (free text stays off chat by default)."""
    if AS_GIVEN not in value:
        return value
    directory_part = value.split(AS_GIVEN, 1)[0].strip().rstrip(",").strip()
    return f"{directory_part} (more on the staff page)" if directory_part else "see the staff page"


def _field(label: str, value: str) -> str:
    # Slack refuses a field over 2,000 characters; escaping can lengthen what was typed.
    text = f"*{escape(label)}*\n{escape(value)}"
    return text if len(text) <= FIELD_MAX_CHARACTERS else text[: FIELD_MAX_CHARACTERS - 1] + "…"


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    if len(line) <= SUMMARY_MAX_CHARACTERS:
        return line
    return line[: SUMMARY_MAX_CHARACTERS - 1].rstrip() + "…"


def _plain(text: str, *, limit: int | None = None) -> dict[str, Any]:
    # Plain text is never read as mrkdwn; Slack refuses an over-long header, so it is cut.
    return {"type": "plain_text", "text": text[:limit] if limit else text, "emoji": False}


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}
