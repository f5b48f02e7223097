"""Malformed and hostile mail, generated: parse_email always answers, quickly, with clean text."""

from __future__ import annotations

import base64
import binascii
import gc
import quopri
import time
from collections.abc import Callable
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake.emails import (
    MAX_SUBJECT_CHARS,
    MAX_TEXT_CHARS,
    ParsedEmail,
    header_message_id,
    html_to_text,
    parse_email,
)

SECONDS = 2.0  # per call; the limits aim at well under half a second on a slow machine
# Deterministic, so that a failure in CI is the same failure on a laptop.
FUZZ = settings(
    derandomize=True,
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(FUZZ, max_examples=10)
T = TypeVar("T")


def quick_parse(raw: bytes, mail_from: str = "learner@example.ac.uk") -> ParsedEmail:
    parsed = within_bound(lambda: parse_email(raw, mail_from=mail_from))
    within_bound(lambda: header_message_id(raw))
    assert_clean(parsed)
    return parsed


def within_bound(work: Callable[[], T]) -> T:
    """Run `work`, asserting it took less than SECONDS of this thread's CPU time.

    The bound is on the parser's own work: what another process takes of the two cores, and a
    full pass of the collector over this test process's large heap (a second or more), are not
    counted, so the bound catches a parser that blows up and nothing else."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        started = time.thread_time()
        result = work()
        assert time.thread_time() - started < SECONDS
    finally:
        if collecting:
            gc.enable()
    return result


def clean(text: str) -> bool:
    """Storable and showable: valid UTF-8, no control characters but newline and tab."""
    text.encode("utf-8")  # raises on surrogates
    return not any((ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F for c in text)


def assert_clean(parsed: ParsedEmail) -> None:
    assert isinstance(parsed, ParsedEmail)
    assert len(parsed.text) <= MAX_TEXT_CHARS and clean(parsed.text)
    assert len(parsed.subject) <= MAX_SUBJECT_CHARS and clean(parsed.subject)
    assert "\n" not in parsed.subject and "\t" not in parsed.subject
    if parsed.from_address is not None:
        assert parsed.from_address == parsed.from_address.lower()
        assert parsed.from_address.count("@") == 1
    singles = [parsed.from_address, parsed.from_name, parsed.message_id]
    for text in [
        *(value for value in singles if value is not None),
        *parsed.to,
        *parsed.cc,
        *parsed.in_reply_to,
        *parsed.references,
        *parsed.problems,
        *parsed.token_places,
        *(a.filename for a in parsed.attachments if a.filename is not None),
        *(a.content_type for a in parsed.attachments),
    ]:
        assert clean(text)
    assert all(a.size >= 0 for a in parsed.attachments)


# --- generated MIME ----------------------------------------------------------------------------

printable = st.characters(min_codepoint=32, max_codepoint=126)
boundaries = st.one_of(
    st.text(printable, max_size=75),
    st.sampled_from(["", "b", "--", " ", '"', "a b", "x" * 200, "=_Part_0", "b1"]),
)
charsets = st.sampled_from(
    ["utf-8", "us-ascii", "iso-8859-1", "windows-1252", "utf-16", "utf-7", "gb2312", "x-bogus",
     "base64", "rot13", "punycode", "unicode_escape", "", '"', "utf-8''x", "undefined"]
)  # fmt: skip
encodings = st.sampled_from(
    ["7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode", "bogus", ""]
)
leaf_types = st.sampled_from(
    ["text/plain", "text/html", "application/pdf", "image/png", "message/rfc822",
     "message/delivery-status", "text/rfc822-headers", "multipart/mixed", "bogus", ""]
)  # fmt: skip
multipart_types = st.sampled_from(["mixed", "alternative", "related", "report", "digest", "x"])
header_names = st.sampled_from(
    ["From", "To", "Cc", "Subject", "Message-ID", "In-Reply-To", "References", "Content-Type",
     "Content-Disposition", "Content-Transfer-Encoding", "Auto-Submitted", "Precedence",
     "List-Id", "MIME-Version", "X-Anything", "From ", ":", ""]
)  # fmt: skip
header_values = st.one_of(
    st.binary(max_size=200),
    st.text(st.sampled_from(list('"\\()<>@,;:.[]=? \taZ\r\n\x00\xe9')), max_size=300).map(
        lambda text: text.encode("utf-8")
    ),
    st.sampled_from(
        [b"=?utf-8?q?a@b.c=2C_d@e.f?=", b"=?x-bogus?b?!!!?=", b"a@", b"<<<<", b"(((((", b"a@b.c"]
    ),
)
header_lines = st.builds(
    lambda name, value: name.encode() + b": " + value, header_names, header_values
)


def encode_body(data: bytes, encoding: str, damage: int) -> bytes:
    """The payload in its transfer encoding, then damaged a little (or not)."""
    if encoding == "base64":
        data = base64.encodebytes(data)
    elif encoding == "quoted-printable":
        data = quopri.encodestring(data)
    elif encoding == "x-uuencode":
        data = b"begin 644 f\n" + binascii.b2a_uu(data[:45]) + b"end\n"
    if damage and data:
        position = damage % len(data)
        data = data[:position] + b"=?!\x00\xff" + data[position + 1 :]
    return data


@st.composite
def leaves(draw: st.DrawFn) -> bytes:
    content_type = draw(leaf_types)
    encoding = draw(encodings)
    headers = [
        f"Content-Type: {content_type}; charset={draw(charsets)}".encode(),
        f"Content-Transfer-Encoding: {encoding}".encode(),
        *draw(st.lists(header_lines, max_size=3)),
    ]
    if draw(st.booleans()):
        headers.append(b'Content-Disposition: attachment; filename="' + draw(header_values) + b'"')
    body = encode_body(draw(st.binary(max_size=500)), encoding, draw(st.integers(0, 3)))
    return b"\r\n".join(headers) + b"\r\n\r\n" + body


def multiparts(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        boundary = draw(boundaries).encode()
        # Sometimes the delimiter lines use another boundary than the declared one.
        delimiter = boundary if draw(st.integers(0, 4)) else draw(boundaries).encode()
        subtype = draw(multipart_types)
        body = draw(st.binary(max_size=40))  # preamble
        for child in draw(st.lists(children, max_size=5)):
            body += b"\r\n--" + delimiter + draw(st.sampled_from([b"", b" ", b"--", b"x"]))
            body += b"\r\n" + child
        if draw(st.booleans()):  # closed, or left open
            body += b"\r\n--" + delimiter + b"--\r\n"
        body += draw(st.binary(max_size=40))  # epilogue
        head = f'Content-Type: multipart/{subtype}; boundary="'.encode() + boundary + b'"'
        return head + b"\r\n\r\n" + body

    return build()


mime_trees = st.recursive(leaves(), multiparts, max_leaves=12)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """A message: random top headers, a random MIME tree, perhaps cut short or re-lined."""
    top = draw(st.lists(header_lines, max_size=8))
    raw = b"\r\n".join([b"From: Jane <jane@example.ac.uk>", *top]) + b"\r\n" + draw(mime_trees)
    line_ends = draw(st.sampled_from([b"\r\n", b"\n", b"\r"]))
    raw = raw.replace(b"\r\n", line_ends)
    if draw(st.booleans()):
        raw = raw[: draw(st.integers(0, len(raw)))]
    return raw


@FUZZ
@given(messages(), st.sampled_from(["learner@example.ac.uk", "", "<>", "\x00"]))
def test_generated_malformed_mime_is_always_read(raw: bytes, mail_from: str) -> None:
    quick_parse(raw, mail_from)


@FUZZ
@given(st.binary(max_size=4000))
def test_random_bytes_are_always_read(raw: bytes) -> None:
    quick_parse(raw)


@FUZZ
@given(
    st.lists(
        st.sampled_from(
            [b"From: a@b.cc\r\n", b"\r\n", b"--b\r\n", b"--b--\r\n", b"Content-Type: ",
             b'multipart/mixed; boundary="b"\r\n', b"message/rfc822\r\n", b"text/html\r\n",
             b"<a\n", b"<!--", b"=?utf-8?q?", b"\x00", b"\xff", b" ", b"\t", b'"', b"("]
        ),
        max_size=400,
    )
)  # fmt: skip
def test_random_mime_fragments_are_always_read(fragments: list[bytes]) -> None:
    quick_parse(b"".join(fragments))


# --- large and deep ----------------------------------------------------------------------------


@FEW
@given(
    st.sampled_from(["Subject", "From", "To", "Content-Type", "References", "X-Long"]),
    st.sampled_from(['"', "(", "a", "=?utf-8?q?a?= ", ",", "<", "a@b.c,", "\\", "é"]),
    st.integers(100_000, 3_000_000),
)
def test_huge_header_lines_are_read_quickly(name: str, unit: str, length: int) -> None:
    value = (unit * (length // len(unit) + 1))[:length].encode()
    raw = b"From: jane@example.ac.uk\r\n" + name.encode() + b": " + value + b"\r\n\r\nbody"
    quick_parse(raw)


@FEW
@given(
    st.integers(100, 1500),
    st.sampled_from(["multipart", "message", "digest"]),
    st.booleans(),
    st.integers(0, 200_000),
)
def test_deeply_nested_messages_are_read_quickly(
    depth: int, kind: str, same_boundary: bool, filler_lines: int
) -> None:
    raw = b"From: jane@example.ac.uk\r\n"
    for level in range(depth):
        boundary = b"b" if same_boundary else b"b%d" % level
        if kind == "message":
            raw += b"Content-Type: message/rfc822\r\n\r\n"
        else:
            subtype = b"digest" if kind == "digest" else b"mixed"
            raw += b"Content-Type: multipart/" + subtype + b'; boundary="' + boundary + b'"\r\n'
            raw += b"\r\n--" + boundary + b"\r\n"
    raw += b"Content-Type: text/plain\r\n\r\ntext\r\n" + b"X: y\r\n" * filler_lines
    parsed = quick_parse(raw)
    assert parsed.from_address == "jane@example.ac.uk"
    if kind == "message":  # an attached message is an attachment, never entered
        assert [a.content_type for a in parsed.attachments] == ["message/rfc822"]
    elif same_boundary:  # every level's delimiter closes the level above: malformed, not deep
        assert parsed.problems
    else:
        assert "MIME nesting too deep" in parsed.problems


# --- HTML --------------------------------------------------------------------------------------

html_pieces = st.sampled_from(
    ["<", ">", "</", "<!--", "-->", "<!", "<?", "<![", "]]>", "<![if x]>", "<![endif]>", "<a",
     "<a b='", "<a b=\"", "'", '"', "=", "/", "<script>", "</script>", "<style>", "<head>",
     "<body>", "<p>", "<br/>", "<blockquote>", "</blockquote>", "&", "&amp;", "&#", "&#x", ";",
     "x", " ", "\n", "\x00", "é"]
)  # fmt: skip


@FUZZ
@given(st.lists(html_pieces, min_size=1, max_size=3000), st.integers(1, 1000))
def test_html_to_text_is_always_quick_and_clean(pieces: list[str], repeat: int) -> None:
    html = "".join(pieces) * repeat
    started = time.perf_counter()
    text = html_to_text(html)
    assert time.perf_counter() - started < SECONDS
    assert clean(text)


# Pieces of header blocks: the usual, and each shape the quick reading of a Message-ID must
# leave to the parser (folded, commented, spaced, a bare CR, a line that ends the headers).
_HEADER_PIECES = st.sampled_from(
    [
        b"From: Jane <jane@example.ac.uk>",
        b"Subject: Nights on Ward 7",
        b"Subject: =?utf-8?q?caf=C3=A9?=",
        b"X-Long: one\r\n two",
        b" continued",
        b"\tcontinued",
        b"From jane@example.ac.uk Mon Nov 23 10:00:00 2026",
        b"not a header line",
        b": empty name",
        b"Message-ID: <a.1@example.ac.uk>",
        b"message-id:<b.2@example.ac.uk>   ",
        b"MESSAGE-ID:   <c.3@example.ac.uk>",
        b"Message-ID : <d.4@example.ac.uk>",
        b"Message-ID: <e.5@example.ac.uk> (a comment)",
        b"Message-ID: e.6@example.ac.uk",
        b"Message-ID:\r\n <f.7@example.ac.uk>",
        b"Message-ID: <g.8@example.ac.uk>\r\n folded on",
        b"Message-ID: <h.9@exa\xc3\xa9mple.ac.uk>",
        b"Message-ID: <i.10@example.ac.uk>\rX-After: bare CR",
        b"Message-ID: <>",
        b"Message-ID: <" + b"j" * 1000 + b"@example.ac.uk>",
    ]
)


@FUZZ
@given(
    pieces=st.lists(_HEADER_PIECES, max_size=8),
    ending=st.sampled_from([b"\r\n", b"\n"]),
    body=st.sampled_from([b"Body.\r\n", b"Message-ID: <body@example.ac.uk>\r\n", b""]),
)
def test_the_quick_message_id_is_the_one_the_parser_reads(
    pieces: list[bytes], ending: bytes, body: bytes
) -> None:
    """The mailbox reads a Message-ID before every 250 without the parser when it can: it must
    read the same one the parser does (duplicates are found by it), or leave it to the parser."""
    from intake.emails import _head, _parsed_message_id, _plain_message_id

    raw = ending.join(pieces) + ending + ending + body
    head = _head(raw)
    quick = _plain_message_id(head)
    assert quick is None or quick == _parsed_message_id(head)
    assert header_message_id(raw) == _parsed_message_id(head)


def test_the_usual_message_id_is_read_without_the_parser() -> None:
    from intake.emails import _plain_message_id

    head = (
        b"From: Jane <jane@example.ac.uk>\r\nTo: concerns@example.nhs.uk\r\n"
        b"Subject: Nights\r\n X-continued\r\nMessage-ID: <a.1@example.ac.uk>\r\n"
        b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n"
    )
    assert _plain_message_id(head) == "<a.1@example.ac.uk>"
    assert _plain_message_id(head.replace(b"\r\n", b"\n")) == "<a.1@example.ac.uk>"


@pytest.mark.parametrize(
    "raw",
    [
        # Under 16 KiB, yet more than the parser is given: 65 'boundary' words, 1,001 '--' lines.
        b"X-A: " + b"boundary " * 65 + b"\r\nMessage-ID: <a.1@example.ac.uk>\r\n\r\nBody.\r\n",
        b"--x: y\n" * 1001 + b"Message-ID: <a.1@example.ac.uk>\n\nBody.\n",
    ],
)
def test_the_quick_message_id_is_not_read_past_what_the_parser_reads(raw: bytes) -> None:
    """A short header block is not always read whole: the parser is given only what
    `_readable_length` allows, and the quick reading must not find an id beyond it."""
    from intake.emails import _head, _parsed_message_id

    assert header_message_id(raw) == _parsed_message_id(_head(raw))
