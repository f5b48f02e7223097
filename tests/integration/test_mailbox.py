"""The mailbox for real: aiosmtpd on a loopback port, smtplib or a raw socket as the client."""

from __future__ import annotations

import asyncio
import hashlib
import re
import smtplib
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from intake.mailbox import (
    REPLY_TRY_LATER,
    GroupCommitWriter,
    Mailbox,
    MailboxLimits,
    StoreReceived,
    accepts_recipient,
)
from storage.db import transaction
from storage.inbox import Received, store_received
from storage.tables import InboundMessage

MAILBOX = "escalating-concerns@concerns.test"
SENDER = "sam.learner@example.nhs.uk"
CRLF = b"\r\n"


def original_content(message: bytes) -> bytes:
    """What aiosmtpd's `original_content` holds after smtplib sends `message` (bytes).

    smtplib sends bytes as they are (it fixes line endings of str messages only): it doubles a
    dot at the start of the message and after every LF, bare or not, and adds CRLF when the
    message does not end with one. aiosmtpd splits the data on CRLF only and removes one leading
    dot from each of those lines.
    """
    sent = re.sub(rb"(?m)^\.", b"..", message)
    if not sent.endswith(CRLF):
        sent += CRLF
    lines = sent[: -len(CRLF)].split(CRLF)
    return b"".join((line[1:] if line.startswith(b".") else line) + CRLF for line in lines)


def a_message(message_id: str = "<m1@example.nhs.uk>", body: bytes = b"Hello.") -> bytes:
    return (
        f"From: Sam <{SENDER}>\r\nTo: {MAILBOX}\r\nSubject: A concern\r\n"
        f"Message-ID: {message_id}\r\n\r\n"
    ).encode() + body


@dataclass
class Recording:
    """A store that records what it was given, then stores it for real."""

    engine: Engine
    seen: list[Received] = field(default_factory=list)

    def __call__(self, received: Sequence[Received], /, *, now: datetime) -> None:
        self.seen.extend(received)
        store_received(self.engine, received, now=now)


class RunningMailbox:
    """A Mailbox on its own event loop in a background thread, for blocking clients."""

    def __init__(self, mailbox: Mailbox, loop: asyncio.AbstractEventLoop) -> None:
        self.mailbox = mailbox
        self.loop = loop

    @property
    def port(self) -> int:
        return self.mailbox.port

    def call(self, coroutine: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def client(self, **kwargs: Any) -> smtplib.SMTP:
        return smtplib.SMTP(
            "127.0.0.1", self.port, local_hostname="client.test", timeout=10, **kwargs
        )


@contextmanager
def raw_session(port: int) -> Iterator[Callable[[bytes], bytes]]:
    """An SMTP session written byte for byte (what smtplib would not send), past the greeting:
    yields a function that sends a line and returns the last line of its reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        reader = sock.makefile("rb")

        def command(line: bytes) -> bytes:
            sock.sendall(line)
            reply = reader.readline()
            while reply[3:4] == b"-":
                reply = reader.readline()
            return reply

        assert reader.readline().startswith(b"220")
        yield command


@contextmanager
def running(store: StoreReceived, **limits: Any) -> Iterator[RunningMailbox]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> Mailbox:
        mailbox = Mailbox(address=MAILBOX, store=store, limits=MailboxLimits(**limits))
        await mailbox.start("127.0.0.1", 0)
        return mailbox

    handle = RunningMailbox(asyncio.run_coroutine_threadsafe(start(), loop).result(10), loop)
    try:
        yield handle
    finally:

        async def stop() -> None:
            handle.mailbox.close()
            await handle.mailbox.wait_closed(5)

        handle.call(stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


async def receiving(mailbox: Mailbox, *, within: float) -> bool:
    return mailbox.receiving(within=within)


def store_after(engine: Engine, release: threading.Event) -> StoreReceived:
    """A store that commits only once `release` is set (or 10 s have passed)."""

    def slow_store(received: Sequence[Received], /, *, now: datetime) -> None:
        release.wait(10)
        store_received(engine, received, now=now)

    return slow_store


def stored(engine: Engine) -> list[InboundMessage]:
    with transaction(engine) as session:
        return list(session.exec(select(InboundMessage).order_by(InboundMessage.id)).all())


def send(handle: RunningMailbox, message: bytes, *, sender: str = SENDER) -> None:
    with handle.client() as client:
        client.sendmail(sender, [MAILBOX], message)


# --- store before 250 ----------------------------------------------------------------------------


def test_a_message_is_stored_byte_for_byte(engine: Engine) -> None:
    body = (
        "Lines with a leading dot:\n.one\r\n..two\rand 8-bit: café ✓\r\nno final newline".encode()
    )
    message = a_message(body=body)
    store = Recording(engine)
    with running(store) as handle:
        send(handle, message)
    [row] = stored(engine)
    expected = original_content(message)
    assert b"\n..one" in expected  # stuffed after a bare LF, and not unstuffed: that is SMTP
    assert hashlib.sha256(store.seen[0].raw).hexdigest() == hashlib.sha256(expected).hexdigest()
    assert row.raw == expected and row.sha256 == hashlib.sha256(expected).hexdigest()
    assert row.mail_from == SENDER and row.rcpt_tos == [MAILBOX]
    assert row.message_id == "<m1@example.nhs.uk>" and row.status == "received"


def test_the_250_comes_only_after_the_commit(engine: Engine) -> None:
    release = threading.Event()
    committed_at: list[float] = []

    def slow_store(received: Sequence[Received], /, *, now: datetime) -> None:
        release.wait(10)
        store_received(engine, received, now=now)
        committed_at.append(time.monotonic())

    replied: Future[float] = Future()

    def deliver() -> None:
        send(handle, a_message())
        replied.set_result(time.monotonic())

    with running(slow_store) as handle:
        client = threading.Thread(target=deliver)
        client.start()
        time.sleep(0.5)
        assert not replied.done(), "the client had its answer before the message was committed"
        assert stored(engine) == []
        assert handle.call(receiving(handle.mailbox, within=0)) is True
        release.set()
        replied_at = replied.result(10)
        client.join(10)
        assert handle.call(receiving(handle.mailbox, within=60)) is True
        assert handle.call(receiving(handle.mailbox, within=0)) is False
    assert len(stored(engine)) == 1
    assert committed_at[0] <= replied_at


def test_a_failing_store_answers_451_and_keeps_nothing(engine: Engine) -> None:
    def broken(received: Sequence[Received], /, *, now: datetime) -> None:
        raise RuntimeError("disk full at /secret/path: sam.learner@example.nhs.uk")

    with running(broken) as handle:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            send(handle, a_message())
        assert handle.mailbox.counters.failed_451 == 1
        assert handle.mailbox.counters.accepted == 0
    code, text = refused.value.smtp_code, refused.value.smtp_error
    assert f"{code} {text.decode()}" == REPLY_TRY_LATER
    assert stored(engine) == []


def test_an_error_inside_aiosmtpd_answers_451_without_detail_and_the_session_goes_on(
    sqlite_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """aiosmtpd 1.4.6 raises IndexError on `VRFY "` and by default answers it with a 500
    naming the exception, and logs the client's address with a traceback."""
    with running(Recording(sqlite_engine)) as handle, raw_session(handle.port) as command:
        assert command(b"EHLO client.test\r\n").startswith(b"250")
        assert command(b'VRFY "\r\n') == REPLY_TRY_LATER.encode() + CRLF
        assert command(f"MAIL FROM:<{SENDER}>\r\n".encode()).startswith(b"250")
        assert command(f"RCPT TO:<{MAILBOX}>\r\n".encode()).startswith(b"250")
        assert command(b"DATA\r\n").startswith(b"354")
        assert command(a_message() + b"\r\n.\r\n").startswith(b"250")
        assert handle.mailbox.counters.failed_451 == 0
    assert len(stored(sqlite_engine)) == 1
    assert "127.0.0.1" not in caplog.text and "Traceback" not in caplog.text


def test_the_same_message_id_from_the_same_sender_is_store_after(engine: Engine) -> None:
    with running(Recording(engine)) as handle:
        send(handle, a_message("<again@example.nhs.uk>", b"first"))
        send(handle, a_message("<again@example.nhs.uk>", b"first, delivered again"))
        send(handle, a_message("<again@example.nhs.uk>"), sender="someone.else@example.nhs.uk")
    senders = sorted(row.mail_from for row in stored(engine))
    assert senders == ["sam.learner@example.nhs.uk", "someone.else@example.nhs.uk"]


def test_the_null_sender_is_stored_as_empty(sqlite_engine: Engine) -> None:
    with running(Recording(sqlite_engine)) as handle:
        send(handle, a_message(), sender="<>")
    assert [row.mail_from for row in stored(sqlite_engine)] == [""]


def test_one_bad_message_in_a_shared_commit_does_not_fail_the_others(
    sqlite_engine: Engine,
) -> None:
    gate = threading.Event()
    calls: list[int] = []

    def store(received: Sequence[Received], /, *, now: datetime) -> None:
        calls.append(len(received))
        gate.wait(10)
        if any(b"poison" in item.raw for item in received):
            raise ValueError("refused")
        store_received(sqlite_engine, received, now=now)

    async def scenario() -> list[BaseException | None]:
        writer = GroupCommitWriter(
            store, max_batch_messages=10, max_batch_bytes=1 << 20, clock=lambda: datetime.now(UTC)
        )
        writer.start()
        first = writer.submit(mail_from=SENDER, rcpt_tos=(MAILBOX,), raw=a_message("<a@x>"))
        await asyncio.sleep(0.2)  # the writer is now holding the first commit
        waiting = [
            writer.submit(mail_from=SENDER, rcpt_tos=(MAILBOX,), raw=a_message("<b@x>")),
            writer.submit(mail_from=SENDER, rcpt_tos=(MAILBOX,), raw=a_message("<c@x>", b"poison")),
            writer.submit(mail_from=SENDER, rcpt_tos=(MAILBOX,), raw=a_message("<d@x>")),
        ]
        gate.set()
        results = await asyncio.gather(first, *waiting, return_exceptions=True)
        await asyncio.to_thread(writer.stop, timeout=5)
        return [r if isinstance(r, BaseException) else None for r in results]

    results = asyncio.run(scenario())
    assert [type(r).__name__ if r else None for r in results] == [None, None, "ValueError", None]
    # The three waiting deliveries shared one commit before being retried one by one.
    assert calls[:2] == [1, 3]
    assert sorted(row.message_id or "" for row in stored(sqlite_engine)) == [
        "<a@x>",
        "<b@x>",
        "<d@x>",
    ]


# --- limits --------------------------------------------------------------------------------------


LIMIT = 2048


def message_of_size(size: int) -> bytes:
    """A message of exactly `size` bytes on the wire, in lines well under the line limit."""
    head = a_message(body=b"")
    line = b"x" * 70 + CRLF
    lines, rest = divmod(size - len(head), len(line))
    return head + line * lines + b"y" * (rest - 2) + CRLF


def test_a_message_at_the_size_limit_is_taken_one_byte_over_gets_552(engine: Engine) -> None:
    at_limit, over = message_of_size(LIMIT), message_of_size(LIMIT + 1)
    assert len(original_content(at_limit)) == LIMIT and len(original_content(over)) == LIMIT + 1
    with running(Recording(engine), max_message_bytes=LIMIT) as handle:
        with handle.client() as client:
            # Without a SIZE declaration the limit is enforced while the data arrives.
            client.ehlo()
            client.mail(SENDER)
            client.rcpt(MAILBOX)
            assert client.data(over)[0] == 552
            client.mail(SENDER)
            client.rcpt(MAILBOX)
            assert client.data(at_limit)[0] == 250
        # smtplib declares the size (SIZE=) when the server offers it: refused at MAIL FROM.
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            send(handle, message_of_size(LIMIT + 1).replace(b"<m1@", b"<m2@"))
        assert refused.value.smtp_code == 552
        assert handle.mailbox.counters.rejected["too_big"] == 2
    assert [len(row.raw) for row in stored(engine)] == [LIMIT]


def test_doubled_dots_do_not_count_towards_the_size_limit(engine: Engine) -> None:
    """RFC 1870: the size is the message's, without the dots doubled for the transfer. aiosmtpd
    counts the doubled dots, so a message at the size the client declared and we accepted at
    MAIL FROM was refused after its data, with a permanent 552."""
    dotted = a_message(body=b"...I was left alone on the ward\r\n" * 8)
    head = a_message(body=b"")
    at_limit = dotted + message_of_size(LIMIT - len(dotted) + len(head))[len(head) :]
    over = at_limit.replace(b"<m1@", b"<m22@")
    assert len(original_content(at_limit)) == LIMIT and len(original_content(over)) == LIMIT + 1
    with running(Recording(engine), max_message_bytes=LIMIT) as handle:
        send(handle, at_limit)  # smtplib declares SIZE=2048 at MAIL FROM
        with handle.client() as client:
            client.ehlo()
            client.mail(SENDER)
            client.rcpt(MAILBOX)
            assert client.data(over)[0] == 552
        assert handle.mailbox.counters.rejected["too_big"] == 1
    assert [len(row.raw) for row in stored(engine)] == [LIMIT]


def test_too_many_recipients_get_452(sqlite_engine: Engine) -> None:
    with running(Recording(sqlite_engine), max_recipients=2) as handle, handle.client() as client:
        client.ehlo()
        client.mail(SENDER)
        assert client.rcpt(MAILBOX)[0] == 250
        assert client.rcpt(MAILBOX.replace("@", "+lc1xabc@"))[0] == 250
        code, text = client.rcpt(MAILBOX.replace("@", "+another@"))
        assert (code, text) == (452, b"4.5.3 Too many recipients")
        assert client.data(a_message())[0] == 250
    [row] = stored(sqlite_engine)
    assert len(row.rcpt_tos) == 2


@pytest.mark.parametrize(
    ("address", "accepted"),
    [
        (MAILBOX, True),
        ("Escalating-Concerns@CONCERNS.test", True),
        ("escalating-concerns+lc12xabcdefghij234567ab@concerns.test", True),
        ("escalating-concerns-not@concerns.test", False),
        ("escalating-concerns@elsewhere.test", False),
        ("someone@concerns.test", False),
        ("escalating-concerns", False),
    ],
)
def test_only_our_mailbox_and_its_plus_variants_are_recipients(
    address: str, accepted: bool
) -> None:
    assert accepts_recipient(address, mailbox=MAILBOX) is accepted


def test_an_unknown_recipient_gets_550(sqlite_engine: Engine) -> None:
    with running(Recording(sqlite_engine)) as handle:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused, handle.client() as client:
            client.sendmail(SENDER, ["dean@concerns.test"], a_message())
        assert handle.mailbox.counters.rejected["unknown_recipient"] == 1
    assert refused.value.recipients == {"dean@concerns.test": (550, b"5.1.1 No such mailbox here")}
    assert stored(sqlite_engine) == []


def test_over_long_lines_get_500(sqlite_engine: Engine) -> None:
    longest = a_message("<ok@x>", b"y" * 998 + CRLF)
    too_long = a_message("<long@x>", b"y" * 1000 + CRLF)
    with running(Recording(sqlite_engine)) as handle, handle.client() as client:
        client.ehlo()
        client.mail(SENDER)
        client.rcpt(MAILBOX)
        code, text = client.data(too_long)
        assert code == 500 and b"Line too long" in text
        client.mail(SENDER)
        client.rcpt(MAILBOX)
        assert client.data(longest)[0] == 250
        code, text = client.docmd("RCPT", "TO:<" + "a" * 2000 + "@concerns.test>")
        assert code == 500 and b"too long" in text
        assert handle.mailbox.counters.rejected["line_too_long"] == 1
    assert [row.message_id for row in stored(sqlite_engine)] == ["<ok@x>"]


def test_connections_beyond_the_cap_get_421(sqlite_engine: Engine) -> None:
    with running(Recording(sqlite_engine), max_connections=2) as handle:
        first, second = handle.client(), handle.client()
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            handle.client()
        assert refused.value.smtp_code == 421
        assert refused.value.smtp_error == b"4.7.0 Too many connections, try again later"
        first.quit()
        deadline = time.monotonic() + 5
        while len(handle.mailbox.sessions) > 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with handle.client() as third:
            assert third.noop()[0] == 250
        second.quit()


def test_one_client_cannot_take_every_connection(sqlite_engine: Engine) -> None:
    """Past its own cap a client gets 421 while the mailbox still has room for others; its
    connections count again once they close."""
    with running(Recording(sqlite_engine), max_connections=10, max_connections_per_client=2) as (
        handle
    ):
        first, second = handle.client(), handle.client()
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            handle.client()
        assert refused.value.smtp_code == 421
        assert refused.value.smtp_error == (
            b"4.7.0 Too many connections from your address, try again later"
        )
        assert handle.mailbox.counters.rejected["too_many_from_client"] == 1
        assert handle.mailbox.counters.rejected["too_many_connections"] == 0
        # Another address is still served (Linux answers for all of 127.0.0.0/8 on loopback).
        with handle.client(source_address=("127.0.0.2", 0)) as other:
            assert other.noop()[0] == 250
        first.quit()
        deadline = time.monotonic() + 5
        while len(handle.mailbox.sessions) > 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with handle.client() as again:
            assert again.noop()[0] == 250
            again.ehlo()
            again.mail(SENDER)
            again.rcpt(MAILBOX)
            assert again.data(a_message("<after@x>"))[0] == 250
        second.quit()
    assert [row.message_id for row in stored(sqlite_engine)] == ["<after@x>"]


def test_a_silent_client_gets_421_and_is_disconnected(sqlite_engine: Engine) -> None:
    with running(Recording(sqlite_engine), timeout_seconds=0.3) as handle:
        with socket.create_connection(("127.0.0.1", handle.port), timeout=5) as sock:
            reader = sock.makefile("rb")
            assert reader.readline().startswith(b"220 ")
            assert reader.readline().startswith(b"421 4.4.2 ")
            assert reader.readline() == b""  # closed
        assert handle.mailbox.counters.rejected["timeout"] == 1


def trickle(sock: socket.socket, payload: bytes, *, every: float, for_at_most: float) -> bytes:
    """Send `payload` one byte every `every` seconds (then keep sending spaces), and return what
    the server answers meanwhile, until it closes the connection or `for_at_most` passes."""
    answered = b""
    deadline = time.monotonic() + for_at_most
    sock.settimeout(every)
    position = 0
    while time.monotonic() < deadline:
        try:
            sock.sendall(payload[position : position + 1] or b" ")
        except OSError:
            break  # closed by the server
        position += 1
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            break
        if not chunk:
            break
        answered += chunk
    return answered


def test_a_client_trickling_its_message_is_cut_off_with_421_and_nothing_is_stored(
    sqlite_engine: Engine,
) -> None:
    """One byte every (timeout - a little) keeps the idle timer from firing: a session has an
    end all the same."""
    limits = {"timeout_seconds": 0.5, "max_session_seconds": 2.0}
    with (
        running(Recording(sqlite_engine), **limits) as handle,
        socket.create_connection(("127.0.0.1", handle.port), timeout=5) as sock,
    ):
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"220")
        for line in (
            b"HELO client.test",
            f"MAIL FROM:<{SENDER}>".encode(),
            f"RCPT TO:<{MAILBOX}>".encode(),
            b"DATA",
        ):
            sock.sendall(line + CRLF)
            assert reader.readline()[:1] in (b"2", b"3")
        started = time.monotonic()
        answered = trickle(sock, a_message(), every=0.3, for_at_most=8)
        assert answered.startswith(b"421 4.4.2 "), answered
        assert time.monotonic() - started < 4
        assert handle.mailbox.counters.rejected["session_too_long"] == 1
    assert stored(sqlite_engine) == []


def test_a_client_that_keeps_an_idle_session_alive_is_cut_off_with_421(
    sqlite_engine: Engine,
) -> None:
    with (
        running(Recording(sqlite_engine), timeout_seconds=0.5, max_session_seconds=1.5) as handle,
        handle.client() as client,
    ):
        started = time.monotonic()
        with pytest.raises(smtplib.SMTPServerDisconnected):
            while time.monotonic() - started < 8:
                code, text = client.noop()
                if code == 421:
                    assert text.startswith(b"4.4.2 ")
                    raise smtplib.SMTPServerDisconnected
                time.sleep(0.3)
        assert time.monotonic() - started < 4


def test_a_session_that_ends_while_its_message_commits_still_gets_its_250(
    sqlite_engine: Engine,
) -> None:
    """Nothing accepted is lost, and nothing committed is answered 421: the answer comes first."""
    release = threading.Event()
    slow_store = store_after(sqlite_engine, release)

    with running(slow_store, max_session_seconds=0.5) as handle, handle.client() as client:
        client.ehlo()
        client.mail(SENDER)
        client.rcpt(MAILBOX)
        threading.Timer(1.0, release.set).start()
        assert client.data(a_message())[0] == 250
        assert client.getreply() == (421, b"4.4.2 Session too long, closing the connection")
    assert len(stored(sqlite_engine)) == 1


# --- SMTP smuggling ------------------------------------------------------------------------------


@pytest.mark.parametrize("fake_end", [b"\n.\n", b"\r.\r", b"\r\n.\n", b"\n.\r\n"])
def test_bare_lf_or_cr_dots_do_not_end_the_message(sqlite_engine: Engine, fake_end: bytes) -> None:
    smuggled = (
        b"MAIL FROM:<dean@concerns.test>\r\nRCPT TO:<" + MAILBOX.encode() + b">\r\nDATA\r\n"
        b"Subject: smuggled\r\n\r\nI am not a learner.\r\n"
    )
    body = a_message(body=b"Real text." + fake_end + smuggled)
    with running(Recording(sqlite_engine)) as handle, raw_session(handle.port) as command:
        assert command(b"EHLO client.test\r\n").startswith(b"250")
        assert command(f"MAIL FROM:<{SENDER}>\r\n".encode()).startswith(b"250")
        assert command(f"RCPT TO:<{MAILBOX}>\r\n".encode()).startswith(b"250")
        assert command(b"DATA\r\n").startswith(b"354")
        assert command(body + b"\r\n.\r\n").startswith(b"250")
        # Nothing else was answered: the smuggled commands were data, not commands.
        assert command(b"QUIT\r\n").startswith(b"221")
    [row] = stored(sqlite_engine)
    assert row.mail_from == SENDER
    assert b"MAIL FROM:<dean@concerns.test>" in row.raw and b"I am not a learner." in row.raw


# --- shutdown ------------------------------------------------------------------------------------


def test_closing_lets_a_delivery_in_flight_finish_and_tells_idle_clients_421(
    sqlite_engine: Engine,
) -> None:
    release = threading.Event()
    slow_store = store_after(sqlite_engine, release)

    with running(slow_store) as handle:
        idle = handle.client()
        idle.ehlo()
        busy = handle.client()
        busy.ehlo()
        busy.mail(SENDER)
        busy.rcpt(MAILBOX)
        answer: Future[tuple[int, bytes]] = Future()
        threading.Thread(target=lambda: answer.set_result(busy.data(a_message()))).start()
        time.sleep(0.3)  # the message is with the writer, waiting for its commit

        async def close_and_wait() -> bool:
            handle.mailbox.close()
            release.set()
            return await handle.mailbox.wait_closed(5)

        assert handle.call(close_and_wait()) is True
        assert answer.result(5)[0] == 250
        assert idle.getreply()[0] == 421
        idle.close()
        busy.close()
        with pytest.raises(OSError):
            handle.client()
    assert len(stored(sqlite_engine)) == 1
