"""Properties of deadlines and the escalation plan over random moments and random concern lives."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import holidays
from hypothesis import event, given, settings
from hypothesis import strategies as st

from escalation.plan import ConcernClock, Step, StepKind, due_steps, next_due_at, reach_level
from routing.calendar import WorkingCalendar
from routing.deadlines import DEADLINES, level_deadlines, silence_close_at
from routing.model import ConcernStatus, Pathway, RiskLevel

LONDON = ZoneInfo("Europe/London")
BANK_HOLIDAYS = holidays.country_holidays("GB", subdiv="ENG", years=range(2026, 2030))
CALENDAR = WorkingCalendar(timezone=LONDON, holidays=BANK_HOLIDAYS)
TICK = timedelta(microseconds=1)

# Deterministic so that a failure in CI is the same failure on a laptop.
PROPERTIES = settings(derandomize=True, deadline=None, max_examples=200)

# Any moment in 2026-2028, in London or UTC, plus moments chosen to sit on the edges that matter:
# bank holidays, weekends around them, and the first and last instants of the working day.
EDGE_TIMES = [time(0), time(8, 59, 59, 999999), time(9), time(16, 59), time(17), time(17, 0, 1)]
EDGE_DAYS = sorted(
    day + timedelta(days=shift) for day in BANK_HOLIDAYS if day.year < 2029 for shift in (-1, 0, 1)
)
any_moment = st.datetimes(
    min_value=datetime(2026, 1, 1),
    max_value=datetime(2028, 12, 31, 23, 59, 59),
    timezones=st.sampled_from([LONDON, UTC]),
    allow_imaginary=False,
)
edge_moment = st.builds(
    lambda day, at: datetime.combine(day, at, tzinfo=LONDON),
    st.sampled_from(EDGE_DAYS),
    st.sampled_from(EDGE_TIMES),
)
moments = st.one_of(any_moment, edge_moment)


@PROPERTIES
@given(start=moments)
def test_every_deadline_falls_in_working_time_after_the_start(start: datetime) -> None:
    for level in RiskLevel:
        deadlines = level_deadlines(level=level, reached_at=start, calendar=CALENDAR)
        in_order = [
            deadlines.ack_reminder_at,
            deadlines.ack_due_at,
            deadlines.feedback_due_at,
        ]
        every = [*in_order, deadlines.feedback_reminder_at]

        for moment in every:
            assert moment.tzinfo is UTC
            assert moment > start
            assert CALENDAR.is_working_day(moment.astimezone(LONDON).date())
            assert CALENDAR.is_working_time(moment)
        assert in_order == sorted(in_order)
        assert deadlines.ack_reminder_at < deadlines.ack_due_at
        assert deadlines.feedback_reminder_at < deadlines.feedback_due_at
        day = CALENDAR.working_day_length
        windows = DEADLINES[level]
        assert CALENDAR.working_time_between(start, deadlines.ack_due_at) == (
            day * windows.acknowledge
        )
        assert CALENDAR.working_time_between(start, deadlines.feedback_due_at) == (
            day * windows.feedback
        )


# -- a concern's life, sweep after sweep -------------------------------------------------------

SWEEP, SWEEP_WHEN_DUE, ACKNOWLEDGE, FEEDBACK = "sweep", "sweep_when_due", "acknowledge", "feedback"
# Feedback is the rarest happening, because it stops the climb that the test is about.
lives = st.lists(
    st.tuples(
        st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=6)),
        st.sampled_from([SWEEP] * 3 + [SWEEP_WHEN_DUE] * 3 + [ACKNOWLEDGE] * 2 + [FEEDBACK]),
    ),
    max_size=60,
)

MARKERS = {
    StepKind.ACK_REMINDER: "ack_reminder_sent_at",
    StepKind.ACK_MISSED: "ack_missed_at",
    StepKind.FEEDBACK_REMINDER: "feedback_reminder_sent_at",
    StepKind.OVERDUE_AT_DEAN: "overdue_at_dean_at",
}


class Concern:
    """A concern as the sweep sees it: its clock, and what happened to it."""

    def __init__(self, *, level: RiskLevel, pathway: Pathway, now: datetime) -> None:
        self.level = level
        deadlines = level_deadlines(level=level, reached_at=now, calendar=CALENDAR)
        self.clock = ConcernClock(
            status=ConcernStatus.OPEN,
            pathway=pathway,
            ack_reminder_at=deadlines.ack_reminder_at,
            ack_due_at=deadlines.ack_due_at,
            feedback_reminder_at=deadlines.feedback_reminder_at,
            feedback_due_at=deadlines.feedback_due_at,
        )
        self.pathways = [pathway]
        # (how many levels reached so far, step kind) -> how many times applied
        self.applied: Counter[tuple[int, StepKind]] = Counter()

    def sweep(self, now: datetime) -> None:
        for step in due_steps(clock=self.clock, now=now):
            self.apply(step, now)

    def apply(self, step: Step, now: datetime) -> None:
        # As the real sweep does: a step planned for a level the concern has left is dropped.
        if step.pathway != self.clock.pathway or self.clock.status is ConcernStatus.CLOSED:
            return
        self.applied[len(self.pathways), step.kind] += 1
        if step.kind is StepKind.ESCALATE:
            assert step.to_pathway is not None
            deadlines = level_deadlines(level=self.level, reached_at=now, calendar=CALENDAR)
            self.clock = reach_level(clock=self.clock, pathway=step.to_pathway, deadlines=deadlines)
            self.pathways.append(step.to_pathway)
        elif step.kind is StepKind.CLOSE_AFTER_SILENCE:
            self.clock = replace(self.clock, status=ConcernStatus.CLOSED)
        else:
            marker: dict[str, Any] = {MARKERS[step.kind]: now}
            self.clock = replace(self.clock, **marker)


@PROPERTIES
@given(
    start=moments,
    level=st.sampled_from(RiskLevel),
    pathway=st.sampled_from(Pathway),
    life=lives,
)
def test_a_concern_climbs_the_ladder_one_level_at_a_time(
    start: datetime,
    level: RiskLevel,
    pathway: Pathway,
    life: list[tuple[timedelta, str]],
) -> None:
    concern = Concern(level=level, pathway=pathway, now=start)
    now = start
    for gap, happening in life:
        now += gap
        clock = concern.clock
        if happening == ACKNOWLEDGE and clock.acknowledged_at is None:
            concern.clock = replace(clock, acknowledged_at=now)
        elif happening == FEEDBACK and clock.feedback_at is None:
            close_after = silence_close_at(feedback_at=now, calendar=CALENDAR)
            concern.clock = replace(clock, feedback_at=now, close_after=close_after)
        elif happening in (SWEEP, SWEEP_WHEN_DUE):
            due_at = next_due_at(clock=clock)
            if happening == SWEEP_WHEN_DUE and due_at is not None:
                # The sweep reads the concern exactly when its indexed next_due_at comes round.
                now = max(now, due_at)
            concern.sweep(now)

            assert due_steps(clock=concern.clock, now=now) == ()
            # Nothing already in the past is left pending, so the sweep never re-reads a
            # concern for nothing.
            following = next_due_at(clock=concern.clock)
            assert following is None or following > now
            if following is not None:
                assert due_steps(clock=concern.clock, now=following - TICK) == ()
                assert due_steps(clock=concern.clock, now=following) != ()

    ladder = concern.pathways
    # Shown by --hypothesis-show-statistics: the lives generated do climb, close and get flagged.
    event(f"ladder {'-'.join(str(int(step)) for step in ladder)}")
    event(f"ends {concern.clock.status}")
    for _, kind in concern.applied:
        event(f"applied {kind}")
    assert all(later == earlier + 1 for earlier, later in pairwise(ladder))
    assert all(count == 1 for count in concern.applied.values())
    escalations = [level for (level, kind) in concern.applied if kind is StepKind.ESCALATE]
    assert len(escalations) == len(set(escalations)) == len(ladder) - 1


# -- next_due_at is exact for any clock, reachable or not --------------------------------------

BASE = datetime(2027, 3, 1, 9, tzinfo=UTC)
offsets = st.integers(min_value=0, max_value=12).map(lambda hours: BASE + timedelta(hours=hours))
maybe = st.none() | offsets


@st.composite
def clocks(draw: st.DrawFn) -> ConcernClock:
    feedback_at = draw(maybe)
    return ConcernClock(
        status=draw(st.sampled_from(ConcernStatus)),
        pathway=draw(st.sampled_from(Pathway)),
        ack_reminder_at=draw(offsets),
        ack_due_at=draw(offsets),
        feedback_reminder_at=draw(offsets),
        feedback_due_at=draw(offsets),
        acknowledged_at=draw(maybe),
        feedback_at=feedback_at,
        close_after=draw(maybe) if feedback_at else None,
        ack_reminder_sent_at=draw(maybe),
        ack_missed_at=draw(maybe),
        feedback_reminder_sent_at=draw(maybe),
        overdue_at_dean_at=draw(maybe),
    )


@PROPERTIES
@given(clock=clocks())
def test_next_due_at_is_the_first_moment_anything_is_due(clock: ConcernClock) -> None:
    first = next_due_at(clock=clock)
    # due_steps only changes at the clock's own moments, so checking each of them and the
    # instant before each covers every t.
    edges = [clock.ack_reminder_at, clock.ack_due_at, clock.feedback_reminder_at]
    edges += [clock.feedback_due_at, *([clock.close_after] if clock.close_after else [])]
    for moment in sorted({BASE - timedelta(days=1), *edges, *(edge - TICK for edge in edges)}):
        if first is None or moment < first:
            assert due_steps(clock=clock, now=moment) == ()
    if first is not None:
        assert due_steps(clock=clock, now=first) != ()
