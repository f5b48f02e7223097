"""When each digest is due and what period it covers: 07:00 Europe/London, working days for the
daily digest, Mondays for the weekly one, the 1st for the monthly report."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from escalation.digest import due_period, send_after_for
from notifications.digests import DigestKind, Period
from routing.calendar import WorkingCalendar

LONDON = ZoneInfo("Europe/London")
BANK_HOLIDAYS = holidays.country_holidays("GB", subdiv="ENG", years=range(2026, 2030))
CALENDAR = WorkingCalendar(timezone=LONDON, holidays=BANK_HOLIDAYS)
DAILY, WEEKLY, MONTHLY = DigestKind.DAILY, DigestKind.WEEKLY, DigestKind.MONTHLY


def london(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=LONDON)


def seven(year: int, month: int, day: int) -> datetime:
    """07:00 London on a day, as the UTC moment periods are made of."""
    return london(year, month, day, 7).astimezone(UTC)


def period(start: tuple[int, int, int], end: tuple[int, int, int]) -> Period:
    return Period(seven(*start), seven(*end))


# --- the daily digest -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # Tuesday: Monday 07:00 to Tuesday 07:00.
        (london(2026, 11, 24, 10), period((2026, 11, 23), (2026, 11, 24))),
        # Exactly at 07:00 the new period is due ("at or before now").
        (london(2026, 11, 24, 7), period((2026, 11, 23), (2026, 11, 24))),
        # A minute before, the latest 07:00 is Monday's.
        (london(2026, 11, 24, 6, 59), period((2026, 11, 20), (2026, 11, 23))),
        # Monday covers the weekend: from Friday 07:00.
        (london(2026, 11, 23, 8), period((2026, 11, 20), (2026, 11, 23))),
        # After Christmas (Fri 25, Mon 28 December 2026 are bank holidays): Tuesday covers from
        # Thursday 24 December.
        (london(2026, 12, 29, 7, 30), period((2026, 12, 24), (2026, 12, 29))),
        # Given in UTC: 06:30 UTC in summer is 07:30 London, so Tuesday's digest is due.
        (datetime(2026, 7, 7, 6, 30, tzinfo=UTC), period((2026, 7, 6), (2026, 7, 7))),
    ],
)
def test_the_daily_digest_covers_the_time_since_the_previous_working_days_07_00(
    now: datetime, expected: Period
) -> None:
    assert due_period(DAILY, now, CALENDAR) == expected


@pytest.mark.parametrize(
    "now",
    [
        london(2026, 11, 28, 12),  # Saturday
        london(2026, 11, 29, 23, 59),  # Sunday
        london(2026, 11, 30, 6, 59),  # Monday before 07:00: the latest 07:00 was Sunday's
        london(2026, 12, 25, 9),  # Christmas Day
        london(2026, 12, 28, 9),  # the substitute Boxing Day holiday
    ],
)
def test_no_daily_digest_is_due_on_a_day_that_is_not_a_working_day(now: datetime) -> None:
    assert due_period(DAILY, now, CALENDAR) is None


# --- the weekly digest ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (london(2026, 11, 23, 7), period((2026, 11, 16), (2026, 11, 23))),
        (london(2026, 11, 25, 15), period((2026, 11, 16), (2026, 11, 23))),
        (london(2026, 11, 29, 23, 59), period((2026, 11, 16), (2026, 11, 23))),
        (london(2026, 11, 23, 6, 59), period((2026, 11, 9), (2026, 11, 16))),
        # Across a month and a year end.
        (london(2027, 1, 4, 7), period((2026, 12, 28), (2027, 1, 4))),
    ],
)
def test_the_weekly_digest_covers_the_seven_days_before_monday_07_00(
    now: datetime, expected: Period
) -> None:
    assert due_period(WEEKLY, now, CALENDAR) == expected


def test_a_week_across_the_clock_change_still_runs_07_00_to_07_00_london() -> None:
    # The clocks went back on Sunday 25 October 2026: that week has 169 hours.
    found = due_period(WEEKLY, london(2026, 10, 26, 9), CALENDAR)

    assert found == period((2026, 10, 19), (2026, 10, 26))
    assert found is not None and found.end - found.start == timedelta(hours=169)
    assert found.start.astimezone(LONDON).time() == found.end.astimezone(LONDON).time() == time(7)


# --- the monthly report -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (london(2026, 11, 15, 12), period((2026, 10, 1), (2026, 11, 1))),
        (london(2026, 12, 1, 7), period((2026, 11, 1), (2026, 12, 1))),
        (london(2026, 12, 1, 6, 59), period((2026, 10, 1), (2026, 11, 1))),
        (london(2027, 1, 1, 8), period((2026, 12, 1), (2027, 1, 1))),
        (london(2027, 3, 5, 8), period((2027, 2, 1), (2027, 3, 1))),
    ],
)
def test_the_monthly_report_covers_the_previous_calendar_month(
    now: datetime, expected: Period
) -> None:
    assert due_period(MONTHLY, now, CALENDAR) == expected


# --- when the messages go ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "now", "expected"),
    [
        # On a working day: at the scheduled moment, 07:00, before working hours.
        (DAILY, london(2026, 11, 24, 10), seven(2026, 11, 24)),
        (WEEKLY, london(2026, 11, 23, 10), seven(2026, 11, 23)),
        (MONTHLY, london(2026, 12, 1, 10), seven(2026, 12, 1)),
        # A bank-holiday Monday (31 August 2026): the weekly digest waits for Tuesday 07:00.
        (WEEKLY, london(2026, 8, 31, 10), seven(2026, 9, 1)),
        # 1 November 2026 is a Sunday: the monthly report waits for Monday 07:00.
        (MONTHLY, london(2026, 11, 1, 10), seven(2026, 11, 2)),
        # New Year's Day 2027 is a Friday and a bank holiday: Monday 4 January.
        (MONTHLY, london(2027, 1, 1, 10), seven(2027, 1, 4)),
    ],
)
def test_messages_go_at_07_00_of_the_scheduled_day_or_of_the_next_working_day(
    kind: DigestKind, now: datetime, expected: datetime
) -> None:
    found = due_period(kind, now, CALENDAR)
    assert found is not None
    assert send_after_for(found, CALENDAR) == expected


# --- properties -------------------------------------------------------------------------------

PROPERTIES = settings(derandomize=True, deadline=None, max_examples=300)
any_moment = st.datetimes(
    min_value=datetime(2026, 1, 1),
    max_value=datetime(2028, 12, 31, 23, 59, 59),
    timezones=st.sampled_from([LONDON, UTC]),
    allow_imaginary=False,
)


def scheduled_days(kind: DigestKind, up_to: date) -> list[date]:
    """Every day whose 07:00 is a scheduled moment of the kind, from 2025 up to a day."""
    day, found = date(2025, 1, 1), []
    while day <= up_to:
        if (
            (kind is DAILY and CALENDAR.is_working_day(day))
            or (kind is WEEKLY and day.weekday() == 0)
            or (kind is MONTHLY and day.day == 1)
        ):
            found.append(day)
        day += timedelta(days=1)
    return found


@PROPERTIES
@given(now=any_moment, kind=st.sampled_from(list(DigestKind)))
def test_the_period_due_ends_at_the_latest_scheduled_07_00_and_starts_at_the_one_before(
    now: datetime, kind: DigestKind
) -> None:
    moments = [
        seven(d.year, d.month, d.day)
        for d in scheduled_days(kind, now.astimezone(LONDON).date())
        if seven(d.year, d.month, d.day) <= now
    ]
    found = due_period(kind, now, CALENDAR)
    latest_seven = max(
        seven(d.year, d.month, d.day)
        for d in (now.astimezone(LONDON).date() - timedelta(days=n) for n in (0, 1))
        if seven(d.year, d.month, d.day) <= now
    )

    if kind is DAILY and not CALENDAR.is_working_day(latest_seven.astimezone(LONDON).date()):
        assert found is None
        return
    assert found == Period(moments[-2], moments[-1])
    # It is sent at 07:00 London, never before its period ends.
    send_after = send_after_for(found, CALENDAR)
    assert send_after >= found.end
    assert send_after.astimezone(LONDON).time() == time(7)
    assert CALENDAR.is_working_day(send_after.astimezone(LONDON).date())
