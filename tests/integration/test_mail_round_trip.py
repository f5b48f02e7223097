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
from sqlalchemy.engine import Engine

from intake.mail_intake import process_pending
from notifications.outbox import dispatch_due
from notifications.senders import SmtpRelaySender
from storage import repositories
from storage.db import transaction
from storage.inbox import Received, store_received
from storage.outbox import SqlOutboxStore
from tests.integration.helpers import MONDAY_MORNING, load_example_directory
from tests.integration.helpers import policy as make_policy
from tests.integration.test_dispatch import free_port
from tests.integration.test_mail_intake import LEARNER, MAILBOX, THREADING, email


class Inbox:
    """An aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        content = envelope.original_content  # type: ignore[attr-defined]
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
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
    rcpt = parseaddr(message_from_bytes(raw)["To"])[1]
    store_received(
        engine,
        [Received(mail_from=mail_from, rcpt_tos=(rcpt,), raw=raw)],
        now=MONDAY_MORNING + timedelta(minutes=minutes),
    )


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


def test_the_supervisors_reply_acknowledges(db: Engine, relay: tuple[Inbox, int]) -> None:
    inbox, port = relay
    store(db, email(), mail_from=LEARNER, minutes=0)
    run_service(db, port, minutes=0)
    notice = next(
        m
        for m in inbox.messages
        if m["To"] != LEARNER and "acknowledge" in m.get_body(("plain",)).get_content()
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
