"""Mail out and back: our sent messages thread replies onto the concern; auto-responders stop.

Outbound mail goes through the real dispatcher to an in-process aiosmtpd receiver; what the
receiver got is replied to the way a mail client or an auto-responder would, and stored again.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col

from intake.emails import header_message_id
from intake.mail_intake import process_pending
from notifications.outbox import dispatch_due
from notifications.senders import SmtpRelaySender
from storage import repositories
from storage.db import transaction
from storage.inbox import Received, store_received
from storage.outbox import ClaimedEmail, SqlOutboxStore
from storage.tables import Concern, OutboxMessage
from tests.integration.helpers import MONDAY_MORNING, load_example_directory
from tests.integration.helpers import policy as make_policy
from tests.integration.test_dispatch import free_port
from tests.integration.test_mail_intake import LEARNER, MAILBOX, THREADING, email


class Inbox:
    """An aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.raw: list[bytes] = []  # the same messages, as the bytes that arrived

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        content = envelope.original_content  # type: ignore[attr-defined]
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.raw.append(content)
        return "250 OK"


@pytest.fixture
def relay() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def db(engine: Engine) -> Engine:
    load_example_directory(engine)
    return engine


def run_service(engine: Engine, port: int, minutes: int) -> None:
    """One pass of what `concerns serve` does on its ticks: read mail, then send mail."""
    now = MONDAY_MORNING + timedelta(minutes=minutes)
    process_pending(engine=engine, policy=make_policy(), threading=THREADING, now=now)
    dispatch_due(
        store=SqlOutboxStore(engine),
        sender=SmtpRelaySender.from_url(f"smtp://127.0.0.1:{port}"),
        threading=THREADING,
        from_address=MAILBOX,
        now=now,
    )


def client_reply(received: EmailMessage, body: str, *, sender: str = LEARNER) -> bytes:
    """A reply as mail clients make one: to Reply-To, quoting, with In-Reply-To/References."""
    reply = EmailMessage()
    reply["From"] = sender
    reply["To"] = received["Reply-To"]
    reply["Subject"] = f"Re: {received['Subject']}"
    reply["Message-ID"] = make_msgid(domain="student.example.ac.uk")
    reply["In-Reply-To"] = received["Message-ID"]
    reply["References"] = f"{received.get('References', '')} {received['Message-ID']}".strip()
    reply.set_content(body + "\n\n> " + received.get_body(("plain",)).get_content()[:200])  # type: ignore[union-attr]
    return reply.as_bytes()


def store(engine: Engine, raw: bytes, *, mail_from: str, minutes: int) -> None:
    """Store a delivery as the mailbox does, its Message-ID read from the headers."""
    rcpt = parseaddr(message_from_bytes(raw)["To"])[1]
    store_received(
        engine,
        [
            Received(
                mail_from=mail_from,
                rcpt_tos=(rcpt,),
                raw=raw,
                message_id=header_message_id(raw),
            )
        ],
        now=MONDAY_MORNING + timedelta(minutes=minutes),
    )


def raise_by_email(engine: Engine, raw: bytes) -> None:
    """The learner's email, stored and read into a concern (its messages queued, none sent)."""
    store(engine, raw, mail_from=LEARNER, minutes=0)
    process_pending(engine=engine, policy=make_policy(), threading=THREADING, now=MONDAY_MORNING)


def test_the_learners_reply_from_their_mail_client_lands_on_the_concern(
    db: Engine, relay: tuple[Inbox, int]
) -> None:
    inbox, port = relay
    store(db, email(), mail_from=LEARNER, minutes=0)
    run_service(db, port, minutes=0)
    (ack,) = [m for m in inbox.messages if m["To"] == LEARNER]
    assert ack["Auto-Submitted"] == "auto-generated"
    assert ack["X-Auto-Response-Suppress"] == "All"
    with transaction(db) as session:
        (concern,) = repositories.all_concerns(session)
    assert concern.reference in ack["Subject"]

    store(db, client_reply(ack, "How often: often"), mail_from=LEARNER, minutes=5)
    run_service(db, port, minutes=5)
    with transaction(db) as session:
        (concern,) = repositories.all_concerns(session)
        kinds = [event.kind for event in repositories.events_of(session, concern.id or 0)]
    assert concern.frequency == "often"
    assert "learner_added_information" in kinds


def test_every_email_to_the_learner_answers_the_email_that_raised_the_concern(
    db: Engine, relay: tuple[Inbox, int]
) -> None:
    """The acknowledgement, and the feedback after the learner's own reply was threaded into the
    concern, answer the learner's first email: one thread in their mail client. Contacts' mail
    never carries that Message-ID."""
    inbox, port = relay
    first = email()
    learners_id = message_from_bytes(first)["Message-ID"]
    store(db, first, mail_from=LEARNER, minutes=0)
    run_service(db, port, minutes=0)
    (ack,) = [m for m in inbox.messages if m["To"] == LEARNER]
    assert ack["In-Reply-To"] == learners_id
    assert ack["References"].split()[0] == learners_id
    with transaction(db) as session:
        (concern,) = repositories.all_concerns(session)
    assert ack["References"].split()[1:] == [THREADING.thread_root(concern.reference, LEARNER)]

    # The learner's reply joins the concern; its own Message-ID must not become the one answered.
    reply = client_reply(ack, "How often: often")
    assert message_from_bytes(reply)["Message-ID"] != learners_id
    store(db, reply, mail_from=LEARNER, minutes=5)
    run_service(db, port, minutes=5)
    with transaction(db) as session:
        (concern,) = repositories.all_concerns(session)
    assert concern.frequency == "often"

    notice = next(m for m in inbox.messages if m["To"] != LEARNER)
    supervisor = notice["To"].addresses[0].addr_spec
    store(
        db,
        client_reply(notice, "Feedback: Teaching is protected on Thursdays.", sender=supervisor),
        mail_from=supervisor,
        minutes=9,
    )
    run_service(db, port, minutes=9)
    to_learner = [m for m in inbox.messages if m["To"] == LEARNER]
    assert len(to_learner) == 2, "the acknowledgement and the feedback"
    feedback = to_learner[1]
    assert "Thursdays" in feedback.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert feedback["In-Reply-To"] == learners_id
    assert feedback["References"] == ack["References"]

    to_contacts = [
        raw for raw, m in zip(inbox.raw, inbox.messages, strict=True) if m["To"] != LEARNER
    ]
    assert to_contacts
    assert not any(learners_id.encode() in raw for raw in to_contacts)


def claimed_for_learner(engine: Engine) -> ClaimedEmail:
    (claimed,) = [
        row
        for row in SqlOutboxStore(engine).claim_due(
            now=MONDAY_MORNING, limit=50, lease=timedelta(minutes=5)
        )
        if row.recipient_role == "learner"
    ]
    return claimed


def test_the_learners_message_id_goes_only_to_the_address_it_came_from(db: Engine) -> None:
    """An address corrected since never held the learner's email: nothing to thread on, and
    its holder is not handed the Message-ID (which may name the learner's host)."""
    raw = email()
    raise_by_email(db, raw)
    with transaction(db) as session:
        session.exec(
            update(OutboxMessage)
            .where(col(OutboxMessage.recipient_role) == "learner")
            .values(recipient_address="jane.new@example.nhs.uk")
        )

    assert claimed_for_learner(db).learner_message_id is None


def test_the_same_address_in_other_case_still_answers_the_learners_email(db: Engine) -> None:
    raw = email()
    raise_by_email(db, raw)
    with transaction(db) as session:
        session.exec(
            update(OutboxMessage)
            .where(col(OutboxMessage.recipient_role) == "learner")
            .values(recipient_address=f" {LEARNER.upper()} ")
        )

    assert claimed_for_learner(db).learner_message_id == message_from_bytes(raw)["Message-ID"]


def test_a_concern_not_raised_by_email_answers_no_email_of_the_learners(db: Engine) -> None:
    """A concern raised on the web whose learner later replies by email: that reply did not
    raise the concern, and is not what our emails answer."""
    raise_by_email(db, email())
    with transaction(db) as session:
        session.exec(update(Concern).values(channel="web"))

    assert claimed_for_learner(db).learner_message_id is None


def test_the_supervisors_reply_acknowledges(db: Engine, relay: tuple[Inbox, int]) -> None:
    inbox, port = relay
    store(db, email(), mail_from=LEARNER, minutes=0)
    run_service(db, port, minutes=0)
    notice = next(
        m
        for m in inbox.messages
        if m["To"] != LEARNER and "acknowledge" in m.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    )
    supervisor = notice["To"].addresses[0].addr_spec
    store(
        db, client_reply(notice, "Seen, on it.", sender=supervisor), mail_from=supervisor, minutes=9
    )
    run_service(db, port, minutes=9)
    with transaction(db) as session:
        (concern,) = repositories.all_concerns(session)
    assert concern.acknowledged_at == MONDAY_MORNING + timedelta(minutes=9)


def test_an_auto_responder_that_replies_to_everything_stops_after_one_round(
    db: Engine, relay: tuple[Inbox, int]
) -> None:
    """A naive responder (ignores Auto-Submitted) answers our mail; we never answer a reply."""
    inbox, port = relay
    store(db, email(), mail_from=LEARNER, minutes=0)
    answered = 0
    for minute in range(1, 30):
        run_service(db, port, minutes=minute)
        new = inbox.messages[answered:]
        answered = len(inbox.messages)
        for received in new:
            if received["To"] == LEARNER:
                store(db, client_reply(received, "I am away."), mail_from=LEARNER, minutes=minute)
        if not new:
            break
    to_learner = [m for m in inbox.messages if m["To"] == LEARNER]
    assert len(to_learner) == 1, "one acknowledgement, and no answer to the auto-reply"


def test_an_auto_responder_that_writes_afresh_each_time_is_stopped_by_the_rate_limit(
    db: Engine, relay: tuple[Inbox, int]
) -> None:
    """Two responders mailing each other: each of our acks triggers a new, unthreaded mail."""
    inbox, port = relay
    store(db, email(), mail_from=LEARNER, minutes=0)
    seen = 0
    for minute in range(1, 60):
        run_service(db, port, minutes=minute)
        new = [m for m in inbox.messages[seen:] if m["To"] == LEARNER]
        seen = len(inbox.messages)
        if not new:
            break
        for _ in new:
            store(
                db,
                email(subject=f"I am away (reply {minute})", body="Away until Monday."),
                mail_from=LEARNER,
                minutes=minute,
            )
    else:
        pytest.fail("the exchange never stopped")
    to_learner = [m for m in inbox.messages if m["To"] == LEARNER]
    assert len(to_learner) == 10
