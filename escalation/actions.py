"""What people do to a concern: one implementation for every channel (email, web, Slack, Teams).

Each action runs inside the caller's transaction on a concern the caller has locked, writes one
event to the audit trail, and queues what it causes in the outbox. An action that does not apply
is refused with a reason (`ActionRefused`) and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_
from sqlmodel import Session, col, select

from escalation.contacts import Found, choose_programme_body, find_contact
from escalation.ladder import (
    HANDLERS_CLOSED_IT,
    HANDLERS_REOPENED_IT,
    alert_high_risk,
    alert_rated_high_over_override,
    assign_contacts,
    clock_of,
    contacts_of_level,
    escalate_to_next_pathway,
    record_event,
    refresh_next_due,
    set_level_clock,
    tell_written_after_closing,
    told_summary,
    write_clock,
)
from escalation.notify import (
    facts_of,
    learner_key,
    queue_again_to_learner,
    queue_to_contacts,
    queue_to_learner,
)
from escalation.policy import Policy
from escalation.redact import redact_identities, summary_within
from notifications.messages import MessageKind
from routing.deadlines import level_deadlines, silence_close_at
from routing.interventions import recommended_interventions
from routing.matrix import rate, risk_level
from routing.model import (
    ConcernStatus,
    Confidentiality,
    Frequency,
    Harm,
    LearnerGroup,
    Pathway,
    RiskLevel,
    Role,
)
from routing.pathways import next_pathway
from routing.recipients import (
    PATHWAY2_ROLE_BY_GROUP,
    UNKNOWN_GROUP_PATHWAY2_ROLE,
    may_handle_at,
    may_see_identity,
    recipient_roles,
)
from routing.standards import STANDARDS, suggest_standards
from routing.triage import Triage, TriageInput, triage
from storage import repositories
from storage import staff as accounts
from storage.tables import (
    SUMMARY_MAX,
    Concern,
    ConcernContact,
    Contact,
    Event,
    Learner,
    Organisation,
    OutboxMessage,
    StaffMember,
    id_of,
)

# Parts of a level whose members act on it: an alert copy to the dean does not acknowledge.
ACTING_PARTS = frozenset({"primary", "secondary", "copy"})
# Who handles concerns: the contacts told about a level, and staff (whose rights over the
# concern the caller has checked).
HANDLERS = frozenset({"contact", "staff"})
MAX_REASON_CHARACTERS = 2_000


class ActionRefused(Exception):
    """The action does not apply to this concern now; the message says why, for the person."""


@dataclass(frozen=True)
class Actor:
    """Who acts, through which channel: the learner, a directory contact, staff or the system."""

    kind: str  # learner | contact | staff | system
    channel: str
    contact_id: int | None = None
    # The signed-in member of staff, named in the audit trail.
    staff_id: int | None = None

    @property
    def label(self) -> str:
        if self.kind == "contact":
            return f"contact {self.contact_id}"
        if self.kind == "staff" and self.staff_id is not None:
            return f"staff {self.staff_id}"
        return self.kind


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
    _require_handler(
        session, concern, by, doing="acknowledge it", at_level="there can acknowledge it"
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


def _require_handler(
    session: Session, concern: Concern, by: Actor, *, doing: str, at_level: str
) -> None:
    """Refuse anyone but staff and the contacts of the concern's current level."""
    if by.kind not in HANDLERS:
        raise ActionRefused(f"Only the people handling a concern can {doing}")
    if by.kind == "contact" and not is_current_contact(session, concern, by.contact_id):
        raise ActionRefused(
            f"{concern.reference} is now with pathway {concern.pathway}: only its contacts "
            f"{at_level}"
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
    *,
    session: Session,
    concern: Concern,
    by: Actor,
    text: str,
    inbound_id: int,
    now: datetime,
    acknowledges: bool = True,
) -> bool:
    """A notified contact replied: kept on the concern, and counted as their acknowledgement
    unless `acknowledges` is False (a reply to a notice that asks nothing of them).

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
    if not acknowledges:
        return False
    try:
        acknowledge(session=session, concern=concern, by=by, now=now)
    except ActionRefused:
        return False
    return True


# Where an added information's event keeps the words triage reads, when not its whole text.
TRIAGE_TEXT = "triage_text"


def add_learner_information(
    *,
    session: Session,
    concern: Concern,
    text: str,
    channel: str,
    inbound_id: int | None,
    now: datetime,
    policy: Policy,
    triage_text: str | None = None,
    rate: bool = True,
    says_something: bool = True,
) -> Event:
    """The learner adds information; it is kept on the concern for the people handling it, and
    read for triage as the rest of what they wrote is (`rate_added_information`).
    `triage_text` is what triage reads when it is not the whole text (an emailed reply without
    its answers, which repeat our questions' words); without `rate` the caller rates it, once it
    knows whether the concern stays open. Without `says_something` (an emailed reply that only
    quotes our message: a reply sent by mistake) it is kept, but it is not an answer to feedback
    and does not put off the concern's closing. Returns the event that keeps it."""
    detail: dict[str, object] = {"text": text}
    if triage_text is not None:
        detail[TRIAGE_TEXT] = triage_text
    if inbound_id is not None:
        detail["inbound_message_id"] = inbound_id
    added = record_event(
        session,
        concern,
        at=now,
        kind="learner_added_information",
        actor="learner",
        channel=channel,
        detail=detail,
    )
    if concern.status != ConcernStatus.OPEN.value:
        if says_something:
            tell_written_after_closing(session, concern, now=now, policy=policy)
        return added
    if says_something and concern.feedback_at is not None and concern.close_after is not None:
        # Writing after feedback is an answer, not silence: the concern closes only once the
        # learner has said nothing at all for the configured working days.
        concern.close_after = max(
            concern.close_after,
            silence_close_at(feedback_at=now, calendar=policy.calendar, policy=policy.deadlines),
        )
        refresh_next_due(concern)
    if rate:
        rate_added_information(
            session=session, concern=concern, added=added, now=now, policy=policy
        )
    return added


def rate_added_information(
    *, session: Session, concern: Concern, added: Event, now: datetime, policy: Policy
) -> None:
    """Words the learner added that raise the rating ('a patient was harmed last night') rate an
    open concern again, and one that becomes high risk alerts the dean and quality team at once;
    words that change nothing leave it as it was. Only the words decide: the rating with and
    without them, on the same count of related concerns (another concern about the department
    raised or closed since would otherwise re-rate a concern whose learner only wrote
    "Thanks")."""
    if concern.status != ConcernStatus.OPEN.value:
        return
    related = _related_open(session, concern, now=now, policy=policy)
    events = repositories.events_of(session, id_of(concern))
    before = _rated(
        concern, text=_learner_text(concern, events, leaving_out=added), related=related
    )
    after = _rated(concern, text=_learner_text(concern, events), related=related)
    if (
        after.impact > before.impact
        or after.likelihood > before.likelihood
        or (after.patient_safety and not before.patient_safety)
    ):
        retriage(session=session, concern=concern, now=now, policy=policy)


# Why an unsent message to the address a learner corrected was given up (staff see it).
GIVEN_UP_FOR_CORRECTED_ADDRESS = "Given up: the learner corrected their email address"


class ClosedConcernRefused(ActionRefused):
    """The concern has closed: the learner's email address can no longer be changed."""


# Kinds not sent again to the corrected address: the acknowledgement is queued afresh anyway,
# and an answer to an emailed reply answers whoever wrote from the old address, not the learner.
NOT_SENT_AGAIN = frozenset({MessageKind.LEARNER_ACK.value, MessageKind.REPLY_NOT_APPLIED.value})


def change_learner_email(
    *,
    session: Session,
    concern: Concern,
    email: str,
    name: str | None,
    by: Actor,
    now: datetime,
    policy: Policy,
    reason: str | None = None,
) -> bool:
    """A mistyped email address corrected, by the learner just after sending the form or by the
    region's staff when the learner tells them (`reason` says how); False when it is already the
    concern's."""
    if concern.confidentiality == Confidentiality.ANONYMOUS.value or concern.learner_id is None:
        raise ActionRefused(f"{concern.reference} keeps no email address to change")
    old = session.get(Learner, concern.learner_id)
    old_email = (old.email or "").strip().lower() if old is not None else ""
    if old_email == email.strip().lower():
        return False
    if concern.status != ConcernStatus.OPEN.value:
        # It would send a closed concern's learner a fresh "we have received your concern".
        raise ClosedConcernRefused(
            f"{concern.reference} is closed: its email address can no longer be changed"
        )
    # Another learner record, never the old one edited: the old address may be someone else's,
    # with concerns of its own.
    shared = old is not None and _has_other_concerns(session, old, concern)
    given_name = name
    if name is None and old is not None and not shared:
        # Staff give no name: the old record's is the learner's only when no other concern is
        # its (else it is the name first given with that address, perhaps its owner's).
        name = old.name
    learner = repositories.find_learner_by_email(session, email)
    if learner is None:
        learner = Learner(email=email, name=name, created_at=now)
        session.add(learner)
        session.flush()
    learner.name = learner.name or name
    concern.learner_id = learner.id
    if given_name:
        # The record may keep another name first given with this address: the concern keeps
        # the one staff give, which its learner's later words are redacted with.
        concern.learner_name = given_name
    _redacted_again(concern, name=given_name, address=email)
    # Links signed before (and status-page access opened with them) stop opening the concern.
    concern.link_version += 1
    given_up: list[OutboxMessage] = []
    if old_email:
        # Unsent email to the old address is given up, except what a dispatcher holds (claimed,
        # its lease not run out): it may be going out this moment, and marking it failed would
        # make the record false when it went. Its link names the old version and is refused, and
        # a reply to it is kept aside.
        given_up = list(
            session.exec(
                select(OutboxMessage)
                .where(
                    col(OutboxMessage.concern_id) == concern.id,
                    col(OutboxMessage.recipient_role) == Role.LEARNER.value,
                    col(OutboxMessage.channel) == "email",
                    col(OutboxMessage.status) == "pending",
                    func.lower(col(OutboxMessage.recipient_address)) == old_email,
                    or_(
                        col(OutboxMessage.claimed_until).is_(None),
                        col(OutboxMessage.claimed_until) <= now,
                    ),
                )
                .order_by(col(OutboxMessage.id))
                .with_for_update()
            ).all()
        )
        for row in given_up:
            row.status = "failed"
            row.last_error = GIVEN_UP_FOR_CORRECTED_ADDRESS
            row.claim_token = None
            row.claimed_until = None
    # Neither address goes in the event: every member of staff who sees the concern sees its
    # audit trail, and a confidential learner's identity is for the quality team and dean only.
    record_event(
        session,
        concern,
        at=now,
        kind="learner_email_changed",
        actor=by.label,
        channel=by.channel,
        detail={
            "messages_given_up": len(given_up),
            "link_version": concern.link_version,
            **({"reason": reason} if reason else {}),
        },
    )
    address = _for_address(concern)
    queue_to_learner(
        session,
        concern=concern,
        facts=facts_of(session, concern, policy, now=now),
        kind=MessageKind.LEARNER_ACK,
        now=now,
        key=f"{learner_key(concern, MessageKind.LEARNER_ACK)}{address}",
    )
    # What else was on its way to the old address goes to the corrected one, under a key of its
    # own: one queued again later under the given-up row's key would be taken as a repeat.
    for row in given_up:
        if row.kind not in NOT_SENT_AGAIN:
            queue_again_to_learner(
                session,
                concern=concern,
                given_up=row,
                address=email,
                key=f"{row.idempotency_key}{address}",
                now=now,
                policy=policy,
            )
    _feedback_again(session, concern, given_up=given_up, now=now, policy=policy)
    if old_email:
        _tell_contacts_the_address(session, concern, now=now, policy=policy)
    # The old record (the mistyped address and the learner's name) is removed when no other
    # concern is its: otherwise whoever owns that address, raising a concern, would be found by
    # it and carry our learner's name, and retention (which removes a learner with their last
    # concern) would never reach it.
    if old is not None and old.id != learner.id and not shared:
        session.execute(delete(Learner).where(col(Learner.id) == old.id))
    return True


def _redacted_again(
    concern: Concern, *, name: str | None = None, address: str | None = None
) -> None:
    """A confidential concern's summary and description redacted again with a name or address
    staff give: the ones they were stored with may have been wrong or short ('Pryia'), and the
    right ones may be written in them ("write to me at ..."). What the learner added since is
    redacted as it is shown (`escalation.casework`); mail already sent stays as it was."""
    if concern.confidentiality != Confidentiality.CONFIDENTIAL.value:
        return
    names, addresses = (name,), (address,)
    summary = summary_within(
        redact_identities(concern.summary, names=names, addresses=addresses), SUMMARY_MAX
    )
    description = redact_identities(concern.description, names=names, addresses=addresses)
    # The words as the learner wrote them stay for triage and the dean (`as_written`): a name
    # that is also a word ("Grace Ward") is taken out of the copies below the dean only.
    written_summary, written_description = as_written(concern)
    if summary != concern.summary:
        concern.summary_as_written = written_summary
        concern.summary = summary
    if description != concern.description:
        concern.description_as_written = written_description
        concern.description = description


def as_written(concern: Concern) -> tuple[str, str]:
    """The concern's summary and description as the learner wrote them: what triage reads, and
    what those who may know who raised it read. Contacts below the dean read `concern.summary`
    and `concern.description`, without a confidential learner's name and address."""
    return (
        concern.summary_as_written or concern.summary,
        concern.description_as_written or concern.description,
    )


def correct_learner_name(
    *, session: Session, concern: Concern, name: str, by: Actor, now: datetime, reason: str
) -> bool:
    """The learner's name on the concern corrected by the region's staff, their address
    unchanged; False when it is already the one shown. Nothing is sent: only those allowed to
    know who raised the concern see the name, and a confidential learner's later words are
    redacted with it as well, as are the concern's summary and description
    (`_redacted_again`)."""
    if concern.confidentiality == Confidentiality.ANONYMOUS.value or concern.learner_id is None:
        raise ActionRefused(f"{concern.reference} is anonymous: it keeps no name")
    learner = session.get(Learner, concern.learner_id)
    shown = concern.learner_name or (learner.name if learner is not None else None)
    if not name.strip() or name.strip() == (shown or "").strip():
        return False
    concern.learner_name = name.strip()
    if learner is not None and not learner.name:
        learner.name = concern.learner_name
    _redacted_again(concern, name=concern.learner_name)
    # Neither name goes in the event (see change_learner_email); the reason is withheld from
    # those who may not see who the learner is.
    record_event(
        session,
        concern,
        at=now,
        kind="learner_name_corrected",
        actor=by.label,
        channel=by.channel,
        detail={"reason": reason},
    )
    return True


def _feedback_again(
    session: Session,
    concern: Concern,
    *,
    given_up: list[OutboxMessage],
    now: datetime,
    policy: Policy,
) -> None:
    """The level's feedback, which the learner has yet to answer, is sent to the corrected
    address, and their silence is counted from now: else the concern would close for want of an
    answer to feedback they never saw. Still unsent, it was given up and queued again with the
    rest; otherwise (delivered to the old address, refused there, held by a dispatcher this
    moment, or there was no address) it is written again from what was recorded."""
    if concern.feedback_at is None or concern.close_after is None:
        return
    current = learner_key(concern, MessageKind.LEARNER_FEEDBACK)
    if not any(_is_copy_of(row.idempotency_key, current) for row in given_up):
        given = [
            event
            for event in repositories.events_of(session, id_of(concern))
            if event.kind == "feedback_given" and event.at >= concern.feedback_at
        ]
        text = (given[-1].detail or {}).get("text") if given else None
        if not isinstance(text, str):
            return
        queue_to_learner(
            session,
            concern=concern,
            facts=facts_of(session, concern, policy, feedback=text, now=now),
            kind=MessageKind.LEARNER_FEEDBACK,
            now=now,
            key=f"{current}{_for_address(concern)}",
        )
    concern.close_after = max(
        concern.close_after,
        silence_close_at(feedback_at=now, calendar=policy.calendar, policy=policy.deadlines),
    )
    refresh_next_due(concern)


def _tell_contacts_the_address(
    session: Session, concern: Concern, *, now: datetime, policy: Policy
) -> None:
    """Every contact told about the concern whose role sees the learner's identity was given
    the wrong address (with the name, in the new-concern message and the rest): each is given
    the corrected one, once per correction."""
    confidentiality = Confidentiality(concern.confidentiality)
    # Only those already sent something about it: a contact assigned but not yet told (the
    # level's secondary, told when the acknowledgement is late) would first hear of the concern,
    # and the learner's name, from this notice.
    sent_to = set(
        session.exec(
            select(OutboxMessage.recipient_contact_id)
            .where(
                col(OutboxMessage.concern_id) == concern.id,
                col(OutboxMessage.recipient_contact_id).is_not(None),
            )
            .distinct()
        ).all()
    )
    told = [
        (contact, Role(assignment.role))
        for assignment, contact in repositories.assignments_of(session, id_of(concern))
        if contact.id in sent_to
        and may_see_identity(role=Role(assignment.role), confidentiality=confidentiality)
    ]
    if told:
        queue_to_contacts(
            session,
            concern=concern,
            facts=facts_of(session, concern, policy),
            kind=MessageKind.LEARNER_ADDRESS_CORRECTED,
            contacts=told,
            now=now,
            policy=policy,
            key_suffix=_for_address(concern),
        )


# What a message's key gains when it is sent because the learner's address was corrected.
CORRECTED_ADDRESS_KEY = ":address"


def _for_address(concern: Concern) -> str:
    """The key suffix of messages owed to this correction of the concern's learner address."""
    return f"{CORRECTED_ADDRESS_KEY}{concern.link_version}"


def _is_copy_of(key: str, current: str) -> bool:
    """Whether a learner message's key is `current`'s, or that of a copy of it sent again to a
    corrected address (each correction adds its own suffix)."""
    return key == current or key.startswith(f"{current}{CORRECTED_ADDRESS_KEY}")


def _has_other_concerns(session: Session, learner: Learner, concern: Concern) -> bool:
    """Whether a concern besides this one is the learner record's."""
    others = session.exec(
        select(func.count())
        .select_from(Concern)
        .where(col(Concern.learner_id) == learner.id, col(Concern.id) != concern.id)
    ).one()
    return bool(others)


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

    Returns what changed, in words, for the audit trail: nothing for a closed concern, whose
    rating and routing nobody can change any more (the reply that carried the answers is kept
    on it, for staff who reopen it).
    """
    changes: list[str] = []
    if concern.status != ConcernStatus.OPEN.value:
        return changes
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
    """Rate the concern again from its answers and everything the learner wrote; a staff
    override stays in force beside it."""
    text = _learner_text(concern, repositories.events_of(session, id_of(concern)))
    result = _rated(
        concern, text=text, related=_related_open(session, concern, now=now, policy=policy)
    )
    was_high = concern.risk_level == RiskLevel.HIGH.value
    # The automatic rating rising, whatever rating staff set: new words about harm are news to
    # a dean who rated the concern down on what it said before.
    rated_higher = (
        result.likelihood > concern.auto_likelihood
        or result.impact > concern.auto_impact
        or (result.patient_safety and not concern.patient_safety)
    )
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
    before = (concern.ack_due_at, concern.feedback_due_at)
    _reset_deadlines_for_level(concern, policy=policy)
    _tell_deadlines_moved_up(session, concern, before=before, now=now, policy=policy)
    if concern.risk_level == RiskLevel.HIGH.value and not was_high:
        alert_high_risk(session, concern, now=now, policy=policy)
    elif (
        result.level is RiskLevel.HIGH
        and rated_higher
        and not was_high
        and concern.status == ConcernStatus.OPEN.value
    ):
        # A staff rating holds it lower ("a patient died" added after the dean rated it
        # medium): the rating stands, but the people who set ratings must hear of it now.
        # Not on a closed concern (answers emailed after it closed): its rating can no longer
        # be changed, which is all the message asks.
        alert_rated_high_over_override(
            session, concern, why="; ".join(result.reasons), now=now, policy=policy
        )


def _learner_text(
    concern: Concern, events: Sequence[Event], *, leaving_out: Event | None = None
) -> str:
    """What triage reads: the concern as the learner wrote it, and the information they added
    since (of the concern's `events`, all of it, or all but `leaving_out`)."""
    added = [
        _triage_words(event.channel, event.detail or {})
        for event in events
        if event.kind == "learner_added_information" and event is not leaving_out
    ]
    return "\n".join([*as_written(concern), *added])


def _triage_words(channel: str, detail: Mapping[str, object]) -> str:
    """What triage reads of one piece of added information (of an emailed reply, only what it
    was stored with for triage: its answers repeat our questions' words)."""
    if channel == "email":
        return str(detail.get(TRIAGE_TEXT, ""))
    return str(detail.get(TRIAGE_TEXT, detail.get("text", "")))


def _related_open(session: Session, concern: Concern, *, now: datetime, policy: Policy) -> int:
    """Other open concerns about the same department in the hotspot window (triangulation)."""
    if concern.department_id is None:
        return 0
    return repositories.count_related_open_concerns(
        session,
        department_id=concern.department_id,
        since=now - timedelta(days=policy.hotspot_window_days),
        exclude_id=id_of(concern),
    )


def _rated(concern: Concern, *, text: str, related: int) -> Triage:
    """The automatic rating of the concern's answers and this text."""
    return triage(
        TriageInput(
            frequency=Frequency(concern.frequency),
            harm=Harm(concern.harm),
            text=text,
            related_open_concerns=related,
        )
    )


def _tell_deadlines_moved_up(
    session: Session,
    concern: Concern,
    *,
    before: tuple[datetime, datetime],
    now: datetime,
    policy: Policy,
    by: Actor | None = None,
) -> None:
    """The level's primary contacts (those asked to acknowledge and give feedback, and told the
    deadlines they were sent) are told the earlier ones a higher rating brings (triage's, or one
    staff set), at once: else they would believe they had days they have not, and the concern
    would move up without them knowing. Not once feedback is given (its deadline has been met),
    nor for deadlines that moved later (acting sooner harms nobody), nor to whoever set the
    rating (`by`: a dean rating a concern at pathway 3 knows what they did)."""
    if concern.status != ConcernStatus.OPEN.value or concern.feedback_at is not None:
        return
    if concern.feedback_due_at <= now:
        # Counted from when it reached the level, even feedback is late at the new rating: it
        # moves up at the sweep's next look, and the people of both levels are told then.
        return
    ack_sooner = concern.acknowledged_at is None and concern.ack_due_at < before[0]
    if not (ack_sooner or concern.feedback_due_at < before[1]):
        return
    # Those who were told the concern: not someone the directory puts in the place of one who
    # has left (they have been sent nothing; the sweep's next message brings them the concern).
    acting = _contact_ids_of(session, by)
    told = [
        (contact, Role(assignment.role))
        for assignment, contact in repositories.assignments_of(
            session, id_of(concern), pathway=concern.pathway
        )
        if assignment.part == "primary" and contact.active and id_of(contact) not in acting
    ]
    if not told:
        return
    # Why it was rated again: staff's review (their reason is theirs to give), or the learner.
    why = "the region's staff reviewed its rating" if by is not None else None
    queue_to_contacts(
        session,
        concern=concern,
        facts=facts_of(session, concern, policy, why=why, now=now),
        kind=MessageKind.DEADLINES_CHANGED,
        contacts=told,
        now=now,
        policy=policy,
        urgent=True,
        # Once for each pair of deadlines.
        key_suffix=f":{concern.ack_due_at:%Y%m%d%H%M}:{concern.feedback_due_at:%Y%m%d%H%M}",
    )


def _contact_ids_of(session: Session, by: Actor | None) -> frozenset[int]:
    """The directory contacts who act: the one named, or every one with the signed-in member of
    staff's email (one person may be a level's contact and a dean)."""
    if by is None:
        return frozenset()
    ids = {by.contact_id} if by.contact_id is not None else set()
    member = session.get(StaffMember, by.staff_id) if by.staff_id is not None else None
    if member is not None:
        ids |= {id_of(contact) for contact in accounts.contacts_with_email(session, member.email)}
    return frozenset(ids)


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
    """Whoever the answers make a contact of the level hears about the concern (each once);
    the trail records who was told, when anyone new was."""
    level = assign_contacts(session, concern, now=now)
    facts = facts_of(session, concern, policy, now=now)
    told = queue_to_contacts(
        session,
        concern=concern,
        facts=facts,
        kind=MessageKind.NEW_CONCERN,
        contacts=level.primary + level.copy,
        now=now,
        policy=policy,
    )
    if not told:
        # The answers changed nothing of who acts ("nursing" when the supervisor was already
        # told): the trail must not say that someone new was.
        return
    record_event(
        session,
        concern,
        at=now,
        kind="contacts_told",
        actor="system",
        channel="system",
        detail={
            **told_summary(
                replace(
                    level,
                    primary=_only(level.primary, told),
                    secondary=(),
                    copy=_only(level.copy, told),
                )
            ),
            "reason": "the learner's answers changed who should be told",
        },
    )


def _only(
    contacts: Sequence[tuple[Contact, Role]], told: Sequence[tuple[Contact, Role]]
) -> tuple[tuple[Contact, Role], ...]:
    """Of `contacts`, those in `told`."""
    ids = {id_of(contact) for contact, _ in told}
    return tuple((contact, role) for contact, role in contacts if id_of(contact) in ids)


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
    _require_handler(
        session, concern, by, doing="give feedback on it", at_level="there can give feedback"
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


FEEDBACK_MOVED_ON = (
    "These buttons answer earlier feedback on {reference}, and your concern has moved on since, "
    "so nothing has been changed. When there is new feedback we will send you a new message to "
    "answer it. The status page shows where your concern is now."
)


def require_current_feedback(
    session: Session, concern: Concern, *, channel: str, external_ref: str, recipient: str
) -> None:
    """An answer given with a chat message's buttons counts only while the feedback that
    message carried is the concern's current feedback: buttons left on a message from an
    earlier level or round are refused, so they never close or move a concern that has moved
    on since. The message is the outbox row posted to `recipient` at `external_ref`; a closed
    concern is left to the answer's own refusal."""
    if concern.status != ConcernStatus.OPEN.value:
        return
    posted = repositories.posted_chat_message(
        session, channel=channel, external_ref=external_ref, recipient=recipient
    )
    current = f"{learner_key(concern, MessageKind.LEARNER_FEEDBACK)}:{channel}"
    if (
        concern.feedback_at is None
        or posted is None
        or posted.concern_id != concern.id
        or posted.idempotency_key != current
    ):
        raise ActionRefused(FEEDBACK_MOVED_ON.format(reference=concern.reference))


def require_reply_to_current_feedback(concern: Concern, replied_to: OutboxMessage) -> None:
    """The email counterpart of `require_current_feedback`: a reply to a feedback email answers
    that feedback only, so once the concern has moved on (another level, a new round) it changes
    nothing. A reply to another of our emails answers whatever feedback is current, as the
    learner's own words say."""
    current = learner_key(concern, MessageKind.LEARNER_FEEDBACK)
    # A copy sent again to a corrected address is the current feedback too.
    if replied_to.kind == MessageKind.LEARNER_FEEDBACK.value and not _is_copy_of(
        replied_to.idempotency_key, current
    ):
        raise ActionRefused(
            f"Your reply answered earlier feedback on {concern.reference}, and your concern has "
            "moved on since, so nothing has been changed. When there is new feedback we will "
            "email you, and you can answer it by replying to that email"
        )


def learner_remains_concerned(
    *, session: Session, concern: Concern, channel: str, now: datetime, policy: Policy
) -> bool:
    """The learner remains concerned after feedback: the concern moves up a level at once.

    False when it is already with the dean, where there is no higher level: the dean's level
    starts a new round instead (its deadlines from now, the learner's answer no longer awaited,
    so silence never closes it), and the level's contacts (the dean) are asked to look again.
    """
    if concern.status != ConcernStatus.OPEN.value:
        raise ActionRefused(f"{concern.reference} is closed")
    if concern.feedback_at is None:
        raise ActionRefused(
            f"{concern.reference} has no feedback yet: it moves up by itself if feedback is late"
        )
    reason = f"The learner remains concerned after feedback at pathway {concern.pathway}"
    at_the_top = next_pathway(Pathway(concern.pathway)) is None
    detail: dict[str, object] = {"reason": reason}
    if at_the_top:
        detail["new_round"] = concern.level_round + 1
    record_event(
        session,
        concern,
        at=now,
        kind="learner_remains_concerned",
        actor="learner",
        channel=channel,
        detail=detail,
    )
    if at_the_top:
        _dean_looks_again(session, concern, reason=reason, now=now, policy=policy)
        return False
    return escalate_to_next_pathway(
        session, concern, now=now, policy=policy, reason=reason, actor="learner", channel=channel
    )


def _dean_looks_again(
    session: Session, concern: Concern, *, reason: str, now: datetime, policy: Policy
) -> None:
    """A new round of the highest level: the clock restarts (feedback is owed again, and a
    second "I remain concerned" waits for it), its people are asked to look again, and the
    learner is told so. A concern already overdue at this level stays marked so: it heads the
    dean's reports until it is closed."""
    overdue_since = concern.overdue_at_dean_at
    concern.level_round += 1
    set_level_clock(concern, pathway=concern.pathway, now=now, policy=policy)
    if overdue_since is not None:
        concern.overdue_at_dean_at = overdue_since
        refresh_next_due(concern)
    facts = facts_of(session, concern, policy, why=reason, with_history=True, now=now)
    queue_to_contacts(
        session,
        concern=concern,
        facts=facts,
        kind=MessageKind.STILL_CONCERNED,
        contacts=_current_level_contacts(session, concern, now=now),
        now=now,
        policy=policy,
    )
    queue_to_learner(
        session, concern=concern, facts=facts, kind=MessageKind.LEARNER_STILL_CONCERNED, now=now
    )


def _current_level_contacts(
    session: Session, concern: Concern, *, now: datetime
) -> list[tuple[Contact, Role]]:
    """The current level's contacts as they stand (including whoever a redirect passed it to),
    primary then copy; found and recorded afresh when the level has none."""
    told = [
        held
        for part in ("primary", "copy")
        for held in contacts_of_level(session, concern, pathway=concern.pathway, part=part, now=now)
    ]
    if not told:
        level = assign_contacts(session, concern, now=now)
        told = [*level.primary, *level.copy]
    return told


# --- staff and contacts handling a case -------------------------------------------------------


def reason_given(text: str, *, asked: str) -> str:
    """A written reason, refused when empty or too long (it goes into the audit trail)."""
    reason = " ".join(text.split())
    if not reason:
        raise ActionRefused(asked)
    if len(reason) > MAX_REASON_CHARACTERS:
        raise ActionRefused(f"The reason must be {MAX_REASON_CHARACTERS:,} characters or fewer")
    return reason


def _require_open(concern: Concern, doing: str) -> None:
    if concern.status != ConcernStatus.OPEN.value:
        raise ActionRefused(f"{concern.reference} is closed: reopen it before you {doing}")


def _require_staff(by: Actor, doing: str) -> None:
    if by.kind != "staff":
        raise ActionRefused(f"Only staff with rights over the concern can {doing}")


def escalate_by_hand(
    *, session: Session, concern: Concern, by: Actor, reason: str, now: datetime, policy: Policy
) -> None:
    """Staff, or a contact of the current level, move the concern up a level now, saying why."""
    _require_open(concern, "escalate it")
    _require_handler(
        session,
        concern,
        by,
        doing="escalate it by hand",
        at_level="there, or staff, can escalate it",
    )
    why = reason_given(reason, asked="Say why the concern should move to the next level")
    if next_pathway(Pathway(concern.pathway)) is None:
        raise ActionRefused(
            f"{concern.reference} is already with the dean (pathway 3): there is no higher level"
        )
    escalate_to_next_pathway(
        session,
        concern,
        now=now,
        policy=policy,
        reason=f"Escalated by hand: {why}",
        actor=by.label,
        channel=by.channel,
    )


def close_concern(
    *, session: Session, concern: Concern, by: Actor, reason: str, now: datetime, policy: Policy
) -> None:
    """Staff close the concern with a reason; the learner is told it was closed (the reason is
    for the audit trail: staff notes are not written to the learner)."""
    _require_staff(by, "close it")
    if concern.status != ConcernStatus.OPEN.value:
        raise ActionRefused(f"{concern.reference} is already closed")
    why = reason_given(reason, asked="Say why the concern is being closed")
    concern.status = ConcernStatus.CLOSED.value
    concern.closed_at = now
    concern.closed_reason = why
    refresh_next_due(concern)
    record_event(
        session,
        concern,
        at=now,
        kind="closed",
        actor=by.label,
        channel=by.channel,
        detail={"reason": why},
    )
    facts = facts_of(session, concern, policy, why=HANDLERS_CLOSED_IT, now=now)
    queue_to_learner(
        session, concern=concern, facts=facts, kind=MessageKind.LEARNER_CLOSED, now=now
    )


def reopen_concern(
    *, session: Session, concern: Concern, by: Actor, reason: str, now: datetime, policy: Policy
) -> None:
    """Staff reopen a closed concern at the level it was closed on: its deadlines start again
    from now, and the level's contacts and the learner are told."""
    _require_staff(by, "reopen it")
    if concern.status == ConcernStatus.OPEN.value:
        raise ActionRefused(f"{concern.reference} is open: there is nothing to reopen")
    why = reason_given(reason, asked="Say why the concern is being reopened")
    concern.status = ConcernStatus.OPEN.value
    concern.closed_at = None
    concern.closed_reason = None
    # A new round of the same level: the clock and its markers restart, and the round in the
    # outbox keys lets this round's messages be queued (the closed round's are not repeated).
    concern.level_round += 1
    set_level_clock(concern, pathway=concern.pathway, now=now, policy=policy)
    record_event(
        session,
        concern,
        at=now,
        kind="reopened",
        actor=by.label,
        channel=by.channel,
        detail={"reason": why, "round": concern.level_round},
    )
    facts = facts_of(session, concern, policy, why=why, with_history=True, now=now)
    queue_to_contacts(
        session,
        concern=concern,
        facts=facts,
        kind=MessageKind.REOPENED,
        contacts=_current_level_contacts(session, concern, now=now),
        now=now,
        policy=policy,
    )
    queue_to_learner(
        session,
        concern=concern,
        facts=replace(facts, why=HANDLERS_REOPENED_IT),
        kind=MessageKind.LEARNER_REOPENED,
        now=now,
    )


def override_triage(
    *,
    session: Session,
    concern: Concern,
    by: Actor,
    likelihood: int,
    impact: int,
    reason: str,
    now: datetime,
    policy: Policy,
) -> None:
    """Staff set likelihood and impact by hand, saying why; the automatic rating stays beside
    it. Deadlines follow the new risk level, and a concern that becomes high risk alerts the
    dean and quality team."""
    _require_staff(by, "override its triage")
    _require_open(concern, "change its rating")
    try:
        rating = rate(likelihood=likelihood, impact=impact)
    except ValueError as error:
        raise ActionRefused(
            "Likelihood and impact must each be a whole number from 1 to 5"
        ) from error
    why = reason_given(reason, asked="Say why the rating is being changed")
    if (likelihood, impact) == (concern.likelihood, concern.impact):
        raise ActionRefused(
            f"{concern.reference} is already rated likelihood {likelihood} x impact {impact}"
        )
    was = {
        "likelihood": concern.likelihood,
        "impact": concern.impact,
        "rating": concern.rating,
        "level": concern.risk_level,
    }
    level = risk_level(rating)
    was_high = concern.risk_level == RiskLevel.HIGH.value
    concern.likelihood = likelihood
    concern.impact = impact
    concern.rating = rating.value
    concern.risk_level = level.value
    concern.interventions = list(recommended_interventions(level))
    concern.override_reason = why
    record_event(
        session,
        concern,
        at=now,
        kind="triage_overridden",
        actor=by.label,
        channel=by.channel,
        detail={
            "reason": why,
            "was": was,
            "now": {
                "likelihood": likelihood,
                "impact": impact,
                "rating": rating.value,
                "level": level.value,
            },
            "automatic": {"likelihood": concern.auto_likelihood, "impact": concern.auto_impact},
        },
    )
    before = (concern.ack_due_at, concern.feedback_due_at)
    _reset_deadlines_for_level(concern, policy=policy)
    _tell_deadlines_moved_up(session, concern, before=before, now=now, policy=policy, by=by)
    if level is RiskLevel.HIGH and not was_high:
        alert_high_risk(session, concern, now=now, policy=policy)


DEFAULT_REDIRECT_REASON = "The contact said it is not theirs to handle"


def redirect(
    *,
    session: Session,
    concern: Concern,
    by: Actor,
    now: datetime,
    policy: Policy,
    reason: str = "",
    to_contact_id: int | None = None,
) -> int:
    """ "Not mine": a contact of the current level hands the concern on, or staff move it to
    another contact. Returns the id of the contact it went to.

    Without `to_contact_id`, the directory chooses whoever else holds the same role for the
    concern (or stands in for it), never someone who already said it is not theirs. The level's
    deadlines do not restart: the learner should not wait longer because it changed hands.
    """
    _require_open(concern, "redirect it")
    if by.kind not in HANDLERS:
        raise ActionRefused("Only the people handling a concern can redirect it")
    if concern.feedback_at is not None:
        raise ActionRefused(
            f"Feedback on {concern.reference} was already given at pathway {concern.pathway}: "
            "it can no longer be redirected at this level"
        )
    why = " ".join(reason.split()) or (DEFAULT_REDIRECT_REASON if by.kind == "contact" else "")
    why = reason_given(why, asked="Say why the concern should go to someone else")
    assignments = repositories.assignments_of(session, id_of(concern), pathway=concern.pathway)
    acting = [(row, contact) for row, contact in assignments if row.part in ACTING_PARTS]
    declined = {row.contact_id for row, _ in assignments if row.part == REDIRECTED_PART}
    if by.kind == "contact":
        held = [row for row, _ in acting if row.contact_id == by.contact_id]
        if not held:
            raise ActionRefused(
                f"{concern.reference} is now with pathway {concern.pathway}: only its contacts "
                "there can pass it on"
            )
        leaving = held
    else:
        leaving = [row for row, _ in acting if row.part == "primary"]
    # The role to fill, and the part it was held as: the primary one when staff move it.
    role = Role(leaving[0].role) if leaving else _primary_role(concern)
    part = leaving[0].part if leaving else "primary"
    declined_now = {row.contact_id for row in leaving}
    holding_part = {row.contact_id for row, _ in acting if row.part == part} - declined_now
    target = _redirect_target(
        session,
        concern,
        role=role,
        avoid=frozenset(declined | declined_now | holding_part),
        declined=frozenset(declined | declined_now),
        leaving=frozenset(declined_now),
        to_contact_id=to_contact_id,
        by=by,
    )
    # One "redirected" row per contact is kept for the record; their other rows at this level go.
    for row in leaving:
        if row.contact_id in declined:
            session.delete(row)
        else:
            row.part = REDIRECTED_PART
            declined.add(row.contact_id)
    session.flush()
    session.add(
        ConcernContact(
            concern_id=id_of(concern),
            pathway=concern.pathway,
            contact_id=id_of(target.contact),
            role=target.role.value,
            part=part,
            assigned_at=now,
        )
    )
    session.flush()
    record_event(
        session,
        concern,
        at=now,
        kind="redirected",
        actor=by.label,
        channel=by.channel,
        detail={
            "reason": why,
            "from_contact_ids": [row.contact_id for row in leaving],
            "to_contact_id": id_of(target.contact),
            "role": target.role.value,
            **({"note": target.note} if target.note else {}),
        },
    )
    facts = facts_of(session, concern, policy, why=why, with_history=True, now=now)
    queue_to_contacts(
        session,
        concern=concern,
        facts=facts,
        kind=MessageKind.REDIRECTED_IN,
        contacts=[(target.contact, target.role)],
        now=now,
        policy=policy,
    )
    return id_of(target.contact)


# The part an assignment takes once its contact said the concern is not theirs: kept for the
# record, never told again at that level.
REDIRECTED_PART = "redirected"


def _primary_role(concern: Concern) -> Role:
    return recipient_roles(
        pathway=Pathway(concern.pathway),
        group=LearnerGroup(concern.learner_group) if concern.learner_group else None,
        prefer_speak_up_guardian=concern.prefers_speak_up_guardian,
    ).primary


def _redirect_target(
    session: Session,
    concern: Concern,
    *,
    role: Role,
    avoid: frozenset[int],
    declined: frozenset[int],
    leaving: frozenset[int],
    to_contact_id: int | None,
    by: Actor,
) -> Found:
    if to_contact_id is None:
        found = find_contact(session, concern, role, avoid=avoid)
        if found is None:
            raise ActionRefused(
                f"Nobody else in the directory can take {concern.reference} as "
                f"{role.value.replace('_', ' ')}: ask staff to choose who should have it"
            )
        return found
    if by.contact_id is not None and to_contact_id == by.contact_id:
        raise ActionRefused("Choose someone other than yourself")
    contact = session.get(Contact, to_contact_id)
    if contact is None or not contact.active or contact.region_id != concern.region_id:
        raise ActionRefused("That contact is not in the directory for this concern's region")
    if to_contact_id in declined and to_contact_id not in leaving:
        raise ActionRefused(
            f"That contact already said {concern.reference} is not theirs at this level"
        )
    if to_contact_id in avoid:
        raise ActionRefused(f"That contact already has {concern.reference}")

    contact_role = Role(contact.role)
    if not may_handle_at(role=contact_role, pathway=Pathway(concern.pathway)):
        raise ActionRefused(
            f"{concern.reference} is on pathway {concern.pathway}: a "
            f"{contact_role.value.replace('_', ' ')} cannot handle it there"
        )
    note = None if contact_role is role else f"Passed to a {contact_role.value.replace('_', ' ')}"
    return Found(contact=contact, role=contact_role, note=note)


def edit_standards(
    *, session: Session, concern: Concern, by: Actor, standards: list[str], now: datetime
) -> None:
    """Staff set the Quality Framework standards a concern touches (the codes, as "1.2")."""
    _require_staff(by, "edit its standards")
    unknown = sorted({code for code in standards if code not in STANDARDS})
    if unknown:
        raise ActionRefused(f"Not a Quality Framework standard: {', '.join(unknown)}")
    chosen = sorted(set(standards), key=lambda code: tuple(int(part) for part in code.split(".")))
    if not chosen:
        raise ActionRefused("Choose at least one standard")
    if chosen == list(concern.standards):
        raise ActionRefused(f"{concern.reference} already has these standards")
    before = list(concern.standards)
    concern.standards = chosen
    record_event(
        session,
        concern,
        at=now,
        kind="standards_edited",
        actor=by.label,
        channel=by.channel,
        detail={"from": before, "to": chosen},
    )


def record_failed_delivery(
    *, session: Session, concern: Concern, sent: OutboxMessage, now: datetime
) -> bool:
    """An email of ours about the concern came back undelivered: noted once in its audit trail
    (which message, to whom by role, never the address), so staff can see that someone was not
    told and put the directory right. False when it was noted before. The ladder carries on as
    it would: a contact who was not told misses the deadline, and the concern moves up."""
    if any(
        event.kind == "delivery_failed" and (event.detail or {}).get("outbox_id") == sent.id
        for event in repositories.events_of(session, id_of(concern))
    ):
        return False
    record_event(
        session,
        concern,
        at=now,
        kind="delivery_failed",
        actor="system",
        channel="email",
        detail={
            "outbox_id": sent.id,
            "message": sent.kind,
            "recipient_role": sent.recipient_role,
            **({"contact_id": sent.recipient_contact_id} if sent.recipient_contact_id else {}),
        },
    )
    return True
