"""What people do to a concern: one implementation for every channel (email, web, Slack, Teams).

Each action runs inside the caller's transaction on a concern the caller has locked, writes one
event to the audit trail, and queues what it causes in the outbox. An action that does not apply
is refused with a reason (`ActionRefused`) and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlmodel import Session

from escalation.contacts import choose_programme_body
from escalation.ladder import (
    alert_high_risk,
    assign_contacts,
    clock_of,
    escalate_to_next_pathway,
    record_event,
    refresh_next_due,
    told_summary,
    write_clock,
)
from escalation.notify import facts_of, queue_to_contacts, queue_to_learner
from escalation.policy import Policy
from notifications.messages import MessageKind
from routing.deadlines import level_deadlines, silence_close_at
from routing.interventions import recommended_interventions
from routing.model import ConcernStatus, Frequency, Harm, LearnerGroup, RiskLevel
from routing.recipients import PATHWAY2_ROLE_BY_GROUP, UNKNOWN_GROUP_PATHWAY2_ROLE
from routing.standards import suggest_standards
from routing.triage import TriageInput, triage
from storage import repositories
from storage.tables import Concern, Organisation, id_of

# Parts of a level whose members act on it: an alert copy to the dean does not acknowledge.
ACTING_PARTS = frozenset({"primary", "secondary", "copy"})


class ActionRefused(Exception):
    """The action does not apply to this concern now; the message says why, for the person."""


@dataclass(frozen=True)
class Actor:
    """Who acts, through which channel: the learner, a directory contact, staff or the system."""

    kind: str  # learner | contact | staff | system
    channel: str
    contact_id: int | None = None

    @property
    def label(self) -> str:
        return f"contact {self.contact_id}" if self.kind == "contact" else self.kind


@dataclass(frozen=True)
class LearnerAnswers:
    """Answers a learner gave after raising a concern (an email concern asks for these)."""

    frequency: Frequency | None = None
    harm: Harm | None = None
    organisation: str | None = None
    department: str | None = None
    learner_group: LearnerGroup | None = None

    def __bool__(self) -> bool:
        return any(value is not None for value in vars(self).values())


def acknowledge(*, session: Session, concern: Concern, by: Actor, now: datetime) -> None:
    """A contact of the current level acknowledges: the acknowledgement clock stops."""
    if concern.status != ConcernStatus.OPEN.value:
        raise ActionRefused(f"{concern.reference} is closed: there is nothing to acknowledge")
    if by.kind == "contact" and not is_current_contact(session, concern, by.contact_id):
        raise ActionRefused(
            f"{concern.reference} is now with pathway {concern.pathway}: only its contacts "
            "there can acknowledge it"
        )
    if concern.acknowledged_at is not None:
        raise ActionRefused(f"{concern.reference} was already acknowledged")
    concern.acknowledged_at = now
    refresh_next_due(concern)
    record_event(
        session,
        concern,
        at=now,
        kind="acknowledged",
        actor=by.label,
        channel=by.channel,
        detail={"contact_id": by.contact_id} if by.contact_id else {},
    )


def is_current_contact(session: Session, concern: Concern, contact_id: int | None) -> bool:
    """Whether a contact was told about the concern's current level as one who acts on it."""
    if contact_id is None:
        return False
    return any(
        assignment.contact_id == contact_id and assignment.part in ACTING_PARTS
        for assignment, _ in repositories.assignments_of(
            session, id_of(concern), pathway=concern.pathway
        )
    )


def record_contact_reply(
    *, session: Session, concern: Concern, by: Actor, text: str, inbound_id: int, now: datetime
) -> bool:
    """A notified contact replied: kept on the concern, and counted as their acknowledgement.

    True when the reply acknowledged the current level.
    """
    record_event(
        session,
        concern,
        at=now,
        kind="contact_replied",
        actor=by.label,
        channel=by.channel,
        detail={"contact_id": by.contact_id, "inbound_message_id": inbound_id, "text": text},
    )
    try:
        acknowledge(session=session, concern=concern, by=by, now=now)
    except ActionRefused:
        return False
    return True


def add_learner_information(
    *,
    session: Session,
    concern: Concern,
    text: str,
    channel: str,
    inbound_id: int | None,
    now: datetime,
) -> None:
    """The learner adds information; it is kept on the concern for the people handling it."""
    detail: dict[str, object] = {"text": text}
    if inbound_id is not None:
        detail["inbound_message_id"] = inbound_id
    record_event(
        session,
        concern,
        at=now,
        kind="learner_added_information",
        actor="learner",
        channel=channel,
        detail=detail,
    )


def record_learner_answers(
    *,
    session: Session,
    concern: Concern,
    answers: LearnerAnswers,
    channel: str,
    now: datetime,
    policy: Policy,
) -> list[str]:
    """Take the learner's answers: triage again, and route to the placement they named.

    Returns what changed, in words, for the audit trail.
    """
    changes: list[str] = []
    if answers.frequency is not None and answers.frequency.value != concern.frequency:
        concern.frequency = answers.frequency.value
        changes.append(f"how often: {answers.frequency.value}")
    if answers.harm is not None and answers.harm.value != concern.harm:
        concern.harm = answers.harm.value
        changes.append(f"anyone harmed: {answers.harm.value}")
    group_changed = answers.learner_group is not None and concern.learner_group is None
    if answers.learner_group is not None and group_changed:
        concern.learner_group = answers.learner_group.value
        changes.append(f"learner group: {answers.learner_group.value}")
        _choose_body(session, concern)
    placement_changed = _take_placement(session, concern, answers, changes)
    if not changes:
        return changes
    record_event(
        session,
        concern,
        at=now,
        kind="learner_answered",
        actor="learner",
        channel=channel,
        detail={"changes": changes},
    )
    retriage(session=session, concern=concern, now=now, policy=policy)
    # Until someone has picked it up, the people the answers point to are told too: the
    # placement's contacts at pathway 1, the learner's school or university at pathway 2.
    routing_changed = placement_changed or group_changed
    if routing_changed and concern.pathway < 3 and concern.acknowledged_at is None:
        _tell_new_contacts(session, concern, now=now, policy=policy)
    return changes


def retriage(*, session: Session, concern: Concern, now: datetime, policy: Policy) -> None:
    """Rate the concern again from its answers; a staff override stays in force beside it."""
    related = 0
    if concern.department_id is not None:
        related = repositories.count_related_open_concerns(
            session,
            department_id=concern.department_id,
            since=now - timedelta(days=policy.hotspot_window_days),
            exclude_id=id_of(concern),
        )
    text = f"{concern.summary}\n{concern.description}"
    result = triage(
        TriageInput(
            frequency=Frequency(concern.frequency),
            harm=Harm(concern.harm),
            text=text,
            related_open_concerns=related,
        )
    )
    was_high = concern.risk_level == RiskLevel.HIGH.value
    concern.auto_likelihood = result.likelihood
    concern.auto_impact = result.impact
    concern.patient_safety = concern.patient_safety or result.patient_safety
    concern.hotspot = concern.hotspot or result.hotspot
    concern.standards = sorted(
        set(concern.standards)
        | set(
            suggest_standards(
                text=text, harm=Harm(concern.harm), patient_safety=concern.patient_safety
            )
        )
    )
    if concern.override_reason is None:
        concern.likelihood = result.likelihood
        concern.impact = result.impact
        concern.rating = result.rating.value
        concern.risk_level = result.level.value
        concern.risk_reasons = list(result.reasons)
        concern.interventions = list(recommended_interventions(result.level))
    record_event(
        session,
        concern,
        at=now,
        kind="triaged",
        actor="system",
        channel="system",
        detail={
            "likelihood": result.likelihood,
            "impact": result.impact,
            "rating": result.rating.value,
            "level": result.level.value,
            "reasons": list(result.reasons),
            "patient_safety": concern.patient_safety,
            "hotspot": concern.hotspot,
            "override_kept": concern.override_reason is not None,
        },
    )
    _reset_deadlines_for_level(concern, policy=policy)
    if concern.risk_level == RiskLevel.HIGH.value and not was_high:
        alert_high_risk(session, concern, now=now, policy=policy)


def _reset_deadlines_for_level(concern: Concern, *, policy: Policy) -> None:
    """The level's deadlines follow its risk, counted from when the concern reached the level."""
    deadlines = level_deadlines(
        level=RiskLevel(concern.risk_level),
        reached_at=concern.level_reached_at,
        calendar=policy.calendar,
        policy=policy.deadlines,
    )
    clock = replace(
        clock_of(concern),
        ack_reminder_at=deadlines.ack_reminder_at,
        ack_due_at=deadlines.ack_due_at,
        feedback_reminder_at=deadlines.feedback_reminder_at,
        feedback_due_at=deadlines.feedback_due_at,
    )
    write_clock(concern, clock)
    refresh_next_due(concern)


def _choose_body(session: Session, concern: Concern) -> None:
    if concern.programme_body_id is not None or concern.learner_group is None:
        return
    group = LearnerGroup(concern.learner_group)
    organisation = (
        session.get(Organisation, concern.organisation_id) if concern.organisation_id else None
    )
    body = choose_programme_body(
        session,
        region_id=concern.region_id,
        role=PATHWAY2_ROLE_BY_GROUP.get(group, UNKNOWN_GROUP_PATHWAY2_ROLE),
        group=group,
        programme=concern.programme,
        organisation=organisation,
    )
    if body is not None:
        concern.programme_body_id = body.id


def _take_placement(
    session: Session, concern: Concern, answers: LearnerAnswers, changes: list[str]
) -> bool:
    """Match the placement the learner named; True when the concern's place changed."""
    changed = False
    if answers.organisation and concern.organisation_id is None:
        organisation = repositories.find_organisation(session, answers.organisation)
        if organisation is not None:
            concern.organisation_id = organisation.id
            concern.region_id = organisation.region_id
            changes.append(f"organisation: {organisation.name}")
            changed = True
        else:
            concern.placement_text = _joined(concern.placement_text, answers.organisation)
            changes.append("organisation (not found in the directory)")
    if answers.department and concern.department_id is None:
        department = None
        if concern.organisation_id is not None:
            department = repositories.find_department(
                session, concern.organisation_id, answers.department
            )
        if department is not None:
            concern.department_id = department.id
            concern.site_id = concern.site_id or department.site_id
            changes.append(f"department: {department.name}")
            changed = True
        else:
            concern.placement_text = _joined(concern.placement_text, answers.department)
            changes.append("department (not found in the directory)")
    if changed and concern.organisation_id is not None and concern.department_id is not None:
        concern.placement_text = None
    if changed:
        _choose_body(session, concern)
    return changed


def _joined(existing: str | None, more: str) -> str:
    return f"{existing}, {more}" if existing else more


def _tell_new_contacts(
    session: Session, concern: Concern, *, now: datetime, policy: Policy
) -> None:
    """Whoever the answers make a contact of the level hears about the concern (each once)."""
    level = assign_contacts(session, concern, now=now)
    facts = facts_of(session, concern, policy, now=now)
    queue_to_contacts(
        session,
        concern=concern,
        facts=facts,
        kind=MessageKind.NEW_CONCERN,
        contacts=level.primary + level.copy,
        now=now,
        policy=policy,
    )
    record_event(
        session,
        concern,
        at=now,
        kind="contacts_told",
        actor="system",
        channel="system",
        detail={
            **told_summary(level),
            "reason": "the learner's answers changed who should be told",
        },
    )


MAX_FEEDBACK_CHARACTERS = 20_000


def record_feedback(
    *, session: Session, concern: Concern, by: Actor, text: str, now: datetime, policy: Policy
) -> None:
    """A contact of the current level (or staff) gives the learner feedback: the feedback clock
    stops, and the learner is told what was said and how to answer it.

    The text is written for the learner: it is shown to them in the email and on the status page.
    """
    feedback = text.strip()
    if concern.status != ConcernStatus.OPEN.value:
        raise ActionRefused(f"{concern.reference} is closed: feedback can no longer be recorded")
    if by.kind not in ("contact", "staff"):
        raise ActionRefused("Only the people handling a concern can give feedback on it")
    if by.kind == "contact" and not is_current_contact(session, concern, by.contact_id):
        raise ActionRefused(
            f"{concern.reference} is now with pathway {concern.pathway}: only its contacts "
            "there can give feedback"
        )
    if concern.feedback_at is not None:
        raise ActionRefused(
            f"Feedback on {concern.reference} was already recorded at pathway {concern.pathway}"
        )
    if not feedback:
        raise ActionRefused("Write the feedback for the learner")
    if len(feedback) > MAX_FEEDBACK_CHARACTERS:
        raise ActionRefused(f"Feedback must be {MAX_FEEDBACK_CHARACTERS:,} characters or fewer")
    if concern.acknowledged_at is None:
        # Feedback is the fullest acknowledgement: the acknowledgement clock stops too.
        acknowledge(session=session, concern=concern, by=by, now=now)
    concern.feedback_at = now
    # The learner's silence closes it after the configured working days.
    concern.close_after = silence_close_at(
        feedback_at=now, calendar=policy.calendar, policy=policy.deadlines
    )
    refresh_next_due(concern)
    detail: dict[str, object] = {"text": feedback, "pathway": concern.pathway}
    if by.contact_id is not None:
        detail["contact_id"] = by.contact_id
    record_event(
        session,
        concern,
        at=now,
        kind="feedback_given",
        actor=by.label,
        channel=by.channel,
        detail=detail,
    )
    facts = facts_of(session, concern, policy, feedback=feedback, now=now)
    queue_to_learner(
        session, concern=concern, facts=facts, kind=MessageKind.LEARNER_FEEDBACK, now=now
    )


def learner_satisfied(*, session: Session, concern: Concern, channel: str, now: datetime) -> None:
    """The learner accepts the feedback: the concern closes."""
    if concern.status != ConcernStatus.OPEN.value:
        raise ActionRefused(f"{concern.reference} is already closed")
    if concern.feedback_at is None:
        raise ActionRefused(f"{concern.reference} has no feedback yet to be satisfied with")
    reason = "The learner is satisfied with the feedback"
    concern.status = ConcernStatus.CLOSED.value
    concern.closed_at = now
    concern.closed_reason = reason
    refresh_next_due(concern)
    record_event(
        session,
        concern,
        at=now,
        kind="closed",
        actor="learner",
        channel=channel,
        detail={"reason": reason},
    )


def learner_remains_concerned(
    *, session: Session, concern: Concern, channel: str, now: datetime, policy: Policy
) -> bool:
    """The learner remains concerned after feedback: the concern moves up a level at once.

    False when it is already with the dean, where there is no higher level.
    """
    if concern.status != ConcernStatus.OPEN.value:
        raise ActionRefused(f"{concern.reference} is closed")
    if concern.feedback_at is None:
        raise ActionRefused(
            f"{concern.reference} has no feedback yet: it moves up by itself if feedback is late"
        )
    reason = f"The learner remains concerned after feedback at pathway {concern.pathway}"
    record_event(
        session,
        concern,
        at=now,
        kind="learner_remains_concerned",
        actor="learner",
        channel=channel,
        detail={"reason": reason},
    )
    # At pathway 3 there is no higher level: the event above keeps it in front of the dean.
    return escalate_to_next_pathway(
        session, concern, now=now, policy=policy, reason=reason, actor="learner", channel=channel
    )
