"""Reading delivery status reports (`intake.bounces.read_bounce`)."""

from __future__ import annotations

import time
from email.message import EmailMessage

import pytest

from intake.bounces import read_bounce

OURS = "<lc42xabcdefghijklmnopqrst@example.nhs.uk>"


def returned() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "escalating-concerns@example.nhs.uk"
    message["To"] = "jordan.sample@vale-general.example.nhs.uk"
    message["Subject"] = "LC-2026-000001: a concern for you"
    message["Message-ID"] = OURS
    message["References"] = "<lc-2026-000001.abc@example.nhs.uk>"
    message.set_content("A concern has been raised.")
    return message


def report(*blocks: str, original: str | None = None) -> bytes:
    """A report as a mail server writes one (RFC 3464)."""
    returned_part = original or (
        "Content-Type: message/rfc822\n\n" + returned().as_string().replace("\r\n", "\n")
    )
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.nhs.uk>\n"
        "To: escalating-concerns@example.nhs.uk\n"
        "Subject: Undelivered Mail Returned to Sender\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\n\n'
        "--b1\nContent-Type: text/plain\n\nYour message could not be delivered.\n\n"
        "--b1\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.example.nhs.uk\n\n" + "\n".join(blocks) + "\n"
        f"--b1\n{returned_part}\n--b1--\n"
    ).encode()


def block(address: str, action: str = "failed") -> str:
    return f"Final-Recipient: rfc822; {address}\nAction: {action}\nStatus: 5.1.1\n"


def test_a_standard_report_names_the_failed_recipient_and_our_message() -> None:
    bounce = read_bounce(report(block("Jordan.Sample@vale-general.example.nhs.uk")))
    assert bounce is not None
    assert bounce.failed == ("jordan.sample@vale-general.example.nhs.uk",)
    assert OURS in bounce.returned_headers


def test_only_failed_recipients_count() -> None:
    raw = report(block("late@example.nhs.uk", "delayed"), block("gone@example.nhs.uk"))
    bounce = read_bounce(raw)
    assert bounce is not None and bounce.failed == ("gone@example.nhs.uk",)
    assert read_bounce(report(block("late@example.nhs.uk", "delayed"))) is None


def test_a_report_returning_only_the_headers_is_read_too() -> None:
    headers = (
        "Content-Type: text/rfc822-headers\n\n"
        f"From: escalating-concerns@example.nhs.uk\nMessage-ID: {OURS}\n"
    )
    bounce = read_bounce(report(block("gone@example.nhs.uk"), original=headers))
    assert bounce is not None and OURS in bounce.returned_headers


def test_anything_else_is_not_a_bounce() -> None:
    plain = returned()
    assert read_bounce(plain.as_bytes()) is None
    assert read_bounce(b"\xff\xfe not an email at all") is None
    # A report without the returned message cannot say which of ours failed.
    without = report(block("gone@example.nhs.uk"), original="Content-Type: text/plain\n\nGone.")
    assert read_bounce(without) is None


def hostile(content_type: str, depth: int = 20) -> bytes:
    """10 MiB of automatic mail, nested deep: parsed in full, it takes seconds."""
    head = f"From: x@y.example\r\nContent-Type: {content_type}; boundary=b0\r\n\r\n".encode()
    nest = b"".join(
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1)
        for i in range(depth)
    )
    body = b"--b%d\r\nContent-Type: text/plain\r\n\r\n" % depth
    return head + nest + body + b"a\r\n" * (10 * 1024 * 1024 // 3)


@pytest.mark.parametrize(
    "content_type",
    ["multipart/report; report-type=delivery-status", "multipart/report", "multipart/mixed"],
)
def test_reading_a_large_nested_message_is_bounded(content_type: str) -> None:
    """Intake reads bounces inside its transaction: no message may hold it up for long."""
    raw = hostile(content_type)
    started = time.perf_counter()
    assert read_bounce(raw) is None
    assert time.perf_counter() - started < 1.0


def test_staff_read_a_failed_delivery_in_plain_words() -> None:
    from app.staff.pages import _event_words

    words = _event_words(
        {
            "kind": "delivery_failed",
            "actor": "system",
            "detail": {"outbox_id": 7, "message": "new_concern", "recipient_role": "supervisor"},
        },
        {},
    )
    assert words["title"] == "An email to the supervisor could not be delivered"
    assert "directory" in words["text"]
    learner = _event_words(
        {"kind": "delivery_failed", "actor": "system", "detail": {"recipient_role": "learner"}},
        {},
    )
    assert learner["title"] == "An email to the learner could not be delivered"
