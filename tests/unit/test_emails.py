"""Reading stored emails: senders, bodies, attachments, loops and the limits that keep it safe."""

from __future__ import annotations

import base64
import time
from email.message import EmailMessage
from typing import Any, cast

import pytest

from intake.emails import (
    MAX_HTML_CHARS,
    MAX_MIME_PARTS,
    MAX_SUBJECT_CHARS,
    MAX_TEXT_CHARS,
    Attachment,
    ParsedEmail,
    header_message_id,
    html_to_text,
    parse_email,
)
from notifications.threading import MailThreading

LEARNER = "jane.smith@student.example.ac.uk"
MAILBOX = "escalating-concerns@example.nhs.uk"
# Catches a parse that grows faster than the message (minutes at 10 MiB); 2 s proved too tight on
# a busy 2-core CI machine (2.08 s once), so the bound leaves room for load, not for slowness.
SECONDS = 10.0


def raw_mail(*headers: str, body: bytes | str = "Hello\r\n") -> bytes:
    """A message exactly as given: header lines, a blank line, the body."""
    head = "\r\n".join(headers).encode("utf-8", "surrogateescape")
    payload = body if isinstance(body, bytes) else body.encode("utf-8")
    return head + b"\r\n\r\n" + payload


def parse(raw: bytes, *, mail_from: str = LEARNER) -> ParsedEmail:
    """parse_email, checked to be quick."""
    started = time.perf_counter()
    parsed = parse_email(raw, mail_from=mail_from)
    assert time.perf_counter() - started < SECONDS
    return parsed


def multipart(subtype: str, boundary: str, *parts: bytes, close: bool = True) -> bytes:
    """The body of a multipart: each part between delimiter lines."""
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + part + b"\r\n" for part in parts)
    return body + (b"--" + boundary.encode() + b"--\r\n" if close else b"")


def part(content_type: str, body: bytes, *headers: str) -> bytes:
    lines = [f"Content-Type: {content_type}", *headers]
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + body


# --- a plain message ---------------------------------------------------------------------------


def test_a_plain_message_is_read_in_full() -> None:
    parsed = parse(
        raw_mail(
            "From: Jane Smith <Jane.Smith@Student.Example.AC.UK>",
            f"To: Concerns <{MAILBOX}>, other@example.nhs.uk",
            "Cc: Tutor <tutor@vale.example.nhs.uk>",
            "Subject: Left alone on Ward 7",
            "Message-ID: <abc123@student.example.ac.uk>",
            "In-Reply-To: <lc12xabc@example.nhs.uk>",
            "References: <root@example.nhs.uk>\r\n <lc12xabc@example.nhs.uk>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            body="I was left alone on nights.\r\nNobody to call.\r\n",
        )
    )
    assert parsed.from_address == LEARNER
    assert parsed.from_name == "Jane Smith"
    assert parsed.to == (MAILBOX, "other@example.nhs.uk")
    assert parsed.cc == ("tutor@vale.example.nhs.uk",)
    assert parsed.subject == "Left alone on Ward 7"
    assert parsed.message_id == "<abc123@student.example.ac.uk>"
    assert parsed.in_reply_to == ("<lc12xabc@example.nhs.uk>",)
    assert parsed.references == ("<root@example.nhs.uk>", "<lc12xabc@example.nhs.uk>")
    assert parsed.text == "I was left alone on nights.\nNobody to call.\n"
    assert parsed.attachments == ()
    assert parsed.automatic is None
    assert parsed.problems == ()


def test_a_message_built_by_the_standard_library_round_trips() -> None:
    message = EmailMessage()
    message["From"] = f"Jane Smith <{LEARNER}>"
    message["To"] = MAILBOX
    message["Subject"] = "Café culture on the ward: “unsafe”"
    message.set_content("Bonjour — the ward was unsafe.\n")
    parsed = parse(message.as_bytes())
    assert parsed.subject == "Café culture on the ward: “unsafe”"
    assert parsed.text == "Bonjour — the ward was unsafe.\n"
    assert parsed.problems == ()


def test_control_characters_go_and_line_ends_become_newlines() -> None:
    parsed = parse(raw_mail(f"From: {LEARNER}", body="one\x00\x1b[31m\r\ntwo\tthree\rfour\x7f\r\n"))
    assert parsed.text == "one[31m\ntwo\tthree\nfour\n"


def test_the_text_is_capped() -> None:
    parsed = parse(raw_mail(f"From: {LEARNER}", body="x" * (MAX_TEXT_CHARS + 5000)))
    assert len(parsed.text) == MAX_TEXT_CHARS
    assert any("cut" in problem for problem in parsed.problems)


def test_html_too_long_to_read_whole_is_said_to_be() -> None:
    """What follows the part read may be the learner's words (typed below a huge quoted style
    block): a reply that was not read whole must not pass for one that says nothing."""
    html = f"<html><style>{'x' * MAX_HTML_CHARS}</style><p>I remain concerned</p></html>"
    parsed = parse(
        raw_mail(f"From: {LEARNER}", "Content-Type: text/html; charset=utf-8", body=html)
    )
    assert "I remain concerned" not in parsed.text
    assert any("HTML longer than" in problem for problem in parsed.problems)


def test_raw_utf8_headers_are_read_as_utf8() -> None:
    raw = "From: Zoë Müller <zoe@example.ac.uk>\r\nSubject: Übergabe\r\n\r\nHi".encode()
    parsed = parse(raw)
    assert parsed.from_name == "Zoë Müller"
    assert parsed.subject == "Übergabe"


# --- HTML and multipart bodies -----------------------------------------------------------------


def test_an_html_only_message_becomes_text_without_scripts_or_styles() -> None:
    html = (
        "<html><head><title>Secret title</title><style>p {color: red}</style></head>"
        "<body><script>alert('x')</script><h1>Ward&nbsp;7</h1><p>Left &amp; alone</p>"
        "<ul><li>one</li><li>two</li></ul>line<br>break<!-- hidden --></body></html>"
    )
    parsed = parse(
        raw_mail(f"From: {LEARNER}", "Content-Type: text/html; charset=utf-8", body=html)
    )
    assert parsed.text == "Ward 7\n\nLeft & alone\n\none\n\ntwo\n\nline\nbreak"
    assert "alert" not in parsed.text and "color" not in parsed.text
    assert "Secret" not in parsed.text and "hidden" not in parsed.text


def test_plain_text_is_preferred_in_multipart_alternative() -> None:
    body = multipart(
        "alternative",
        "ALT",
        part("text/plain; charset=utf-8", b"The plain words"),
        part("text/html; charset=utf-8", b"<p>The <b>HTML</b> words</p>"),
    )
    parsed = parse(
        raw_mail(
            f"From: {LEARNER}", 'Content-Type: multipart/alternative; boundary="ALT"', body=body
        )
    )
    assert parsed.text == "The plain words"
    assert parsed.attachments == ()


@pytest.mark.parametrize("plain", [b"", b"\r\n \r\n"])
def test_html_is_used_when_the_plain_alternative_is_blank(plain: bytes) -> None:
    body = multipart(
        "alternative",
        "ALT",
        part("text/plain; charset=utf-8", plain),
        part("text/html; charset=utf-8", b"<p>I was left alone on the ward.</p>"),
    )
    parsed = parse(
        raw_mail(
            f"From: {LEARNER}", 'Content-Type: multipart/alternative; boundary="ALT"', body=body
        )
    )
    assert parsed.text == "I was left alone on the ward."


def test_html_is_used_when_there_is_no_plain_part() -> None:
    body = multipart(
        "mixed",
        "MIX",
        part("text/html", b"<div>Only <i>HTML</i></div>"),
        part("image/png", base64.b64encode(b"\x89PNG...."), "Content-Transfer-Encoding: base64"),
    )
    parsed = parse(
        raw_mail(f"From: {LEARNER}", 'Content-Type: multipart/mixed; boundary="MIX"', body=body)
    )
    assert parsed.text == "Only HTML"
    assert parsed.attachments == (Attachment(None, "image/png", 8),)


def test_attachments_are_recorded_and_never_read_as_text() -> None:
    message = EmailMessage()
    message["From"] = LEARNER
    message.set_content("See the attached rota.\n")
    message.add_attachment(
        b"%PDF-1.7 secret", maintype="application", subtype="pdf", filename="rota.pdf"
    )
    message.add_attachment("notes in a text file", filename="notes.txt")
    message.add_attachment(
        b"MZ\x90\x00", maintype="application", subtype="x-msdownload", filename="run.exe"
    )
    parsed = parse(message.as_bytes())
    assert parsed.text == "See the attached rota.\n"
    assert parsed.attachments == (
        Attachment("rota.pdf", "application/pdf", 15),
        Attachment("notes.txt", "text/plain", len(b"notes in a text file\n")),
        Attachment("run.exe", "application/x-msdownload", 4),
    )


def test_an_attached_message_is_recorded_not_entered() -> None:
    inner = EmailMessage()
    inner["From"] = "supervisor@vale.example.nhs.uk"
    inner["Subject"] = "Rota"
    inner.set_content("You are on your own tonight.\n")
    outer = EmailMessage()
    outer["From"] = LEARNER
    outer.set_content("Forwarding what my supervisor said.\n")
    outer.add_attachment(inner)
    parsed = parse(outer.as_bytes())
    assert parsed.text == "Forwarding what my supervisor said.\n"
    (attached,) = parsed.attachments
    assert attached.content_type == "message/rfc822"
    assert attached.size > len("You are on your own tonight.\n")


def test_an_attachment_name_is_one_clean_line() -> None:
    body = multipart(
        "mixed",
        "B",
        part("text/plain", b"hi"),
        part(
            "application/octet-stream",
            b"data",
            'Content-Disposition: attachment; filename="evil\\\x1b[2J\r\n name.txt"',
        ),
    )
    parsed = parse(
        raw_mail(f"From: {LEARNER}", 'Content-Type: multipart/mixed; boundary="B"', body=body)
    )
    (attachment,) = parsed.attachments
    assert attachment.filename is not None
    assert "\x1b" not in attachment.filename and "\n" not in attachment.filename


def test_a_ten_mebibyte_attachment_is_measured_exactly_and_quickly() -> None:
    content = bytes(range(256)) * (7 * 1024 * 1024 // 256)
    message = EmailMessage()
    message["From"] = LEARNER
    message.set_content("The big file.\n")
    message.add_attachment(content, maintype="application", subtype="zip", filename="big.zip")
    raw = message.as_bytes()
    assert len(raw) > 9 * 1024 * 1024
    parsed = parse(raw)
    assert parsed.text == "The big file.\n"
    assert parsed.attachments == (Attachment("big.zip", "application/zip", len(content)),)
    assert parsed.problems == ()


# --- charsets ----------------------------------------------------------------------------------


def test_iso_8859_1_is_decoded() -> None:
    parsed = parse(
        raw_mail(
            f"From: {LEARNER}",
            "Content-Type: text/plain; charset=ISO-8859-1",
            body="Caf\xe9 on the ward \xa35".encode("latin-1"),
        )
    )
    assert parsed.text == "Café on the ward £5"
    assert parsed.problems == ()


def test_a_bogus_charset_falls_back_to_utf8() -> None:
    parsed = parse(
        raw_mail(
            f"From: {LEARNER}",
            "Content-Type: text/plain; charset=x-no-such-charset",
            body="Café".encode(),
        )
    )
    assert parsed.text == "Café"
    assert parsed.problems == ("unknown charset 'x-no-such-charset'",)


@pytest.mark.parametrize("charset", ["base64", "rot13", "zlib", "punycode", "unicode_escape"])
def test_codecs_that_are_not_character_sets_are_not_used(charset: str) -> None:
    parsed = parse(
        raw_mail(f"From: {LEARNER}", f"Content-Type: text/plain; charset={charset}", body="abc")
    )
    assert parsed.text == "abc"


def test_mislabelled_windows_text_is_read_as_windows_1252() -> None:
    parsed = parse(
        raw_mail(
            f"From: {LEARNER}",
            "Content-Type: text/plain; charset=utf-8",
            body="\u201cunsafe\u201d \u2013 caf\xe9".encode("cp1252"),
        )
    )
    assert parsed.text == "\u201cunsafe\u201d \u2013 caf\xe9"
    assert parsed.problems == ("text not in its declared charset: read as Windows-1252",)


def test_utf8_with_a_stray_byte_stays_utf8() -> None:
    parsed = parse(raw_mail(f"From: {LEARNER}", body="Café ".encode() + b"\x92 and \xff"))
    assert parsed.text == "Café \ufffd and \ufffd"
    assert parsed.problems == ("text not valid in its charset: unreadable bytes replaced",)


def test_long_windows_text_with_few_curly_quotes_is_still_windows_1252() -> None:
    text = "The rota was unsafe. " * 200 + "\u2018Nobody\u2019s fault\u2019 they said."
    parsed = parse(raw_mail(f"From: {LEARNER}", body=text.encode("cp1252")))
    assert parsed.text == text


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("base64", b"SGVsbG8gd29ybGQ"),  # no padding
        ("base64", b"SGVs!!bG8g\x00d29y**bGQ="),  # junk characters
        ("quoted-printable", b"Hello=ZZ=\r\nworld=3"),
        ("x-uuencode", b"begin 644 f\r\nnot uuencode at all\r\n"),
        ("x-made-up", b"Hello world"),
    ],
)
def test_broken_transfer_encodings_do_not_stop_the_reading(encoding: str, body: bytes) -> None:
    parsed = parse(
        raw_mail(f"From: {LEARNER}", f"Content-Transfer-Encoding: {encoding}", body=body)
    )
    assert parsed.from_address == LEARNER
    assert isinstance(parsed.text, str)


# --- the sender --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("from_lines", "address", "name"),
    [
        (["From: Jane <JANE@NHS.NET>"], "jane@nhs.net", "Jane"),
        (["From: jane@nhs.net (Jane)"], "jane@nhs.net", None),
        (['From: "victim@nhs.net" <attacker@evil.example>'], "attacker@evil.example", None),
        # Clients that write the sender's address into the name: the rest is still the name.
        (['From: "Jane Smith (jane@nhs.net)" <jane@nhs.net>'], "jane@nhs.net", "Jane Smith"),
        (['From: "Smith, Jane <jane@nhs.net>" <jane@nhs.net>'], "jane@nhs.net", "Smith, Jane"),
        (['From: "jane@nhs.net" <jane@nhs.net>'], "jane@nhs.net", None),
        (
            ['From: "Jane - victim@nhs.net" <attacker@evil.example>'],
            "attacker@evil.example",
            "Jane",
        ),
        (
            ["From: =?utf-8?q?victim@nhs.net?= <attacker@evil.example>"],
            "attacker@evil.example",
            None,
        ),
        # Names mail clients write that RFC 5322 calls obsolete, or in raw 8-bit bytes.
        (["From: Dr. Jane Smith <jane@nhs.net>"], "jane@nhs.net", "Dr. Jane Smith"),
        (["From: Jane.Smith <Jane.Smith@nhs.net>"], "jane.smith@nhs.net", "Jane.Smith"),
        (["From: Jos\udce9 Garc\udceda <jose@nhs.net>"], "jose@nhs.net", "Jos\u00e9 Garc\u00eda"),
        (["From: Dr. Jane <jane@nhs.net> <d@evil.example>"], None, None),
        (["From: Dr. Jane <jane@nhs.net>, <d@evil.example>"], None, None),
        (["From: a.b@nhs.net <attacker@evil.example>"], None, None),
        (["From: Dr. x@nhs.net <attacker@evil.example>"], None, None),
        (["From: Dr. Jane <jane@nh\udcc3s.net>"], None, None),
        (["From: Jos\udce9 <jos\udce9@nhs.net>"], None, None),
        (["From: a@nhs.net, d@evil.example"], None, None),
        (["From: <a@nhs.net>x"], None, None),
        (["From: victim@nhs.net <attacker@evil.example>"], None, None),
        (["From: a@nhs.net d@evil.example"], None, None),
        (["From: =?utf-8?q?victim@nhs.net=2C_x@evil.example?="], None, None),
        (['From: "=?utf-8?q?a@nhs.net=2C_d@e.example?=" <x@evil.example>'], None, None),
        (["From: =?utf-8?b?amFuZUBuaHMubmV0?="], None, None),
        (["From: Friends: a@nhs.net;"], None, None),
        (["From: a@nhs.net", "From: b@evil.example"], None, None),
        (["From: a@"], None, None),
        (["From: @nhs.net"], None, None),
        (["From: <>"], None, None),
        (["From: jane@[127.0.0.1]"], None, None),
        (['From: "jane smith"@nhs.net'], None, None),
        (["From: jane@localhost"], None, None),
        (["From: jane@nh\udcc3s.net"], None, None),
        (["From: " + "a" * 990 + "@nhs.net"], None, None),
        ([], None, None),
    ],
)
def test_the_sender_is_one_strictly_valid_address_or_none(
    from_lines: list[str], address: str | None, name: str | None
) -> None:
    parsed = parse(raw_mail(*from_lines, "Subject: x"))
    assert parsed.from_address == address
    assert parsed.from_name == name
    if address is None:
        assert parsed.problems


def test_the_display_name_as_written_is_kept_for_redaction_addresses_and_all() -> None:
    parsed = parse(raw_mail('From: "Jane Smith (jane@nhs.net)" <js1@nhs.net>', "Subject: x"))
    assert parsed.from_name == "Jane Smith"
    assert parsed.from_display_name == "Jane Smith (jane@nhs.net)"


def test_to_and_cc_skip_what_is_not_an_address() -> None:
    parsed = parse(
        raw_mail(
            f"From: {LEARNER}",
            "To: Undisclosed recipients:;, ok@example.nhs.uk, @broken, OK@Example.NHS.UK",
            "Cc: " + '"' * 3000,
        )
    )
    assert parsed.to == ("ok@example.nhs.uk",)
    assert parsed.cc == ()
    assert "Cc header too long: its addresses were not read" in parsed.problems


# --- the subject and ids -----------------------------------------------------------------------


def test_the_subject_is_decoded_onto_one_clean_line() -> None:
    parsed = parse(
        raw_mail(
            f"From: {LEARNER}",
            "Subject: =?utf-8?q?Unsafe_=E2=80=93?=\r\n\tstaffing\x07 on\r\n  nights",
        )
    )
    assert parsed.subject == "Unsafe – staffing on nights"


def test_the_subject_is_capped() -> None:
    parsed = parse(raw_mail(f"From: {LEARNER}", "Subject: " + "word " * 400))
    assert len(parsed.subject) <= MAX_SUBJECT_CHARS
    assert parsed.subject.startswith("word word")


def test_header_message_id_reads_only_the_headers() -> None:
    raw = raw_mail(
        f"From: {LEARNER}",
        "Message-ID:\r\n  <id-1@student.example.ac.uk>  ",
        body="Message-ID: <not-this@example>\r\n",
    )
    assert header_message_id(raw) == "<id-1@student.example.ac.uk>"
    assert parse(raw).message_id == "<id-1@student.example.ac.uk>"
    assert header_message_id(raw_mail(f"From: {LEARNER}", body="Message-ID: <x@y>")) is None


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n\r\nMessage-ID: <x@y>",
        b"Message-ID: <" + b"a" * 1000 + b">\r\n\r\n",
        b"Message-ID:    \r\n\r\n",
        b"X: y\r\n" * 500_000,
        bytes(range(256)) * 100,
    ],
)
def test_header_message_id_gives_none_for_what_is_unusable(raw: bytes) -> None:
    started = time.perf_counter()
    assert header_message_id(raw) is None
    assert time.perf_counter() - started < SECONDS


def test_odd_message_ids_are_still_returned_for_dedupe() -> None:
    assert header_message_id(b"Message-ID: <<<<\r\n\r\n") == "<<<<"
    assert header_message_id(b"Message-Id: no-brackets@x\r\n\r\n") == "no-brackets@x"


def test_token_places_let_the_threading_tokens_be_verified() -> None:
    threading = MailThreading(secret=b"secret", mailbox=MAILBOX)
    parsed = parse(
        raw_mail(
            f"From: Jane <{LEARNER.upper()}>",
            f"To: {threading.reply_to(41, LEARNER)}",
            "Cc: someone@example.nhs.uk",
            f"In-Reply-To: {threading.message_id(42, LEARNER)}",
            f"References: <root@x>\r\n {threading.message_id(43, 'other@x.example')}",
        )
    )
    assert len(parsed.token_places) == 4
    assert parsed.from_address is not None
    found = threading.verified_outbox_ids(sender=parsed.from_address, places=parsed.token_places)
    assert found == [41, 42]


# --- never answer these ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "mail_from", "expected"),
    [
        (["Auto-Submitted: auto-replied"], LEARNER, "Auto-Submitted: auto-replied"),
        (
            ["Auto-Submitted: Auto-Generated; type=vacation"],
            LEARNER,
            "Auto-Submitted: Auto-Generated",
        ),
        (["Auto-Submitted: (comment)"], LEARNER, "Auto-Submitted: present"),
        (["X-Autoreply: yes"], LEARNER, "automatic reply (x-autoreply)"),
        (["X-Autorespond: on"], LEARNER, "automatic reply (x-autorespond)"),
        (
            ["Subject: Out of Office: Jane Smith"],
            LEARNER,
            "automatic reply (subject starts 'out of office')",
        ),
        (
            ["Subject: Automatic reply: your concern"],
            LEARNER,
            "automatic reply (subject starts 'automatic reply')",
        ),
        (["Subject: AUTO: away until Monday"], LEARNER, "automatic reply (subject starts 'auto:')"),
        (["Subject: Autoreply"], LEARNER, "automatic reply (subject starts 'autoreply')"),
        (["Subject: Auto-Reply: away"], LEARNER, "automatic reply (subject starts 'auto-reply')"),
        (["Precedence: bulk"], LEARNER, "Precedence: bulk"),
        (["Precedence: LIST"], LEARNER, "Precedence: list"),
        (["Precedence: junk"], LEARNER, "Precedence: junk"),
        (["Precedence: auto_reply"], LEARNER, "Precedence: auto_reply"),
        (["List-Id: <nurses.lists.example>"], LEARNER, "mailing list (List-Id)"),
        (
            ["List-Unsubscribe: <mailto:leave@lists.example>"],
            LEARNER,
            "mailing list (List-Unsubscribe)",
        ),
        ([], "", "null envelope sender (a bounce or automatic message)"),
        ([], "<>", "null envelope sender (a bounce or automatic message)"),
    ],
)
def test_automatic_mail_is_recognised(headers: list[str], mail_from: str, expected: str) -> None:
    parsed = parse(raw_mail(f"From: {LEARNER}", *headers), mail_from=mail_from)
    assert parsed.automatic == expected


@pytest.mark.parametrize(
    "headers",
    [
        ["Auto-Submitted: no"],
        ["Auto-Submitted: No (a person wrote this)"],
        ["X-Auto-Response-Suppress: All"],
        ["Precedence: first-class"],
        ["Subject: Re: Automatic replies are annoying"],
        ["Subject: Autumn rota"],
    ],
)
def test_a_person_writing_is_not_automatic(headers: list[str]) -> None:
    assert parse(raw_mail(f"From: {LEARNER}", *headers)).automatic is None


def test_a_bounce_is_recognised() -> None:
    body = multipart(
        "report",
        "REPORT",
        part("text/plain", b"Delivery to the following recipient failed: x@y"),
        part(
            "message/delivery-status", b"Reporting-MTA: dns; mx.example\r\n\r\nAction: failed\r\n"
        ),
        part("text/rfc822-headers", b"From: concerns@example.nhs.uk\r\nSubject: x\r\n"),
    )
    parsed = parse(
        raw_mail(
            "From: Mail Delivery System <MAILER-DAEMON@mx.example.ac.uk>",
            'Content-Type: multipart/report; report-type=delivery-status; boundary="REPORT"',
            body=body,
        ),
        mail_from="",
    )
    assert parsed.automatic == "delivery status report (bounce)"
    assert parsed.text == "Delivery to the following recipient failed: x@y"
    assert [a.content_type for a in parsed.attachments] == [
        "message/delivery-status",
        "text/rfc822-headers",
    ]


@pytest.mark.parametrize(
    ("sender", "body", "content_type"),
    [
        ("postmaster@mx.example.ac.uk", b"Undeliverable", "text/plain"),
        ("MAILER-DAEMON@mx.example.ac.uk", b"Undeliverable", "text/plain"),
        (
            LEARNER,
            multipart("mixed", "B", part("message/delivery-status", b"Action: failed\r\n")),
            'multipart/mixed; boundary="B"',
        ),
    ],
)
def test_bounces_without_the_report_type_are_recognised(
    sender: str, body: bytes, content_type: str
) -> None:
    parsed = parse(raw_mail(f"From: {sender}", f"Content-Type: {content_type}", body=body))
    assert parsed.automatic is not None
    assert "delivery status report" in parsed.automatic


# --- limits ------------------------------------------------------------------------------------


def nested(levels: int, filler: bytes = b"") -> bytes:
    """A message whose text sits inside `levels` multiparts (the message itself is the first)."""
    head = f"From: {LEARNER}\r\n".encode()
    for level in range(levels):
        head += b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (level, level)
    return head + b"Content-Type: text/plain\r\n\r\ndeep text\r\n" + filler


def test_nine_nested_multiparts_are_read() -> None:
    parsed = parse(nested(9))  # the text is the tenth level
    assert parsed.text == "deep text"
    assert "MIME nesting too deep" not in parsed.problems


@pytest.mark.parametrize("levels", [10, 50, 1000])
def test_deeper_nesting_stops_the_walk(levels: int) -> None:
    parsed = parse(nested(levels))
    assert parsed.text == ""
    assert "MIME nesting too deep" in parsed.problems
    assert parsed.from_address == LEARNER


def test_deep_message_nesting_falls_back_to_the_headers() -> None:
    raw = (
        f"From: {LEARNER}\r\nSubject: matryoshka\r\n".encode()
        + b"Content-Type: message/rfc822\r\n\r\n" * 1500
        + b"Subject: inner\r\n\r\nbody\r\n"
    )
    parsed = parse(raw)
    assert parsed.from_address == LEARNER
    assert parsed.subject == "matryoshka"
    assert any("read the headers only" in problem for problem in parsed.problems)


def test_too_many_parts_stop_the_walk() -> None:
    parts = [part("text/plain", b"first")] + [
        part("application/octet-stream", b"x", f'Content-Disposition: attachment; filename="{n}"')
        for n in range(300)
    ]
    parsed = parse(
        raw_mail(
            f"From: {LEARNER}",
            'Content-Type: multipart/mixed; boundary="B"',
            body=multipart("mixed", "B", *parts),
        )
    )
    assert parsed.text == "first"
    assert len(parsed.attachments) == MAX_MIME_PARTS - 2  # the message and its text are parts
    assert "too many MIME parts" in parsed.problems


def test_unclosed_and_missing_boundaries_are_tolerated() -> None:
    unclosed = parse(
        raw_mail(
            f"From: {LEARNER}",
            'Content-Type: multipart/mixed; boundary="B"',
            body=multipart("mixed", "B", part("text/plain", b"still read"), close=False),
        )
    )
    assert unclosed.text == "still read"
    no_boundary = parse(
        raw_mail(f"From: {LEARNER}", "Content-Type: multipart/mixed", body="--x\r\nhi")
    )
    assert no_boundary.text == ""
    assert "a multipart part without a usable boundary was not read" in no_boundary.problems


MEBIBYTES_10 = 10 * 1024 * 1024


@pytest.mark.parametrize(
    "raw",
    [
        raw_mail(f"From: {LEARNER}", body=b"\n" * MEBIBYTES_10),
        raw_mail(f"From: {LEARNER}", body=b"\r" * MEBIBYTES_10),
        raw_mail(f"From: {LEARNER}", body=b"x" * MEBIBYTES_10),
        b"X-A: b\r\n" * (MEBIBYTES_10 // 8),
        raw_mail(f"From: {LEARNER}", "Subject: " + "a" * MEBIBYTES_10),
        nested(60, b"X: y\n" * (MEBIBYTES_10 // 5)),
        raw_mail(
            f"From: {LEARNER}",
            'Content-Type: multipart/mixed; boundary="B"',
            body=b"--B\r\n\r\nx\r\n" * (MEBIBYTES_10 // 11),
        ),
        raw_mail(f"From: {LEARNER}", *(["To: " + '"' * 1999] * 2000)),
        raw_mail(
            f"From: {LEARNER}",
            'Content-Type: multipart/mixed; boundary="B"',
            body=b"".join(
                b'--B\r\nContent-Type: text/plain; a="' + b'"%d,' % n * 300 + b"\r\n\r\nx\r\n"
                for n in range(2000)
            ),
        ),
        raw_mail(f"From: {LEARNER}", "Content-Type: text/html", body=b"<a\n" * (MEBIBYTES_10 // 3)),
        raw_mail(f"From: {LEARNER}", "Content-Type: text/html", body=b"<b>" * (MEBIBYTES_10 // 3)),
    ],
    ids=[
        "newlines",
        "carriage-returns",
        "one-line",
        "header-lines",
        "huge-subject",
        "nested-with-header-lines",
        "many-parts",
        "quote-filled-to-headers",
        "quote-filled-content-types",
        "unclosed-html-tags",
        "dense-html-tags",
    ],
)
def test_ten_mebibytes_of_anything_is_read_quickly(raw: bytes) -> None:
    parsed = parse(raw)  # parse() asserts the time
    assert len(parsed.text) <= MAX_TEXT_CHARS


def test_an_unexpected_failure_is_a_problem_not_an_exception() -> None:
    parsed = parse_email(cast(Any, None), mail_from="<>")
    assert parsed.text == ""
    assert parsed.problems == ("the message could not be read (TypeError)",)
    assert parsed.automatic is not None


# --- html_to_text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>a</p><p>b</p>", "a\n\nb"),
        ("a<br>b<br/>c", "a\nb\nc"),
        ("<table><tr><td>1</td><td>2</td></tr><tr><td>3</td></tr></table>", "1 2\n\n3"),
        ("<p>\n  spaced\n   out  </p>", "spaced out"),
        ("<pre>keep\n  this</pre>", "keep\nthis"),
        ("&lt;script&gt; &amp; &eacute; &#8211; &#x2014;", "<script> & é – —"),
        ("<head><title>t</title><body>body text", "body text"),
        ("<p>one</p>\n\n\n<div></div><div></div><p>two</p>", "one\n\ntwo"),
        ("<!--[if mso]><p>Outlook</p><![endif]--><p>All</p>", "All"),
        ("<![if !supportLists]>1.<![endif]> item", "1. item"),
        ("<![foo[bar]]> after", "<![foo[bar]]> after"),
        ("<style>p{}", ""),
        ("text <!-- never closed <p>hidden", "text"),
        ("a < b and c > d", "a < b and c > d"),
        ("<img src='https://tracker.example/x.gif' onerror='alert(1)'>seen", "seen"),
        ("x\x00y\x1bz", "xyz"),
        # A quoted message is marked as plain-text clients mark it, so a reply can be read.
        (
            '<p>mine</p><blockquote type="cite"><p>theirs<br>more</p>'
            "<blockquote>older</blockquote>back</blockquote><p>after</p>",
            "mine\n\n> theirs\n> more\n\n>> older\n> back\n\nafter",
        ),
        ("<blockquote>" * 12 + "deep", ">" * 10 + " deep"),
        (
            '<div>mine</div><div id="divRplyFwdMsg"><b>Von:</b> x<br><b>Gesendet:</b> y</div>'
            "<div>ours</div>",
            "mine\n\n> Von: x\n> Gesendet: y\n\n> ours",
        ),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


@pytest.mark.parametrize(
    "unit",
    [
        "<a\n",
        "<a b='",
        "<a b=",
        "<a/",
        "<!--<!--",
        "a<",
        "<x:y",
        "</",
        "<?",
        "<![CDATA[",
        "<![",
        "<!",
        "<blockquote>x<br>",
    ],
)
def test_html_to_text_is_quick_on_hostile_markup(unit: str) -> None:
    started = time.perf_counter()
    html_to_text(unit * (1_000_000 // len(unit)))
    assert time.perf_counter() - started < SECONDS
