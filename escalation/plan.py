"""What is due for one concern at a given moment: the pure decision behind the escalation sweep.

The rule book ("How a concern moves up"), as the code below applies it to the concern's current
level:

- before the acknowledgement deadline, once the reminder time has passed: remind the contact;
- acknowledgement deadline passed: remind again and tell the level's secondary contact;
- before the feedback deadline, once the reminder time has passed: remind the contact;
- feedback deadline passed: escalate to the next pathway, or at the dean flag it overdue;
- feedback given and no answer from the learner before the silence deadline: close it.

Acknowledging stops only the acknowledgement clock; recording feedback stops both clocks. A level
owes each step at most once: the caller records a "done" marker when it applies a step and resets
the markers when the concern reaches a new level (`reach_level`), and that is where idempotence
lives. Steps carry the level they were planned for, so the sweep applies a step only if the
concern is still at that level.

This module imports only the standard library and `routing`; it never reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import datetime
from enum import StrEnum

from routing.deadlines import LevelDeadlines
from routing.model import ConcernStatus, Pathway
from routing.pathways import next_pathway


class StepKind(StrEnum):
    ACK_REMINDER = "ack_reminder"
    # The current contact is reminded again and the level's secondary contact is told.
    ACK_MISSED = "ack_missed"
    FEEDBACK_REMINDER = "feedback_reminder"
    # To the next pathway: new contacts, the previous level and the learner are all told.
    ESCALATE = "escalate"
    # Pathway 3 has no higher level: the quality team is told and the dean digests lead with it.
    OVERDUE_AT_DEAN = "overdue_at_dean"
    CLOSE_AFTER_SILENCE = "close_after_silence"


@dataclass(frozen=True)
class ConcernClock:
    """The part of a concern that decides what is due: its level, that level's deadlines, and
    which of the level's steps are already done (aware datetimes throughout)."""

    status: ConcernStatus
    pathway: Pathway
    ack_reminder_at: datetime
    ack_due_at: datetime
    feedback_reminder_at: datetime
    feedback_due_at: datetime
    acknowledged_at: datetime | None = None
    feedback_at: datetime | None = None
    # The silence deadline, set when feedback is given.
    close_after: datetime | None = None
    # Done markers, per level: reach_level clears them.
    ack_reminder_sent_at: datetime | None = None
    ack_missed_at: datetime | None = None
    feedback_reminder_sent_at: datetime | None = None
    overdue_at_dean_at: datetime | None = None

    def __post_init__(self) -> None:
        for each in fields(self):
            value = getattr(self, each.name)
            if isinstance(value, datetime):
                _require_aware(value, each.name)


@dataclass(frozen=True)
class Step:
    """One thing the sweep should do for a concern, planned for the level it was at."""

    kind: StepKind
    # The level the step was planned for: the sweep applies it only if the concern is still there.
    pathway: Pathway
    due_at: datetime
    to_pathway: Pathway | None = None


@dataclass(frozen=True)
class _Owed:
    """A step the level has not done yet, due from step.due_at until (not including) `until`."""

    step: Step
    # None: due until it is done. Otherwise the moment a later rule supersedes it.
    until: datetime | None

    def is_due(self, now: datetime) -> bool:
        """Whether `now` falls in the span in which the step is due."""
        return self.step.due_at <= now and (self.until is None or now < self.until)

    def can_fall_due(self) -> bool:
        """Whether the span is not empty (a rule may supersede a step before it is due)."""
        return self.until is None or self.step.due_at < self.until


def _owed_steps(clock: ConcernClock) -> tuple[_Owed, ...]:
    """Every step the concern's current level still owes, each with the span in which it is due."""
    # `==`, not `is`: a status read back as a plain string still compares equal.
    if clock.status == ConcernStatus.CLOSED:
        return ()
    if clock.feedback_at is not None:
        # Recording feedback stops the acknowledgement and feedback clocks: only the learner's
        # silence can still move the concern.
        return _silence_close(clock)
    if clock.overdue_at_dean_at is not None:
        # At the dean, once flagged overdue, the concern waits to be closed; nothing else is due.
        return ()

    # A passed feedback deadline moves the concern on (or flags it at the dean), and that
    # supersedes every reminder of the level it leaves: they are all due only until it.
    level_ends = clock.feedback_due_at
    owed = [_Owed(_feedback_deadline_step(clock), until=None)]

    if clock.acknowledged_at is None and clock.ack_missed_at is None:
        owed.append(
            _Owed(
                Step(StepKind.ACK_MISSED, clock.pathway, due_at=clock.ack_due_at),
                until=level_ends,
            )
        )
        if clock.ack_reminder_sent_at is None:
            # No separate reminder once the acknowledgement deadline has passed: ACK_MISSED
            # reminds the contact again anyway.
            owed.append(
                _Owed(
                    Step(StepKind.ACK_REMINDER, clock.pathway, due_at=clock.ack_reminder_at),
                    until=min(clock.ack_due_at, level_ends),
                )
            )

    if clock.feedback_reminder_sent_at is None:
        owed.append(
            _Owed(
                Step(StepKind.FEEDBACK_REMINDER, clock.pathway, due_at=clock.feedback_reminder_at),
                until=level_ends,
            )
        )
    return tuple(owed)


def _feedback_deadline_step(clock: ConcernClock) -> Step:
    """What a passed feedback deadline means at this level: the next pathway, or the dean's flag."""
    # The ladder itself (1 -> 2 -> 3, nothing above the dean) is routing's table.
    higher = next_pathway(clock.pathway)
    if higher is None:
        return Step(StepKind.OVERDUE_AT_DEAN, clock.pathway, due_at=clock.feedback_due_at)
    return Step(StepKind.ESCALATE, clock.pathway, due_at=clock.feedback_due_at, to_pathway=higher)


def _silence_close(clock: ConcernClock) -> tuple[_Owed, ...]:
    """Closing after the learner's silence, once feedback has been given."""
    if clock.close_after is None:
        return ()
    step = Step(StepKind.CLOSE_AFTER_SILENCE, clock.pathway, due_at=clock.close_after)
    return (_Owed(step, until=None),)


def due_steps(*, clock: ConcernClock, now: datetime) -> tuple[Step, ...]:
    """The steps due for the concern at `now`, earliest first; empty when nothing is due."""
    _require_aware(now, "now")
    due = [owed.step for owed in _owed_steps(clock) if owed.is_due(now)]
    return tuple(sorted(due, key=_step_order))


def next_due_at(*, clock: ConcernClock) -> datetime | None:
    """The earliest moment at which due_steps returns anything; None when nothing is left."""
    # Exact by construction: due_steps is non-empty at t exactly when some owed step has
    # due_at <= t < until, so the earliest such t is the smallest due_at whose span is not empty.
    return min(
        (owed.step.due_at for owed in _owed_steps(clock) if owed.can_fall_due()),
        default=None,
    )


def reach_level(
    *, clock: ConcernClock, pathway: Pathway, deadlines: LevelDeadlines
) -> ConcernClock:
    """The clock of the concern once it has just reached `pathway`, with that level's deadlines."""
    # Status is left alone: reaching a level restarts the clocks, opening and closing are the
    # caller's decisions.
    return replace(
        clock,
        pathway=pathway,
        ack_reminder_at=deadlines.ack_reminder_at,
        ack_due_at=deadlines.ack_due_at,
        feedback_reminder_at=deadlines.feedback_reminder_at,
        feedback_due_at=deadlines.feedback_due_at,
        acknowledged_at=None,
        feedback_at=None,
        close_after=None,
        ack_reminder_sent_at=None,
        ack_missed_at=None,
        feedback_reminder_sent_at=None,
        overdue_at_dean_at=None,
    )


_KIND_ORDER = {kind: index for index, kind in enumerate(StepKind)}


def _step_order(step: Step) -> tuple[datetime, int]:
    """Earliest first; on a tie, the order of StepKind (the order of the rule book)."""
    return step.due_at, _KIND_ORDER[step.kind]


def _require_aware(moment: datetime, name: str) -> None:
    """Reject a naive datetime: comparing it with aware deadlines would be a guess."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} is a naive datetime ({moment.isoformat()}): give an aware one")
