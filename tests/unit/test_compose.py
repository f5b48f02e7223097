"""Composing an outbox row into an email: headers, threading, parts, and no header injection."""

from __future__ import annotations

import copy
import pickle
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage, MIMEPart

import pytest

from notifications.email import UnusableAddress, compose
from notifications.threading import MailThreading

THREADING = MailThreading(secret=b"test-secret", mailbox="escalating-concerns@example.nhs.uk")
FROM = "escalating-concerns@example.nhs.uk"
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
QUEUED = datetime(2026, 11, 23, 9, 59, 58, 123456, tzinfo=UTC)
LEARNER = "priya.testlearner@example.nhs.uk"


@dataclass(frozen=True)
class Row:
    id: int = 41
    reference: str | None = "LC-2026-000007"
    recipient_address: str = LEARNER
    subject: str = "LC-2026-000007: we have received your concern"
    body_text: str = "Thank you. Your reference is LC-2026-000007.\n"
    body_html: str | None = "<p>Thank you. Your reference is <b>LC-2026-000007</b>.</p>\n"
    kind: str = "learner_ack"
    recipient_role: str = "learner"
    created_at: datetime | None = QUEUED


def build(row: Row) -> EmailMessage:
    return compose(row, threading=THREADING, from_address=FROM, now=NOW)


def on_the_wire(message: EmailMessage) -> EmailMessage:
    """The message as a recipient parses it back from the bytes we would send."""
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def content(part: MIMEPart) -> str:
    """A part's text with the wire's CRLF line endings turned back into newlines."""
    text = part.get_content()
    assert isinstance(text, str)
    return text.replace("\r\n", "\n")


def test_headers_name_us_the_recipient_and_the_reply_token() -> None:
    received = on_the_wire(build(Row()))

    assert received["From"] == f"Learner concerns service <{FROM}>"
    assert received["To"] == LEARNER
    assert received["Subject"] == "[LC-2026-000007] Your concern"
    assert received["Importance"] is None
    assert received["Date"].datetime == NOW
    assert received["Message-ID"] == THREADING.message_id(41, LEARNER, queued_at=QUEUED)
    assert received["Reply-To"] == THREADING.reply_to(41, LEARNER)
    assert received["Auto-Submitted"] == "auto-generated"
    assert received["X-Auto-Response-Suppress"] == "All"
    # Learners must receive it: nothing that tells their mail system it is bulk.
    assert received["Precedence"] is None


def test_a_reply_to_the_message_or_its_reply_to_address_proves_the_row_for_that_sender() -> None:
    received = on_the_wire(build(Row()))
    places = [received["Message-ID"], received["Reply-To"]]

    assert THREADING.verified_outbox_ids(sender=LEARNER, places=places) == [41]
    assert THREADING.verified_outbox_ids(sender="someone.else@example.com", places=places) == []


def test_the_message_id_is_stable_per_row_so_a_resend_is_the_same_message() -> None:
    first, again = build(Row()), compose(Row(), threading=THREADING, from_address=FROM, now=NOW)

    assert first["Message-ID"] == again["Message-ID"]
    assert build(Row(id=42))["Message-ID"] != first["Message-ID"]
    assert build(Row(recipient_address="other@example.nhs.uk"))["Message-ID"] != first["Message-ID"]


def test_messages_about_one_concern_are_one_thread_for_their_recipient() -> None:
    acknowledgement = build(Row(id=1))
    reminder = build(Row(id=2, subject="LC-2026-000007: reminder"))
    other_concern = build(Row(id=3, reference="LC-2026-000008"))
    root = THREADING.thread_root("LC-2026-000007", LEARNER)

    for message in (acknowledgement, reminder):
        assert message["In-Reply-To"] == root
        assert message["References"] == root
    assert other_concern["References"] != root


def test_a_message_without_a_reference_starts_no_thread() -> None:
    message = build(Row(reference=None))

    assert message["In-Reply-To"] is None
    assert message["References"] is None


# The learner's own email, as Gmail and Outlook (NHSmail) name theirs.
GMAIL_ID = "<CAJx3+9Q=f2s_Kw8d-7Yb$aP%v@mail.gmail.com>"
OUTLOOK_ID = (
    "<AM9PR07MB70981B2C3D4E5F60718293A4B5C6D7E8F9A0@AM9PR07MB7098.eurprd07.prod.outlook.com>"
)
ROOT = THREADING.thread_root("LC-2026-000007", LEARNER)


def answering(row: Row, learner_message_id: str | None) -> EmailMessage:
    return compose(
        row,
        threading=THREADING,
        from_address=FROM,
        now=NOW,
        learner_message_id=learner_message_id,
    )


@pytest.mark.parametrize(
    "learners", [GMAIL_ID, OUTLOOK_ID, "<a.b@[192.0.2.7]>", "<a.b@[IPv6:2001:db8::7]>"]
)
@pytest.mark.parametrize("kind", ["learner_ack", "learner_feedback", "reply_not_applied"])
def test_an_email_to_the_learner_answers_the_email_that_raised_the_concern(
    learners: str, kind: str
) -> None:
    """Each one replies to the learner's own email, so their mail client shows it in that
    thread; our root follows, joining mail sent before with only the root."""
    received = on_the_wire(answering(Row(kind=kind), learners))

    assert received["In-Reply-To"] == learners
    assert received["References"].split() == [learners, ROOT]


def test_a_long_message_id_is_written_as_it_is_never_as_an_encoded_word() -> None:
    """The email package would write an id longer than a line as '=?utf-8?q?...?=', which no
    mail client reads as a msg-id: the answer would thread nowhere."""
    longest = "<" + "x" * 200 + "." + "y" * 28 + "@mail.example.ac.uk>"
    assert len(longest) == 250
    for learners in (OUTLOOK_ID, longest):
        raw = answering(Row(), learners).as_bytes()

        assert f"In-Reply-To: {learners}\r\n".encode() in raw
        assert f"References: {learners}\r\n {ROOT}\r\n".encode() in raw
        assert b"=?" not in raw.partition(b"\r\n\r\n")[0]
        assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def test_a_composed_email_copies_and_pickles_with_its_threading_headers() -> None:
    message = answering(Row(), OUTLOOK_ID)
    for copied in (copy.deepcopy(message), pickle.loads(pickle.dumps(message))):
        assert copied["In-Reply-To"] == OUTLOOK_ID
        raw = copied.as_bytes()
        assert f"References: {OUTLOOK_ID}\r\n {ROOT}\r\n".encode() in raw


def test_the_maildirs_line_endings_are_kept_in_the_threading_headers() -> None:
    message = answering(Row(), GMAIL_ID)
    written = message.as_bytes(policy=message.policy.clone(linesep="\n"))

    assert f"References: {GMAIL_ID}\n {ROOT}\n".encode() in written
    assert b"\r" not in written


@pytest.mark.parametrize("role", ["supervisor", "educational_lead", "dean", "quality_team"])
def test_contacts_never_see_the_learners_message_id(role: str) -> None:
    """It may name the learner's host: for a confidential concern, something about who they are."""
    raw = answering(Row(recipient_role=role, recipient_address="sup@example.nhs.uk"), GMAIL_ID)

    assert b"mail.gmail.com" not in raw.as_bytes()
    root = THREADING.thread_root("LC-2026-000007", "sup@example.nhs.uk")
    assert raw["In-Reply-To"] == root
    assert raw["References"] == root


@pytest.mark.parametrize(
    "learners",
    [
        "<a@b>\r\nBcc: attacker@example.com",
        "<a@b>\nBcc: attacker@example.com",
        "<a@b>\rBcc: attacker@example.com",
        "<a@b\r\nBcc: attacker@example.com>",
        "<a@b\r\n X-Injected: yes>",
        "<a@b> <c@d>",
        "<a@b>, Bcc: attacker@example.com",
        "<a b@example.com>",
        "<a@b\t.example.com>",
        "<a@b\x00>",
        "<a@b\x7f>",
        "<ä@example.com>",
        "<a@bücher.example>",
        "<a@b>\u2028Bcc: attacker@example.com",
        "<=?utf-8?q?=0D=0ABcc:_attacker@example.com?=@example.com>",
        "<" + "x" * 250 + "@example.com>",
        "<" + "x" * 231 + "@mail.example.ac.uk>",  # 251 characters: one too many
        "<@example.com>",
        "<a@>",
        "<a@b@c>",
        "<<a@b>>",
        "<a>",
        "a@b",
        "<a@b",
        " <a@b>",
        "<a(comment)@b>",
        "<a@[b>,<c@d]>",
        "<a@[>]>",
        '<a@["x"]>',
        "",
    ],
)
def test_a_message_id_that_is_not_one_plain_msg_id_never_reaches_a_header(learners: str) -> None:
    """The learner's Message-ID came from their mail: anything but '<left@right>' in printable
    ASCII is left out, and the email still threads by our own root."""
    message = answering(Row(), learners)
    raw = message.as_bytes()
    received = on_the_wire(message)

    assert received["In-Reply-To"] == ROOT
    assert received["References"] == ROOT
    assert received["Bcc"] is None and received["X-Injected"] is None
    assert b"attacker" not in raw and b"Injected" not in raw
    assert raw.isascii()


def test_without_the_learners_message_id_the_learner_gets_our_root_alone() -> None:
    received = on_the_wire(answering(Row(), None))

    assert received["In-Reply-To"] == ROOT
    assert received["References"] == ROOT


def test_text_and_html_are_alternatives_and_escaped_html_is_left_exactly_as_rendered() -> None:
    html = "<p>You wrote: &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more, £5</p>\n"
    text = "You wrote: <script>alert('x')</script> & more, £5\n"
    received = on_the_wire(build(Row(body_text=text, body_html=html)))

    assert received.get_content_type() == "multipart/alternative"
    plain_part = received.get_body(preferencelist=("plain",))
    html_part = received.get_body(preferencelist=("html",))
    assert plain_part is not None and html_part is not None
    assert content(plain_part) == text
    assert content(html_part) == html


def test_without_html_the_message_is_plain_text() -> None:
    received = on_the_wire(build(Row(body_html=None)))

    assert received.get_content_type() == "text/plain"
    assert content(received) == Row().body_text


def test_the_bytes_are_seven_bit_with_short_lines_whatever_the_body_holds() -> None:
    raw = build(Row(body_text="Ward 7 – “quoted” £ " + "x" * 2000 + "\n")).as_bytes()

    assert raw.isascii()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


@pytest.mark.parametrize(
    ("kind", "role", "subject", "important"),
    [
        ("learner_ack", "learner", "[LC-2026-000007] Your concern", False),
        ("learner_feedback", "learner", "[LC-2026-000007] Your concern", False),
        ("reply_not_applied", "learner", "[LC-2026-000007] Your concern", False),
        ("new_concern", "supervisor", "[LC-2026-000007] A learner's concern", False),
        ("ack_reminder", "supervisor", "[LC-2026-000007] A learner's concern", False),
        ("ack_missed", "supervisor", "[LC-2026-000007] A learner's concern", True),
        ("high_risk_alert", "dean", "[LC-2026-000007] A learner's concern", True),
        ("overdue_at_dean", "quality_team", "[LC-2026-000007] A learner's concern", True),
        ("reply_not_applied", "supervisor", "[LC-2026-000007] A learner's concern", False),
    ],
)
def test_every_email_about_a_concern_to_one_person_has_one_subject(
    kind: str, role: str, subject: str, important: bool
) -> None:
    """Outlook groups a conversation by its subject, and Gmail splits a thread whose subject
    changes: the threading headers alone do not keep a concern one thread there. What each email
    is about is its first line; those that call for action soon are marked important."""
    received = on_the_wire(build(Row(kind=kind, recipient_role=role, subject=f"Stored {kind}")))
    assert received["Subject"] == subject
    assert (received["Importance"] == "high") is important
    assert received["References"] == THREADING.thread_root("LC-2026-000007", LEARNER)


@pytest.mark.parametrize(
    "subject",
    [
        "LC-2026-000007: hello\r\nBcc: attacker@example.com",
        "LC-2026-000007: hello\nBcc: attacker@example.com",
        "LC-2026-000007: hello\rBcc: attacker@example.com",
        "LC-2026-000007: hello\x00\x0b\x0c\x1b\x85\u2028\u2029Bcc: attacker@example.com",
        # An encoded word hiding a line break: decoded by the header parser if left whole.
        "LC-2026-000007: hello =?utf-8?q?=0D=0ABcc:_attacker@example.com?=",
    ],
)
def test_a_subject_with_line_breaks_or_control_characters_adds_no_header(subject: str) -> None:
    # A message about no concern (a digest, a sign-in link) is sent with its own subject.
    raw = build(Row(subject=subject, reference=None)).as_bytes()
    received = on_the_wire(build(Row(subject=subject, reference=None)))

    assert b"\nBcc" not in raw and b"\rBcc" not in raw
    assert received["Bcc"] is None
    assert received["Subject"].startswith("LC-2026-000007: hello")
    assert "Bcc" in received["Subject"] and "attacker@example.com" in received["Subject"]
    assert not any(char in received["Subject"] for char in "\r\n\x00\x0b\x1b\u2028")


@pytest.mark.parametrize(
    "address",
    [
        "priya@example.nhs.uk\r\nBcc: attacker@example.com",
        "priya@example.nhs.uk\nBcc: attacker@example.com",
        "priya@example.nhs.uk, attacker@example.com",
        "Priya <priya@example.nhs.uk>",
        "priya@example.nhs.uk\x00",
        "priya example@nhs.uk",
        "priya@",
        "@example.nhs.uk",
        "no-at-sign",
        "",
        "a@b@example.nhs.uk",
        "priya@exa mple.nhs.uk",
        "priya@-example.nhs.uk",
        "x" * 250 + "@example.nhs.uk",
    ],
)
def test_an_unusable_recipient_is_refused_not_sent(address: str) -> None:
    with pytest.raises(UnusableAddress):
        build(Row(recipient_address=address))


def test_a_reference_that_is_not_ours_never_reaches_a_header() -> None:
    message = build(Row(reference="LC-1\r\nBcc: attacker@example.com"))

    assert message["In-Reply-To"] is None
    assert b"Bcc" not in message.as_bytes()


def test_surrounding_spaces_and_an_international_domain_are_normalised() -> None:
    message = build(Row(recipient_address="  priya@bücher.example  "))

    assert message["To"] == "priya@xn--bcher-kva.example"
    assert message["Message-ID"] == THREADING.message_id(
        41, "priya@bücher.example", queued_at=QUEUED
    )


def test_a_bad_from_address_is_configuration_not_the_rows_fault() -> None:
    with pytest.raises(ValueError, match="from address") as raised:
        compose(Row(), threading=THREADING, from_address="not an address", now=NOW)
    assert not isinstance(raised.value, UnusableAddress)


def test_the_service_default_mailbox_on_localhost_is_usable() -> None:
    message = compose(
        replace(Row(), recipient_address="dean@localhost"),
        threading=THREADING,
        from_address="escalating-concerns@localhost",
        now=NOW,
    )

    assert message["From"] == "Learner concerns service <escalating-concerns@localhost>"
