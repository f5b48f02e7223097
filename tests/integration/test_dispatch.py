"""The email dispatcher on a real database and a real SMTP relay on loopback: once, and never lost.

The relay is an in-process aiosmtpd server; STARTTLS uses a certificate made by `openssl` for
the test. Rows are written straight into the outbox, as the escalation steps would.
"""

from __future__ import annotations

import asyncio
import base64
import email
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from app.bootstrap import build
from app.metrics import Metrics
from app.serve import _ticks
from app.settings import ChatSettings, Settings
from intake.mailbox import Mailbox
from notifications.outbox import (
    PERMANENT_FAILURE_ATTEMPTS,
    DispatchReport,
    OutboxStore,
    delivery_key,
    dispatch_due,
    lease_for,
    retry_delay,
)
from notifications.senders import (
    MaildirSender,
    PermanentFailure,
    Sender,
    SmtpRelaySender,
    TemporaryFailure,
    maildir_name,
    sender_from_settings,
)
from notifications.threading import MailThreading
from storage import migrate
from storage.db import create_db_engine, transaction
from storage.outbox import ClaimedEmail, SqlOutboxStore
from storage.tables import OutboxMessage

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
FROM = "escalating-concerns@example.nhs.uk"
THREADING = MailThreading(secret=b"dispatch-test-secret", mailbox=FROM)
RELAY_USER = "relay-user"
# Characters that must be percent-encoded in a URL, to prove the URL is decoded.
RELAY_PASSWORD = "s3cret p@ss/w:rd%"


# --- the relay -------------------------------------------------------------------------------


@dataclass
class Delivery:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    over_tls: bool
    authenticated: bool


@dataclass
class Recorder:
    """An aiosmtpd handler that keeps every message it accepts."""

    deliveries: list[Delivery] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.deliveries.append(
            Delivery(
                mail_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                message=parsed,
                over_tls=session.ssl is not None,
                authenticated=bool(session.authenticated),
            )
        )
        return "250 2.0.0 OK: queued"


@dataclass
class RefusingRecipients(Recorder):
    """A relay that knows no such user."""

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        return "550 5.1.1 <mailbox unavailable>: Recipient address rejected"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def relay(handler: Recorder, *, port: int | None = None, **smtp: Any) -> Iterator[int]:
    """A running SMTP server on 127.0.0.1; yields its port."""
    port = port or free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, server_hostname="relay.test", **smtp
    )
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command: (cert, key)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the openssl command is needed to make the test relay's certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "relay.pem", folder / "relay.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=relay.test",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:relay.test"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return cert, key


def check_credentials(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    expected = LoginPassword(RELAY_USER.encode(), RELAY_PASSWORD.encode())
    accepted = isinstance(auth_data, LoginPassword) and auth_data == expected
    # handled=False: aiosmtpd itself answers a refusal with 535.
    return AuthResult(success=accepted, handled=False)


@contextmanager
def starttls_relay(handler: Recorder, certificate: tuple[Path, Path]) -> Iterator[int]:
    """A relay that takes mail only after STARTTLS and a login with the one known password."""
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(*certificate)
    with relay(
        handler,
        tls_context=tls,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=check_credentials,
    ) as port:
        yield port


# --- the outbox ------------------------------------------------------------------------------


@pytest.fixture
def store(engine: Engine) -> SqlOutboxStore:
    return SqlOutboxStore(engine)


def queue(
    engine: Engine,
    count: int = 1,
    *,
    send_after: datetime = NOW,
    recipient: str = "learner{n}@example.nhs.uk",
    channel: str = "email",
    html: bool = True,
) -> list[int]:
    """Write `count` pending outbox rows, as an escalation step would; returns their ids."""
    rows = []
    with transaction(engine) as session:
        start = len(session.exec(select(OutboxMessage.id)).all())
        for n in range(start + 1, start + count + 1):
            reference = f"LC-2026-{n:06d}"
            row = OutboxMessage(
                idempotency_key=f"{reference}:test:{n}",
                reference=reference,
                channel=channel,
                kind="learner_ack",
                recipient_role="learner",
                recipient_address=recipient.format(n=n),
                subject=f"{reference}: we have received your concern",
                body_text=f"Your reference is {reference}.\n",
                body_html=f"<p>Your reference is <b>{reference}</b>.</p>\n" if html else None,
                created_at=send_after,
                send_after=send_after,
            )
            session.add(row)
            rows.append(row)
        session.flush()
        return [row.id or 0 for row in rows]


def rows(engine: Engine) -> list[OutboxMessage]:
    with transaction(engine) as session:
        return list(session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all())


def row(engine: Engine, outbox_id: int) -> OutboxMessage:
    with transaction(engine) as session:
        found = session.get(OutboxMessage, outbox_id)
        assert found is not None
        return found


def outbox_id(key: str) -> int:
    """The outbox row a delivery key names (notifications.outbox.delivery_key)."""
    return int(key.partition("-")[0])


def dispatch(
    store: OutboxStore, sender: Sender, *, now: datetime = NOW, **kw: Any
) -> DispatchReport:
    """One dispatch pass; its clock stands still at `now` unless a test passes its own."""
    kw.setdefault("clock", lambda: now)
    return dispatch_due(
        store=store, sender=sender, threading=THREADING, from_address=FROM, now=now, **kw
    )


def a_message(to: str = "learner@example.nhs.uk") -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = FROM, to, "test"
    message.set_content("hello\n")
    return message


def nothing_done(report: DispatchReport) -> bool:
    return report.sent == report.retried == report.failed == 0


# --- delivery --------------------------------------------------------------------------------


def test_due_mail_reaches_the_relay_with_its_headers_and_both_parts(
    engine: Engine, store: SqlOutboxStore
) -> None:
    (with_html,) = queue(engine)
    queue(engine, html=False)
    recorder = Recorder()

    with relay(recorder) as port:
        report = dispatch(store, SmtpRelaySender.from_url(f"smtp://127.0.0.1:{port}"))
        again = dispatch(store, SmtpRelaySender.from_url(f"smtp://127.0.0.1:{port}"))

    assert (report.sent, report.retried, report.failed, report.errors) == (2, 0, 0, [])
    assert nothing_done(again)
    by_recipient = {d.rcpt_tos[0]: d for d in recorder.deliveries}
    assert len(recorder.deliveries) == 2
    first = by_recipient["learner1@example.nhs.uk"]
    assert first.mail_from == FROM
    assert first.message["To"] == "learner1@example.nhs.uk"
    assert first.message["From"] == f"Learner concerns service <{FROM}>"
    # Every email about a concern to one person has one subject: clients thread by it.
    assert first.message["Subject"] == "[LC-2026-000001] Your concern"
    assert first.message["Message-ID"] == THREADING.message_id(
        with_html, "learner1@example.nhs.uk", queued_at=row(engine, with_html).created_at
    )
    assert first.message["Reply-To"] == THREADING.reply_to(with_html, "learner1@example.nhs.uk")
    assert first.message["References"] == THREADING.thread_root(
        "LC-2026-000001", "learner1@example.nhs.uk"
    )
    assert first.message["Auto-Submitted"] == "auto-generated"
    html = first.message.get_body(preferencelist=("html",))
    assert html is not None and "<b>LC-2026-000001</b>" in html.get_content()
    second = by_recipient["learner2@example.nhs.uk"].message
    assert second.get_content_type() == "text/plain"
    assert "Your reference is LC-2026-000002." in second.get_content()

    for sent in rows(engine):
        assert (sent.status, sent.sent_at, sent.attempts) == ("sent", NOW, 0)
        assert sent.claim_token is None and sent.claimed_until is None
    assert store.counts() == {"pending": 0, "sent": 2, "failed": 0}


def test_while_the_relay_is_down_mail_waits_with_backoff_then_goes_exactly_once(
    engine: Engine, store: SqlOutboxStore
) -> None:
    ids = queue(engine, 3)
    port = free_port()  # nothing listens here yet
    sender = SmtpRelaySender.from_url(f"smtp://127.0.0.1:{port}")

    down = dispatch(store, sender)

    assert (down.sent, down.retried, down.failed) == (0, 3, 0)
    for waiting in rows(engine):
        assert (waiting.status, waiting.attempts) == ("pending", 1)
        assert "cannot reach the relay" in (waiting.last_error or "")
        assert waiting.send_after == NOW + retry_delay(1) == NOW + timedelta(seconds=30)
        assert waiting.claim_token is None
    # Not due yet: nothing is tried.
    assert nothing_done(dispatch(store, sender, now=NOW + timedelta(seconds=29)))
    # Still down at the retry: the wait doubles.
    second_try = NOW + timedelta(seconds=30)
    assert dispatch(store, sender, now=second_try).retried == 3
    assert {r.send_after for r in rows(engine)} == {second_try + timedelta(seconds=60)}
    assert {r.attempts for r in rows(engine)} == {2}

    recorder = Recorder()
    with relay(recorder, port=port):
        back_up = second_try + timedelta(seconds=61)
        report = dispatch(store, sender, now=back_up)
        assert nothing_done(dispatch(store, sender, now=back_up + timedelta(hours=2)))

    assert report.sent == 3
    received_ids = sorted(str(d.message["Message-ID"]) for d in recorder.deliveries)
    expected_ids = sorted(
        THREADING.message_id(i, f"learner{n}@example.nhs.uk", queued_at=row(engine, i).created_at)
        for n, i in enumerate(ids, 1)
    )
    assert received_ids == expected_ids
    assert store.counts() == {"pending": 0, "sent": 3, "failed": 0}


@dataclass
class FailingSender:
    """Fails every send with the given error."""

    error: Exception

    def send(self, message: EmailMessage, *, key: str) -> None:
        raise self.error


@dataclass
class SlowRecordingSender:
    """Takes a moment per message, so that racing dispatchers overlap."""

    keys: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, message: EmailMessage, *, key: str) -> None:
        time.sleep(0.005)
        with self.lock:
            self.keys.append(key)


def test_two_dispatchers_racing_send_every_message_exactly_once(
    engine: Engine, store: SqlOutboxStore
) -> None:
    ids = queue(engine, 40)
    sender = SlowRecordingSender()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            # Each has its own store (and so its own connections), like a second instance.
            own_store = SqlOutboxStore(engine)
            while not nothing_done(dispatch(own_store, sender, limit=3)):
                pass
        except BaseException as error:  # reported in the main thread below
            failures.append(error)

    workers = [threading.Thread(target=run) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)

    assert failures == []
    assert Counter(outbox_id(key) for key in sender.keys) == Counter(ids)
    assert store.counts() == {"pending": 0, "sent": 40, "failed": 0}


def test_a_batch_that_outlives_its_lease_never_sends_what_another_dispatcher_took(
    engine: Engine, store: SqlOutboxStore
) -> None:
    """A slow relay stretches one dispatcher's batch past its lease, and a second dispatcher
    claims the rows: the message being sent is held for its send, the rest are the second's,
    and every message goes exactly once."""
    ids = queue(engine, 3)
    sent: Counter[str] = Counter()
    after_the_lease = NOW + lease_for(3) + timedelta(seconds=1)

    class Recording:
        def send(self, message: EmailMessage, *, key: str) -> None:
            sent[str(outbox_id(key))] += 1

    class SlowFirstSend(Recording):
        def send(self, message: EmailMessage, *, key: str) -> None:
            super().send(message, key=key)
            if len(sent) == 1:  # still sending the first, another instance runs its tick
                taken = dispatch(SqlOutboxStore(engine), Recording(), now=after_the_lease)
                assert taken.sent == 2

    report = dispatch(store, SlowFirstSend(), limit=3)
    assert sent == Counter(str(i) for i in ids)
    assert report.sent == 1 and len(report.errors) == 2
    assert all("another dispatcher has it" in error for error in report.errors)
    assert store.counts() == {"pending": 0, "sent": 3, "failed": 0}


def test_a_service_stopping_ends_its_dispatch_pass_after_the_send_in_progress(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    """SIGTERM during a pass: each send to a relay that does not answer takes its whole timeout
    (30 s), and the process could not exit until every row the pass had claimed was tried. The
    pass stops after the send in progress, and the rest are released, not left claimed for the
    lease (11 minutes): the next dispatcher sends them at once."""
    now = datetime.now(UTC)
    ids = queue(sqlite_engine, 3, send_after=now - timedelta(minutes=1))
    settings = Settings(_env_file=None, outbox_dir=tmp_path / "outbox")  # type: ignore[call-arg]
    product = build(settings, engine=sqlite_engine, chat=ChatSettings(_env_file=None))  # type: ignore[call-arg]
    sent: list[int] = []

    class StopsTheService:
        def send(self, message: EmailMessage, *, key: str) -> None:
            sent.append(outbox_id(key))
            dispatcher.stop()  # SIGTERM arrives while this send is in progress

    async def one_pass_stopped_during_its_first_send() -> None:
        await dispatcher.run()

    mailbox = Mailbox(address=settings.mailbox_address, store=lambda batch, *, now: None)
    ticks = _ticks(product, sender=StopsTheService(), metrics=Metrics(), mailbox=mailbox)
    dispatcher = next(tick for tick in ticks if tick.name == "dispatch")

    asyncio.run(one_pass_stopped_during_its_first_send())
    assert sent == ids[:1]
    assert [(r.status, r.attempts, r.claim_token) for r in rows(sqlite_engine)] == [
        ("sent", 0, None), ("pending", 0, None), ("pending", 0, None),
    ]  # fmt: skip
    later = dispatch(SqlOutboxStore(sqlite_engine), MaildirSender(tmp_path / "outbox"), now=now)
    assert later.sent == 2


def test_a_recipient_the_relay_refuses_is_tried_five_times_then_kept_as_failed(
    engine: Engine, store: SqlOutboxStore
) -> None:
    (refused,) = queue(engine)
    now = NOW

    with relay(RefusingRecipients()) as port:
        sender = SmtpRelaySender.from_url(f"smtp://127.0.0.1:{port}")
        with pytest.raises(PermanentFailure, match=r"550 5\.1\.1"):
            sender.send(a_message(), key="0")
        for attempt in range(1, PERMANENT_FAILURE_ATTEMPTS):
            report = dispatch(store, sender, now=now)
            assert (report.retried, report.failed) == (1, 0)
            waiting = row(engine, refused)
            assert (waiting.status, waiting.attempts) == ("pending", attempt)
            assert waiting.send_after == now + retry_delay(attempt)
            now = waiting.send_after
        last = dispatch(store, sender, now=now)

    assert (last.sent, last.retried, last.failed) == (0, 0, 1)
    given_up = row(engine, refused)
    assert (given_up.status, given_up.attempts) == ("failed", PERMANENT_FAILURE_ATTEMPTS)
    assert "550 5.1.1" in (given_up.last_error or "")
    assert "Recipient address rejected" in (given_up.last_error or "")
    assert nothing_done(dispatch(store, sender, now=now + timedelta(days=1)))
    assert store.counts() == {"pending": 0, "sent": 0, "failed": 1}


def test_temporary_failures_do_not_count_towards_giving_up_a_refused_message(
    engine: Engine, store: SqlOutboxStore
) -> None:
    """A relay down for a day fails a message many times; one refusal after it comes back is
    retried like the first of any refusals, and five refusals give it up."""
    (waiting_id,) = queue(engine)
    now = NOW
    for _ in range(8):  # the relay is down
        assert dispatch(store, FailingSender(TemporaryFailure("relay down")), now=now).retried == 1
        now = row(engine, waiting_id).send_after
    for refusal in range(1, PERMANENT_FAILURE_ATTEMPTS + 1):
        report = dispatch(store, FailingSender(PermanentFailure("550 no")), now=now)
        waiting = row(engine, waiting_id)
        assert waiting.refusals == min(refusal, PERMANENT_FAILURE_ATTEMPTS - 1)
        if refusal < PERMANENT_FAILURE_ATTEMPTS:
            assert (report.retried, waiting.status) == (1, "pending")
            now = waiting.send_after
    assert (report.failed, waiting.status, waiting.attempts) == (1, "failed", 13)


def test_a_retry_is_timed_from_the_failure_not_from_the_start_of_the_pass(
    engine: Engine, store: SqlOutboxStore
) -> None:
    """A pass with a relay that times out can take minutes: each row's wait starts when it
    failed, so the first retries are not all due the moment the pass ends."""
    ids = queue(engine, 3)
    elapsed = [timedelta(0)]

    class TimingOut:
        def send(self, message: EmailMessage, *, key: str) -> None:
            elapsed[0] += timedelta(minutes=2)  # each send times out after 2 minutes
            raise TemporaryFailure("timed out")

    report = dispatch(store, TimingOut(), clock=lambda: NOW + elapsed[0])
    assert report.retried == 3
    waits = [row(engine, i).send_after - NOW for i in ids]
    assert waits == [timedelta(minutes=m) + retry_delay(1) for m in (2, 4, 6)]


def test_an_unusable_address_fails_its_row_at_once_and_the_batch_goes_on(
    engine: Engine, store: SqlOutboxStore
) -> None:
    (injected,) = queue(engine, recipient="a{n}@example.nhs.uk\r\nBcc: attacker@example.com")
    (nonsense,) = queue(engine, recipient="not an address {n}")
    (good,) = queue(engine)
    sender = SlowRecordingSender()

    report = dispatch(store, sender)

    assert (report.sent, report.failed) == (1, 2)
    assert [outbox_id(key) for key in sender.keys] == [good]
    for bad in (injected, nonsense):
        failed = row(engine, bad)
        assert (failed.status, failed.attempts) == ("failed", 1)
        assert "recipient address" in (failed.last_error or "")


def test_a_message_that_cannot_be_written_out_fails_at_once_and_the_batch_goes_on(
    engine: Engine, store: SqlOutboxStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A header Python refuses to write (as patched Pythons do with an injected line break)
    is a compose failure: kept as failed at once, not retried for ever at send time."""
    (unwritable,) = queue(engine, recipient="unwritable{n}@example.nhs.uk")
    (good,) = queue(engine)
    real = EmailMessage.as_bytes

    class HeaderWriteError(Exception):
        """As email.errors.HeaderWriteError, which Pythons before 3.11.10 lack."""

    def refuse(message: EmailMessage, *args: Any, **kwargs: Any) -> bytes:
        if "unwritable" in str(message["To"]):
            raise HeaderWriteError("folded header contained a newline")
        return real(message, *args, **kwargs)

    monkeypatch.setattr(EmailMessage, "as_bytes", refuse)
    sender = SlowRecordingSender()
    report = dispatch(store, sender)
    assert (report.sent, report.failed) == (1, 1)
    assert [outbox_id(key) for key in sender.keys] == [good]
    failed = row(engine, unwritable)
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert failed.last_error == "not sent: cannot compose (HeaderWriteError)"


def test_a_bad_service_address_is_refused_before_any_row_is_claimed(
    engine: Engine, store: SqlOutboxStore
) -> None:
    (waiting_id,) = queue(engine)
    sender = SlowRecordingSender()

    with pytest.raises(ValueError, match="from address"):
        dispatch_due(store=store, sender=sender, threading=THREADING, from_address="x", now=NOW)
    bad_mailbox = MailThreading(secret=b"s", mailbox="concerns\r\n@example.nhs.uk")
    with pytest.raises(ValueError, match="mailbox address"):
        dispatch_due(store=store, sender=sender, threading=bad_mailbox, from_address=FROM, now=NOW)

    untouched = row(engine, waiting_id)
    assert (untouched.status, untouched.attempts, untouched.claim_token) == ("pending", 0, None)


# --- STARTTLS and AUTH -----------------------------------------------------------------------


def relay_url(port: int, certificate: tuple[Path, Path], *, password: str = RELAY_PASSWORD) -> str:
    credentials = f"{quote(RELAY_USER, safe='')}:{quote(password, safe='')}"
    return f"smtp+starttls://{credentials}@127.0.0.1:{port}?cafile={certificate[0]}"


def test_starttls_and_login_deliver_with_the_private_ca(
    engine: Engine, store: SqlOutboxStore, certificate: tuple[Path, Path]
) -> None:
    queue(engine)
    recorder = Recorder()

    with starttls_relay(recorder, certificate) as port:
        report = dispatch(store, SmtpRelaySender.from_url(relay_url(port, certificate)))

    assert (report.sent, report.errors) == (1, [])
    (delivery,) = recorder.deliveries
    assert delivery.over_tls and delivery.authenticated
    assert delivery.rcpt_tos == ["learner1@example.nhs.uk"]


def test_a_wrong_password_keeps_the_mail_waiting_and_never_records_a_password(
    engine: Engine, store: SqlOutboxStore, certificate: tuple[Path, Path]
) -> None:
    (waiting_id,) = queue(engine)
    wrong = "wr0ng-Passw0rd!"

    with starttls_relay(Recorder(), certificate) as port:
        sender = SmtpRelaySender.from_url(relay_url(port, certificate, password=wrong))
        with pytest.raises(TemporaryFailure) as raised:
            sender.send(a_message(), key="0")
        report = dispatch(store, sender)

    assert "535" in str(raised.value)
    assert report.retried == 1
    waiting = row(engine, waiting_id)
    assert (waiting.status, waiting.attempts) == ("pending", 1)
    error = waiting.last_error or ""
    assert "relay refused the login: 535" in error
    for secret in (wrong, RELAY_PASSWORD, quote(wrong), base64.b64encode(wrong.encode()).decode()):
        assert secret not in error
        assert all(secret not in line for line in report.errors)
    assert wrong not in repr(sender)


def test_the_relays_certificate_is_verified_against_the_system_store_by_default(
    engine: Engine, store: SqlOutboxStore, certificate: tuple[Path, Path]
) -> None:
    (waiting_id,) = queue(engine)
    credentials = f"{RELAY_USER}:{quote(RELAY_PASSWORD, safe='')}"

    with starttls_relay(Recorder(), certificate) as port:
        sender = SmtpRelaySender.from_url(f"smtp+starttls://{credentials}@127.0.0.1:{port}")
        report = dispatch(store, sender)

    assert report.retried == 1
    assert "certificate verify failed" in (row(engine, waiting_id).last_error or "")


def test_starttls_required_is_never_downgraded_to_plain_text(
    engine: Engine, store: SqlOutboxStore, certificate: tuple[Path, Path]
) -> None:
    (waiting_id,) = queue(engine)
    recorder = Recorder()

    with relay(recorder) as port:  # offers no STARTTLS
        report = dispatch(store, SmtpRelaySender.from_url(relay_url(port, certificate)))

    assert report.retried == 1 and recorder.deliveries == []
    assert "offers no STARTTLS" in (row(engine, waiting_id).last_error or "")


def test_a_relay_demanding_tls_from_a_plain_sender_is_a_setting_to_fix_not_a_bad_message(
    engine: Engine, store: SqlOutboxStore, certificate: tuple[Path, Path]
) -> None:
    (waiting_id,) = queue(engine)

    with starttls_relay(Recorder(), certificate) as port:
        sender = SmtpRelaySender.from_url(f"smtp://127.0.0.1:{port}")
        with pytest.raises(TemporaryFailure, match="530"):
            sender.send(a_message(), key="0")
        report = dispatch(store, sender)

    assert report.retried == 1
    assert row(engine, waiting_id).status == "pending"


# --- the Maildir -----------------------------------------------------------------------------


class Crash(Exception):
    """The process dying between the send and recording it."""


@dataclass
class CrashBeforeRecordingSent:
    store: SqlOutboxStore

    def claim_due(self, **kwargs: Any) -> list[ClaimedEmail]:
        return self.store.claim_due(**kwargs)

    def hold(self, **kwargs: Any) -> bool:
        return self.store.hold(**kwargs)

    def mark_sent(self, **kwargs: Any) -> bool:
        raise Crash

    def mark_retry(self, **kwargs: Any) -> None:
        self.store.mark_retry(**kwargs)

    def mark_failed(self, **kwargs: Any) -> None:
        self.store.mark_failed(**kwargs)


def test_the_maildir_gets_one_file_per_message_even_when_resent_after_a_crash(
    engine: Engine, store: SqlOutboxStore, tmp_path: Path
) -> None:
    ids = queue(engine, 2)
    maildir = tmp_path / "outbox"
    sender = sender_from_settings(None, maildir)
    assert sender == MaildirSender(maildir)

    with pytest.raises(Crash):
        dispatch(CrashBeforeRecordingSent(store), sender)
    assert len(list((maildir / "new").iterdir())) == 1
    # The crashed claim runs out; the next run sends both, and the first is not written again.
    report = dispatch(store, sender, now=NOW + lease_for(20) + timedelta(seconds=1))

    assert report.sent == 2
    files = sorted((maildir / "new").iterdir())
    assert [f.name for f in files] == sorted(
        maildir_name(delivery_key(row(engine, i))) for i in ids
    )
    assert list((maildir / "tmp").iterdir()) == []
    written = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert written["Message-ID"] in {
        THREADING.message_id(i, f"learner{n}@example.nhs.uk", queued_at=row(engine, i).created_at)
        for n, i in enumerate(ids, 1)
    }
    assert oct(files[0].stat().st_mode & 0o777) == oct(0o600)


def test_a_fresh_database_writing_to_the_same_maildir_loses_nothing(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Row 1 of a new database is not row 1 of the old one: both are written."""
    maildir = tmp_path / "outbox"
    for name in ("before", "after"):
        fresh = create_db_engine(f"sqlite:///{tmp_path_factory.mktemp(name) / 'concerns.db'}")
        migrate.upgrade(fresh)
        queue(fresh, 1, recipient=f"{name}{{n}}@example.nhs.uk")
        assert dispatch(SqlOutboxStore(fresh), MaildirSender(maildir)).sent == 1
        fresh.dispose()
    assert len(list((maildir / "new").iterdir())) == 2


def test_a_message_read_into_cur_is_not_written_again(tmp_path: Path) -> None:
    sender = MaildirSender(tmp_path / "outbox")
    message = a_message()

    sender.send(message, key="17")
    (delivered,) = (tmp_path / "outbox" / "new").iterdir()
    delivered.rename(tmp_path / "outbox" / "cur" / f"{delivered.name}:2,S")
    sender.send(message, key="17")
    sender.send(message, key="170")

    assert [f.name for f in (tmp_path / "outbox" / "new").iterdir()] == ["outbox-170"]
    assert maildir_name("../../etc/passwd").startswith("outbox-")
    assert "/" not in maildir_name("../../etc/passwd")


# --- the store -------------------------------------------------------------------------------


def test_claims_take_only_due_email_in_order_and_a_lost_claim_writes_nothing(
    engine: Engine, store: SqlOutboxStore
) -> None:
    (later,) = queue(engine, send_after=NOW + timedelta(minutes=5))
    (earlier,) = queue(engine, send_after=NOW - timedelta(minutes=5))
    (first_due,) = queue(engine, send_after=NOW - timedelta(minutes=10))
    (chat,) = queue(engine, channel="slack", send_after=NOW - timedelta(hours=1))
    lease = timedelta(minutes=1)

    claimed = store.claim_due(now=NOW, limit=10, lease=lease)
    assert [c.id for c in claimed] == [first_due, earlier]
    assert store.claim_due(now=NOW, limit=10, lease=lease) == []
    assert [c.id for c in store.claim_due(now=NOW, limit=10, lease=lease, channel="slack")] == [
        chat
    ]

    # The first dispatcher stalls past its lease; another claims the row again.
    reclaimed = store.claim_due(now=NOW + lease + timedelta(seconds=1), limit=1, lease=lease)
    assert [c.id for c in reclaimed] == [first_due]
    stale, fresh = claimed[0], reclaimed[0]
    assert stale.claim_token != fresh.claim_token

    assert not store.mark_sent(message_id=first_due, claim_token=stale.claim_token, now=NOW)
    store.mark_retry(message_id=first_due, claim_token=stale.claim_token, error="x", retry_at=NOW)
    store.mark_failed(message_id=first_due, claim_token=stale.claim_token, error="x")
    untouched = row(engine, first_due)
    assert (untouched.status, untouched.attempts, untouched.claim_token) == (
        "pending", 0, fresh.claim_token,
    )  # fmt: skip
    assert store.mark_sent(message_id=first_due, claim_token=fresh.claim_token, now=NOW)
    assert not store.mark_sent(message_id=first_due, claim_token=fresh.claim_token, now=NOW)
    assert row(engine, later).claim_token is None


def test_errors_are_kept_short(engine: Engine, store: SqlOutboxStore) -> None:
    (outbox_id,) = queue(engine)
    (claimed,) = store.claim_due(now=NOW, limit=1, lease=timedelta(minutes=1))

    store.mark_retry(
        message_id=outbox_id, claim_token=claimed.claim_token, error="e" * 5000, retry_at=NOW
    )

    assert len(row(engine, outbox_id).last_error or "") == 500


# --- pure parts: backoff and the relay URL ----------------------------------------------------


@pytest.mark.parametrize(
    ("attempts", "seconds"),
    [(1, 30), (2, 60), (3, 120), (4, 240), (7, 1920), (8, 3600), (9, 3600), (10_000, 3600)],
)
def test_retries_back_off_from_thirty_seconds_doubling_to_an_hour(
    attempts: int, seconds: int
) -> None:
    assert retry_delay(attempts) == timedelta(seconds=seconds)


def test_a_batch_lease_covers_every_send_in_it() -> None:
    assert lease_for(20) == timedelta(seconds=20 * 30 + 60)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://relay.example:2525", ("relay.example", 2525, "smtp", None, None, None)),
        ("smtp://relay.example", ("relay.example", 25, "smtp", None, None, None)),
        (
            "smtp+starttls://me%40nhs.net:p%40ss%2Fw%3Ard@smtp.example",
            ("smtp.example", 587, "smtp+starttls", "me@nhs.net", "p@ss/w:rd", None),
        ),
        (
            "smtps://user:pw@smtp.example:4650",
            ("smtp.example", 4650, "smtps", "user", "pw", None),
        ),
        ("SMTPS://smtp.example", ("smtp.example", 465, "smtps", None, None, None)),
    ],
)
def test_relay_urls_are_read(url: str, expected: tuple[Any, ...]) -> None:
    sender = SmtpRelaySender.from_url(url)

    assert (
        sender.host, sender.port, sender.security.value, sender.username, sender.password,
        sender.cafile,
    ) == expected  # fmt: skip
    assert isinstance(sender_from_settings(url, Path("unused")), SmtpRelaySender)


@pytest.mark.parametrize(
    "url",
    [
        "http://relay.example",
        "relay.example:25",
        "smtp://",
        "smtp://user:hunter2-secret@relay.example",
        "smtps://user:hunter2-secret/@relay.example",
        "smtps://user@relay.example",
        "smtps://relay.example/inbox",
        "smtps://relay.example?verify=no",
        "smtps://user:hunter2-secret@relay.example?cafile=/no/such/ca.pem",
        "smtp://relay.example?cafile=/etc/hostname",
        "smtps://user:hunter2-p%C3%A4ss@relay.example",  # not ASCII: AUTH could never succeed
    ],
)
def test_an_unusable_relay_url_is_refused_clearly_without_repeating_a_password(url: str) -> None:
    with pytest.raises(ValueError, match="CONCERNS_SMTP_RELAY_URL") as raised:
        SmtpRelaySender.from_url(url)
    assert "hunter2" not in str(raised.value)
