"""Moving a concern onto a level of the ladder: deadlines, contacts, notices and the audit trail.

Used when a concern is raised (its first level) and whenever it escalates (the sweep, a learner
who remains concerned, staff by hand), so every route up the ladder behaves the same.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

from sqlmodel import Session

from escalation.contacts import find_contact
from escalation.notify import facts_of, queue_to_contact, queue_to_contacts, queue_to_learner
from escalation.plan import ConcernClock, next_due_at, reach_level
from escalation.policy import Policy
from notifications.messages import MessageKind, when
from routing.deadlines import level_deadlines
from routing.model import ConcernStatus, LearnerGroup, Pathway, RiskLevel, Role
from routing.pathways import next_pathway
from routing.recipients import HIGH_RISK_ALERT_ROLES, recipient_roles
from storage import repositories
from storage.tables import Concern, ConcernContact, Contact, Escalation, Event, id_of

# What the learner is told when a person moved or closed their concern: staff's and contacts' own
# reasons may hold notes not meant for the learner (the status page says the same).
HANDLERS_MOVED_IT = "The people handling your concern moved it to the next level"
# Why it moved, as the learner is told it (the reason recorded is written for staff).
YOU_REMAIN_CONCERNED = "You told us you remain concerned after the feedback at pathway {pathway}"
NO_FEEDBACK_IN_TIME = "You were not given feedback at pathway {pathway} by its deadline"
HANDLERS_CLOSED_IT = "The people handling your concern closed it"
HANDLERS_REOPENED_IT = "The people handling your concern reopened it"


def record_event(
    session: Session,
    concern: Concern,
    *,
    at: datetime,
    kind: str,
    actor: str,
    channel: str,
    detail: dict[str, Any] | None = None,
    from_pathway: int | None = None,
    to_pathway: int | None = None,
) -> Event:
    """Append one entry to the concern's audit trail."""
    event = Event(
        concern_id=id_of(concern),
        at=at,
        kind=kind,
        actor=actor,
        channel=channel,
        pathway=concern.pathway,
        from_pathway=from_pathway,
        to_pathway=to_pathway,
        detail=detail or {},
    )
    session.add(event)
    return event


def clock_of(concern: Concern) -> ConcernClock:
    """The concern's deadlines and done-markers as the pure planner sees them."""
    return ConcernClock(
        status=ConcernStatus(concern.status),
        pathway=Pathway(concern.pathway),
        ack_reminder_at=concern.ack_reminder_at,
        ack_due_at=concern.ack_due_at,
        feedback_reminder_at=concern.feedback_reminder_at,
        feedback_due_at=concern.feedback_due_at,
        acknowledged_at=concern.acknowledged_at,
        feedback_at=concern.feedback_at,
        close_after=concern.close_after,
        ack_reminder_sent_at=concern.ack_reminder_sent_at,
        ack_missed_at=concern.ack_missed_at,
        feedback_reminder_sent_at=concern.feedback_reminder_sent_at,
        overdue_at_dean_at=concern.overdue_at_dean_at,
    )


def refresh_next_due(concern: Concern) -> None:
    """Store when the sweep next has work for this concern (the indexed column it reads)."""
    concern.next_due_at = next_due_at(clock=clock_of(concern))


@dataclass(frozen=True)
class LevelContacts:
    primary: tuple[tuple[Contact, Role], ...]
    secondary: tuple[tuple[Contact, Role], ...]
    copy: tuple[tuple[Contact, Role], ...]
    notes: tuple[str, ...]


def set_level_clock(concern: Concern, *, pathway: int, now: datetime, policy: Policy) -> None:
    """Start the deadlines of a level from `now` and clear the previous level's markers."""
    deadlines = level_deadlines(
        level=RiskLevel(concern.risk_level),
        reached_at=now,
        calendar=policy.calendar,
        policy=policy.deadlines,
    )
    clock = reach_level(clock=clock_of(concern), pathway=Pathway(pathway), deadlines=deadlines)
    write_clock(concern, clock)
    concern.level_reached_at = now
    refresh_next_due(concern)


def write_clock(concern: Concern, clock: ConcernClock) -> None:
    """Store a clock back on its row: the inverse of `clock_of`."""
    for field in fields(ConcernClock):
        value = getattr(clock, field.name)
        if field.name == "status":
            value = ConcernStatus(value).value
        elif field.name == "pathway":
            value = int(value)
        setattr(concern, field.name, value)


def assign_contacts(session: Session, concern: Concern, *, now: datetime) -> LevelContacts:
    """Find and record who holds the roles of the concern's current level."""
    roles = recipient_roles(
        pathway=Pathway(concern.pathway),
        group=LearnerGroup(concern.learner_group) if concern.learner_group else None,
        prefer_speak_up_guardian=concern.prefers_speak_up_guardian,
    )
    notes: list[str] = []
    existing = repositories.assignments_of(session, id_of(concern), pathway=concern.pathway)
    # Whoever said the concern is not theirs at this level is not chosen again (a reopened
    # round goes to whoever it was redirected to).
    taken: set[int] = {row.contact_id for row, _ in existing if row.part == "redirected"}
    # Assigning again (the learner told us their placement later) must not repeat a row.
    recorded = {(assignment.contact_id, assignment.part) for assignment, _ in existing}

    def take(role: Role, part: str) -> tuple[tuple[Contact, Role], ...]:
        found = find_contact(session, concern, role, avoid=frozenset(taken))
        if found is None:
            notes.append(f"Nobody in the directory can act as {role.value.replace('_', ' ')}")
            return ()
        if found.note:
            notes.append(found.note)
        taken.add(id_of(found.contact))
        if (id_of(found.contact), part) in recorded:
            return ((found.contact, found.role),)
        session.add(
            ConcernContact(
                concern_id=id_of(concern),
                pathway=concern.pathway,
                contact_id=id_of(found.contact),
                role=found.role.value,
                part=part,
                assigned_at=now,
            )
        )
        return ((found.contact, found.role),)

    primary = take(roles.primary, "primary")
    secondary = take(roles.secondary, "secondary")
    copy: tuple[tuple[Contact, Role], ...] = ()
    for role in roles.copy:
        if any(role is held for _, held in secondary):
            # Already involved as the level's secondary contact: told once, in copy.
            copy += secondary
            continue
        copy += take(role, "copy")
    return LevelContacts(primary=primary, secondary=secondary, copy=copy, notes=tuple(notes))


def contacts_of_level(
    session: Session, concern: Concern, *, pathway: int, part: str, now: datetime
) -> list[tuple[Contact, Role]]:
    """The contacts of a level in a part (primary, secondary, copy), as the directory is now.

    Someone who has left the directory since they were assigned is not written to: whoever
    holds their role now takes over, is recorded beside them, and the trail says so.
    """
    recorded = [
        (assignment, contact)
        for assignment, contact in repositories.assignments_of(
            session, id_of(concern), pathway=pathway
        )
        if assignment.part == part
    ]
    current: dict[int, tuple[Contact, Role]] = {
        id_of(contact): (contact, Role(assignment.role))
        for assignment, contact in recorded
        if contact.active
    }
    for assignment, contact in recorded:
        if contact.active:
            continue
        found = find_contact(
            session, concern, Role(assignment.role), avoid=frozenset({id_of(contact)})
        )
        if found is None or (id_of(found.contact)) in current:
            continue
        current[id_of(found.contact)] = (found.contact, found.role)
        session.add(
            ConcernContact(
                concern_id=id_of(concern),
                pathway=pathway,
                contact_id=id_of(found.contact),
                role=found.role.value,
                part=part,
                assigned_at=now,
            )
        )
        record_event(
            session,
            concern,
            at=now,
            kind="contact_replaced",
            actor="system",
            channel="system",
            detail={"role": assignment.role, "part": part, "reason": "left the directory"},
        )
    return list(current.values())


def alert_high_risk(session: Session, concern: Concern, *, now: datetime, policy: Policy) -> None:
    """Tell the dean and quality team at once about a high-risk concern, whatever its pathway.

    Once per level: a concern rated down and up again at the same level is not alerted twice.
    """
    alerted = {
        row.contact_id
        for row, _ in repositories.assignments_of(session, id_of(concern), pathway=concern.pathway)
        if row.part == "alert"
    }
    if alerted:
        return
    # Raised earlier (rated high since, or high as it reaches another level): said so.
    earlier = (
        f"It was raised on {when(concern.created_at, policy.calendar.timezone)}."
        if concern.created_at < now
        else None
    )
    facts = facts_of(session, concern, policy, why=earlier, now=now)
    told = []
    for role in HIGH_RISK_ALERT_ROLES:
        found = find_contact(session, concern, role)
        if found is None or id_of(found.contact) in alerted:
            continue
        alerted.add(id_of(found.contact))
        session.add(
            ConcernContact(
                concern_id=id_of(concern),
                pathway=concern.pathway,
                contact_id=id_of(found.contact),
                role=found.role.value,
                part="alert",
                assigned_at=now,
            )
        )
        if queue_to_contact(
            session,
            concern=concern,
            facts=facts,
            kind=MessageKind.HIGH_RISK_ALERT,
            contact=found.contact,
            role=found.role,
            now=now,
            policy=policy,
            urgent=True,
        ):
            told.append(found.role.value)
    record_event(
        session,
        concern,
        at=now,
        kind="high_risk_alert",
        actor="system",
        channel="system",
        detail={"told": told},
    )


def alert_rated_high_over_override(
    session: Session, concern: Concern, *, why: str, now: datetime, policy: Policy
) -> None:
    """Tell the dean and quality team at once that triage now rates the concern high risk,
    after the learner told us more, while the rating staff set holds it lower (`why`: triage's
    reasons). The rating stands until one of them changes it; nobody else is told. Once for
    each automatic rating the concern reaches at a level."""
    facts = facts_of(session, concern, policy, why=why, now=now)
    told = []
    for role in HIGH_RISK_ALERT_ROLES:
        found = find_contact(session, concern, role)
        if found is None:
            continue
        if queue_to_contact(
            session,
            concern=concern,
            facts=facts,
            kind=MessageKind.RATED_HIGH_OVER_OVERRIDE,
            contact=found.contact,
            role=found.role,
            now=now,
            policy=policy,
            urgent=True,
            # Once for each automatic rating reached, at each level.
            key_suffix=f":L{concern.auto_likelihood}I{concern.auto_impact}",
        ):
            told.append(found.role.value)
    if not told:
        return
    record_event(
        session,
        concern,
        at=now,
        kind="rated_high_over_override",
        actor="system",
        channel="system",
        detail={"told": told, "reasons": why},
    )


def tell_written_after_closing(
    session: Session, concern: Concern, *, now: datetime, policy: Policy
) -> None:
    """Tell the region's quality team that the learner wrote after their concern closed: the
    closing email promised that staff would see it and could reopen the concern. At most once a
    day for a concern (what they wrote is on the staff page)."""
    found = find_contact(session, concern, Role.QUALITY_TEAM)
    if found is None:
        return
    day = now.astimezone(policy.calendar.timezone).date()
    queue_to_contact(
        session,
        concern=concern,
        facts=facts_of(session, concern, policy, now=now),
        kind=MessageKind.WROTE_AFTER_CLOSING,
        contact=found.contact,
        role=found.role,
        now=now,
        policy=policy,
        urgent=True,
        key_suffix=f":{day:%Y%m%d}",
    )


def _why_for_the_learner(actor: str, *, from_pathway: int) -> str:
    """Why the concern moved up, in the words its learner is told it."""
    if actor == "learner":
        return YOU_REMAIN_CONCERNED.format(pathway=from_pathway)
    if actor == "system":
        return NO_FEEDBACK_IN_TIME.format(pathway=from_pathway)
    return HANDLERS_MOVED_IT


def escalate_to_next_pathway(
    session: Session,
    concern: Concern,
    *,
    now: datetime,
    policy: Policy,
    reason: str,
    actor: str = "system",
    channel: str = "system",
) -> bool:
    """Move a concern one level up; False when it is already at the top (pathway 3).

    The previous level is told why it moved, the new level gets the history, the learner is told
    where it went. The unique (concern, to_pathway) row makes a second escalation impossible.
    """
    target = next_pathway(Pathway(concern.pathway))
    if target is None:
        return False
    from_pathway = concern.pathway
    previous_primary = contacts_of_level(
        session, concern, pathway=from_pathway, part="primary", now=now
    )
    session.add(
        Escalation(
            concern_id=id_of(concern),
            from_pathway=from_pathway,
            to_pathway=int(target),
            at=now,
            reason=reason,
        )
    )
    # Flush now: a racing duplicate fails here, before any message is queued.
    session.flush()
    set_level_clock(concern, pathway=int(target), now=now, policy=policy)
    record_event(
        session,
        concern,
        at=now,
        kind="escalated",
        actor=actor,
        channel=channel,
        detail={"reason": reason},
        from_pathway=from_pathway,
        to_pathway=int(target),
    )
    level = assign_contacts(session, concern, now=now)
    facts = facts_of(
        session,
        concern,
        policy,
        why=reason,
        from_pathway=from_pathway,
        with_history=True,
        now=now,
    )
    queue_to_contacts(
        session,
        concern=concern,
        facts=facts,
        kind=MessageKind.ESCALATED_IN,
        contacts=level.primary + level.copy,
        now=now,
        policy=policy,
    )
    queue_to_contacts(
        session,
        concern=concern,
        facts=facts,
        kind=MessageKind.ESCALATED_OUT,
        contacts=previous_primary,
        now=now,
        policy=policy,
    )
    queue_to_learner(
        session,
        concern=concern,
        facts=replace(facts, why=_why_for_the_learner(actor, from_pathway=from_pathway)),
        kind=MessageKind.LEARNER_ESCALATED,
        now=now,
        # A deadline that passed waits for working hours; a person's action is answered at once.
        policy=policy if actor == "system" else None,
    )
    record_event(
        session,
        concern,
        at=now,
        kind="contacts_told",
        actor="system",
        channel="system",
        detail=told_summary(level),
    )
    return True


def told_summary(level: LevelContacts) -> dict[str, Any]:
    """What `contacts_told` events record: roles only, never names (the trail is widely read)."""
    return {
        "primary": [role.value for _, role in level.primary],
        "secondary": [role.value for _, role in level.secondary],
        "copy": [role.value for _, role in level.copy],
        "notes": list(level.notes),
    }
