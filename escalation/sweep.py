"""The sweep: claims the concerns with a step due and applies each step once.

Safe with any number of instances: a concern is claimed under a row lock (`FOR UPDATE SKIP
LOCKED` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite), re-planned from the row as it is now, and
its step markers, events and outbox rows are written in the same transaction. A second sweep at
the same moment finds nothing due; after downtime, each due concern takes one step, from now.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from escalation.ladder import (
    clock_of,
    contacts_of_level,
    escalate_to_next_pathway,
    record_event,
    refresh_next_due,
)
from escalation.notify import facts_of, queue_to_contacts, queue_to_learner
from escalation.plan import Step, StepKind, due_steps
from escalation.policy import Policy
from notifications.messages import MessageKind
from routing.model import ConcernStatus, Role
from storage import repositories
from storage.db import transaction
from storage.tables import Concern, Contact

log = logging.getLogger(__name__)

BATCH_SIZE = 200


@dataclass(frozen=True)
class AppliedStep:
    reference: str
    kind: str
    pathway: int
    to_pathway: int | None = None


@dataclass
class SweepReport:
    now: datetime
    applied: list[AppliedStep] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "now": self.now.isoformat(),
            "applied": [vars(step) for step in self.applied],
            "failed": self.failed,
        }


def sweep(
    *, engine: Engine, now: datetime, policy: Policy, batch_size: int = BATCH_SIZE
) -> SweepReport:
    """Apply every step due at `now`, each concern in its own short transaction."""
    report = SweepReport(now=now)
    attempted: set[int] = set()
    while True:
        with transaction(engine) as session:
            due = repositories.due_concern_ids(session, now=now, limit=batch_size + len(attempted))
        fresh = [concern_id for concern_id in due if concern_id not in attempted]
        if not fresh:
            return report
        for concern_id in fresh:
            attempted.add(concern_id)
            _sweep_one(engine, concern_id=concern_id, now=now, policy=policy, report=report)


def _sweep_one(
    engine: Engine, *, concern_id: int, now: datetime, policy: Policy, report: SweepReport
) -> None:
    try:
        with transaction(engine) as session:
            concern = repositories.claim_due_concern(session, concern_id=concern_id, now=now)
            if concern is None:
                return  # another instance has it, or it is no longer due
            applied = []
            for step in due_steps(clock=clock_of(concern), now=now):
                if step.pathway != concern.pathway:
                    break  # an earlier step moved the concern on; the rest were for the old level
                applied.append(_apply(session, concern, step, now=now, policy=policy))
            refresh_next_due(concern)
        report.applied.extend(applied)
    except Exception as error:
        # The concern stays due and is retried on the next tick. Only the type is logged: the
        # message of a database error can quote a row, and rows hold learners' words.
        log.error(
            "sweep: could not apply the steps due for concern %s: %s",
            concern_id,
            type(error).__name__,
        )
        report.failed.append(str(concern_id))


def _apply(
    session: Session, concern: Concern, step: Step, *, now: datetime, policy: Policy
) -> AppliedStep:
    APPLY[step.kind](session, concern, step, now, policy)
    return AppliedStep(
        reference=concern.reference,
        kind=step.kind.value,
        pathway=int(step.pathway),
        to_pathway=int(step.to_pathway) if step.to_pathway is not None else None,
    )


def _remind(kind: MessageKind, part: str) -> Callable[..., list[tuple[Contact, Role]]]:
    """A message of a kind to the current level's contacts in a part; it returns them."""

    def remind(
        session: Session,
        concern: Concern,
        policy: Policy,
        now: datetime,
        *,
        others_told: bool = True,
    ) -> list[tuple[Contact, Role]]:
        contacts = contacts_of_level(session, concern, pathway=concern.pathway, part=part, now=now)
        queue_to_contacts(
            session,
            concern=concern,
            facts=replace(facts_of(session, concern, policy, now=now), others_told=others_told),
            kind=kind,
            contacts=contacts,
            now=now,
            policy=policy,
        )
        return contacts

    return remind


_remind_primary_to_acknowledge = _remind(MessageKind.ACK_REMINDER, "primary")
_remind_primary_ack_missed = _remind(MessageKind.ACK_MISSED, "primary")
_tell_secondary_ack_missed = _remind(MessageKind.ACK_MISSED_SECONDARY, "secondary")
_remind_primary_feedback = _remind(MessageKind.FEEDBACK_REMINDER, "primary")


def _ack_reminder(
    session: Session, concern: Concern, step: Step, now: datetime, policy: Policy
) -> None:
    _remind_primary_to_acknowledge(session, concern, policy, now)
    concern.ack_reminder_sent_at = now
    record_event(session, concern, at=now, kind="ack_reminder", actor="system", channel="system")


def _ack_missed(
    session: Session, concern: Concern, step: Step, now: datetime, policy: Policy
) -> None:
    # The next contact first, so that the primary's message says whether there was one.
    told = _tell_secondary_ack_missed(session, concern, policy, now)
    _remind_primary_ack_missed(session, concern, policy, now, others_told=bool(told))
    concern.ack_missed_at = now
    record_event(session, concern, at=now, kind="ack_missed", actor="system", channel="system")


def _feedback_reminder(
    session: Session, concern: Concern, step: Step, now: datetime, policy: Policy
) -> None:
    _remind_primary_feedback(session, concern, policy, now)
    concern.feedback_reminder_sent_at = now
    record_event(
        session, concern, at=now, kind="feedback_reminder", actor="system", channel="system"
    )


def _escalate(
    session: Session, concern: Concern, step: Step, now: datetime, policy: Policy
) -> None:
    due = concern.feedback_due_at.astimezone(policy.calendar.timezone)
    escalate_to_next_pathway(
        session,
        concern,
        now=now,
        policy=policy,
        reason=f"No feedback was given to the learner at pathway {concern.pathway} "
        f"by the deadline ({due:%d %b %Y %H:%M})",
    )


def _overdue_at_dean(
    session: Session, concern: Concern, step: Step, now: datetime, policy: Policy
) -> None:
    concern.overdue_at_dean_at = now
    facts = facts_of(session, concern, policy, with_history=True, now=now)
    # The level's secondary and copy contacts: at pathway 3, the quality team.
    quality_team = [
        held
        for part in ("secondary", "copy")
        for held in contacts_of_level(session, concern, pathway=concern.pathway, part=part, now=now)
    ]
    queue_to_contacts(
        session,
        concern=concern,
        facts=facts,
        kind=MessageKind.OVERDUE_AT_DEAN,
        contacts=quality_team,
        now=now,
        policy=policy,
    )
    record_event(session, concern, at=now, kind="overdue_at_dean", actor="system", channel="system")


def _close_after_silence(
    session: Session, concern: Concern, step: Step, now: datetime, policy: Policy
) -> None:
    reason = (
        f"No answer from the learner for {policy.deadlines.silence_close_days} working days "
        "after feedback or after they last wrote"
    )
    concern.status = ConcernStatus.CLOSED.value
    concern.closed_at = now
    concern.closed_reason = reason
    facts = facts_of(session, concern, policy, why=reason, now=now)
    queue_to_learner(
        session,
        concern=concern,
        facts=facts,
        kind=MessageKind.LEARNER_CLOSED,
        now=now,
        policy=policy,
    )
    record_event(
        session,
        concern,
        at=now,
        kind="closed",
        actor="system",
        channel="system",
        detail={"reason": reason},
    )


APPLY: Mapping[StepKind, Callable[[Session, Concern, Step, datetime, Policy], None]] = {
    StepKind.ACK_REMINDER: _ack_reminder,
    StepKind.ACK_MISSED: _ack_missed,
    StepKind.FEEDBACK_REMINDER: _feedback_reminder,
    StepKind.ESCALATE: _escalate,
    StepKind.OVERDUE_AT_DEAN: _overdue_at_dean,
    StepKind.CLOSE_AFTER_SILENCE: _close_after_silence,
}
