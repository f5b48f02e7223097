"""The escalation plan: each rule of "How a concern moves up", one test at a time."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from escalation.plan import (
    ConcernClock,
    Step,
    StepKind,
    due_steps,
    next_due_at,
    reach_level,
)
from routing.deadlines import LevelDeadlines
from routing.model import ConcernStatus, Pathway

P1 = Pathway.CLINICAL_LEARNING_ENVIRONMENT
P2 = Pathway.SCHOOL_OR_EDUCATION_PROVIDER
P3 = Pathway.DEAN

# A high-risk concern that reached its level on Monday 23 Nov 2026 at 09:00.
ACK_REMINDER_AT = datetime(2026, 11, 23, 13, tzinfo=UTC)
ACK_DUE_AT = datetime(2026, 11, 23, 17, tzinfo=UTC)
FEEDBACK_REMINDER_AT = datetime(2026, 11, 25, 13, tzinfo=UTC)
FEEDBACK_DUE_AT = datetime(2026, 11, 27, 17, tzinfo=UTC)
TICK = timedelta(microseconds=1)


def make_clock(**overrides: Any) -> ConcernClock:
    values: dict[str, Any] = {
        "status": ConcernStatus.OPEN,
        "pathway": P1,
        "ack_reminder_at": ACK_REMINDER_AT,
        "ack_due_at": ACK_DUE_AT,
        "feedback_reminder_at": FEEDBACK_REMINDER_AT,
        "feedback_due_at": FEEDBACK_DUE_AT,
    }
    return ConcernClock(**(values | overrides))


def kinds(steps: tuple[Step, ...]) -> list[StepKind]:
    return [step.kind for step in steps]


def mark_done(clock: ConcernClock, steps: tuple[Step, ...], now: datetime) -> ConcernClock:
    """What the sweep records for the steps that only set a marker."""
    markers = {
        StepKind.ACK_REMINDER: "ack_reminder_sent_at",
        StepKind.ACK_MISSED: "ack_missed_at",
        StepKind.FEEDBACK_REMINDER: "feedback_reminder_sent_at",
        StepKind.OVERDUE_AT_DEAN: "overdue_at_dean_at",
    }
    for step in steps:
        marker: dict[str, Any] = {markers[step.kind]: now}
        clock = replace(clock, **marker)
    return clock


def moments_around(clock: ConcernClock) -> list[datetime]:
    """Every moment at which due_steps can change, and the instant before each."""
    edges = [
        clock.ack_reminder_at,
        clock.ack_due_at,
        clock.feedback_reminder_at,
        clock.feedback_due_at,
        *([clock.close_after] if clock.close_after else []),
    ]
    early = min(edges) - timedelta(days=365)
    return sorted({early, *edges, *(edge - TICK for edge in edges)})


def assert_next_due_at_is_exact(clock: ConcernClock) -> None:
    """due_steps is empty before next_due_at and not empty at it (checked at every edge)."""
    first = next_due_at(clock=clock)
    for moment in moments_around(clock):
        if first is None or moment < first:
            assert due_steps(clock=clock, now=moment) == (), moment
    if first is not None:
        assert due_steps(clock=clock, now=first) != ()


# -- closed ----------------------------------------------------------------------------------


def test_a_closed_concern_owes_nothing() -> None:
    clock = make_clock(status=ConcernStatus.CLOSED)

    assert due_steps(clock=clock, now=FEEDBACK_DUE_AT + timedelta(days=30)) == ()
    assert next_due_at(clock=clock) is None


# -- the acknowledgement clock -----------------------------------------------------------------


def test_nothing_is_due_before_the_acknowledgement_reminder() -> None:
    clock = make_clock()

    assert due_steps(clock=clock, now=ACK_REMINDER_AT - TICK) == ()
    assert next_due_at(clock=clock) == ACK_REMINDER_AT


def test_the_acknowledgement_reminder_is_due_from_its_time() -> None:
    clock = make_clock()

    assert due_steps(clock=clock, now=ACK_REMINDER_AT) == (
        Step(StepKind.ACK_REMINDER, P1, due_at=ACK_REMINDER_AT),
    )


def test_a_sent_reminder_is_not_due_again() -> None:
    now = ACK_REMINDER_AT + timedelta(hours=1)
    clock = make_clock()
    steps = due_steps(clock=clock, now=now)

    clock = mark_done(clock, steps, now)

    assert due_steps(clock=clock, now=now) == ()
    assert next_due_at(clock=clock) == ACK_DUE_AT


def test_acknowledgement_deadline_passed_reminds_again_and_tells_the_secondary_contact() -> None:
    clock = make_clock(ack_reminder_sent_at=ACK_REMINDER_AT)

    assert due_steps(clock=clock, now=ACK_DUE_AT) == (
        Step(StepKind.ACK_MISSED, P1, due_at=ACK_DUE_AT),
    )


def test_no_separate_reminder_once_the_acknowledgement_deadline_has_passed() -> None:
    # The sweep missed the reminder time (for example the service was down).
    clock = make_clock()

    assert kinds(due_steps(clock=clock, now=ACK_DUE_AT + timedelta(hours=1))) == [
        StepKind.ACK_MISSED
    ]


def test_a_missed_acknowledgement_is_marked_once() -> None:
    now = ACK_DUE_AT + timedelta(hours=1)
    clock = mark_done(make_clock(), due_steps(clock=make_clock(), now=now), now)

    assert due_steps(clock=clock, now=now) == ()
    assert due_steps(clock=clock, now=FEEDBACK_REMINDER_AT - TICK) == ()
    # The reminder it replaced never comes back.
    assert next_due_at(clock=clock) == FEEDBACK_REMINDER_AT


def test_acknowledging_stops_only_the_acknowledgement_clock() -> None:
    clock = make_clock(acknowledged_at=ACK_REMINDER_AT - timedelta(hours=1))

    assert due_steps(clock=clock, now=ACK_DUE_AT + timedelta(hours=1)) == ()
    assert next_due_at(clock=clock) == FEEDBACK_REMINDER_AT
    assert kinds(due_steps(clock=clock, now=FEEDBACK_REMINDER_AT)) == [StepKind.FEEDBACK_REMINDER]
    assert kinds(due_steps(clock=clock, now=FEEDBACK_DUE_AT)) == [StepKind.ESCALATE]


# -- the feedback clock ------------------------------------------------------------------------


def test_the_feedback_reminder_is_due_from_its_time() -> None:
    clock = make_clock(acknowledged_at=ACK_REMINDER_AT)

    assert due_steps(clock=clock, now=FEEDBACK_REMINDER_AT - TICK) == ()
    assert due_steps(clock=clock, now=FEEDBACK_REMINDER_AT) == (
        Step(StepKind.FEEDBACK_REMINDER, P1, due_at=FEEDBACK_REMINDER_AT),
    )
    sent = replace(clock, feedback_reminder_sent_at=FEEDBACK_REMINDER_AT)
    assert due_steps(clock=sent, now=FEEDBACK_DUE_AT - TICK) == ()
    assert next_due_at(clock=sent) == FEEDBACK_DUE_AT


def test_steps_due_together_come_earliest_first() -> None:
    clock = make_clock()

    assert due_steps(clock=clock, now=FEEDBACK_REMINDER_AT) == (
        Step(StepKind.ACK_MISSED, P1, due_at=ACK_DUE_AT),
        Step(StepKind.FEEDBACK_REMINDER, P1, due_at=FEEDBACK_REMINDER_AT),
    )


@pytest.mark.parametrize(("level", "next_level"), [(P1, P2), (P2, P3)])
def test_feedback_deadline_passed_escalates_to_the_next_pathway(
    level: Pathway, next_level: Pathway
) -> None:
    clock = make_clock(pathway=level, acknowledged_at=ACK_REMINDER_AT)

    assert due_steps(clock=clock, now=FEEDBACK_DUE_AT) == (
        Step(StepKind.ESCALATE, level, due_at=FEEDBACK_DUE_AT, to_pathway=next_level),
    )


def test_an_escalation_supersedes_every_reminder_of_the_level_it_leaves() -> None:
    # Nothing was ever sent: the sweep only runs after the feedback deadline.
    clock = make_clock()

    assert due_steps(clock=clock, now=FEEDBACK_DUE_AT + timedelta(days=2)) == (
        Step(StepKind.ESCALATE, P1, due_at=FEEDBACK_DUE_AT, to_pathway=P2),
    )


def test_an_escalation_stays_due_until_the_concern_reaches_the_next_level() -> None:
    # There is no marker for ESCALATE: reaching the next level is what makes it done.
    clock = make_clock(pathway=P2)
    later = FEEDBACK_DUE_AT + timedelta(days=3)

    assert kinds(due_steps(clock=clock, now=FEEDBACK_DUE_AT)) == [StepKind.ESCALATE]
    assert kinds(due_steps(clock=clock, now=later)) == [StepKind.ESCALATE]


def test_at_the_dean_a_passed_feedback_deadline_flags_the_concern_overdue() -> None:
    clock = make_clock(pathway=P3, ack_missed_at=ACK_DUE_AT)

    assert due_steps(clock=clock, now=FEEDBACK_DUE_AT) == (
        Step(StepKind.OVERDUE_AT_DEAN, P3, due_at=FEEDBACK_DUE_AT),
    )


def test_at_the_dean_once_flagged_overdue_nothing_more_is_due() -> None:
    clock = make_clock(pathway=P3, overdue_at_dean_at=FEEDBACK_DUE_AT)

    assert due_steps(clock=clock, now=FEEDBACK_DUE_AT + timedelta(days=100)) == ()
    assert next_due_at(clock=clock) is None


def test_at_the_dean_closing_after_silence_still_comes() -> None:
    close_after = FEEDBACK_DUE_AT + timedelta(days=20)
    clock = make_clock(
        pathway=P3,
        overdue_at_dean_at=FEEDBACK_DUE_AT,
        feedback_at=FEEDBACK_DUE_AT + timedelta(days=6),
        close_after=close_after,
    )

    assert due_steps(clock=clock, now=close_after) == (
        Step(StepKind.CLOSE_AFTER_SILENCE, P3, due_at=close_after),
    )


# -- after feedback ----------------------------------------------------------------------------


def test_feedback_stops_escalation_and_every_reminder() -> None:
    close_after = FEEDBACK_DUE_AT + timedelta(days=14)
    clock = make_clock(feedback_at=ACK_REMINDER_AT - timedelta(hours=1), close_after=close_after)

    for moment in (ACK_REMINDER_AT, ACK_DUE_AT, FEEDBACK_REMINDER_AT, FEEDBACK_DUE_AT):
        assert due_steps(clock=clock, now=moment) == ()
    assert next_due_at(clock=clock) == close_after


def test_the_learners_silence_closes_the_concern() -> None:
    close_after = FEEDBACK_DUE_AT + timedelta(days=14)
    clock = make_clock(feedback_at=FEEDBACK_REMINDER_AT, close_after=close_after)

    assert due_steps(clock=clock, now=close_after - TICK) == ()
    assert due_steps(clock=clock, now=close_after) == (
        Step(StepKind.CLOSE_AFTER_SILENCE, P1, due_at=close_after),
    )
    closed = replace(clock, status=ConcernStatus.CLOSED)
    assert due_steps(clock=closed, now=close_after) == ()


def test_feedback_without_a_silence_deadline_owes_nothing() -> None:
    clock = make_clock(feedback_at=FEEDBACK_REMINDER_AT)

    assert due_steps(clock=clock, now=FEEDBACK_DUE_AT + timedelta(days=100)) == ()
    assert next_due_at(clock=clock) is None


# -- idempotence -------------------------------------------------------------------------------


@pytest.mark.parametrize("pathway", list(Pathway))
def test_a_level_reaches_each_marked_step_once(pathway: Pathway) -> None:
    clock = make_clock(pathway=pathway)
    seen: list[StepKind] = []
    now = ACK_REMINDER_AT - timedelta(hours=1)
    while now < FEEDBACK_DUE_AT + timedelta(days=3):
        steps = due_steps(clock=clock, now=now)
        if StepKind.ESCALATE in kinds(steps):
            break
        seen += kinds(steps)
        clock = mark_done(clock, steps, now)
        assert due_steps(clock=clock, now=now) == ()
        now += timedelta(minutes=30)

    expected = [StepKind.ACK_REMINDER, StepKind.ACK_MISSED, StepKind.FEEDBACK_REMINDER]
    if pathway is P3:
        expected.append(StepKind.OVERDUE_AT_DEAN)
    assert seen == expected


# -- next_due_at -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"ack_reminder_sent_at": ACK_REMINDER_AT},
        {"ack_missed_at": ACK_DUE_AT},
        {"ack_reminder_sent_at": ACK_REMINDER_AT, "ack_missed_at": ACK_DUE_AT},
        {"acknowledged_at": ACK_REMINDER_AT},
        {"acknowledged_at": ACK_REMINDER_AT, "feedback_reminder_sent_at": FEEDBACK_REMINDER_AT},
        {"feedback_reminder_sent_at": FEEDBACK_REMINDER_AT},
        {"pathway": P3},
        {"pathway": P3, "overdue_at_dean_at": FEEDBACK_DUE_AT},
        {"feedback_at": ACK_DUE_AT},
        {"feedback_at": ACK_DUE_AT, "close_after": FEEDBACK_DUE_AT},
        {"feedback_at": ACK_DUE_AT, "close_after": ACK_REMINDER_AT},
        {"status": ConcernStatus.CLOSED},
        # A policy where the acknowledgement window outlasts the feedback window.
        {"ack_reminder_at": FEEDBACK_REMINDER_AT, "ack_due_at": FEEDBACK_DUE_AT + TICK},
        {"ack_reminder_at": FEEDBACK_DUE_AT, "ack_due_at": FEEDBACK_DUE_AT},
        # Every moment the same.
        {
            "ack_reminder_at": FEEDBACK_DUE_AT,
            "ack_due_at": FEEDBACK_DUE_AT,
            "feedback_reminder_at": FEEDBACK_DUE_AT,
        },
    ],
)
def test_next_due_at_is_exact(overrides: dict[str, Any]) -> None:
    assert_next_due_at_is_exact(make_clock(**overrides))


# -- reaching a level --------------------------------------------------------------------------


def test_reaching_a_level_restarts_its_clocks() -> None:
    done = make_clock(
        acknowledged_at=ACK_REMINDER_AT,
        ack_reminder_sent_at=ACK_REMINDER_AT,
        ack_missed_at=ACK_DUE_AT,
        feedback_reminder_sent_at=FEEDBACK_REMINDER_AT,
        feedback_at=FEEDBACK_DUE_AT,
        close_after=FEEDBACK_DUE_AT + timedelta(days=14),
    )
    later = timedelta(days=7)
    deadlines = LevelDeadlines(
        ack_reminder_at=ACK_REMINDER_AT + later,
        ack_due_at=ACK_DUE_AT + later,
        feedback_reminder_at=FEEDBACK_REMINDER_AT + later,
        feedback_due_at=FEEDBACK_DUE_AT + later,
    )

    assert reach_level(clock=done, pathway=P2, deadlines=deadlines) == ConcernClock(
        status=ConcernStatus.OPEN,
        pathway=P2,
        ack_reminder_at=ACK_REMINDER_AT + later,
        ack_due_at=ACK_DUE_AT + later,
        feedback_reminder_at=FEEDBACK_REMINDER_AT + later,
        feedback_due_at=FEEDBACK_DUE_AT + later,
    )


# -- aware datetimes only ----------------------------------------------------------------------


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        due_steps(clock=make_clock(), now=datetime(2026, 11, 23, 12))


@pytest.mark.parametrize("field", ["ack_due_at", "acknowledged_at", "overdue_at_dean_at"])
def test_a_naive_clock_is_refused(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        make_clock(**{field: datetime(2026, 11, 23, 12)})
