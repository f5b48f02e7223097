"""Which feedback a learner's answer is for: the level, its round and the moment it was given."""

from __future__ import annotations

from datetime import UTC, datetime

from intake.follow_up import feedback_version
from storage.tables import Concern

GIVEN = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def concern(**values: object) -> Concern:
    return Concern(**{"pathway": 3, "level_round": 0, "feedback_at": GIVEN, **values})  # type: ignore[arg-type]


def test_feedback_at_another_level_or_round_is_other_feedback() -> None:
    same = feedback_version(concern())
    assert same is not None and same == feedback_version(concern())
    assert feedback_version(concern(level_round=1)) != same  # a new round, the same second
    assert feedback_version(concern(pathway=2)) != same
    assert feedback_version(concern(feedback_at=None)) is None
