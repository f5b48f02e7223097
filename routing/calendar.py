"""The working-day calendar: which moments count as working time and how deadlines walk through it.

Deadlines in the rule book are counted in working days (Monday to Friday, 09:00-17:00 local time,
excluding bank holidays). Working time is measured on the local wall clock of the calendar's
time zone, so a clock change never moves the working day: 09:00-17:00 stays 09:00-17:00, and the
UTC offset of a result is whatever the zone says on that date.

The working window of a day is closed at both ends: a deadline may land exactly on day_end (a
concern raised at 09:00 with one working day is due at 17:00 the same day), and that moment must
itself count as working time, otherwise "the deadline falls within working hours" would be false
for the most common deadline of all.

All datetimes in and out are timezone-aware; results are in UTC. Naive datetimes are rejected,
because guessing their zone is exactly the bug this module exists to prevent.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

# A calendar whose holidays cover a whole year has no working time at all; stop walking instead of
# looping forever over a misconfigured holiday source.
MAX_DAYS_WITHOUT_WORKING_TIME = 366

_ZERO = timedelta(0)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class WorkingCalendar:
    """Working days (Mon-Fri, not a holiday) and the working window of each day, in one zone."""

    timezone: ZoneInfo
    # Injected by the composition root (holidays.country_holidays("GB", subdiv="ENG") in
    # production); anything that answers `day in holidays` will do, so routing stays pure. Left
    # out of the repr, which would otherwise list every bank holiday in every log line.
    holidays: Container[date] = field(default=frozenset(), repr=False)
    day_start: time = time(9)
    day_end: time = time(17)

    def __post_init__(self) -> None:
        if self.day_start.tzinfo is not None or self.day_end.tzinfo is not None:
            raise ValueError(
                "day_start and day_end are local wall-clock times: give them no tzinfo"
            )
        if not self.day_start < self.day_end:
            raise ValueError("day_start must be before day_end")

    @property
    def working_day_length(self) -> timedelta:
        """How much working time one working day holds (8 hours by default)."""
        return _on(date.min, self.day_end) - _on(date.min, self.day_start)

    def is_working_day(self, day: date) -> bool:
        """Whether the date is Monday to Friday and not a holiday."""
        if isinstance(day, datetime):
            # A datetime is a date to Python but is never equal to one, so `in holidays` would
            # silently miss; and which local date it means depends on a zone we would have to guess.
            raise TypeError("is_working_day takes a date; use is_working_time for a datetime")
        return day.weekday() < 5 and day not in self.holidays

    def is_working_time(self, moment: datetime) -> bool:
        """Whether the moment is on a working day between day_start and day_end, both included."""
        local = self._local(moment)
        return self.is_working_day(local.date()) and self.day_start <= local.time() <= self.day_end

    def next_working_moment(self, moment: datetime) -> datetime:
        """The moment itself if it is working time, otherwise the next working day's day_start."""
        return self.add_working_time(moment, _ZERO)

    def add_working_time(self, start: datetime, amount: timedelta) -> datetime:
        """The moment at which `amount` of working time has passed since `start`."""
        if amount < _ZERO:
            raise ValueError("amount of working time must not be negative")
        remaining = amount
        cursor = self._local(start)
        days_without_working_time = 0
        while days_without_working_time < MAX_DAYS_WITHOUT_WORKING_TIME:
            day = cursor.date()
            if self.is_working_day(day) and cursor <= _on(day, self.day_end):
                cursor = max(cursor, _on(day, self.day_start))
                available = _on(day, self.day_end) - cursor
                # `<=` so that an amount used up exactly at day_end ends at day_end, not at the
                # next working day's day_start.
                if remaining <= available:
                    return self._utc(cursor + remaining)
                remaining -= available
                days_without_working_time = 0
            else:
                days_without_working_time += 1
            cursor = _on(day + timedelta(days=1), self.day_start)
        raise ValueError(
            f"no working time within {MAX_DAYS_WITHOUT_WORKING_TIME} days: check the holidays"
        )

    def add_working_days(self, start: datetime, days: int | Fraction) -> datetime:
        """The moment at which `days` working days of working time have passed since `start`."""
        return self.add_working_time(start, _scale(self.working_day_length, days))

    def working_time_between(self, a: datetime, b: datetime) -> timedelta:
        """The working time from a to b; negative when b is before a, like b - a."""
        _require_aware(a)
        _require_aware(b)
        if b < a:
            return -self.working_time_between(b, a)
        total = _ZERO
        start, end = self._local(a), self._local(b)
        day = start.date()
        while day <= end.date():
            if self.is_working_day(day):
                window_start = max(start, _on(day, self.day_start))
                window_end = min(end, _on(day, self.day_end))
                if window_start < window_end:
                    total += window_end - window_start
            day += timedelta(days=1)
        return total

    def _local(self, moment: datetime) -> datetime:
        """The moment as a naive local wall-clock datetime in the calendar's zone."""
        _require_aware(moment)
        return moment.astimezone(self.timezone).replace(tzinfo=None)

    def _utc(self, local: datetime) -> datetime:
        """A naive local wall-clock datetime of the calendar's zone, as an aware UTC datetime."""
        return local.replace(tzinfo=self.timezone).astimezone(UTC)


def _on(day: date, at: time) -> datetime:
    """The naive local datetime of `at` on `day`."""
    return datetime.combine(day, at)


def _scale(length: timedelta, factor: int | Fraction) -> timedelta:
    """length x factor, exact to the microsecond (timedelta cannot be multiplied by a Fraction)."""
    factor = Fraction(factor)
    if factor < 0:
        raise ValueError("a number of working days must not be negative")
    return _MICROSECOND * round(factor * (length // _MICROSECOND))


def _require_aware(moment: datetime) -> None:
    """Reject a naive datetime: its zone would be a guess."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: give a timezone-aware datetime")
