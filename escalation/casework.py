"""The staff side's use cases: who is signed in, which concerns they may see, a concern read in
full, and every action of the escalation engine. One function per use case serves the staff
pages and the JSON API alike; the rules themselves are in `routing.access`.

A concern a person may not see does not exist for them (`find_case` returns None, and the pages
and the API answer 404). Each showing of a confidential learner's identity is written to the
access audit in the same transaction as the read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, true
from sqlmodel import Session, col, select

from escalation import actions
from escalation.actions import ActionRefused, Actor
from escalation.notify import learner_redaction
from escalation.policy import Policy
from escalation.views import concern_details, concern_summary
from routing.access import (
    CHAT_CHANNELS,
    RANK,
    REGION_ROLES,
    SCHOOL,
    STAFF_ROLE_OF,
    CaseAction,
    CaseScope,
    Principal,
    StaffRole,
    acting_contact,
    acts_as_staff,
    allowed_actions,
    may_see,
    sees_identity,
)
from routing.model import Confidentiality, Role
from storage import repositories
from storage import staff as accounts
from storage.tables import (
    Concern,
    ConcernContact,
    Contact,
    Learner,
    ProgrammeBody,
    Region,
    StaffMember,
    id_of,
)

__all__ = ["ActionRefused", "CaseAction", "NotFound"]


class NotFound(LookupError):
    """The concern does not exist, or not for this person: both are answered alike (404)."""


# --- who is signed in -------------------------------------------------------------------------


def directory_role(session: Session, email: str) -> StaffRole | None:
    """The role a directory contact signs in with: the highest of the roles their email holds."""
    roles = [
        STAFF_ROLE_OF[Role(contact.role)]
        for contact in accounts.contacts_with_email(session, email)
        if Role(contact.role) in STAFF_ROLE_OF
    ]
    return max(roles, key=RANK.__getitem__) if roles else None


def principal_of(session: Session, member: StaffMember) -> Principal | None:
    """What a member of staff may see and do now; None when they no longer may sign in (an
    inactive account, or a directory contact no longer in the directory)."""
    if not member.active:
        return None
    contacts = accounts.contacts_with_email(session, member.email)
    if member.follows_directory:
        role = directory_role(session, member.email)
        if role is None:
            return None
    else:
        role = StaffRole(member.role)
    region_ids: set[int] = set()
    body_ids: set[int] = set()
    for contact in contacts:
        held = STAFF_ROLE_OF.get(Role(contact.role))
        if held is role and role in REGION_ROLES:
            region_ids.add(contact.region_id)
        if held is role and role is StaffRole.SCHOOL_LEAD and contact.body_id is not None:
            body_ids.add(contact.body_id)
    if member.scope and role in REGION_ROLES:
        region = session.exec(select(Region).where(Region.key == member.scope)).first()
        if region is not None:
            region_ids.add(id_of(region))
    if member.scope and role is StaffRole.SCHOOL_LEAD:
        body = session.exec(select(ProgrammeBody).where(ProgrammeBody.key == member.scope)).first()
        if body is not None:
            body_ids.add(id_of(body))
    return Principal(
        staff_id=id_of(member),
        email=member.email,
        role=role,
        region_ids=frozenset(region_ids),
        body_ids=frozenset(body_ids),
        contact_ids=frozenset(id_of(contact) for contact in contacts),
    )


def member_for(session: Session, email: str, *, now: datetime) -> StaffMember | None:
    """The staff account this (verified) email stands for: an existing one, or one made now for
    an active directory contact. None when the email has no access (or the account is switched
    off). Signing in and acting from chat both start here."""
    member = accounts.staff_by_email(session, email)
    if member is None:
        role = directory_role(session, email)
        if role is None:
            return None
        member = accounts.save_staff(
            session, email=email, role=role.value, scope=None, follows_directory=True, now=now
        )
    if principal_of(session, member) is None:
        return None
    return member


# --- which concerns -------------------------------------------------------------------------


def case_scope(session: Session, concern: Concern) -> CaseScope:
    assignments = repositories.assignments_of(session, id_of(concern))
    return CaseScope(
        region_id=concern.region_id,
        programme_body_id=concern.programme_body_id,
        pathway=concern.pathway,
        confidentiality=concern.confidentiality,
        told_contact_ids=frozenset(assignment.contact_id for assignment, _ in assignments),
        acting_contact_ids=frozenset(
            assignment.contact_id
            for assignment, _ in assignments
            if assignment.pathway == concern.pathway and assignment.part in actions.ACTING_PARTS
        ),
        channel=concern.channel,
    )


def _visible(who: Principal) -> ColumnElement[bool]:
    """The SQL form of `routing.access.may_see`, to list concerns without reading them all."""
    if who.role is StaffRole.ADMIN:
        return true()
    told = col(Concern.id).in_(
        select(ConcernContact.concern_id).where(
            col(ConcernContact.contact_id).in_(sorted(who.contact_ids))
        )
    )
    clauses: list[ColumnElement[bool]] = [told] if who.contact_ids else []
    if who.role in REGION_ROLES and who.region_ids:
        clauses.append(col(Concern.region_id).in_(sorted(who.region_ids)))
    if who.role is StaffRole.SCHOOL_LEAD and who.body_ids:
        clauses.append(
            and_(
                col(Concern.programme_body_id).in_(sorted(who.body_ids)),
                col(Concern.pathway) >= int(SCHOOL),
            )
        )
    return or_(*clauses) if clauses else false()


def visible_concerns(
    session: Session, who: Principal, *, status: str | None = None
) -> Sequence[Concern]:
    """The concerns this person may see, newest first (optionally only open or closed ones)."""
    statement = select(Concern).where(_visible(who))
    if status is not None:
        statement = statement.where(Concern.status == status)
    return session.exec(statement.order_by(col(Concern.created_at).desc())).all()


def find_case(session: Session, who: Principal, reference: str) -> Concern | None:
    """The concern, when it exists and this person may see it; None otherwise."""
    concern = repositories.concern_by_reference(session, reference.strip().upper())
    if concern is None or not may_see(who, case_scope(session, concern)):
        return None
    return concern


# --- reading a concern --------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    name: str | None
    email: str | None
    slack_user_id: str | None
    teams_user_id: str | None


def my_concerns(session: Session, who: Principal) -> list[dict[str, Any]]:
    """The open concerns this person may see, soonest deadline first: the staff home page."""
    rows = [
        concern_summary(session, concern)
        | {
            "ack_due_at": concern.ack_due_at.isoformat(),
            "acknowledged": concern.acknowledged_at is not None,
            "feedback_given": concern.feedback_at is not None,
        }
        for concern in visible_concerns(session, who, status="open")
    ]
    return sorted(rows, key=lambda row: (row["feedback_due_at"] or "", row["reference"]))


def read_case(
    session: Session,
    who: Principal,
    member: StaffMember,
    concern: Concern,
    *,
    channel: str,
    now: datetime,
) -> dict[str, Any]:
    """A concern in full for this person: the text, the timeline, the contacts, what they may
    do, and the learner's identity only where their role may see it (a confidential learner's
    identity shown is recorded in the access audit)."""
    scope = case_scope(session, concern)
    sees = sees_identity(who, scope)
    details = concern_details(session, concern)
    details.pop("outbox", None)
    details["events"] = _withheld(
        details["events"], sees_identity=sees, redact=learner_redaction(session, concern)
    )
    details["identity"] = None
    if concern.learner_id is not None and sees:
        learner = session.get(Learner, concern.learner_id)
        if learner is not None:
            details["identity"] = {
                # The name given with this concern (the record keeps the first given).
                "name": concern.learner_name or learner.name,
                "email": learner.email,
                "slack_user_id": learner.slack_user_id,
                "teams_user_id": learner.teams_user_id,
            }
            if concern.confidentiality == Confidentiality.CONFIDENTIAL.value:
                accounts.record_access(
                    session,
                    kind="identity_viewed",
                    staff=member,
                    channel=channel,
                    now=now,
                    reference=concern.reference,
                )
    # Those who may know who raised it read what the learner wrote whole; everyone else reads it
    # without a confidential learner's name and address.
    details["as_written"] = False
    if sees:
        written = actions.as_written(concern)
        details["as_written"] = written != (concern.summary, concern.description)
        details["summary"], details["description"] = written
    details["identity_withheld"] = (
        details["identity"] is None and concern.confidentiality == Confidentiality.CONFIDENTIAL
    )
    details["allowed_actions"] = sorted(action.value for action in allowed_actions(who, scope))
    return details


# Events whose reason is the learner's identity's: how the learner told staff their address or
# name was wrong may name them or give the address.
IDENTITY_REASONS = frozenset({"learner_email_changed", "learner_name_corrected"})


def _withheld(
    events: Sequence[dict[str, Any]],
    *,
    sees_identity: bool,
    redact: Callable[[str], str] | None = None,
) -> list[dict[str, Any]]:
    """The events as this person may read them: without those reasons unless they see who the
    learner is, and what a confidential learner added redacted again with the names and address
    held now (`redact`): a name or address staff corrected since it was kept may be in it."""
    if sees_identity:
        return list(events)
    shown: list[dict[str, Any]] = []
    for event in events:
        detail = event["detail"] or {}
        if event["kind"] in IDENTITY_REASONS:
            event = event | {"detail": {k: v for k, v in detail.items() if k != "reason"}}
        elif redact is not None and event["kind"] == "learner_added_information":
            # Both what is shown and what triage read of it (an emailed reply keeps both).
            event = event | {
                "detail": detail
                | {
                    key: redact(value)
                    for key, value in detail.items()
                    if key in ("text", "triage_text") and isinstance(value, str)
                }
            }
        shown.append(event)
    return shown


def audit_trail(session: Session, who: Principal, concern: Concern) -> list[dict[str, Any]]:
    """What happened to the concern, and who looked at its learner's identity or exported it
    (as this person may read it)."""
    events: list[dict[str, Any]] = [
        {
            "at": event.at.isoformat(),
            "kind": event.kind,
            "actor": event.actor,
            "channel": event.channel,
            "pathway": event.pathway,
            "detail": event.detail,
        }
        for event in repositories.events_of(session, id_of(concern))
    ]
    entries = _withheld(
        events,
        sees_identity=sees_identity(who, case_scope(session, concern)),
        redact=learner_redaction(session, concern),
    )
    entries += [
        {
            "at": record.at.isoformat(),
            "kind": record.kind,
            "actor": f"staff {record.staff_id}" if record.staff_id else "system",
            "channel": record.channel,
            "pathway": None,
            "detail": record.detail,
        }
        for record in accounts.access_records_of(session, concern.reference)
    ]
    return sorted(entries, key=lambda entry: entry["at"])


# --- acting on a concern ------------------------------------------------------------------------


def act(
    session: Session,
    who: Principal,
    reference: str,
    action: CaseAction,
    *,
    channel: str,
    now: datetime,
    policy: Policy,
    text: str = "",
    likelihood: int | None = None,
    impact: int | None = None,
    standards: Sequence[str] = (),
    to_contact_id: int | None = None,
    email: str = "",
    name: str = "",
) -> Concern:
    """Take one action on a concern, as this person: NotFound when they may not see it;
    ActionRefused (with the reason, for them) when they may see it but not do this now."""
    found = find_case(session, who, reference)
    if found is None:
        raise NotFound(reference)
    concern = repositories.lock_concern(session, id_of(found))
    if concern is None:
        raise NotFound(reference)
    if action is CaseAction.CORRECT_LEARNER_EMAIL:
        _may_correct_email(concern)
    by = actor_for(session, who, concern, action, channel=channel)
    common: dict[str, Any] = {"session": session, "concern": concern, "by": by, "now": now}
    if action is CaseAction.ACKNOWLEDGE:
        actions.acknowledge(**common)
    elif action is CaseAction.FEEDBACK:
        actions.record_feedback(**common, text=text, policy=policy)
    elif action is CaseAction.ESCALATE:
        actions.escalate_by_hand(**common, reason=text, policy=policy)
    elif action is CaseAction.CLOSE:
        actions.close_concern(**common, reason=text, policy=policy)
    elif action is CaseAction.REOPEN:
        actions.reopen_concern(**common, reason=text, policy=policy)
    elif action is CaseAction.OVERRIDE_TRIAGE:
        if likelihood is None or impact is None:
            raise ActionRefused("Give both likelihood and impact, each from 1 to 5")
        actions.override_triage(
            **common, likelihood=likelihood, impact=impact, reason=text, policy=policy
        )
    elif action is CaseAction.EDIT_STANDARDS:
        actions.edit_standards(**common, standards=list(standards))
    elif action is CaseAction.REDIRECT:
        actions.redirect(**common, policy=policy, reason=text, to_contact_id=to_contact_id)
    elif action is CaseAction.CORRECT_LEARNER_EMAIL:
        if not email.strip() or "\r" in email or "\n" in email:
            raise ActionRefused("Enter the learner's correct email address")
        if UNSAFE_IN_A_NAME.search(name) or len(name.strip()) > MAX_NAME_CHARACTERS:
            raise ActionRefused(
                f"Enter the learner's name on one line, {MAX_NAME_CHARACTERS} characters or fewer"
            )
        # One space between words: "Priya  Patel" is the name already held, not another.
        name = " ".join(name.split())
        why = actions.reason_given(
            text,
            asked="Say why the address or name is being corrected, and how the learner told you",
        )
        changed = actions.change_learner_email(
            **common, email=email.strip(), name=name or None, policy=policy, reason=why
        )
        # The same address with another name: only the name is corrected.
        if not changed and name:
            changed = actions.correct_learner_name(**common, name=name, reason=why)
        if not changed:
            raise ActionRefused(
                "That is already the learner's email address" + (" and name" if name else "")
            )
    return concern


# A learner's name given by staff goes where the form's does (into email headers among other
# places): one line, no control characters, as short as the form's. Nor Unicode's line and
# paragraph separators, or the controls that turn text around ('Raised by' lines read from
# right to left past the name).
UNSAFE_IN_A_NAME = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
MAX_NAME_CHARACTERS = 200


def _may_correct_email(concern: Concern) -> None:
    """Why this concern's learner email cannot be corrected by staff, when it cannot."""
    if concern.confidentiality == Confidentiality.ANONYMOUS.value or concern.learner_id is None:
        raise ActionRefused(f"{concern.reference} is anonymous: it keeps no email address")
    if concern.channel in CHAT_CHANNELS:
        # Moving the concern to a learner known by email alone would take it from their chat.
        raise ActionRefused(
            f"{concern.reference} was raised in {concern.channel.capitalize()}: the learner "
            "follows it there, and can give another email address only by raising it again"
        )


def actor_for(
    session: Session, who: Principal, concern: Concern, action: CaseAction, *, channel: str
) -> Actor:
    """Who this person acts as on the (locked) concern: staff, when their role's rights cover the
    action; else the current level's contact they are. ActionRefused, with the reason, when
    neither."""
    scope = case_scope(session, concern)
    if acts_as_staff(who, scope, action):
        return Actor(kind="staff", channel=channel, staff_id=who.staff_id)
    contact_id = acting_contact(who, scope, action)
    if contact_id is None:
        raise ActionRefused(_not_yours(concern, action))
    return Actor(kind="contact", channel=channel, contact_id=contact_id, staff_id=who.staff_id)


@dataclass(frozen=True)
class ChatPerson:
    """Someone pressing a button in chat, as far as the directory and staff accounts know them."""

    # The directory contact their chat account is, preferring one of the current level's.
    contact_id: int | None
    # The email their staff rights are found by: the directory's for that contact, else one
    # the chat platform vouches for.
    email: str | None = None

    @classmethod
    def of(cls, contact: Contact) -> ChatPerson:
        """A directory contact, with the directory's email for them."""
        email = accounts.normalise_email(contact.email) if contact.email else None
        return cls(id_of(contact), email)


def chat_actor(
    session: Session,
    concern: Concern,
    action: CaseAction,
    person: ChatPerson,
    *,
    channel: str,
    now: datetime,
    not_a_contact: str,
) -> tuple[Actor, str]:
    """Who someone pressing a button in chat acts as on the (locked) concern, and the name the
    messages show for them (the directory's, else their email: never a name they chose).

    First the current level's contact their chat account is; else staff whose rights cover the
    action, found by their email as the staff pages find them (their account, or
    the directory role they would sign in with); else the contact they are, for the action to
    refuse with its own reason (the concern has moved on, say). ActionRefused (`not_a_contact`,
    or why their rights do not cover it) when none of these.
    """
    contact_id, email = person.contact_id, person.email
    if contact_id is not None and actions.is_current_contact(session, concern, contact_id):
        return Actor(kind="contact", channel=channel, contact_id=contact_id), _name_of(
            session, contact_id
        )
    if email:
        member = member_for(session, email, now=now)
        who = principal_of(session, member) if member is not None else None
        if who is not None:
            try:
                by = actor_for(session, who, concern, action, channel=channel)
            except ActionRefused:
                if contact_id is None:
                    raise
            else:
                if by.contact_id is not None:
                    return by, _name_of(session, by.contact_id)
                listed = accounts.contacts_with_email(session, who.email)
                return by, listed[0].name if listed else who.email
    if contact_id is not None:
        return Actor(kind="contact", channel=channel, contact_id=contact_id), _name_of(
            session, contact_id
        )
    raise ActionRefused(not_a_contact)


def _name_of(session: Session, contact_id: int) -> str:
    contact = session.get(Contact, contact_id)
    return contact.name if contact is not None else "a contact"


def _not_yours(concern: Concern, action: CaseAction) -> str:
    if action is CaseAction.CORRECT_LEARNER_EMAIL:
        # No contact of any level may: where the learner's mail goes is the region's to say.
        return (
            "Only the region's dean and quality team can correct the learner's email address "
            f"or name on {concern.reference}"
        )
    doing = action.value.replace("_", " ")
    return (
        f"You cannot {doing} {concern.reference}: it is at pathway {concern.pathway}, "
        "and only its contacts there, or staff with rights over it, can"
    )


# --- accounts -----------------------------------------------------------------------------------


class BadAccount(ValueError):
    """A staff account that cannot be made as asked: `field` names what to correct."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def add_staff(
    session: Session, *, email: str, role: str, scope: str | None, now: datetime
) -> tuple[StaffMember, str]:
    """Create (or re-scope) a staff account and give it a new API token, returned once."""
    address = accounts.normalise_email(email)
    local, _, domain = address.partition("@")
    if not local or "." not in domain or len(address) > 254 or any(c.isspace() for c in address):
        raise BadAccount("--email", f"'{email}' is not an email address")
    try:
        staff_role = StaffRole(role)
    except ValueError:
        raise BadAccount(
            "--role", f"'{role}' is not a role (one of: {', '.join(StaffRole)})"
        ) from None
    scope = (scope or "").strip() or None
    if staff_role in REGION_ROLES:
        keys = [region.key for region in session.exec(select(Region).where(col(Region.active)))]
        if scope is None and len(keys) == 1:
            scope = keys[0]
        if scope not in keys:
            raise BadAccount("--scope", f"give the region's key (one of: {', '.join(keys)})")
    elif staff_role is StaffRole.SCHOOL_LEAD:
        keys = [
            body.key
            for body in session.exec(select(ProgrammeBody).where(col(ProgrammeBody.active)))
        ]
        if scope not in keys:
            raise BadAccount(
                "--scope", f"give the school's or provider's key (one of: {', '.join(keys)})"
            )
    elif scope is not None:
        raise BadAccount("--scope", f"a {staff_role.value} account has no scope")
    if staff_role is StaffRole.CONTACT and not accounts.contacts_with_email(session, address):
        raise BadAccount(
            "--email",
            "no directory contact has this address: a contact sees the concerns they were "
            "told about, so add them to the directory first",
        )
    member = accounts.save_staff(
        session,
        email=address,
        role=staff_role.value,
        scope=scope,
        follows_directory=False,
        now=now,
    )
    return member, accounts.issue_token(session, staff_id=id_of(member), now=now)
