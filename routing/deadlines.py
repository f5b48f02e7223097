"""Deadlines per risk level: when each pathway level must acknowledge and give feedback.

The table is the rule book's "How a concern moves up": windows are in working days and count from
the moment the concern reaches the level, so an escalated concern gets a fresh set at each level.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from types import MappingProxyType

from routing.calendar import WorkingCalendar
from routing.model import RiskLevel


@dataclass(frozen=True)
class Windows:
    """How many working days a level has to acknowledge and to give feedback to the learner."""

    acknowledge: int
    feedback: int


DEADLINES: Mapping[RiskLevel, Windows] = MappingProxyType(
    {
        RiskLevel.HIGH: Windows(acknowledge=1, feedback=5),
        RiskLevel.MEDIUM: Windows(acknowledge=2, feedback=10),
        RiskLevel.LOW: Windows(acknowledge=3, feedback=15),
    }
)


@dataclass(frozen=True)
class DeadlinePolicy:
    """The configurable part of the deadlines; the defaults are the rule book's."""

    # default_factory only because a read-only mapping is not hashable, which dataclasses take
    # for mutable; every default policy shares the one DEADLINES table.
    windows: Mapping[RiskLevel, Windows] = field(default_factory=lambda: DEADLINES)
    reminder_fraction: Fraction = Fraction(1, 2)
    silence_close_days: int = 10

    def __post_init__(self) -> None:
        missing = set(RiskLevel) - set(self.windows)
        if missing:
            raise ValueError(f"no deadline windows for {sorted(missing)}")
        for level, windows in self.windows.items():
            if windows.acknowledge <= 0 or windows.feedback <= 0:
                raise ValueError(f"deadline windows for {level} must be positive: {windows}")
        # A reminder at 0 would go out on arrival and one at 1 together with the deadline step.
        if not 0 < self.reminder_fraction < 1:
            raise ValueError("reminder_fraction must be strictly between 0 and 1")
        if self.silence_close_days < 0:
            raise ValueError("silence_close_days must not be negative")


DEFAULT_POLICY = DeadlinePolicy()


@dataclass(frozen=True)
class LevelDeadlines:
    """The four moments that drive one pathway level of a concern (aware, UTC)."""

    ack_reminder_at: datetime
    ack_due_at: datetime
    feedback_reminder_at: datetime
    feedback_due_at: datetime


def level_deadlines(
    *,
    level: RiskLevel,
    reached_at: datetime,
    calendar: WorkingCalendar,
    policy: DeadlinePolicy = DEFAULT_POLICY,
) -> LevelDeadlines:
    """The reminders and deadlines of a level reached at `reached_at`, for a concern of `level`."""
    windows = policy.windows[level]
    return LevelDeadlines(
        # Reminders go out once reminder_fraction of the window has passed, in working time.
        ack_reminder_at=calendar.add_working_days(
            reached_at, windows.acknowledge * policy.reminder_fraction
        ),
        ack_due_at=calendar.add_working_days(reached_at, windows.acknowledge),
        feedback_reminder_at=calendar.add_working_days(
            reached_at, windows.feedback * policy.reminder_fraction
        ),
        feedback_due_at=calendar.add_working_days(reached_at, windows.feedback),
    )


def silence_close_at(
    *,
    feedback_at: datetime,
    calendar: WorkingCalendar,
    policy: DeadlinePolicy = DEFAULT_POLICY,
) -> datetime:
    """When a concern closes if the learner has not answered the feedback given at `feedback_at`."""
    return calendar.add_working_days(feedback_at, policy.silence_close_days)
