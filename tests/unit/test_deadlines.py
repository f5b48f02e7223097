"""Deadlines per risk level: every row of the table walked through the real England calendar."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction
from zoneinfo import ZoneInfo

import holidays
import pytest

from routing.calendar import WorkingCalendar
from routing.deadlines import (
    DEADLINES,
    DeadlinePolicy,
    LevelDeadlines,
    Windows,
    level_deadlines,
    silence_close_at,
)
from routing.model import RiskLevel

LONDON = ZoneInfo("Europe/London")
CALENDAR = WorkingCalendar(timezone=LONDON, holidays=holidays.country_holidays("GB", subdiv="ENG"))


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def test_the_table_is_the_rule_book() -> None:
    assert dict(DEADLINES) == {
        RiskLevel.HIGH: Windows(acknowledge=1, feedback=5),
        RiskLevel.MEDIUM: Windows(acknowledge=2, feedback=10),
        RiskLevel.LOW: Windows(acknowledge=3, feedback=15),
    }
    assert DeadlinePolicy().reminder_fraction == Fraction(1, 2)
    assert DeadlinePolicy().silence_close_days == 10


# Reached on Monday 23 Nov 2026 at 09:00 (GMT, no bank holiday until Christmas). Reminders at half
# of each window: 4 hours, 1, 1.5, 2.5, 5 and 7.5 working days.
MONDAY_MORNING = datetime(2026, 11, 23, 9, tzinfo=LONDON)


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (
            RiskLevel.HIGH,
            LevelDeadlines(
                ack_reminder_at=utc(2026, 11, 23, 13),
                ack_due_at=utc(2026, 11, 23, 17),
                feedback_reminder_at=utc(2026, 11, 25, 13),
                feedback_due_at=utc(2026, 11, 27, 17),
            ),
        ),
        (
            RiskLevel.MEDIUM,
            LevelDeadlines(
                ack_reminder_at=utc(2026, 11, 23, 17),
                ack_due_at=utc(2026, 11, 24, 17),
                feedback_reminder_at=utc(2026, 11, 27, 17),
                feedback_due_at=utc(2026, 12, 4, 17),
            ),
        ),
        (
            RiskLevel.LOW,
            LevelDeadlines(
                ack_reminder_at=utc(2026, 11, 24, 13),
                ack_due_at=utc(2026, 11, 25, 17),
                feedback_reminder_at=utc(2026, 12, 2, 13),
                feedback_due_at=utc(2026, 12, 11, 17),
            ),
        ),
    ],
)
def test_level_deadlines_from_a_monday_morning(level: RiskLevel, expected: LevelDeadlines) -> None:
    assert level_deadlines(level=level, reached_at=MONDAY_MORNING, calendar=CALENDAR) == expected


# Reached on Thursday 24 Dec 2026 at 15:00: two working hours that day, then 25 and 28 Dec are
# bank holidays, 26-27 the weekend, and 1 Jan 2027 (Fri) New Year's Day.
CHRISTMAS_EVE = datetime(2026, 12, 24, 15, tzinfo=LONDON)


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (
            RiskLevel.HIGH,
            LevelDeadlines(
                ack_reminder_at=utc(2026, 12, 29, 11),  # 2h Thu + 2h
                ack_due_at=utc(2026, 12, 29, 15),  # 2h Thu + 6h
                feedback_reminder_at=utc(2026, 12, 31, 11),  # 20h
                feedback_due_at=utc(2027, 1, 5, 15),  # 40h, skipping New Year's Day
            ),
        ),
        (
            RiskLevel.MEDIUM,
            LevelDeadlines(
                ack_reminder_at=utc(2026, 12, 29, 15),
                ack_due_at=utc(2026, 12, 30, 15),
                feedback_reminder_at=utc(2027, 1, 5, 15),
                feedback_due_at=utc(2027, 1, 12, 15),
            ),
        ),
        (
            RiskLevel.LOW,
            LevelDeadlines(
                ack_reminder_at=utc(2026, 12, 30, 11),
                ack_due_at=utc(2026, 12, 31, 15),
                feedback_reminder_at=utc(2027, 1, 8, 11),
                feedback_due_at=utc(2027, 1, 19, 15),
            ),
        ),
    ],
)
def test_level_deadlines_over_christmas(level: RiskLevel, expected: LevelDeadlines) -> None:
    assert level_deadlines(level=level, reached_at=CHRISTMAS_EVE, calendar=CALENDAR) == expected


@pytest.mark.parametrize("level", list(RiskLevel))
def test_reminders_fall_at_half_of_each_window(level: RiskLevel) -> None:
    deadlines = level_deadlines(level=level, reached_at=CHRISTMAS_EVE, calendar=CALENDAR)
    windows = DEADLINES[level]
    day = CALENDAR.working_day_length

    def worked(until: datetime) -> object:
        return CALENDAR.working_time_between(CHRISTMAS_EVE, until)

    assert worked(deadlines.ack_reminder_at) == day * windows.acknowledge / 2
    assert worked(deadlines.ack_due_at) == day * windows.acknowledge
    assert worked(deadlines.feedback_reminder_at) == day * windows.feedback / 2
    assert worked(deadlines.feedback_due_at) == day * windows.feedback
    assert all(
        moment.tzinfo is UTC
        for moment in (
            deadlines.ack_reminder_at,
            deadlines.ack_due_at,
            deadlines.feedback_reminder_at,
            deadlines.feedback_due_at,
        )
    )


def test_a_level_reached_at_the_weekend_counts_from_monday_morning() -> None:
    saturday = datetime(2026, 11, 21, 22, tzinfo=LONDON)

    assert level_deadlines(
        level=RiskLevel.HIGH, reached_at=saturday, calendar=CALENDAR
    ) == level_deadlines(level=RiskLevel.HIGH, reached_at=MONDAY_MORNING, calendar=CALENDAR)


def test_a_custom_policy() -> None:
    policy = DeadlinePolicy(
        windows={level: Windows(acknowledge=2, feedback=4) for level in RiskLevel},
        reminder_fraction=Fraction(1, 4),
    )

    assert level_deadlines(
        level=RiskLevel.LOW, reached_at=MONDAY_MORNING, calendar=CALENDAR, policy=policy
    ) == LevelDeadlines(
        ack_reminder_at=utc(2026, 11, 23, 13),
        ack_due_at=utc(2026, 11, 24, 17),
        feedback_reminder_at=utc(2026, 11, 23, 17),
        feedback_due_at=utc(2026, 11, 26, 17),
    )


@pytest.mark.parametrize(
    ("feedback_at", "expected"),
    [
        # Ten working days: two whole weeks.
        (datetime(2026, 11, 23, 12, tzinfo=LONDON), utc(2026, 12, 7, 12)),
        # Over Christmas and New Year: 21-24 Dec, 29-31 Dec, 4-6 Jan.
        (datetime(2026, 12, 18, 14, tzinfo=LONDON), utc(2027, 1, 6, 14)),
        # Given on a Saturday evening: counted from Monday 09:00.
        (datetime(2026, 11, 21, 19, tzinfo=LONDON), utc(2026, 12, 4, 17)),
    ],
)
def test_silence_close_at(feedback_at: datetime, expected: datetime) -> None:
    assert silence_close_at(feedback_at=feedback_at, calendar=CALENDAR) == expected


def test_silence_close_days_is_configurable() -> None:
    policy = DeadlinePolicy(silence_close_days=3)

    assert silence_close_at(
        feedback_at=datetime(2026, 11, 20, 12, tzinfo=LONDON), calendar=CALENDAR, policy=policy
    ) == utc(2026, 11, 25, 12)


@pytest.mark.parametrize(
    "make",
    [
        lambda: DeadlinePolicy(windows={RiskLevel.HIGH: Windows(1, 5)}),
        lambda: DeadlinePolicy(windows={level: Windows(0, 5) for level in RiskLevel}),
        lambda: DeadlinePolicy(reminder_fraction=Fraction(0)),
        lambda: DeadlinePolicy(reminder_fraction=Fraction(1)),
        lambda: DeadlinePolicy(silence_close_days=-1),
    ],
)
def test_a_policy_that_cannot_work_is_refused(make: object) -> None:
    assert callable(make)
    with pytest.raises(ValueError):
        make()


def test_naive_reached_at_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        level_deadlines(
            level=RiskLevel.HIGH, reached_at=datetime(2026, 11, 23, 9), calendar=CALENDAR
        )
