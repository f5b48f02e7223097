"""Raising a concern: one `submit_concern` for the mailbox, the web form, Slack, Teams and the CLI.

It validates nothing twice (channels hand it a `NewConcern` from `intake.submission`), triages,
chooses the pathway and the people, and writes the concern, its audit trail and its outbox rows
in one transaction, so a concern is either wholly raised or not at all.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from escalation.contacts import choose_programme_body
from escalation.ladder import (
    alert_high_risk,
    assign_contacts,
    record_event,
    refresh_next_due,
    set_level_clock,
    told_summary,
)
from escalation.notify import facts_of, learner_redaction, queue_to_contacts, queue_to_learner
from escalation.policy import Policy
from escalation.redact import redact_identities, summary_within
from intake.follow_up import hash_code
from intake.submission import SUMMARY_MAX, Channel, NewConcern
from notifications.messages import MessageKind
from routing.interventions import recommended_interventions
from routing.model import ConcernStatus, Confidentiality, RiskLevel, Role
from routing.pathways import starting_pathway
from routing.recipients import PATHWAY2_ROLE_BY_GROUP, UNKNOWN_GROUP_PATHWAY2_ROLE
from routing.standards import suggest_standards
from routing.triage import TriageInput, triage
from storage import repositories
from storage.db import transaction
from storage.tables import Concern, Department, Learner, Organisation

PATHWAY1_ROLES = frozenset({Role.SUPERVISOR, Role.CLINICAL_TUTOR, Role.SPEAK_UP_GUARDIAN})

# Unambiguous characters only: a learner copies this code from a phone screen onto paper.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 12


class NoDirectory(RuntimeError):
    """There is no region in the directory, so nobody could be told about a concern."""


@dataclass(frozen=True)
class Submitted:
    reference: str
    code: str | None  # anonymous concerns only: shown once, stored only as an Argon2 hash
    pathway: int
    risk_level: str
    placement_matched: bool = True
    # How much of the placement the directory knows, which decides who stands in on pathway 1
    # (escalation.contacts): "listed", "department_not_listed" or "not_listed".
    placement: str = "listed"


def reference_for(year: int, number: int) -> str:
    return f"LC-{year}-{number:06d}"


def new_follow_up_code() -> str:
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, CODE_LENGTH, 4))


def submit_concern(
    *, engine: Engine, concern: NewConcern, channel: Channel, now: datetime, policy: Policy
) -> Submitted:
    """Raise a concern: triage, route, record and queue every message, in one transaction."""
    code = new_follow_up_code() if concern.confidentiality is Confidentiality.ANONYMOUS else None
    # Hash outside the transaction: Argon2 is deliberately slow and must not hold the lock.
    code_hash = hash_code(code) if code else None
    with transaction(engine) as session:
        row = raise_concern(
            session=session,
            concern=concern,
            channel=channel,
            now=now,
            policy=policy,
            code_hash=code_hash,
        )
        return Submitted(
            reference=row.reference,
            code=code,
            pathway=row.pathway,
            risk_level=row.risk_level,
            placement_matched=row.organisation_id is not None and row.placement_text is None,
            placement=_placement_found(row),
        )


def raise_concern(
    *,
    session: Session,
    concern: NewConcern,
    channel: Channel,
    now: datetime,
    policy: Policy,
    code_hash: str | None = None,
    acknowledge_learner: bool = True,
    numbered: tuple[int, int] | None = None,
) -> Concern:
    """The body of `submit_concern`, in the caller's transaction (the mailbox marks its stored
    email processed in the same one, so an email becomes exactly one concern). `numbered` is the
    (year, number) a stored web submission was already given; its caller holds the counter."""
    new = concern
    organisation, department, placement_text = _find_placement(session, new)
    region_id = organisation.region_id if organisation else _default_region_id(session)
    # Taking the number first holds the counter's row lock: concurrent submits then count each
    # other's concerns for triangulation instead of all missing one another.
    if numbered is None:
        year = now.astimezone(policy.calendar.timezone).year
        number = repositories.next_reference_number(session, year)
    else:
        year, number = numbered

    learner = _learner_row(session, new, now=now)
    summary, description = new.summary, new.description
    if new.confidentiality is Confidentiality.CONFIDENTIAL:
        names = (new.learner.name, learner.name if learner else None, *new.also_named)
        summary = _one_line(in_confidence(summary, names=names, address=new.learner.email))
        description = in_confidence(description, names=names, address=new.learner.email)

    related = 0
    if department is not None and department.id is not None:
        related = repositories.count_related_open_concerns(
            session,
            department_id=department.id,
            since=now - timedelta(days=policy.hotspot_window_days),
        )
    # Rated from what the learner wrote, not as it is kept: a name that is also a word ("Grace
    # Ward", or "Death" for a learner named D'Eath) must not take away what it says.
    text = f"{new.summary}\n{new.description}"
    triaged = triage(
        TriageInput(
            frequency=new.frequency, harm=new.harm, text=text, related_open_concerns=related
        )
    )
    start = starting_pathway(
        raised_before=new.raised_before,
        about_pathway1_contact=new.about_pathway1_contact,
        cannot_raise_locally=new.cannot_raise_locally,
    )
    group = new.learner.group
    body_role = PATHWAY2_ROLE_BY_GROUP[group] if group else UNKNOWN_GROUP_PATHWAY2_ROLE
    body = choose_programme_body(
        session,
        region_id=region_id,
        role=body_role,
        group=group,
        programme=new.learner.programme,
        organisation=organisation,
    )

    row = Concern(
        reference=reference_for(year, number),
        year=year,
        number=number,
        channel=channel.value,
        status=ConcernStatus.OPEN.value,
        pathway=int(start.pathway),
        confidentiality=new.confidentiality.value,
        learner_id=learner.id if learner else None,
        learner_name=new.learner.name if learner else None,
        learner_group=group.value if group else None,
        programme=new.learner.programme,
        code_hash=code_hash,
        region_id=region_id,
        organisation_id=organisation.id if organisation else None,
        department_id=department.id if department else None,
        site_id=department.site_id if department else None,
        programme_body_id=body.id if body else None,
        placement_text=placement_text,
        summary=summary,
        description=description,
        summary_as_written=new.summary if summary != new.summary else None,
        description_as_written=new.description if description != new.description else None,
        frequency=new.frequency.value,
        harm=new.harm.value,
        raised_before=new.raised_before.value,
        about_pathway1_contact=new.about_pathway1_contact,
        cannot_raise_locally=new.cannot_raise_locally,
        prefers_speak_up_guardian=new.prefers_speak_up_guardian,
        likelihood=triaged.likelihood,
        impact=triaged.impact,
        rating=triaged.rating.value,
        risk_level=triaged.level.value,
        risk_reasons=list(triaged.reasons),
        interventions=list(recommended_interventions(triaged.level)),
        auto_likelihood=triaged.likelihood,
        auto_impact=triaged.impact,
        patient_safety=triaged.patient_safety,
        hotspot=triaged.hotspot,
        standards=list(
            suggest_standards(text=text, harm=new.harm, patient_safety=triaged.patient_safety)
        ),
        created_at=now,
        # Placeholders, replaced at once by the level clock below.
        level_reached_at=now,
        ack_reminder_at=now,
        ack_due_at=now,
        feedback_reminder_at=now,
        feedback_due_at=now,
    )
    set_level_clock(row, pathway=int(start.pathway), now=now, policy=policy)
    session.add(row)
    session.flush()

    actor = "learner" if learner else "anonymous learner"
    record_event(
        session,
        row,
        at=now,
        kind="received",
        actor=actor,
        channel=channel.value,
        detail={"confidentiality": row.confidentiality},
    )
    record_event(
        session,
        row,
        at=now,
        kind="triaged",
        actor="system",
        channel="system",
        detail={
            "likelihood": row.likelihood,
            "impact": row.impact,
            "rating": row.rating,
            "level": row.risk_level,
            "reasons": row.risk_reasons,
            "patient_safety": row.patient_safety,
            "hotspot": row.hotspot,
        },
    )
    start_notes = list(new.intake_notes)
    if (summary, description) != (new.summary, new.description):
        start_notes.append(
            "Confidential: the learner's name and email address were taken out of what they "
            "wrote, for the people handling it"
        )
    if placement_text:
        start_notes.append(f"Placement not found in the directory: '{placement_text}'")
    elif new.placement.site and department is not None:
        # The department was matched; the site the learner named is kept for staff to read.
        start_notes.append(f"Site as the learner gave it: '{new.placement.site}'")
    elif organisation is None:
        start_notes.append("Placement not given yet: the learner has been asked")
    level = assign_contacts(session, row, now=now)
    record_event(
        session,
        row,
        at=now,
        kind="routed",
        actor="system",
        channel="system",
        detail={
            "pathway": row.pathway,
            "reasons": list(start.reasons) + start_notes,
            "pathway1_told": any(
                role in PATHWAY1_ROLES for _, role in level.primary + level.secondary
            ),
            **told_summary(level),
        },
    )

    facts = facts_of(session, row, policy, now=now)
    queue_to_contacts(
        session,
        concern=row,
        facts=facts,
        kind=MessageKind.NEW_CONCERN,
        contacts=level.primary + level.copy,
        now=now,
        policy=policy,
    )
    if acknowledge_learner:
        queue_to_learner(session, concern=row, facts=facts, kind=MessageKind.LEARNER_ACK, now=now)
    if row.risk_level == RiskLevel.HIGH.value:
        alert_high_risk(session, row, now=now, policy=policy)
    refresh_next_due(row)
    return row


def in_confidence(text: str, *, names: Sequence[str | None], address: str | None) -> str:
    """What a confidential learner wrote, as the people handling the concern may read it: their
    name, each part of it and their email address taken out, from every channel. Contacts below
    the dean must not learn who raised it from a signature ("Thanks, Priya Patel") or an
    introduction; the dean and quality team know who it is anyway. A part of a name that is also
    a word ("Ward") goes wherever it is written: losing a word is the lesser harm. All names go in
    one pass, so a name that is a word of the marker ("Name") never nests one in another."""
    return redact_identities(text, names=names, addresses=(address,))


def learner_words(session: Session, concern: Concern, text: str) -> str:
    """What the learner of `concern` writes later (information added on the status page, in
    Slack or in Teams), as the people handling it may read it (`in_confidence`): without the
    name they gave with the concern, nor the one their record keeps."""
    redact = learner_redaction(session, concern)
    return redact(text) if redact is not None else text


def _one_line(summary: str) -> str:
    return summary_within(summary, SUMMARY_MAX)


def _find_placement(
    session: Session, new: NewConcern
) -> tuple[Organisation | None, Department | None, str | None]:
    """Match the placement in the directory; keep the learner's words for what does not match."""
    if not new.placement.organisation:
        return None, None, None
    organisation = repositories.find_organisation(session, new.placement.organisation)
    department = None
    if organisation is not None and organisation.id is not None and new.placement.department:
        department = repositories.find_department(
            session, organisation.id, new.placement.department
        )
    unmatched = organisation is None or (new.placement.department and department is None)
    if not unmatched:
        return organisation, department, None
    words = [new.placement.department, new.placement.site, new.placement.organisation]
    return organisation, department, ", ".join(w for w in words if w)


def _placement_found(row: Concern) -> str:
    """How much of a raised concern's placement was found in the directory."""
    if row.organisation_id is None:
        return "not_listed"
    return "department_not_listed" if row.department_id is None else "listed"


def _default_region_id(session: Session) -> int:
    region = repositories.default_region(session)
    if region is None or region.id is None:
        raise NoDirectory("the directory is empty: load one with `concerns directory load FILE`")
    return region.id


def _learner_row(session: Session, new: NewConcern, *, now: datetime) -> Learner | None:
    """The learner's identity, or None: an anonymous concern stores none at all."""
    if new.confidentiality is Confidentiality.ANONYMOUS:
        return None
    details = new.learner
    learner = repositories.find_learner_by_email(session, details.email) if details.email else None
    if learner is None:
        learner = Learner(email=details.email, created_at=now)
        session.add(learner)
    # The first name given stays: a form naming someone else's email must not rename them on
    # concerns they raised before.
    learner.name = learner.name or details.name
    # A chat account, once bound to a learner, is never replaced by another: the email that
    # found the record is only what was typed, and must not hand someone's concerns to a
    # different account.
    learner.slack_user_id = learner.slack_user_id or details.slack_user_id
    learner.teams_user_id = learner.teams_user_id or details.teams_user_id
    session.flush()
    return learner
