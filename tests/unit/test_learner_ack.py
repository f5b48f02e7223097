"""The learner's acknowledgement says where the concern stands: the level's deadlines when it is
new, and what the level has done since when it is sent again to a corrected address."""

from __future__ import annotations

from datetime import UTC, datetime

from notifications.messages import MessageKind, build_message
from notifications.render import render_email
from routing.model import Role
from tests.unit.test_reply_not_applied import facts

ASKED = "They have been asked to acknowledge it by Wednesday 25 November 2026 at 10:00"
FEEDBACK_BY = "give you feedback by Monday 7 December 2026 at 10:00"
MOVES_ON = "If they do not, it moves up to the next level automatically"


def ack(**changes: object) -> str:
    message = build_message(
        MessageKind.LEARNER_ACK, facts=facts(**changes), recipient_role=Role.LEARNER
    )
    return " ".join(render_email(message).text.split())


def test_a_new_concerns_acknowledgement_gives_the_deadlines() -> None:
    text = ack()
    assert f"{ASKED} and to {FEEDBACK_BY}." in text
    assert MOVES_ON in text


def test_sent_again_after_it_was_acknowledged_it_says_so() -> None:
    text = ack(acknowledged_at=datetime(2026, 11, 24, 9, 30, tzinfo=UTC))
    assert (
        "They acknowledged it on Tuesday 24 November 2026 at 09:30 and have been asked to "
        f"{FEEDBACK_BY}." in text
    )
    assert ASKED not in text
    assert MOVES_ON in text


def test_sent_again_after_feedback_it_points_to_the_feedback() -> None:
    text = ack(
        acknowledged_at=datetime(2026, 11, 24, 9, 30, tzinfo=UTC),
        feedback_at=datetime(2026, 11, 30, 14, 0, tzinfo=UTC),
    )
    assert (
        "They gave you feedback on Monday 30 November 2026 at 14:00: we are sending it to you "
        "in a separate email." in text
    )
    assert ASKED not in text and FEEDBACK_BY not in text and MOVES_ON not in text


def test_sent_again_after_a_deadline_passed_it_says_it_passed() -> None:
    text = ack(written_at=datetime(2026, 11, 26, 9, 0, tzinfo=UTC))
    assert (
        "They were asked to acknowledge it by Wednesday 25 November 2026 at 10:00 and have not "
        f"done so yet. They have been asked to {FEEDBACK_BY}." in text
    )
    text = ack(
        acknowledged_at=datetime(2026, 11, 24, 9, 30, tzinfo=UTC),
        written_at=datetime(2026, 12, 8, 9, 0, tzinfo=UTC),
    )
    assert (
        "They acknowledged it on Tuesday 24 November 2026 at 09:30. They were asked to "
        f"{FEEDBACK_BY}, and it is late." in text
    )
    # Written before the deadlines: as for a new concern.
    assert f"{ASKED} and to {FEEDBACK_BY}." in ack(written_at=datetime(2026, 11, 23, tzinfo=UTC))
