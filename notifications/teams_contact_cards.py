"""Teams cards (Adaptive Cards) for contacts and learners, built from the same `Message` the
email is made from.

A contact's card holds what their Slack message holds: the reference, the place, the risk, the
deadlines and who raised it (as their role may see it), a link to the staff page and, where the
recipient acts, Acknowledge / Record feedback / Not mine (`Action.Execute`, answered by
`bot.teams_contacts`). The concern's own words are left out unless the operator chose to share
the one-line summary; the learner's own words for a place are left out with them.

A learner's card (for a concern raised in Teams) says where the concern is and what happens
next, without what only makes sense in an email; after feedback it carries "I'm satisfied" and
"I remain concerned" (answered by `bot.teams_learners`). The feedback's text is not posted in
Teams: it is in the learner's email and on their status page.

Only words written literally here go in a `TextBlock` (`ours`); everything else, even what a
template put together from a concern's facts, goes in a `TextRun` (`untrusted`), which Teams
shows exactly as written: no link, mention or formatting can come from a person's text.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from notifications.messages import (
    AS_GIVEN,
    STATUS_LINK_INVITATION,
    ConcernFacts,
    ContactStep,
    Message,
    MessageKind,
    contact_steps,
)
from notifications.teams_text import card, clean, execute, ours, untrusted

# Verbs of the contacts' buttons (Action.Execute), and the data each carries.
ACKNOWLEDGE = "acknowledge"
RECORD_FEEDBACK = "record_feedback"
NOT_MINE = "not_mine"
# The verb of each step a message asks of its contact (`contact_steps`).
VERBS: Mapping[ContactStep, str] = {
    ContactStep.ACKNOWLEDGE: ACKNOWLEDGE,
    ContactStep.RECORD_FEEDBACK: RECORD_FEEDBACK,
    ContactStep.NOT_MINE: NOT_MINE,
}
# The feedback form's text input (its value arrives in the action's data under this id).
FEEDBACK_INPUT = "feedback"
# Not mine's reason, on the card that asks to confirm it.
REASON_INPUT = "reason"
REASON_MAX_CHARACTERS = 1000
# The link to the staff page, kept on every card.
OPEN_STAFF_PAGE = "open_staff_page"
# The product's limit for feedback (escalation.actions.MAX_FEEDBACK_CHARACTERS; a unit test
# keeps the two equal: notifications cannot import escalation).
FEEDBACK_MAX_CHARACTERS = 20_000
# Verbs of the learner's buttons after feedback (handled by bot.teams_learners).
LEARNER_SATISFIED = "satisfied"
LEARNER_REMAINS_CONCERNED = "remain_concerned"
OPEN_STATUS_PAGE = "open_status_page"

# A shared summary is one line; a longer one is cut, so a pasted essay stays out of chat.
SUMMARY_MAX_CHARACTERS = 200
FIELD_MAX_CHARACTERS = 2000

NOT_IN_TEAMS = "The concern's own words are on the staff page, not in Teams."
FULL_ON_STAFF_PAGE = "The full concern is on the staff page."

ADD_INFORMATION = (
    'To add information, write "my concerns" to me and press Add information on this concern: '
    "the people handling it will see it."
)
FEEDBACK_WHERE = (
    "The feedback itself is not posted in Teams: read it in the email we sent you, or on your "
    "concern's status page."
)
FEEDBACK_ANSWER = "Then tell us what you think:"
STILL_CONCERNED_AFTER_CLOSING = (
    'If you remain concerned, write "my concerns" to me and press Add information on this '
    "concern: the people handling it will see it and can reopen it."
)


def contact_card(
    kind: MessageKind,
    message: Message,
    facts: ConcernFacts,
    *,
    share_summary: bool,
    contact_id: int | None = None,
) -> dict[str, Any]:
    """The Teams card for a contact: their role's facts, a link to the staff page, buttons."""
    body: list[dict[str, Any]] = [
        untrusted(message.headline, limit=200, weight="bolder", size="medium"),
        untrusted(facts.reference, limit=100, weight="bolder"),
    ]
    if share_summary and facts.summary.strip():
        body.append(labelled("Summary", _one_line(facts.summary)))
    for label, value in message.facts:
        body.append(labelled(label, value if share_summary else _without_learners_words(value)))
    verbs = [VERBS[step] for step in contact_steps(kind, facts)]
    if verbs:
        body.append(ours(FULL_ON_STAFF_PAGE if share_summary else NOT_IN_TEAMS, isSubtle=True))
    data: dict[str, Any] = {"reference": facts.reference}
    if contact_id is not None:
        data["contact_id"] = contact_id
    actions = [contact_action(verb, data) for verb in verbs]
    actions.append(
        _open_url("Open the staff page", message.link or facts.staff_url, OPEN_STAFF_PAGE)
    )
    return card(body, actions)


def contact_action(verb: str, data: Mapping[str, Any], *, feedback: str = "") -> dict[str, Any]:
    """One of the contact's buttons. Record feedback opens a form on the card (Action.ShowCard)
    whose text goes to the bot with its own Action.Execute; `feedback` prefills it (their own
    words, given back when saving was refused)."""
    if verb == ACKNOWLEDGE:
        return execute("Acknowledge", ACKNOWLEDGE, dict(data), id=ACKNOWLEDGE, style="positive")
    if verb == NOT_MINE:
        # Passing a concern on cannot be undone from Teams: asked first, as in Slack.
        confirm = card(
            [
                ours(
                    "Pass this concern on? It goes to someone else in the directory who holds "
                    "the same role, and you will not be asked about it again at this level."
                ),
                {
                    "type": "Input.Text",
                    "id": REASON_INPUT,
                    "isMultiline": True,
                    "maxLength": REASON_MAX_CHARACTERS,
                    "label": (
                        "Why it is not yours (optional; the next person and the regional team "
                        "see this, the learner does not; staff moving a concern must say why)"
                    ),
                },
            ],
            [execute("Yes, it is not mine", NOT_MINE, dict(data))],
        )
        del confirm["$schema"], confirm["version"]
        return {"type": "Action.ShowCard", "title": "Not mine", "id": NOT_MINE, "card": confirm}
    if verb == RECORD_FEEDBACK:
        text_input: dict[str, Any] = {
            "type": "Input.Text",
            "id": FEEDBACK_INPUT,
            "isMultiline": True,
            "maxLength": FEEDBACK_MAX_CHARACTERS,
            "label": "What the learner should be told",
            "isRequired": True,
            "errorMessage": "Write the feedback for the learner",
        }
        if feedback:
            text_input["value"] = clean(feedback, limit=FEEDBACK_MAX_CHARACTERS)
        form = card(
            [
                ours(
                    "The learner reads exactly what you write here, by email or on their status "
                    "page; it stops the feedback clock."
                ),
                text_input,
            ],
            [execute("Send to the learner", RECORD_FEEDBACK, dict(data))],
        )
        del form["$schema"], form["version"]
        return {
            "type": "Action.ShowCard",
            "title": "Record feedback",
            "id": RECORD_FEEDBACK,
            "card": form,
        }
    raise ValueError(f"not a contact's button: {verb}")


def answered_card(
    posted: Mapping[str, Any] | None,
    *,
    reference: str,
    outcome: str,
    still_open: Iterable[str] = (),
) -> dict[str, Any]:
    """The card a contact pressed, once acted on: the outcome (who did what and when) under the
    facts, and only the buttons still useful (`still_open`) beside the staff page link.
    Without the posted card (not found), a card with the reference and the outcome."""
    keep = set(still_open) | {OPEN_STAFF_PAGE}
    if posted is None:
        return card([untrusted(reference, limit=100, weight="bolder"), untrusted(outcome)])
    answered = copy.deepcopy(dict(posted))
    answered["body"] = [
        element for element in answered.get("body", []) if element.get("id") != "notice"
    ]
    answered["body"].append(_notice(outcome))
    actions = [action for action in answered.get("actions", []) if action.get("id") in keep]
    if actions:
        answered["actions"] = actions
    else:
        answered.pop("actions", None)
    return answered


def refused_card(
    posted: Mapping[str, Any] | None,
    *,
    reference: str,
    reason: str,
    feedback: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The card pressed, unchanged but for why nothing was done: its buttons stay, so the same
    button works once the reason is gone. Feedback that was not recorded is given back, in the
    form (prefilled) and shown, so it is not lost."""
    base = (
        copy.deepcopy(dict(posted))
        if posted is not None
        else card([untrusted(reference, limit=100, weight="bolder")])
    )
    base["body"] = [element for element in base.get("body", []) if element.get("id") != "notice"]
    notice: list[dict[str, Any]] = [
        untrusted(f"Not done: {reason}", weight="bolder", color="attention")
    ]
    if feedback:
        notice.append(
            ours("Nothing has changed on the concern. Here is what you wrote, so it is not lost:")
        )
        notice.append(untrusted(feedback, limit=FEEDBACK_MAX_CHARACTERS))
    base["body"].append({"type": "Container", "id": "notice", "items": notice})
    if feedback:
        form = contact_action(RECORD_FEEDBACK, data or {"reference": reference}, feedback=feedback)
        actions = [
            form if action.get("id") == RECORD_FEEDBACK else action
            for action in base.get("actions", [])
        ]
        if not any(action.get("id") == RECORD_FEEDBACK for action in actions):
            actions.insert(0, form)
        base["actions"] = actions
    return base


def learner_card(
    kind: MessageKind, message: Message, facts: ConcernFacts, *, level_round: int = 0
) -> dict[str, Any]:
    """The Teams card for a learner: headline, where it stands, what to do next. The feedback
    buttons carry the level and round of the feedback they answer (`bot.teams_learners` refuses
    them once the concern has moved on)."""
    body: list[dict[str, Any]] = [
        untrusted(message.headline, limit=200, weight="bolder", size="medium")
    ]
    if message.signpost:
        body.append(untrusted(message.signpost, weight="bolder", color="attention"))
    body.extend(untrusted(text) for text in message.paragraphs if _fits_teams(text, facts))
    if kind is MessageKind.LEARNER_FEEDBACK:
        body.extend((ours(FEEDBACK_WHERE), ours(FEEDBACK_ANSWER)))
    elif kind is MessageKind.LEARNER_CLOSED:
        body.append(ours(STILL_CONCERNED_AFTER_CLOSING))
    else:
        body.append(ours(ADD_INFORMATION))
    body.append(labelled("Reference", facts.reference))
    actions: list[dict[str, Any]] = []
    if kind is MessageKind.LEARNER_FEEDBACK:
        data = {"reference": facts.reference, "pathway": facts.pathway, "round": level_round}
        actions.append(
            execute(
                "I'm satisfied",
                LEARNER_SATISFIED,
                dict(data),
                id=LEARNER_SATISFIED,
                style="positive",
            )
        )
        actions.append(
            execute(
                "I remain concerned",
                LEARNER_REMAINS_CONCERNED,
                dict(data),
                id=LEARNER_REMAINS_CONCERNED,
            )
        )
    if facts.status_url:
        actions.append(_open_url("Open the status page", facts.status_url, OPEN_STATUS_PAGE))
    return card(body, actions)


def labelled(label: str, value: str) -> dict[str, Any]:
    """A label and its value, both shown literally (a template may have put outside words in
    either)."""
    return {
        "type": "RichTextBlock",
        "inlines": [
            {"type": "TextRun", "text": clean(label, limit=100) + ": ", "weight": "bolder"},
            {"type": "TextRun", "text": clean(value, limit=FIELD_MAX_CHARACTERS)},
        ],
    }


def _notice(outcome: str) -> dict[str, Any]:
    return {"type": "Container", "id": "notice", "items": [untrusted(outcome, weight="bolder")]}


def _open_url(title: str, url: str, action_id: str) -> dict[str, Any]:
    return {"type": "Action.OpenUrl", "title": title, "url": url, "id": action_id}


def _fits_teams(text: str, facts: ConcernFacts) -> bool:
    """False for what only an email can say, and for text a chat message must not carry."""
    lowered = text.lower()
    if "this email" in lowered or "reply with" in lowered:
        return False
    if text.startswith(STATUS_LINK_INVITATION):
        return False  # a button instead
    if facts.feedback is not None and (text == facts.feedback or text.startswith("Feedback from")):
        return False
    return bool(text.strip())


def _without_learners_words(value: str) -> str:
    """A place without the learner's own words for it (free text stays off chat by default)."""
    if AS_GIVEN not in value:
        return value
    directory_part = value.split(AS_GIVEN, 1)[0].strip().rstrip(",").strip()
    return f"{directory_part} (more on the staff page)" if directory_part else "see the staff page"


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    if len(line) <= SUMMARY_MAX_CHARACTERS:
        return line
    return line[: SUMMARY_MAX_CHARACTERS - 1].rstrip() + "…"
