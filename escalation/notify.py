"""Queues messages about a concern in the outbox, in the caller's transaction, exactly once.

Each message's idempotency key names the concern, the message kind, the level and the
recipient, so replaying a step (a retry, a second instance, a catch-up sweep) queues nothing new.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlmodel import Session

from escalation.links import LINK_PATH
from escalation.policy import Policy
from escalation.redact import redact_identities
from notifications.messages import (
    AS_GIVEN,
    KEPT_FOR_STAFF,
    ConcernFacts,
    LearnerIdentity,
    Message,
    MessageKind,
    build_message,
    kept_for_staff,
)
from notifications.render import render_email
from notifications.slack_contacts import contact_message
from notifications.slack_learners import learner_message
from notifications.teams_contact_cards import contact_card, learner_card
from routing.model import Confidentiality, Role
from storage import repositories
from storage.tables import Concern, Contact, Department, Learner, Organisation, OutboxMessage, id_of

EVENT_LABELS = {
    "received": "received",
    "triaged": "triaged",
    "routed": "placed on pathway",
    "contacts_told": "contacts told",
    "contact_replaced": "a contact who left was replaced",
    "high_risk_alert": "dean and quality team alerted (high risk)",
    "rated_high_over_override": "dean and quality team told: triage now rates it high",
    "ack_reminder": "acknowledgement reminder sent",
    "ack_missed": "acknowledgement deadline missed",
    "feedback_reminder": "feedback reminder sent",
    "escalated": "escalated",
    "overdue_at_dean": "overdue at dean level",
    "closed": "closed",
    "reopened": "reopened",
    "acknowledged": "acknowledged",
    "feedback_given": "feedback given to the learner",
    "redirected": "passed to another contact",
    "triage_overridden": "rating changed by staff",
    "standards_edited": "standards edited by staff",
    "learner_remains_concerned": "the learner remains concerned",
    "learner_added_information": "the learner added information",
}


def place_of(session: Session, concern: Concern) -> str:
    """'Ward 7, Vale General Hospital', or the learner's own words when nothing matched."""
    parts: list[str] = []
    if concern.department_id is not None:
        department = session.get(Department, concern.department_id)
        if department is not None:
            parts.append(department.name)
    if concern.organisation_id is not None:
        organisation = session.get(Organisation, concern.organisation_id)
        if organisation is not None:
            parts.append(organisation.name)
    if concern.placement_text:
        parts.append(f"{AS_GIVEN}{concern.placement_text})")
    return ", ".join(parts) or "placement not given"


# Each feedback or addition quoted in a history at most this long: the rest is on the staff page.
HISTORY_QUOTE_MAX = 1_000


def history_of(session: Session, concern: Concern, policy: Policy) -> tuple[str, ...]:
    """A readable history for contacts who receive an escalated concern: what happened, with
    the feedback the learner was given and what the learner added since (for a confidential
    learner, both without their name, address or phone number: feedback may greet them by
    name), so that the next level starts from what the last one did."""
    redact = learner_redaction(session, concern)
    lines = []
    for event in repositories.events_of(session, id_of(concern)):
        label = EVENT_LABELS.get(event.kind, event.kind.replace("_", " "))
        local = event.at.astimezone(policy.calendar.timezone)
        where = f" (pathway {event.pathway})" if event.pathway else ""
        if event.kind == "escalated":
            where = f" from pathway {event.from_pathway} to pathway {event.to_pathway}"
        said = (event.detail or {}).get("text")
        quoted = ""
        if event.kind in ("feedback_given", "learner_added_information") and isinstance(said, str):
            if redact is not None:
                # Feedback is written to the learner, and may greet them by name.
                said = redact(said)
            said = " ".join(said.split())
            if len(said) > HISTORY_QUOTE_MAX:
                said = said[: HISTORY_QUOTE_MAX - 1].rstrip() + "… (the rest is on the staff page)"
            quoted = f": \u201c{said}\u201d" if said else ""
        lines.append(f"{local:%d %b %Y %H:%M}: {label}{where}{quoted}")
    return tuple(lines)


def learner_redaction(session: Session, concern: Concern) -> Callable[[str], str] | None:
    """Redaction of what a confidential learner writes, as the people handling the concern may
    read it: without the name given with the concern, the one their record keeps, nor their
    address, as held now. None for a concern that is not confidential, or has no learner."""
    if concern.confidentiality != Confidentiality.CONFIDENTIAL.value or not concern.learner_id:
        return None
    learner = session.get(Learner, concern.learner_id)
    names = (concern.learner_name, learner.name if learner else None)
    address = learner.email if learner else None
    return lambda text: redact_identities(text, names=names, addresses=(address,))


def unanswered_questions(concern: Concern) -> tuple[str, ...]:
    """What an email concern still needs from the learner (keys of notifications QUESTIONS)."""
    if concern.channel != "email":
        return ()
    missing = []
    if concern.frequency == "not_answered":
        missing.append("frequency")
    if concern.harm == "not_answered":
        missing.append("harm")
    if concern.organisation_id is None:
        missing.append("organisation")
    if concern.department_id is None:
        missing.append("department")
    if concern.learner_group is None:
        missing.append("learner_group")
    return tuple(missing)


def facts_of(
    session: Session,
    concern: Concern,
    policy: Policy,
    *,
    why: str | None = None,
    from_pathway: int | None = None,
    with_history: bool = False,
    feedback: str | None = None,
    now: datetime | None = None,
) -> ConcernFacts:
    """What messages about the concern may draw on; with `now`, a learner who has an email
    address also gets a signed link to their status page (anonymous learners have no email)."""
    learner = session.get(Learner, concern.learner_id) if concern.learner_id else None
    status_url = (
        policy.status_url(concern.reference, now, link_version=concern.link_version)
        if learner is not None and now
        else None
    )
    return ConcernFacts(
        reference=concern.reference,
        summary=concern.summary,
        description=concern.description,
        place=place_of(session, concern),
        pathway=concern.pathway,
        risk_level=concern.risk_level,
        rating=concern.rating,
        reasons=tuple(concern.risk_reasons),
        interventions=tuple(concern.interventions),
        patient_safety=concern.patient_safety,
        hotspot=concern.hotspot,
        confidentiality=Confidentiality(concern.confidentiality),
        # The name given with this concern: the record keeps the first given with the address,
        # which may be shorter ('Priya') or, when a form named someone else's address, theirs.
        learner=(
            LearnerIdentity(name=concern.learner_name or learner.name, email=learner.email)
            if learner
            else None
        ),
        learner_group=concern.learner_group,
        ack_due_at=concern.ack_due_at,
        feedback_due_at=concern.feedback_due_at,
        timezone=policy.calendar.timezone,
        staff_url=policy.staff_url(concern.reference),
        history=history_of(session, concern, policy) if with_history else (),
        from_pathway=from_pathway,
        why=why,
        questions=unanswered_questions(concern),
        feedback=feedback,
        status_url=status_url,
        acknowledged_at=concern.acknowledged_at,
        feedback_at=concern.feedback_at,
        written_at=now,
        school_known=concern.programme_body_id is not None,
        about_pathway1_contact=concern.about_pathway1_contact,
    )


def level_tag(concern: Concern) -> str:
    """The level a message belongs to, in its idempotency key: "p2", or "p2r1" once reopened.

    A reopened concern owes its level's messages again (a new round), and only those.
    """
    round_part = f"r{concern.level_round}" if concern.level_round else ""
    return f"p{concern.pathway}{round_part}"


def send_after(policy: Policy, *, now: datetime, urgent: bool) -> datetime:
    """Routine messages wait for working hours; urgent ones (high-risk alerts) go at once."""
    return now if urgent else policy.calendar.next_working_moment(now)


def queue_to_contact(
    session: Session,
    *,
    concern: Concern,
    facts: ConcernFacts,
    kind: MessageKind,
    contact: Contact,
    role: Role,
    now: datetime,
    policy: Policy,
    urgent: bool = False,
    key_suffix: str = "",
) -> bool:
    """Queue one email to a contact, and a Slack DM too when Slack is on and the contact has a
    Slack user id or an email (someone known only by email is looked up in Slack when the DM is
    sent); False when nothing new was queued (already queued, or no address at all).
    `key_suffix` tells apart messages of a kind a level may owe more than once."""
    message = build_message(kind, facts=facts, recipient_role=role)
    key = f"{concern.reference}:{kind.value}:{level_tag(concern)}:contact:{contact.id}{key_suffix}"
    due = send_after(policy, now=now, urgent=urgent)
    queued = False
    if contact.email:
        queued = repositories.queue_message(
            session,
            _email_row(
                concern,
                kind,
                key,
                role,
                contact.email,
                message,
                now=now,
                due=due,
                contact_id=contact.id,
            ),
        )
    slack_address = contact.slack_user_id or contact.email
    if policy.slack_enabled and slack_address:
        chat = contact_message(kind, message, facts, share_summary=policy.chat_summary)
        slack_row = _chat_row(
            concern,
            kind,
            key,
            role,
            slack_address,
            message,
            channel="slack",
            text=chat.text,
            payload={"text": chat.text, "blocks": chat.blocks},
            now=now,
            due=due,
            contact_id=contact.id,
        )
        queued = repositories.queue_message(session, slack_row) or queued
    # Teams: only to a contact known by their Entra object id (someone known only by email is
    # matched, and their id remembered, when they first write to the bot or press a button).
    if policy.teams_enabled and contact.teams_user_id:
        card = contact_card(
            kind, message, facts, share_summary=policy.teams_summary, contact_id=contact.id
        )
        teams_row = _chat_row(
            concern,
            kind,
            key,
            role,
            contact.teams_user_id,
            message,
            # A card's text is the subject, never concern text.
            channel="teams",
            text=message.subject,
            payload={"card": card},
            now=now,
            due=due,
            contact_id=contact.id,
        )
        queued = repositories.queue_message(session, teams_row) or queued
    return queued


def _email_row(
    concern: Concern,
    kind: MessageKind,
    key: str,
    role: Role,
    address: str,
    message: Message,
    *,
    now: datetime,
    due: datetime,
    contact_id: int | None = None,
) -> OutboxMessage:
    """The outbox row of a message as email (text and HTML, rendered now)."""
    rendered = render_email(message)
    return OutboxMessage(
        idempotency_key=key,
        concern_id=concern.id,
        reference=concern.reference,
        channel="email",
        kind=kind.value,
        recipient_role=role.value,
        recipient_contact_id=contact_id,
        recipient_address=address,
        subject=rendered.subject,
        body_text=rendered.text,
        body_html=rendered.html,
        created_at=now,
        send_after=due,
    )


def _chat_row(
    concern: Concern,
    kind: MessageKind,
    key: str,
    role: Role,
    address: str,
    message: Message,
    *,
    channel: str,
    text: str,
    payload: dict[str, Any],
    now: datetime,
    due: datetime,
    contact_id: int | None = None,
) -> OutboxMessage:
    """The outbox row of the same message in a chat (its key is the email's + ":<channel>"),
    addressed to the person's Slack user id or Entra object id."""
    return OutboxMessage(
        idempotency_key=f"{key}:{channel}",
        concern_id=concern.id,
        reference=concern.reference,
        channel=channel,
        kind=kind.value,
        recipient_role=role.value,
        recipient_contact_id=contact_id,
        recipient_address=address,
        subject=message.subject,
        body_text=text,
        payload=payload,
        created_at=now,
        send_after=due,
    )


def queue_to_contacts(
    session: Session,
    *,
    concern: Concern,
    facts: ConcernFacts,
    kind: MessageKind,
    contacts: Iterable[tuple[Contact, Role]],
    now: datetime,
    policy: Policy,
    key_suffix: str = "",
    urgent: bool = False,
) -> list[tuple[Contact, Role]]:
    """Queue the same kind of message to each (contact, role), each person once; those sent
    something new (not already sent it)."""
    told: set[int | None] = set()
    queued: list[tuple[Contact, Role]] = []
    for contact, role in contacts:
        if contact.id in told:
            continue
        told.add(contact.id)
        if queue_to_contact(
            session,
            concern=concern,
            facts=facts,
            kind=kind,
            contact=contact,
            role=role,
            now=now,
            policy=policy,
            key_suffix=key_suffix,
            urgent=urgent,
        ):
            queued.append((contact, role))
    return queued


def queue_reply_not_applied(
    session: Session,
    *,
    concern: Concern,
    policy: Policy,
    address: str,
    role: Role,
    contact_id: int | None,
    inbound_id: int,
    why: str,
    now: datetime,
) -> bool:
    """Tell the sender of an emailed reply that what it asked could not be done, and why, as
    the chat channels do at once: once per reply, and at once, whatever the hour."""
    kind = MessageKind.REPLY_NOT_APPLIED
    learner = role is Role.LEARNER
    facts = facts_of(session, concern, policy, why=why, now=now if learner else None)
    message = build_message(kind, facts=facts, recipient_role=role)
    key = f"{concern.reference}:{kind.value}:inbound:{inbound_id}"
    return repositories.queue_message(
        session,
        _email_row(
            concern, kind, key, role, address, message, now=now, due=now, contact_id=contact_id
        ),
    )


def queue_kept_for_staff(
    session: Session,
    *,
    address: str,
    inbound_id: int,
    why: str,
    named_reference: str | None,
    policy: Policy,
    now: datetime,
    patient_safety: bool = False,
) -> bool:
    """Answer the sender of an email kept for staff (`notifications.messages.kept_for_staff`),
    at once: once per email. About no concern, so it names none but the one they wrote."""
    message = kept_for_staff(
        why=why,
        named_reference=named_reference,
        form_url=f"{policy.public_url.rstrip('/')}/concerns/new",
        patient_safety=patient_safety,
    )
    rendered = render_email(message)
    return repositories.queue_message(
        session,
        OutboxMessage(
            idempotency_key=f"{KEPT_FOR_STAFF}:inbound:{inbound_id}",
            concern_id=None,
            reference=None,
            channel="email",
            kind=KEPT_FOR_STAFF,
            recipient_role="sender",
            recipient_address=address,
            subject=rendered.subject,
            body_text=rendered.text,
            body_html=rendered.html,
            created_at=now,
            send_after=now,
        ),
    )


# A status link in a rendered email: its token is URL-safe base64 and dots (itsdangerous).
_STATUS_LINK = re.compile(re.escape(LINK_PATH) + r"[A-Za-z0-9_.\-]+")


def queue_again_to_learner(
    session: Session,
    *,
    concern: Concern,
    given_up: OutboxMessage,
    address: str,
    key: str,
    now: datetime,
    policy: Policy,
) -> bool:
    """Queue an unsent email to the learner again, to `address` under `key`: the same words, its
    status links signed afresh for the concern's current link version (those in the copy given
    up no longer open it). The words are kept, not built again: what each message said (the
    feedback, why the concern moved or closed) is what its caller passed, and is not all kept
    elsewhere."""
    token = (
        policy.status_links.token_for(concern.reference, now, version=concern.link_version)
        if policy.status_links is not None
        else None
    )

    def relinked(body: str) -> str:
        return body if token is None else _STATUS_LINK.sub(lambda _: LINK_PATH + token, body)

    return repositories.queue_message(
        session,
        OutboxMessage(
            idempotency_key=key,
            concern_id=concern.id,
            reference=concern.reference,
            channel="email",
            kind=given_up.kind,
            recipient_role=Role.LEARNER.value,
            recipient_address=address,
            subject=given_up.subject,
            body_text=relinked(given_up.body_text),
            body_html=relinked(given_up.body_html) if given_up.body_html is not None else None,
            created_at=now,
            send_after=max(now, given_up.send_after),
        ),
    )


def learner_key(concern: Concern, kind: MessageKind) -> str:
    """The idempotency key of a message of this kind to the concern's learner at its current
    level and round (its chat copy's key adds ":<channel>", as `_chat_row` does)."""
    return f"{concern.reference}:{kind.value}:{level_tag(concern)}:learner"


def _queue_to_learner_in_teams(
    session: Session,
    *,
    concern: Concern,
    learner: Learner | None,
    facts: ConcernFacts,
    kind: MessageKind,
    now: datetime,
    policy: Policy | None,
) -> bool:
    """A learner who raised the concern in Teams hears back there too (even without an email
    address), as a card; not the acknowledgement: the bot confirmed the concern in the chat when
    it was raised. After feedback the card carries "I'm satisfied" / "I remain concerned". A
    concern raised in Teams means Teams was on, so only a policy that says it is off stops it."""
    if (
        learner is None
        or concern.channel != "teams"
        or not learner.teams_user_id
        or kind is MessageKind.LEARNER_ACK
        or (policy is not None and not policy.teams_enabled)
    ):
        return False
    message = build_message(kind, facts=facts, recipient_role=Role.LEARNER)
    due = now if policy is None else send_after(policy, now=now, urgent=False)
    teams_row = _chat_row(
        concern,
        kind,
        learner_key(concern, kind),
        Role.LEARNER,
        learner.teams_user_id,
        message,
        channel="teams",
        text=message.subject,
        payload={"card": learner_card(kind, message, facts, level_round=concern.level_round)},
        now=now,
        due=due,
    )
    return repositories.queue_message(session, teams_row)


def queue_to_learner(
    session: Session,
    *,
    concern: Concern,
    facts: ConcernFacts,
    kind: MessageKind,
    now: datetime,
    policy: Policy | None = None,
    key: str | None = None,
) -> bool:
    """Queue one email to the learner; anonymous learners have no address and get nothing.

    An answer to something the learner or a person handling the concern just did goes at once,
    whatever the hour. With `policy`, the message waits for working hours: the sweep's own steps
    (a deadline passed, silence closed it) never write to anyone at night or at a weekend.
    """
    learner = session.get(Learner, concern.learner_id) if concern.learner_id else None
    in_teams = _queue_to_learner_in_teams(
        session, concern=concern, learner=learner, facts=facts, kind=kind, now=now, policy=policy
    )
    if learner is None or not learner.email:
        return in_teams
    message = build_message(kind, facts=facts, recipient_role=Role.LEARNER)
    # `key`: a message sent again on purpose (to a corrected address) is not taken as a repeat.
    key = key or learner_key(concern, kind)
    due = now if policy is None else send_after(policy, now=now, urgent=False)
    queued = repositories.queue_message(
        session,
        _email_row(concern, kind, key, Role.LEARNER, learner.email, message, now=now, due=due),
    )
    # A learner who raised the concern in Slack hears back there too, from the acknowledgement
    # on: the posted acknowledgement starts the thread the learner adds information in (its
    # row's external_ref names it). Most callers pass no policy (an answer goes at once); a
    # concern raised in Slack means Slack was on, so only a policy that says it is off stops it.
    if (
        concern.channel == "slack"
        and learner.slack_user_id
        and (policy is None or policy.slack_enabled)
    ):
        chat = learner_message(kind, message, facts)
        repositories.queue_message(
            session,
            _chat_row(
                concern,
                kind,
                key,
                Role.LEARNER,
                learner.slack_user_id,
                message,
                channel="slack",
                text=chat.text,
                payload={"text": chat.text, "blocks": chat.blocks},
                now=now,
                due=due,
            ),
        )
    return queued or in_teams
