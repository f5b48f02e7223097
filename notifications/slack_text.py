"""Text for Slack, made inert, and the ids our Slack messages and modals share with the bot.

Slack reads `<...>` in mrkdwn as mentions (`<!channel>`, `<!here>`, `<@U123>`) and links
(`<https://evil|looks safe>`); escaping `&`, `<` and `>` as Slack documents turns every one of
them into plain text. Learner text is escaped everywhere it reaches Slack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Buttons on contacts' messages
ACKNOWLEDGE = "concern_acknowledge"
RECORD_FEEDBACK = "concern_record_feedback"
NOT_MINE = "concern_not_mine"
# The feedback modal opened by RECORD_FEEDBACK
FEEDBACK_MODAL = "concern_feedback_modal"
# The modal opened by NOT_MINE, asking why it is not theirs
NOT_MINE_MODAL = "concern_not_mine_modal"
# Buttons on the learner's feedback message
LEARNER_SATISFIED = "concern_learner_satisfied"
LEARNER_REMAINS_CONCERNED = "concern_learner_remains_concerned"
# The learner's form: the modal, and the button (after a DM) that opens it prefilled
CONCERN_MODAL = "concern_new_modal"
OPEN_CONCERN_MODAL = "concern_open_modal"


@dataclass(frozen=True)
class SlackMessage:
    """A chat message: the fallback text (notifications, screen readers) and its blocks."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


def escape(text: str) -> str:
    """Learner or contact text as inert mrkdwn: no mention, channel ping or disguised link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
