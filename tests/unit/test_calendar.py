"""The working-day calendar against England's real bank holidays and clock changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

import holidays
import pytest

from routing.calendar import WorkingCalendar

LONDON = ZoneInfo("Europe/London")
CALENDAR = WorkingCalendar(timezone=LONDON, holidays=holidays.country_holidays("GB", subdiv="ENG"))
DAY = timedelta(hours=8)


def london(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=LONDON)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        pytest.param(
            london(2026, 11, 20, 16, 30), 1, utc(2026, 11, 23, 16, 30), id="friday-afternoon"
        ),
        pytest.param(london(2026, 11, 21, 10), 1, utc(2026, 11, 23, 17), id="saturday-start"),
        pytest.param(london(2026, 11, 22, 23, 59), 1, utc(2026, 11, 23, 17), id="sunday-night"),
        pytest.param(london(2026, 11, 23, 7), 1, utc(2026, 11, 23, 17), id="before-day-start"),
        pytest.param(london(2026, 11, 23, 9), 1, utc(2026, 11, 23, 17), id="ends-at-day-end"),
        pytest.param(london(2026, 11, 23, 17), 1, utc(2026, 11, 24, 17), id="starts-at-day-end"),
        pytest.param(london(2026, 11, 23, 18), 1, utc(2026, 11, 24, 17), id="after-day-end"),
        pytest.param(london(2026, 11, 23, 9), 5, utc(2026, 11, 27, 17), id="a-whole-week"),
        # 25 Dec (Fri) Christmas, 26-27 weekend, 28 Dec (Mon) the Boxing Day substitute:
        # one hour on Thursday, seven on Tuesday.
        pytest.param(london(2026, 12, 24, 16), 1, utc(2026, 12, 29, 16), id="christmas-2026"),
        pytest.param(london(2026, 12, 25, 10), 1, utc(2026, 12, 29, 17), id="holiday-start"),
        # 2027: 25-26 Dec weekend, both substitutes on Mon 27 and Tue 28 Dec.
        pytest.param(london(2027, 12, 24, 16), 1, utc(2027, 12, 29, 16), id="christmas-2027"),
        # Good Friday 26 Mar 2027, Easter Monday 29 Mar 2027, BST from Sun 28 Mar 01:00 UTC.
        pytest.param(london(2027, 3, 25, 16), 1, utc(2027, 3, 30, 15), id="easter-and-bst"),
        pytest.param(london(2027, 3, 26, 12), 1, utc(2027, 3, 30, 16), id="good-friday-start"),
        # BST ends Sun 25 Oct 2026: Friday is +01:00, Monday +00:00, both at local 16:00.
        pytest.param(london(2026, 10, 23, 16), 1, utc(2026, 10, 26, 16), id="bst-ends"),
        pytest.param(london(2026, 10, 22, 16), 2, utc(2026, 10, 26, 16), id="bst-ends-2-days"),
    ],
)
def test_add_working_days(start: datetime, days: int, expected: datetime) -> None:
    result = CALENDAR.add_working_days(start, days)

    assert result == expected
    assert result.tzinfo is UTC
    assert CALENDAR.working_time_between(start, result) == days * DAY


def test_clock_changes_never_move_the_working_day() -> None:
    # Thursday 22 Oct 2026 is BST, the following Thursday GMT: same local times, different UTC.
    before = CALENDAR.add_working_days(london(2026, 10, 22, 9), Fraction(1, 2))
    after = CALENDAR.add_working_days(before, 5)

    assert before == utc(2026, 10, 22, 12)
    assert before.astimezone(LONDON).time() == time(13)
    assert after == utc(2026, 10, 29, 13)
    assert after.astimezone(LONDON).time() == time(13)


def test_a_deadline_across_the_spring_change_lands_at_local_time() -> None:
    # Wed 24 Mar 2027 10:00 GMT + 3 days: Thu 25, (Fri 26, Mon 29 bank holidays) Tue 30,
    # Wed 31 10:00 BST.
    result = CALENDAR.add_working_days(london(2027, 3, 24, 10), 3)

    assert result == utc(2027, 3, 31, 9)
    assert result.astimezone(LONDON) == london(2027, 3, 31, 10)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 11, 20), True),  # Friday
        (date(2026, 11, 21), False),  # Saturday
        (date(2026, 11, 22), False),  # Sunday
        (date(2026, 12, 24), True),  # Christmas Eve is a working day
        (date(2026, 12, 25), False),
        (date(2026, 12, 28), False),  # Boxing Day (observed)
        (date(2026, 12, 29), True),
        (date(2027, 3, 26), False),  # Good Friday
        (date(2027, 3, 29), False),  # Easter Monday
        (date(2027, 3, 30), True),
    ],
)
def test_is_working_day(day: date, expected: bool) -> None:
    assert CALENDAR.is_working_day(day) is expected


def test_is_working_day_refuses_a_datetime() -> None:
    with pytest.raises(TypeError):
        CALENDAR.is_working_day(london(2026, 12, 25, 10))


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (london(2026, 11, 23, 8, 59, 59), False),
        (london(2026, 11, 23, 9), True),
        (london(2026, 11, 23, 12), True),
        (london(2026, 11, 23, 17), True),  # the end is inclusive: deadlines land on it
        (london(2026, 11, 23, 17, 0, 0, 1), False),
        (london(2026, 11, 21, 12), False),  # Saturday
        (london(2026, 12, 25, 12), False),  # Christmas Day
        # 08:30 UTC is 09:30 BST: working time, although the UTC clock says otherwise.
        (utc(2026, 10, 23, 8, 30), True),
        (utc(2026, 10, 23, 16, 30), False),
        (utc(2026, 10, 26, 16, 30), True),
    ],
)
def test_is_working_time(moment: datetime, expected: bool) -> None:
    assert CALENDAR.is_working_time(moment) is expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (london(2026, 11, 23, 12), utc(2026, 11, 23, 12)),
        (london(2026, 11, 23, 17), utc(2026, 11, 23, 17)),
        (london(2026, 11, 23, 17, 1), utc(2026, 11, 24, 9)),
        (london(2026, 11, 23, 6), utc(2026, 11, 23, 9)),
        (london(2026, 11, 20, 18), utc(2026, 11, 23, 9)),
        (london(2026, 12, 24, 17, 30), utc(2026, 12, 29, 9)),
        (london(2027, 3, 25, 18), utc(2027, 3, 30, 8)),  # 09:00 BST
    ],
)
def test_next_working_moment(moment: datetime, expected: datetime) -> None:
    result = CALENDAR.next_working_moment(moment)

    assert result == expected
    assert result.tzinfo is UTC


def test_add_working_time_in_hours() -> None:
    assert CALENDAR.add_working_time(london(2026, 11, 23, 16), timedelta(hours=1)) == utc(
        2026, 11, 23, 17
    )
    assert CALENDAR.add_working_time(
        london(2026, 11, 23, 16), timedelta(hours=1, microseconds=1)
    ) == utc(2026, 11, 24, 9, 0, 0, 1)
    assert CALENDAR.add_working_time(london(2026, 11, 21, 12), timedelta(0)) == utc(2026, 11, 23, 9)


def test_fractions_of_a_day() -> None:
    start = london(2026, 11, 23, 9)

    assert CALENDAR.add_working_days(start, Fraction(1, 2)) == utc(2026, 11, 23, 13)
    assert CALENDAR.add_working_days(start, Fraction(3, 2)) == utc(2026, 11, 24, 13)
    assert CALENDAR.add_working_days(start, Fraction(1, 3)) == utc(2026, 11, 23, 11, 40)
    assert CALENDAR.add_working_days(start, 0) == utc(2026, 11, 23, 9)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (london(2026, 11, 23, 9), london(2026, 11, 23, 17), DAY),
        (london(2026, 11, 20, 16), london(2026, 11, 23, 10), timedelta(hours=2)),
        (london(2026, 11, 21, 10), london(2026, 11, 22, 10), timedelta(0)),
        (london(2026, 12, 24, 0), london(2026, 12, 30, 0), 2 * DAY),
        (london(2026, 11, 23, 10), london(2026, 11, 23, 9), -timedelta(hours=1)),
        (london(2026, 10, 23, 9), london(2026, 10, 26, 17), 2 * DAY),
    ],
)
def test_working_time_between(a: datetime, b: datetime, expected: timedelta) -> None:
    assert CALENDAR.working_time_between(a, b) == expected


def test_a_calendar_without_holidays_still_skips_weekends() -> None:
    calendar = WorkingCalendar(timezone=LONDON)

    assert calendar.add_working_days(london(2026, 12, 24, 16), 1) == utc(2026, 12, 25, 16)
    assert calendar.add_working_days(london(2026, 11, 20, 16), 1) == utc(2026, 11, 23, 16)


def test_custom_working_hours() -> None:
    calendar = WorkingCalendar(timezone=LONDON, day_start=time(8), day_end=time(18, 30))

    assert calendar.working_day_length == timedelta(hours=10, minutes=30)
    assert calendar.add_working_days(london(2026, 11, 23, 12), 1) == utc(2026, 11, 24, 12)


naive = datetime(2026, 11, 23, 12)


@pytest.mark.parametrize(
    "call",
    [
        lambda: CALENDAR.is_working_time(naive),
        lambda: CALENDAR.next_working_moment(naive),
        lambda: CALENDAR.add_working_time(naive, DAY),
        lambda: CALENDAR.add_working_days(naive, 1),
        lambda: CALENDAR.working_time_between(naive, london(2026, 11, 24, 12)),
        lambda: CALENDAR.working_time_between(london(2026, 11, 20, 12), naive),
    ],
)
def test_naive_datetimes_are_rejected(call: object) -> None:
    assert callable(call)
    with pytest.raises(ValueError, match="naive"):
        call()


def test_negative_amounts_are_rejected() -> None:
    with pytest.raises(ValueError):
        CALENDAR.add_working_time(london(2026, 11, 23, 12), -DAY)
    with pytest.raises(ValueError):
        CALENDAR.add_working_days(london(2026, 11, 23, 12), Fraction(-1, 2))


@pytest.mark.parametrize(
    ("day_start", "day_end"),
    [(time(17), time(9)), (time(9), time(9)), (time(9, tzinfo=UTC), time(17))],
)
def test_working_hours_are_validated(day_start: time, day_end: time) -> None:
    with pytest.raises(ValueError):
        WorkingCalendar(timezone=LONDON, day_start=day_start, day_end=day_end)


def test_a_calendar_with_no_working_days_fails_instead_of_looping() -> None:
    class EveryDay:
        def __contains__(self, item: object) -> bool:
            return True

    calendar = WorkingCalendar(timezone=LONDON, holidays=EveryDay())

    with pytest.raises(ValueError, match="no working time"):
        calendar.add_working_days(london(2026, 11, 23, 12), 1)
