"""From a stored email to a concern: new concerns, learners' and contacts' replies, and loops.

The mailbox only stores (before its 250); this module reads what is stored, one message per
transaction, and marks the message processed in the same transaction as its effect, so an email
becomes exactly one concern or one reply even if the service dies half-way.

Safety rules, in the order they apply:
1. Automatic mail (auto-replies, bounces, bulk and list mail) is kept but never answered.
2. A reply joins a concern only when a token we issued *and* the sender's address both match;
   a token that does not match its sender is quarantined for staff, never attached.
3. Anything else is a new concern, raised through the same `raise_concern` as every channel.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from escalation.actions import (
    ActionRefused,
    Actor,
    LearnerAnswers,
    add_learner_information,
    learner_remains_concerned,
    learner_satisfied,
    rate_added_information,
    record_contact_reply,
    record_failed_delivery,
    record_feedback,
    record_learner_answers,
    redirect,
    require_reply_to_current_feedback,
)
from escalation.notify import queue_kept_for_staff, queue_reply_not_applied
from escalation.policy import Policy
from escalation.redact import drop_signature, redact_identities, summary_within
from intake import placement
from intake.bounces import read_bounce
from intake.emails import ParsedEmail, html_to_text, parse_email
from intake.replies import (
    Answers,
    ContactCommand,
    described_group,
    only_our_message,
    read_answers,
    read_contact_command,
    same_subject,
    strip_quoted,
    without_answers,
)
from intake.service import raise_concern
from intake.submission import (
    DESCRIPTION_MAX,
    SUMMARY_MAX,
    Channel,
    LearnerDetails,
    NewConcern,
    PlacementDetails,
)
from intake.summary import derive_summary
from intake.web.form_fields import GROUP_LABELS
from notifications.email import subject_sent
from notifications.messages import KEPT_FOR_STAFF, MessageKind
from notifications.threading import MailThreading
from routing.model import (
    ConcernStatus,
    Confidentiality,
    Frequency,
    Harm,
    LearnerGroup,
    RaisedBefore,
    Role,
)
from routing.triage import TriageInput, triage
from storage import inbox, repositories
from storage.db import transaction
from storage.tables import (
    Concern,
    Contact,
    InboundMessage,
    Learner,
    Organisation,
    OutboxMessage,
    id_of,
)

log = logging.getLogger(__name__)

# Processing that keeps failing (a bug, not bad input: bad input is quarantined at once) is
# retried with backoff, then handed to staff.
GIVE_UP_AFTER_ATTEMPTS = 5
# What contacts read of a reply is kept on the concern; the raw message holds the rest.
REPLY_TEXT_MAX = 10_000
# A concern that names the learner's supervisor or tutor starts at pathway 2 (domain.md), so an
# email that mentions them is treated that way until someone who may read it decides otherwise.
# Nurses and midwives say "mentor" (the practice supervisor's or assessor's old name), "practice
# educator" or "preceptor".
_ABOUT_PATHWAY1_CONTACT = re.compile(
    r"\b(supervisor|tutor|assessor|mentor|practice educator|clinical educator|preceptor)s?\b",
    re.IGNORECASE,
)
# A concern's reference, as `intake.service.reference_for` writes it (in any case).
_REFERENCE_NAMED = re.compile(r"\bLC-\d{4}-\d{6}\b", re.IGNORECASE)


@dataclass
class IntakeReport:
    processed: int = 0
    new_concerns: int = 0
    replies: int = 0
    acknowledgements: int = 0
    ignored: int = 0
    quarantined: int = 0
    failed: int = 0
    outcomes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Outcome:
    status: str  # processed | ignored | quarantined
    text: str
    concern_id: int | None = None
    counter: str = "processed"  # which IntakeReport counter it adds to, besides `processed`
    region_id: int | None = None  # mail kept aside: the region it concerns, when known


def process_pending(
    *,
    engine: Engine,
    policy: Policy,
    threading: MailThreading,
    now: datetime,
    acks_per_sender_per_day: int = 10,
    concerns_per_sender_per_day: int = 20,
    limit: int = 50,
) -> IntakeReport:
    """Turn stored emails into concerns and replies, each message in its own transaction."""
    report = IntakeReport()
    with transaction(engine) as session:
        waiting = inbox.pending_ids(session, now=now, limit=limit)
    for message_id in waiting:
        try:
            with transaction(engine) as session:
                row = inbox.claim_pending(session, message_id=message_id)
                if row is None:
                    continue
                outcome = _process(
                    session,
                    row,
                    policy=policy,
                    threading=threading,
                    now=now,
                    acks_per_sender_per_day=acks_per_sender_per_day,
                    concerns_per_sender_per_day=concerns_per_sender_per_day,
                )
                row.status = outcome.status
                row.outcome = outcome.text
                row.concern_id = outcome.concern_id
                row.region_id = outcome.region_id
                row.processed_at = now
        except Exception as error:  # one bad message must not stop the others
            # The type only: messages of database errors can quote the learner's text.
            log.exception("processing stored email %s failed", message_id, exc_info=False)
            inbox.record_failed_attempt(
                engine,
                message_id=message_id,
                error=type(error).__name__,
                now=now,
                give_up_after=GIVE_UP_AFTER_ATTEMPTS,
            )
            report.failed += 1
            continue
        report.processed += 1
        report.outcomes.append(outcome.text)
        if outcome.counter != "processed":
            setattr(report, outcome.counter, getattr(report, outcome.counter) + 1)
    return report


def _process(
    session: Session,
    row: InboundMessage,
    *,
    policy: Policy,
    threading: MailThreading,
    now: datetime,
    acks_per_sender_per_day: int,
    concerns_per_sender_per_day: int,
) -> _Outcome:
    parsed = parse_email(row.raw, mail_from=row.mail_from)
    row.from_address = parsed.from_address
    row.subject = parsed.subject[:998] or None
    row.attachments = [
        {"filename": item.filename, "content_type": item.content_type, "size": item.size}
        for item in parsed.attachments
    ]
    if parsed.automatic:
        noted = _note_bounce(session, row, threading=threading, now=now)
        said = f"; a failed delivery was noted on {', '.join(noted)}" if noted else ""
        return _Outcome(
            "ignored", f"automatic mail, not answered ({parsed.automatic}){said}", None, "ignored"
        )
    if parsed.from_address is None:
        return _Outcome(
            "quarantined",
            "the sender's address could not be read: kept for staff",
            None,
            "quarantined",
        )
    if parsed.from_address == threading.mailbox.lower():
        return _Outcome("ignored", "mail from our own address, not answered", None, "ignored")
    twin = inbox.earlier_copy(session, row, author=parsed.from_address)
    if twin is not None:
        return _Outcome(
            "ignored",
            f"a second copy of stored email {twin} (same sender and Message-ID, another route): "
            "not acted on again",
            None,
            "ignored",
        )

    places = (*parsed.token_places, *row.rcpt_tos)
    for outbox_id in sorted(
        threading.verified_outbox_ids(sender=parsed.from_address, places=places), reverse=True
    ):
        sent = session.get(OutboxMessage, outbox_id)
        if sent is not None and sent.concern_id is not None:
            return _reply(
                session,
                row,
                parsed,
                sent,
                policy=policy,
                now=now,
                answers_per_day=acks_per_sender_per_day,
                mailbox=threading.mailbox,
            )
        if sent is not None:
            # A reply to a digest or report: kept for staff, never attached to any concern.
            return _Outcome(
                "quarantined",
                f"a reply to a {sent.kind.replace('_', ' ')}, which is not about one concern: "
                "kept for staff",
                None,
                "quarantined",
                region_id=_region_of(session, sent),
            )
    tell = partial(
        _tell_kept_for_staff,
        session,
        row,
        parsed,
        policy=policy,
        now=now,
        answers_per_day=acks_per_sender_per_day,
    )
    if threading.has_token(places):
        told = tell(
            why="Your email answers one of ours, but it came from a different address from the "
            "one ours was sent to",
            named_reference=None,
        )
        return _Outcome(
            "quarantined",
            f"looks like a reply, but its token does not match the sender: kept for staff; {told}",
            None,
            "quarantined",
            region_id=_forwarded_region(session, threading, places),
        )
    named = _REFERENCE_NAMED.search(f"{parsed.subject}\n{parsed.text}")
    if named is not None:
        # A learner following up by writing anew, or a contact answering that way: raised as a
        # new concern it would tell supervisors and alert deans again, and count towards a
        # hotspot; only a reply to our email joins a concern (its sender proven).
        reference = named.group(0).upper()
        told = tell(
            why=f"Your email mentions {reference}, but it is not a reply to one of the emails we "
            "sent about it",
            named_reference=reference,
        )
        return _Outcome(
            "quarantined",
            f"names {reference} but is not a reply to our email about it: kept for staff; {told}",
            None,
            "quarantined",
            region_id=_region_named(session, reference),
        )
    return _new_concern(
        session,
        row,
        parsed,
        policy=policy,
        now=now,
        acks_per_day=acks_per_sender_per_day,
        concerns_per_day=concerns_per_sender_per_day,
    )


def _tell_kept_for_staff(
    session: Session,
    row: InboundMessage,
    parsed: ParsedEmail,
    *,
    why: str,
    named_reference: str | None,
    policy: Policy,
    now: datetime,
    answers_per_day: int,
) -> str:
    """Tell the sender of mail kept for staff why, and how to do what they meant to (and, when
    it reads as patient safety, to report it locally too): at most `answers_per_day` such
    answers to one address in 24 hours (each is marked automatic, and the cap stops any loop).
    What to add to the outcome noted for staff, which says first when it reads as patient
    safety."""
    address = parsed.from_address or ""
    patient_safety = _reads_as_patient_safety(parsed)
    flagged = "it reads as patient safety, read it today; " if patient_safety else ""
    answered = repositories.answers_sent_to(
        session, address=address, since=now - timedelta(days=1), kind=KEPT_FOR_STAFF
    )
    if answered >= answers_per_day:
        return f"{flagged}the sender was not told ({answered} such answers to them in 24 hours)"
    queue_kept_for_staff(
        session,
        address=address,
        inbound_id=id_of(row),
        why=why,
        named_reference=named_reference,
        policy=policy,
        now=now,
        patient_safety=patient_safety,
    )
    return f"{flagged}the sender was told how to add to a concern"


def _reads_as_patient_safety(parsed: ParsedEmail) -> bool:
    """Whether what an email says reads as patient safety to triage, as a concern's words do."""
    text = f"{parsed.subject}\n{strip_quoted(parsed.text)}"
    reading = triage(
        TriageInput(
            frequency=Frequency.NOT_ANSWERED,
            harm=Harm.NOT_ANSWERED,
            text=text[:REPLY_TEXT_MAX],
            related_open_concerns=0,
        )
    )
    return reading.patient_safety


def _region_named(session: Session, reference: str) -> int | None:
    """The region of the concern with this reference, if there is one."""
    concern = repositories.concern_by_reference(session, reference)
    return concern.region_id if concern is not None else None


def _region_of(session: Session, sent: OutboxMessage) -> int | None:
    """The region a message we sent concerns: its concern's, or else its recipient's."""
    if sent.concern_id is not None:
        concern = session.get(Concern, sent.concern_id)
        if concern is not None:
            return concern.region_id
    if sent.recipient_contact_id is not None:
        contact = session.get(Contact, sent.recipient_contact_id)
        if contact is not None:
            return contact.region_id
    return None


def _forwarded_region(
    session: Session, threading: MailThreading, places: Sequence[str]
) -> int | None:
    """The region of the message a genuine token names, when the reply comes from another
    address (a forward, another account): it files the mail kept aside, and grants nothing."""
    sent: dict[int, OutboxMessage] = {}

    def recipients_of(outbox_ids: list[int]) -> dict[int, str]:
        statement = select(OutboxMessage).where(col(OutboxMessage.id).in_(outbox_ids))
        sent.update((id_of(row), row) for row in session.exec(statement))
        return {outbox_id: row.recipient_address for outbox_id, row in sent.items()}

    regions = {
        region
        for outbox_id in threading.genuine_outbox_ids(places=places, recipients_of=recipients_of)
        if (region := _region_of(session, sent[outbox_id])) is not None
    }
    # Tokens of two regions in one message: no one region's staff may have it to themselves.
    return regions.pop() if len(regions) == 1 else None


def _note_bounce(
    session: Session, row: InboundMessage, *, threading: MailThreading, now: datetime
) -> list[str]:
    """A delivery status report about our own email: the failed delivery is noted on its
    concern (the references noted). Only a returned message whose token is bound to the
    address the report says failed counts, so a report cannot name anyone else's mail."""
    bounce = read_bounce(row.raw)
    if bounce is None:
        return []
    noted: list[str] = []
    for address in bounce.failed:
        for outbox_id in threading.verified_outbox_ids(
            sender=address, places=bounce.returned_headers
        ):
            sent = session.get(OutboxMessage, outbox_id)
            if sent is None or sent.concern_id is None or sent.channel != "email":
                continue
            concern = session.get(Concern, sent.concern_id)
            if concern is not None and record_failed_delivery(
                session=session, concern=concern, sent=sent, now=now
            ):
                noted.append(concern.reference)
    return noted


# --- a new concern ----------------------------------------------------------------------------


def _new_concern(
    session: Session,
    row: InboundMessage,
    parsed: ParsedEmail,
    *,
    policy: Policy,
    now: datetime,
    acks_per_day: int,
    concerns_per_day: int,
) -> _Outcome:
    address = parsed.from_address or ""
    known = repositories.find_learner_by_email(session, address)
    if known is not None and known.id is not None:
        # A flood of mail in one sender's name (forged, or a script gone wrong) must not tell
        # supervisors and alert deans once per message: past the limit, new concerns wait for
        # the dean and quality team of the region the sender's latest concern is in.
        regions = repositories.email_concern_regions(
            session, learner_id=known.id, since=now - timedelta(days=1)
        )
        if len(regions) >= concerns_per_day:
            return _Outcome(
                "quarantined",
                f"already {len(regions)} new concerns from this sender in 24 hours, the most "
                "raised from one address (not raised, nobody told): kept for staff",
                None,
                "quarantined",
                region_id=regions[0],
            )
    answers = read_answers(parsed.text)
    guess = placement.guess_placement(
        f"{parsed.subject}\n{parsed.text}", _directory_places(session)
    )
    notes: list[str] = [
        "Raised by email: confidential unless the learner says otherwise (the dean and quality "
        "team may know who raised it; contacts see the text without the sender's name)"
    ]
    # What they say they are now ("I'm a student midwife") before what they said on an earlier
    # concern, which may be years old.
    described = None if answers.learner_group else described_group(parsed.text)
    if described is not None:
        notes.append(
            "Kind of learner taken from what the learner wrote: "
            f"{GROUP_LABELS[described.value].lower()}"
        )
    about_contact = bool(_ABOUT_PATHWAY1_CONTACT.search(f"{parsed.subject}\n{parsed.text}"))
    if about_contact:
        notes.append(
            "The email mentions a supervisor, tutor, assessor or mentor: it starts at pathway 2 so "
            "that "
            "nobody it may be about is told"
        )
    sent_recently = repositories.answers_sent_to(
        session,
        address=address,
        since=now - timedelta(days=1),
        kind=MessageKind.LEARNER_ACK.value,
    )
    acknowledge_learner = sent_recently < acks_per_day
    concern = raise_concern(
        session=session,
        concern=NewConcern(
            placement=PlacementDetails(
                organisation=answers.organisation or guess.organisation,
                department=answers.department or guess.department,
            ),
            summary=_summary(parsed),
            description=_description(parsed),
            frequency=answers.frequency or Frequency.NOT_ANSWERED,
            harm=answers.harm or Harm.NOT_ANSWERED,
            raised_before=RaisedBefore.NO,
            confidentiality=Confidentiality.CONFIDENTIAL,
            learner=LearnerDetails(
                name=parsed.from_name,
                email=address,
                group=answers.learner_group or described or _known_group(session, known),
            ),
            about_pathway1_contact=about_contact,
            intake_notes=tuple(notes),
            also_named=tuple(name for name in (parsed.from_display_name,) if name),
        ),
        channel=Channel.EMAIL,
        now=now,
        policy=policy,
        acknowledge_learner=acknowledge_learner,
    )
    text = f"new concern {concern.reference}"
    if not acknowledge_learner:
        text += f" (not acknowledged: {acks_per_day} acknowledgements to this sender in 24 hours)"
    return _Outcome("processed", text, id_of(concern), "new_concerns")


# What a new email says is handed to `raise_concern` as the learner wrote it, but for its sign-off
# and signature: the concern is confidential, so raising it takes the sender's name, address and
# mobile number out of the copy contacts read and keeps these words for triage and the dean.


def _summary(parsed: ParsedEmail) -> str:
    subject = re.sub(r"^\s*((re|fw|fwd)\s*:\s*)+", "", parsed.subject, flags=re.IGNORECASE)
    # Without a subject, the first sentence that says something (not "Hi," nor "My name is").
    summary = (
        subject.strip() or derive_summary(drop_signature(parsed.text)) or "Concern raised by email"
    )
    return summary_within(summary, SUMMARY_MAX) or "Concern raised by email"


def _description(parsed: ParsedEmail) -> str:
    text = drop_signature(parsed.text)
    if parsed.attachments:
        names = ", ".join(item.filename or "unnamed" for item in parsed.attachments)
        text += f"\n\n[Attachments kept with the original email, not opened: {names}]"
    text = text.strip() or "(The email had no text.)"
    if len(text) > DESCRIPTION_MAX:
        text = text[: DESCRIPTION_MAX - 40].rstrip() + "\n[…the rest is in the original email]"
    return text


def _known_group(session: Session, learner: Learner | None) -> LearnerGroup | None:
    """The learner group this sender gave on an earlier concern, if any."""
    if learner is None or learner.id is None:
        return None
    group = repositories.latest_learner_group(session, learner.id)
    return LearnerGroup(group) if group else None


def _directory_places(session: Session) -> list[placement.Organisation]:
    return [
        placement.Organisation(
            key=organisation.key,
            name=organisation.name,
            sites=tuple(site.name for site in sites),
            departments=tuple(
                placement.Department(key=item.key, name=item.name) for item in departments
            ),
        )
        for organisation, sites, departments in repositories.active_places(session)
    ]


# --- a reply to one of our messages -----------------------------------------------------------

# Notices to contacts that ask nothing of them and do not say a reply acknowledges: 'Thanks' to
# one is kept on the concern, never taken as acknowledging it on their behalf. ("Feedback:" and
# "Not mine" are asked for in so many words, and still act.)
NOT_ACKNOWLEDGED_BY_REPLY = frozenset({MessageKind.LEARNER_ADDRESS_CORRECTED.value})


def _reply(
    session: Session,
    row: InboundMessage,
    parsed: ParsedEmail,
    sent: OutboxMessage,
    *,
    policy: Policy,
    now: datetime,
    answers_per_day: int,
    mailbox: str,
) -> _Outcome:
    concern = repositories.lock_concern(session, sent.concern_id or 0)
    if concern is None:
        return _Outcome(
            "quarantined",
            "a reply to a concern that no longer exists",
            None,
            "quarantined",
            region_id=_region_of(session, sent),
        )
    text = strip_quoted(parsed.text)  # never the quote: our own email, with the status link
    told = _teller(
        session, row, concern, sent, policy=policy, now=now, answers_per_day=answers_per_day
    )
    if sent.recipient_role == Role.LEARNER.value:
        learner = session.get(Learner, concern.learner_id) if concern.learner_id else None
        if learner is None or (learner.email or "").strip().lower() != (
            sent.recipient_address.strip().lower()
        ):
            # Sent to an address the learner has since corrected (a stranger's, mistyped): its
            # token and sender still match, but the reply is not the learner's.
            return _Outcome(
                "quarantined",
                "a reply to an email sent to an address that is no longer the learner's: kept "
                "for staff",
                None,
                "quarantined",
                region_id=concern.region_id,
            )
        return _learner_reply(
            session,
            row,
            parsed,
            concern,
            text,
            sent,
            policy=policy,
            now=now,
            told=told,
            mailbox=mailbox,
        )
    shown = text[:REPLY_TEXT_MAX] or _no_text(parsed)
    by = Actor(kind="contact", channel=Channel.EMAIL.value, contact_id=sent.recipient_contact_id)
    command = read_contact_command(parsed.text)
    if command.kind is not None:
        return _contact_command(session, concern, command, by=by, policy=policy, now=now, told=told)
    acknowledged = record_contact_reply(
        session=session,
        concern=concern,
        by=by,
        text=shown,
        inbound_id=id_of(row),
        now=now,
        acknowledges=sent.kind not in NOT_ACKNOWLEDGED_BY_REPLY,
    )
    if acknowledged:
        return _Outcome(
            "processed",
            f"contact's reply acknowledged {concern.reference}",
            id_of(concern),
            "acknowledgements",
        )
    return _Outcome(
        "processed", f"contact's reply kept on {concern.reference}", id_of(concern), "replies"
    )


def _subject_sent(sent: OutboxMessage) -> str:
    return subject_sent(
        reference=sent.reference, recipient_role=sent.recipient_role, kept=sent.subject
    )


def _no_text(parsed: ParsedEmail) -> str:
    """What is kept of a reply that had no text of its own (only the quote, or attachments)."""
    attachments = " Its attachments are kept with it, not opened." if parsed.attachments else ""
    return f"(The reply had no new text. The original email is kept.{attachments})"


def _contact_command(
    session: Session,
    concern: Concern,
    command: ContactCommand,
    *,
    by: Actor,
    policy: Policy,
    now: datetime,
    told: Callable[[str], str],
) -> _Outcome:
    """A contact's "Feedback:" or "Not mine" reply: the same actions as every other channel."""
    try:
        if command.kind == "feedback":
            record_feedback(
                session=session,
                concern=concern,
                by=by,
                text=command.text,
                now=now,
                policy=policy,
            )
            done = f"contact's reply gave feedback on {concern.reference}"
        else:
            redirect(
                session=session, concern=concern, by=by, reason=command.text, now=now, policy=policy
            )
            done = f"contact's reply passed {concern.reference} on (not theirs)"
    except ActionRefused as refused:
        # Kept, with the reason, for staff to see; nothing on the concern changes.
        answered = told(str(refused))
        return _Outcome(
            "processed",
            f"contact's {command.kind} reply not applied: {refused}; {answered}",
            id_of(concern),
            "replies",
        )
    return _Outcome("processed", done, id_of(concern), "replies")


def _learner_reply(
    session: Session,
    row: InboundMessage,
    parsed: ParsedEmail,
    concern: Concern,
    text: str,
    sent: OutboxMessage,
    *,
    policy: Policy,
    now: datetime,
    told: Callable[[str], str],
    mailbox: str,
) -> _Outcome:
    learner = session.get(Learner, concern.learner_id) if concern.learner_id else None
    # Every name goes: the record keeps the first name given ('J. Smith' on a form), the concern
    # the one given with it, and the learner's mail may show another ('Jane Smith'), as a new
    # email's text loses them all. In one pass, so that no name is looked for in a marker.
    names: list[str | None] = [parsed.from_display_name]
    addresses: list[str | None] = [parsed.from_address]
    if learner is not None:
        names += [concern.learner_name, learner.name]
        addresses.append(learner.email)
    shown = redact_identities(drop_signature(text), names=names, addresses=addresses)
    # The whole reply: answers may be written under our questions in the quote.
    answers = read_answers(parsed.text)
    # A reply of only our quoted message (sent by mistake) is kept but is no answer to feedback;
    # one with an attachment (a photo of the rota) or a word of the learner's anywhere is, and
    # so is one whose subject they changed, or that was not read whole (in doubt, it is).
    ours = (sent.body_text, html_to_text(sent.body_html) if sent.body_html else "")
    subjects = (_subject_sent(sent), sent.subject)
    says_something = (
        bool(parsed.attachments or parsed.problems)
        or not same_subject(parsed.subject, subjects)
        or not only_our_message(parsed.text, ours, our_address=mailbox)
    )
    shown = shown[:REPLY_TEXT_MAX] or _no_text(parsed)
    channel = Channel.EMAIL.value
    added = add_learner_information(
        session=session,
        concern=concern,
        text=shown,
        channel=channel,
        inbound_id=id_of(row),
        now=now,
        policy=policy,
        # Triage reads the learner's words as written (a learner named Sam Fell keeps "a patient
        # fell"); those below the dean read them redacted (`escalation.casework._withheld`).
        triage_text=without_answers(drop_signature(text)[:REPLY_TEXT_MAX], parsed.text),
        # Rated below, once it is known whether the reply closes the concern.
        rate=False,
        says_something=says_something,
    )
    done = [f"learner's reply kept on {concern.reference}"]
    if concern.status != ConcernStatus.OPEN.value and answers.to_our_questions:
        done.append("answers not taken: the concern has closed")
    changes = record_learner_answers(
        session=session,
        concern=concern,
        answers=_learner_answers(session, concern, answers),
        channel=channel,
        now=now,
        policy=policy,
    )
    if changes:
        done.append("answers taken: " + "; ".join(changes))
    rated = False
    try:
        if answers.remains_concerned or answers.satisfied:
            require_reply_to_current_feedback(concern, sent)
        if answers.remains_concerned:
            # Rated before it moves: the next level is told the rating and deadlines it has
            # ("I remain concerned. Last night a patient was harmed.").
            rate_added_information(
                session=session, concern=concern, added=added, now=now, policy=policy
            )
            rated = True
            moved = learner_remains_concerned(
                session=session, concern=concern, channel=channel, now=now, policy=policy
            )
            done.append(
                f"moved to pathway {concern.pathway}"
                if moved
                else "already with the dean: a new round there, the dean's team asked to look again"
            )
        elif answers.satisfied:
            learner_satisfied(session=session, concern=concern, channel=channel, now=now)
            done.append("closed: the learner is satisfied")
    except ActionRefused as refused:
        done.append(f"not applied: {refused}")
        if concern.status != ConcernStatus.CLOSED.value:
            # A closed concern's email told the learner that staff see their replies and can
            # reopen it: that stands, and there is nothing to correct.
            done.append(told(str(refused)))
    # A reply that closed the concern ('I'm satisfied. Thank you for sorting out the unsafe
    # nights') is new risk to nobody; one that did not is read as anything the learner adds.
    if not rated:
        rate_added_information(
            session=session, concern=concern, added=added, now=now, policy=policy
        )
    return _Outcome("processed", "; ".join(done), id_of(concern), "replies")


def _teller(
    session: Session,
    row: InboundMessage,
    concern: Concern,
    sent: OutboxMessage,
    *,
    policy: Policy,
    now: datetime,
    answers_per_day: int,
) -> Callable[[str], str]:
    """What tells the sender of a reply why what it asked could not be done (chat shows the same
    refusal at once): an email to the address our message went to, at most `answers_per_day` of
    them to one address in 24 hours (the answer is marked automatic, and the cap stops any loop).
    It returns what to add to the outcome noted for staff."""

    def tell(refusal: str) -> str:
        answered = repositories.answers_sent_to(
            session,
            address=sent.recipient_address,
            since=now - timedelta(days=1),
            kind=MessageKind.REPLY_NOT_APPLIED.value,
        )
        if answered >= answers_per_day:
            return f"the sender was not told ({answered} such answers to them in 24 hours)"
        queue_reply_not_applied(
            session,
            concern=concern,
            policy=policy,
            address=sent.recipient_address,
            role=Role(sent.recipient_role),
            contact_id=sent.recipient_contact_id,
            inbound_id=id_of(row),
            why=refusal,
            now=now,
        )
        return "the sender was told why"

    return tell


def _learner_answers(session: Session, concern: Concern, answers: Answers) -> LearnerAnswers:
    """The answers as the concern takes them: a placement as the learner wrote it ("Vale
    General", "A&E at Vale Royal") found in the directory as a new email's is, where exactly one
    place fits (with the organisation already known, if it is); else as written, for staff."""
    organisation, department = answers.organisation, answers.department
    if organisation or department:
        known = (
            session.get(Organisation, concern.organisation_id) if concern.organisation_id else None
        )
        guess = placement.guess_placement(
            f"{organisation or (known.name if known else '')}\n{department or ''}",
            _directory_places(session),
        )
        if organisation and guess.organisation:
            organisation = guess.organisation
        # A department of the organisation the concern will have, never of another.
        taken = guess.organisation if answers.organisation else (known.key if known else None)
        if department and guess.department and guess.organisation == taken:
            department = guess.department
    return LearnerAnswers(
        frequency=answers.frequency,
        harm=answers.harm,
        organisation=organisation,
        department=department,
        learner_group=answers.learner_group,
    )
