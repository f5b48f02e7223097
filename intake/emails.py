"""Reading the emails the mailbox stored: safely and quickly, whatever bytes arrived.

Everything here is pure: bytes in, values out, nothing opened, fetched or executed, and
`parse_email` never raises. The standard library does the parsing (`email` with
`policy.default`, `html.parser`), but on hostile input (up to 10 MiB) each of its parts can be
slow or raise, so each is fenced in:

- the feed parser costs time per line, more per header line and per nested multipart, and
  a lot per part; it is given only as much of the message as it can read within the budget
  (`_readable_length`), and RecursionError from deep nesting is caught;
- the structured header parser is superlinear on some values (2 KiB of `"` in To takes ~70 ms)
  and raises on others (`a@` raises IndexError); `_BoundedHeaders` caps, caches and budgets it;
- `html.parser` rescans from every unclosed tag to the end of the input, so a few KiB of `<a\n`
  take seconds; `html_to_text` escapes unclosed tags first and caps the input;
- the MIME tree is walked with explicit depth and part limits.

Every limit that bites is reported in `ParsedEmail.problems`; the raw message stays stored.
"""

from __future__ import annotations

import codecs
import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from email import errors, policy
from email.headerregistry import Address, BaseHeader, Group, HeaderRegistry
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, BytesParser
from html.parser import HTMLParser
from typing import Any, cast

from email_validator import validate_email

MAX_INPUT_BYTES = 10 * 1024 * 1024
MAX_TEXT_CHARS = 100_000
MAX_SUBJECT_CHARS = 998
MAX_MESSAGE_ID_CHARS = 998
MAX_MIME_DEPTH = 10  # the message itself is level 1
MAX_MIME_PARTS = 200
MAX_HTML_CHARS = 300_000
MAX_HTML_TAGS = 50_000
MAX_PROBLEMS = 20
MAX_QUOTE_MARKS = 10  # '>' marks before a line of HTML quoted that deep, or deeper

# What the feed parser may be given, in units of about 0.1 microseconds of its time on a slow
# machine (measured on Python 3.11): a line costs 4, a header line 20 more, each enclosing
# multipart 1 more per line, a part 700, and every 8 bytes 1. A 10 MiB base64 attachment
# (134,000 lines) comes to about 2.1 million; pathological input stops at about 0.25 s.
_PARSE_BUDGET = 2_500_000
_LINE_COST = 4
_HEADER_LINE_COST = 20
_PART_COST = 700
_MAX_BOUNDARIES = 64  # each boundary may add a level the parser checks on every line
_MAX_DELIMITER_LINES = 1_000
_CHUNK_BYTES = 8 * 1024

# Structured header parsing, in estimated microseconds (see `_header_cost`): about 0.15 s.
_HEADER_BUDGET = 150_000
_MAX_HEADER_CHARS = 2_000  # longer values are not parsed at all
_MAX_FROM_CHARS = 998  # one address and a name fit in a line many times over
_MAX_TOKEN_PLACE_CHARS = 32_768
_MAX_ADDRESSES = 100
_MAX_REFERENCES = 100
_MAX_FILENAME_CHARS = 255

_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
# Atomic groups, so that a single CRLF is never read as two line breaks.
_BLANK_LINE = re.compile(rb"(?>\r\n|\r|\n)(?>\r\n|\r|\n)")
_UNFOLD = re.compile(r"\r\n|\r|\n")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_SPACES = re.compile(r"\s+")
_RAW_BYTE = re.compile(r"[\udc80-\udcff]")  # a byte the parser kept as a surrogate escape
_UTF8_CHARACTER = re.compile(r"[^\x00-\x7f\ufffd]")
_ALPHANUMERIC = re.compile(r"[A-Za-z0-9]+")
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,996}>")
# RFC 2045 tokens, lower-cased by the parser; anything else (a NUL, a space) is not a type.
_MEDIA_TYPE = re.compile(r"[a-z0-9!#$%&'*+^_`{|}~.-]+/[a-z0-9!#$%&'*+^_`{|}~.-]+")
_FIRST_WORD = re.compile(r"\s*([A-Za-z0-9_.-]+)")
# An address someone wrote into a display name: '"Jane Smith (jane@nhs.net)" <jane@nhs.net>'.
_ADDRESS_IN_NAME = re.compile(r"[^\s()<>\[\]{},;:\"']*@[^\s()<>\[\]{},;:\"']*")
_EMPTY_BRACKETS = re.compile(r"\(\s*\)|<\s*>|\[\s*\]|\{\s*\}")
_DAEMON = re.compile(r"(?<![\w.+-])(?:mailer-daemon\b|postmaster@)", re.IGNORECASE)

_BODY_TYPES = frozenset({"text/plain", "text/html"})
_REPORT_TYPES = frozenset(
    {
        "message/delivery-status",
        "message/global-delivery-status",
        "message/disposition-notification",
    }
)
_BULK_PRECEDENCE = frozenset({"bulk", "list", "junk", "auto_reply"})
_AUTOREPLY_HEADERS = ("x-autoreply", "x-autorespond")
_AUTOREPLY_SUBJECTS = (
    "out of office",
    "out of the office",
    "automatic reply",
    "auto:",
    "autoreply",
    "auto-reply",
    "auto reply",
)
# Codecs Python has that no mail client means: slow (punycode), or not a character set at all.
_REFUSED_CODECS = frozenset(
    {"punycode", "idna", "undefined", "unicode_escape", "raw_unicode_escape"}
)
_HEADERS_READ = frozenset(
    {
        "from",
        "to",
        "cc",
        "subject",
        "message-id",
        "in-reply-to",
        "references",
        "auto-submitted",
        "precedence",
        "list-id",
        "list-unsubscribe",
        "x-failed-recipients",
        *_AUTOREPLY_HEADERS,
    }
)


@dataclass(frozen=True)
class Attachment:
    """A part that is not the body: recorded, never opened."""

    filename: str | None
    content_type: str
    size: int  # bytes after undoing the transfer encoding


@dataclass(frozen=True)
class ParsedEmail:
    """What intake needs from one stored email; every string is clean, printable text."""

    from_address: str | None  # lower-cased; None unless the From header is one valid address
    from_name: str | None  # the display name, without any address written into it
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    text: str
    attachments: tuple[Attachment, ...]
    automatic: str | None  # why this message must never be answered, or None
    problems: tuple[str, ...]
    # The raw To, Cc, In-Reply-To and References values, where a threading token could be
    # (for `MailThreading.verified_outbox_ids`, with the envelope recipients added by the caller).
    token_places: tuple[str, ...] = ()
    # The display name as written, addresses and all: what to take out of the text that contacts
    # read (with from_address), never to show as the sender's name.
    from_display_name: str | None = None


def parse_email(raw: bytes, *, mail_from: str) -> ParsedEmail:
    """Read a stored email; never raises: anything unexpected becomes a problem and empty text."""
    try:
        return _parse(bytes(raw), mail_from)
    except Exception as error:  # the last line of defence: a stored message must stay readable
        return ParsedEmail(
            from_address=None,
            from_name=None,
            to=(),
            cc=(),
            subject="",
            message_id=None,
            in_reply_to=(),
            references=(),
            text="",
            attachments=(),
            automatic=_null_sender_reason(mail_from),
            problems=(f"the message could not be read ({type(error).__name__})",),
        )


def header_message_id(raw: bytes) -> str | None:
    """The Message-ID of a raw email, read from its headers alone; None if absent or unusable.
    The mailbox reads it for every message before its 250, so a header block of the usual
    shape is read without the parser (`_plain_message_id`, about 80 times faster); any other
    is parsed."""
    try:
        head = _head(raw[:MAX_INPUT_BYTES])
        return _plain_message_id(head) or _parsed_message_id(head)
    except Exception:  # dedupe is best effort: a message without a usable id is still stored
        return None


def _parsed_message_id(head: bytes) -> str | None:
    head = head[: _readable_length(head)]
    # Bounded headers here too: closing the parser reads the Content-Type even so.
    bounded = policy.default.clone(header_factory=_BoundedHeaders())
    message = BytesHeaderParser(policy=bounded).parsebytes(head)
    return _message_id(_header_values(message).get("message-id", []))


# A Message-ID header line, and the usual one: one line, one <id> of printable ASCII, nothing
# folded onto it.
_MESSAGE_ID_LINE = re.compile(rb"^message-id:", re.IGNORECASE | re.MULTILINE)
_PLAIN_MESSAGE_ID = re.compile(
    rb"message-id:[ \t]*(<[!-~]{1,%d}>)[ \t]*\r?\n(?![ \t])" % (MAX_MESSAGE_ID_CHARS - 2),
    re.IGNORECASE,
)
# Lines the parser reads as headers, as its own test does (a field name and a colon, or a
# continuation of the line before); a first line that is neither ('From ...') is not one.
_HEADER_LINES = re.compile(rb"(?:[!-9;-~]*:[^\n]*\n(?:[ \t][^\n]*\n)*)*")
# A header block longer than this is left to the parser.
_PLAIN_HEAD_BYTES = 16 * 1024


def _plain_message_id(head: bytes) -> str | None:
    """The Message-ID the parser would read from a header block, found without it, or None
    when the block is not of the usual shape: short, its lines ending in CRLF or LF alone (the
    parser also breaks lines at a bare CR), every line before the first Message-ID header one
    the parser reads as a header (it ends the headers at any other), and that header plain."""
    if len(head) > _PLAIN_HEAD_BYTES or head.count(b"\r") != head.count(b"\r\n"):
        return None
    # Even a short block may be more than the parser is given (65 'boundary' words, 1,001
    # lines starting '--'): an id beyond what it reads is not the one it would find.
    if _readable_length(head) < len(head):
        return None
    first = _MESSAGE_ID_LINE.search(head)
    if first is None or _HEADER_LINES.fullmatch(head, 0, first.start()) is None:
        return None
    plain = _PLAIN_MESSAGE_ID.match(head, first.start())
    return plain.group(1).decode("ascii") if plain else None


def readable_prefix(raw: bytes) -> bytes:
    """As much of a raw message as `parse_email` reads (whole lines, within its parse budget and
    MAX_INPUT_BYTES): what any other reading of stored mail may give the feed parser."""
    raw = raw[:MAX_INPUT_BYTES]
    return raw[: _readable_length(raw)]


def header_block(raw: bytes) -> bytes:
    """A raw message's header block: everything before the first blank line."""
    return _head(raw)


def html_to_text(html: str) -> str:
    """The text a reader would see in an HTML body; nothing is fetched or run."""
    html = html[:MAX_HTML_CHARS]
    tags = html.count("<")
    if tags > MAX_HTML_TAGS:
        html = html[: _position_of(html, "<", MAX_HTML_TAGS)]
    extractor = _TextExtractor()
    try:
        extractor.feed(_defused(html))
        extractor.close()
    except Exception:  # html.parser asserts on some malformed declarations: keep what was read
        pass
    return _clean_text(extractor.text())[0]


# --- the parse ---------------------------------------------------------------------------------


class _Problems:
    """Problems in the order found, each once, at most MAX_PROBLEMS."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def add(self, problem: str) -> None:
        """Note a problem, unless already noted or there are enough."""
        if problem not in self.found and len(self.found) < MAX_PROBLEMS:
            self.found.append(problem)


def _parse(raw: bytes, mail_from: str) -> ParsedEmail:
    """parse_email's work, which may raise only on a bug."""
    problems = _Problems()
    if len(raw) > MAX_INPUT_BYTES:
        problems.add(f"message larger than {MAX_INPUT_BYTES} bytes: the rest was not read")
        raw = raw[:MAX_INPUT_BYTES]
    readable = _readable_length(raw)
    if readable < len(raw):
        problems.add(
            f"message too large or complex to read in full: read {readable} of {len(raw)} bytes"
        )
    headers = _BoundedHeaders()
    # policy.default with a header factory that bounds its work; everything else is as is.
    email_policy = policy.default.clone(header_factory=headers)
    message: EmailMessage
    parts_read = True
    try:
        message = cast(EmailMessage, BytesParser(policy=email_policy).parsebytes(raw[:readable]))
    except Exception as error:  # RecursionError on deep nesting; stdlib bugs on hostile input
        problems.add(f"MIME structure unreadable ({type(error).__name__}): read the headers only")
        head = _head(raw[:readable])
        message = cast(EmailMessage, BytesHeaderParser(policy=email_policy).parsebytes(head))
        parts_read = False

    values = _header_values(message)
    from_address, from_name, from_display_name = _sender(values.get("from", []), headers, problems)
    to = _addresses("To", values.get("to", []), headers, problems)
    cc = _addresses("Cc", values.get("cc", []), headers, problems)
    subject = _subject(values.get("subject", []), headers)
    body = _read_body(message, problems) if parts_read else _Body()
    if headers.refused or headers.failed:
        problems.add("some headers were too long or malformed to read")
    for defect in _defect_names(message, body.parts):
        problems.add(f"malformed MIME ({defect})")

    token_places = tuple(
        _printable(value[:_MAX_TOKEN_PLACE_CHARS])
        for name in ("to", "cc", "in-reply-to", "references")
        for value in values.get(name, [])
    )
    return ParsedEmail(
        from_address=from_address,
        from_name=from_name,
        from_display_name=from_display_name,
        to=to,
        cc=cc,
        subject=subject,
        message_id=_message_id(values.get("message-id", [])),
        in_reply_to=_message_ids(values.get("in-reply-to", [])),
        references=_message_ids(values.get("references", [])),
        text=body.text,
        attachments=tuple(body.attachments),
        automatic=_automatic_reason(
            values=values,
            mail_from=mail_from,
            subject=subject,
            content_type=_content_type(message),
            report_part=body.report_part,
        ),
        problems=tuple(problems.found),
        token_places=token_places,
    )


@dataclass
class _Tally:
    """What the feed parser would spend on the lines counted so far."""

    work: int = 0
    boundaries: int = 0
    delimiter_lines: int = 0

    def add(self, piece: bytes) -> bool:
        """Count whole lines; False once the parser could not read them all within budget."""
        flat = piece.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = flat.count(b"\n") + (not flat.endswith(b"\n"))
        header_lines = min(lines, flat.count(b":"))
        delimiter_lines = flat.count(b"\n--") + flat.startswith(b"--")
        self.boundaries += flat.lower().count(b"boundary")
        self.delimiter_lines += delimiter_lines
        self.work += (
            lines * (_LINE_COST + min(self.boundaries, _MAX_BOUNDARIES))
            + header_lines * _HEADER_LINE_COST
            + delimiter_lines * _PART_COST
            + len(flat) // 8
        )
        return (
            self.work <= _PARSE_BUDGET
            and self.boundaries <= _MAX_BOUNDARIES
            and self.delimiter_lines <= _MAX_DELIMITER_LINES
        )


def _readable_length(raw: bytes) -> int:
    """How many leading bytes (whole lines) the feed parser can read well within the budget."""
    tally = _Tally()
    start = 0
    while start < len(raw):
        found = _LINE_BREAK.search(raw, min(start + _CHUNK_BYTES, len(raw)) - 1)
        end = found.end() if found else len(raw)
        trial = replace(tally)
        if trial.add(raw[start:end]):
            tally, start = trial, end
            continue
        # Over budget somewhere in this chunk: find the line, one at a time.
        for line in raw[start:end].splitlines(keepends=True):
            if not tally.add(line):
                return start
            start += len(line)
        return start
    return len(raw)


def _head(raw: bytes) -> bytes:
    """The header block: everything before the first blank line."""
    if raw.startswith((b"\r\n", b"\n", b"\r")):
        return b""
    found = _BLANK_LINE.search(raw)
    return raw[: found.end()] if found else raw


class _BoundedHeaders(HeaderRegistry):
    """The standard header classes, with a bound on the parsing one message may cause.

    The feed parser parses each part's Content-Type several times: results are remembered.
    A value too long, too costly for what is left of the budget, or that makes the parser
    raise, is parsed as an empty value instead (Content-Type as application/octet-stream, so
    that such a part is never read as text).
    """

    def __init__(self) -> None:
        super().__init__()
        self.budget = _HEADER_BUDGET
        self.refused = 0
        self.failed = 0
        self._parsed: dict[tuple[str, str], BaseHeader] = {}

    def __call__(self, name: str, value: Any) -> BaseHeader:
        """The parsed header, remembered; an empty one if refused or if the parser raised."""
        key = (name.lower(), str(value))
        if key in self._parsed:
            return self._parsed[key]
        cost = _header_cost(key[1])
        if len(key[1]) > _MAX_HEADER_CHARS or cost > self.budget:
            self.refused += 1
            header = self._empty(name)
        else:
            self.budget -= cost
            try:
                header = super().__call__(name, key[1])
            except Exception:  # e.g. IndexError for 'a@', RecursionError for '((((...'
                self.failed += 1
                header = self._empty(name)
        self._parsed[key] = header
        return header

    def _empty(self, name: str) -> BaseHeader:
        """The header parsed from a harmless stand-in value."""
        fallback = "application/octet-stream" if name.lower() == "content-type" else ""
        return super().__call__(name, fallback)


def _header_cost(value: str) -> int:
    """A pessimistic estimate, in microseconds, of parsing a header value (Python 3.11)."""
    # The parser's slow paths are all about punctuation: quotes, brackets, commas, dots.
    specials = len(_ALPHANUMERIC.sub("", value))
    return 50 + 2 * len(value) + 8 * specials + specials * specials // 100


def _header_values(message: Message) -> dict[str, list[str]]:
    """The unfolded raw values of the headers read here, by lower-case name; nothing parsed."""
    values: dict[str, list[str]] = {}
    for name, value in message.raw_items():
        key = name.lower()
        if key in _HEADERS_READ:
            values.setdefault(key, []).append(_UNFOLD.sub("", str(value)))
    return values


# --- strings -----------------------------------------------------------------------------------


def _printable(value: str) -> str:
    """A header value as text: raw bytes read as UTF-8, control characters removed."""
    # The parser keeps non-ASCII bytes as surrogate escapes; most are UTF-8 (RFC 6532). Other
    # surrogates make this fail, and _CONTROL removes them.
    with contextlib.suppress(UnicodeEncodeError):
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return _CONTROL.sub("", value)


def _utf8(value: str) -> str:
    """A raw header value with its non-ASCII bytes read as UTF-8 (RFC 6532), if they all are.

    Before an address is parsed: a multi-byte UTF-8 character never contains an ASCII byte, so
    this cannot add a comma, bracket or '@'; bytes that are not UTF-8 stay escaped, and the
    parser reports them as a defect.
    """
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeError:
        return value


def _one_line(value: str, limit: int) -> str:
    """Printable text on one line, whitespace collapsed, at most `limit` characters."""
    return " ".join(_printable(value).split())[:limit].strip()


def _clean_text(text: str) -> tuple[str, bool]:
    """Text with \\n line ends and no control characters, capped; and whether it was cut."""
    # Cleaning only removes characters, so twice the cap is enough to start from.
    text = text[: 2 * MAX_TEXT_CHARS].replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    return text[:MAX_TEXT_CHARS], len(text) > MAX_TEXT_CHARS


# --- headers -----------------------------------------------------------------------------------


def _sender(
    values: list[str], headers: _BoundedHeaders, problems: _Problems
) -> tuple[str | None, str | None, str | None]:
    """The From address, name and display name as written, only when From is exactly one valid
    address and nothing else."""
    if len(values) != 1:
        problems.add("no From header" if not values else "more than one From header")
        return None, None, None
    value = values[0]
    if len(value) > _MAX_FROM_CHARS:
        problems.add("From header too long")
        return None, None, None
    header = headers("from", _utf8(value))
    addresses: tuple[Address, ...] = getattr(header, "addresses", ())
    groups: tuple[Group, ...] = getattr(header, "groups", ())
    if len(addresses) != 1 or len(groups) != 1 or groups[0].display_name:
        problems.add("From is not exactly one valid address")
        return None, None, None
    address = addresses[0]
    if not address.username or not address.domain:
        problems.add("From is not exactly one valid address")
        return None, None, None
    if header.defects and not _only_the_name_is_malformed(header, address, value, headers):
        problems.add("From is not exactly one valid address")
        return None, None, None
    try:
        checked = validate_email(address.addr_spec, check_deliverability=False)
    except Exception:  # EmailNotValidError, or anything the validator trips on
        problems.add("From is not exactly one valid address")
        return None, None, None
    written = _one_line(_display_name(address.display_name or "", problems), 200)
    # A name that holds an address ('"victim@nhs.net" <attacker@...>') would mislead a reader,
    # but clients write the sender's own address in ('"Jane Smith (jane@...)" <jane@...>'): the
    # rest is still the learner's name, which contacts of a confidential concern must not read.
    name = _without_addresses(written)
    return checked.normalized.lower(), (name or None), (written or None)


def _without_addresses(name: str) -> str:
    """A display name with any address written into it taken out, and the brackets it was in."""
    if "@" not in name:
        return name
    name = _ADDRESS_IN_NAME.sub(" ", name)
    name = _EMPTY_BRACKETS.sub(" ", name)
    name = " ".join(name.split()).strip(" ,;:-–—|/\\\"'")
    # Whatever is left must have a letter in it to be a name.
    return name if any(character.isalpha() for character in name) else ""


def _only_the_name_is_malformed(
    header: BaseHeader, address: Address, value: str, headers: _BoundedHeaders
) -> bool:
    """Whether From's defects are all in the display name before a clean '<address>'.

    Mail clients write names RFC 5322 calls obsolete ('Dr. Jane Smith', 'Jane.Smith': a period
    in a phrase, which Python writes itself) or in raw 8-bit bytes: the address is still one
    and clear. Anything else (a second address, a garbled one, bytes in the address) stays
    refused.
    """
    if not all(_is_name_defect(defect) for defect in header.defects):
        return False
    before, bracket, angle = value.rstrip().rpartition("<")
    if not bracket or not before.strip() or not angle.endswith(">"):
        return False
    alone = headers("from", f"<{angle}")
    found: tuple[Address, ...] = getattr(alone, "addresses", ())
    return not alone.defects and len(found) == 1 and found[0].addr_spec == address.addr_spec


def _is_name_defect(defect: Exception) -> bool:
    """A defect a display name may have: a period in its words, or bytes that are not UTF-8."""
    if isinstance(defect, errors.ObsoleteHeaderDefect):
        return "phrase" in str(defect)
    return isinstance(defect, errors.UndecodableBytesDefect)


def _display_name(name: str, problems: _Problems) -> str:
    """A display name as text: raw bytes that are not UTF-8 read as Windows-1252, as the text."""
    if not _RAW_BYTE.search(name):
        return name
    try:
        data = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # other surrogates: _printable removes them
        return name
    problems.add("sender's name not in UTF-8: read as Windows-1252")
    return data.decode("cp1252", "replace")


def _addresses(
    label: str, values: list[str], headers: _BoundedHeaders, problems: _Problems
) -> tuple[str, ...]:
    """The addresses in To or Cc headers, lower-cased, each once; malformed entries skipped."""
    found: list[str] = []
    for value in values:
        if len(value) > _MAX_HEADER_CHARS:
            problems.add(f"{label} header too long: its addresses were not read")
            continue
        for address in getattr(headers(label, _utf8(value)), "addresses", ()):
            spec = _printable(address.addr_spec).lower()
            usable = address.username and address.domain and spec == address.addr_spec.lower()
            if usable and spec not in found and len(found) < _MAX_ADDRESSES:
                found.append(spec)
    return tuple(found)


def _subject(values: list[str], headers: _BoundedHeaders) -> str:
    """The first Subject, decoded, on one line."""
    if not values:
        return ""
    # A subject longer than this raw could never fit in MAX_SUBJECT_CHARS once decoded.
    return _one_line(str(headers("subject", values[0][:_MAX_HEADER_CHARS])), MAX_SUBJECT_CHARS)


def _message_id(values: list[str]) -> str | None:
    """The first Message-ID as written (stripped), or None if absent, empty or too long."""
    if not values:
        return None
    value = _printable(values[0]).strip()
    return value if value and len(value) <= MAX_MESSAGE_ID_CHARS else None


def _message_ids(values: list[str]) -> tuple[str, ...]:
    """The <message-ids> in In-Reply-To or References headers, in order, each once."""
    found: list[str] = []
    for value in values:
        for match in _MESSAGE_ID.finditer(_printable(value[:_MAX_TOKEN_PLACE_CHARS])):
            if match.group(0) not in found:
                found.append(match.group(0))
                if len(found) >= _MAX_REFERENCES:
                    return tuple(found)
    return tuple(found)


def _content_type(part: Message) -> str:
    """The part's type/subtype, or application/octet-stream when it is not a clean token pair."""
    try:
        content_type = part.get_content_type()
    except Exception:  # the header factory makes this unlikely; a type is still needed
        return "application/octet-stream"
    return content_type if _MEDIA_TYPE.fullmatch(content_type) else "application/octet-stream"


# --- never answer these ------------------------------------------------------------------------


def _null_sender_reason(mail_from: str) -> str | None:
    """Why an empty envelope sender ('MAIL FROM:<>') means no answer, or None."""
    if str(mail_from).strip() in ("", "<>"):
        return "null envelope sender (a bounce or automatic message)"
    return None


def _automatic_reason(
    *,
    values: dict[str, list[str]],
    mail_from: str,
    subject: str,
    content_type: str,
    report_part: bool,
) -> str | None:
    """Why this message must never get an automatic answer (RFC 3834 and common practice)."""
    for value in values.get("auto-submitted", []):
        word = _FIRST_WORD.match(value)
        if not word or word.group(1).lower() != "no":
            return f"Auto-Submitted: {_one_line(word.group(1), 40) if word else 'present'}"
    if content_type == "multipart/report" or report_part or "x-failed-recipients" in values:
        return "delivery status report (bounce)"
    null_sender = _null_sender_reason(mail_from)
    if null_sender:
        return null_sender
    for value in values.get("precedence", []):
        word = _FIRST_WORD.match(value)
        if word and word.group(1).lower() in _BULK_PRECEDENCE:
            return f"Precedence: {word.group(1).lower()}"
    for name, shown in (("list-id", "List-Id"), ("list-unsubscribe", "List-Unsubscribe")):
        if name in values:
            return f"mailing list ({shown})"
    for name in _AUTOREPLY_HEADERS:
        if any(value.strip().lower() != "no" for value in values.get(name, [])):
            return f"automatic reply ({name})"
    lowered = subject.lower()
    for prefix in _AUTOREPLY_SUBJECTS:
        if lowered.startswith(prefix):
            return f"automatic reply (subject starts '{prefix}')"
    if any(_DAEMON.search(value) for value in values.get("from", [])):
        return "delivery status report (from the mail system)"
    return None


# --- the MIME tree -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Body:
    """What the MIME walk found."""

    text: str = ""
    attachments: tuple[Attachment, ...] = ()
    report_part: bool = False  # a delivery or disposition report is among the parts
    parts: tuple[Message, ...] = ()  # the parts walked, for their defects


def _parts(root: Message, problems: _Problems) -> Iterator[Message]:
    """Every part in document order, at most MAX_MIME_PARTS and MAX_MIME_DEPTH levels deep.

    Attached messages (message/*) are not entered: they are attachments.
    """
    stack: list[tuple[Message, int]] = [(root, 1)]
    seen = 0
    while stack:
        part, depth = stack.pop()
        if depth > MAX_MIME_DEPTH:
            problems.add("MIME nesting too deep")
            continue
        seen += 1
        if seen > MAX_MIME_PARTS:
            problems.add("too many MIME parts")
            return
        yield part
        # get_payload() only on containers: on a leaf it decodes with the declared charset.
        if part.is_multipart() and _content_type(part).startswith("multipart/"):
            children = cast(list[Message], part.get_payload())
            stack.extend((child, depth + 1) for child in reversed(children))


def _read_body(message: EmailMessage, problems: _Problems) -> _Body:
    """The text, the attachments, and whether a delivery report is among the parts."""
    plain: Message | None = None
    html: Message | None = None
    attachments: list[Attachment] = []
    report_part = False
    walked: list[Message] = []
    for part in _parts(message, problems):
        walked.append(part)
        try:
            content_type = _content_type(part)
            report_part = report_part or content_type in _REPORT_TYPES
            if content_type.startswith("multipart/"):
                if not part.is_multipart():
                    problems.add("a multipart part without a usable boundary was not read")
                continue
            if part.is_multipart():  # an attached message, parsed but not entered
                attachments.append(Attachment(_filename(part), content_type, _message_size(part)))
                continue
            if content_type in _BODY_TYPES and not cast(EmailMessage, part).is_attachment():
                if content_type == "text/plain" and plain is None:
                    plain = part
                elif content_type == "text/html" and html is None:
                    html = part
                continue
            attachments.append(Attachment(_filename(part), content_type, _decoded_size(part)))
        except Exception as error:  # one unreadable part must not lose the others
            problems.add(f"a MIME part could not be read ({type(error).__name__})")

    text = ""
    # The plain text, unless it is blank: some clients send an empty one beside the HTML.
    for chosen in (plain, html):
        if chosen is None:
            continue
        try:
            text = _part_text(chosen, problems)
            if chosen is html:
                if len(text) > MAX_HTML_CHARS or text.count("<") > MAX_HTML_TAGS:
                    problems.add(
                        f"HTML longer than {MAX_HTML_CHARS} characters or {MAX_HTML_TAGS} tags: "
                        "the rest was not read"
                    )
                text = html_to_text(text)
        except Exception as error:
            problems.add(f"the text could not be read ({type(error).__name__})")
        if text.strip():
            break
    text, cut = _clean_text(text)
    if cut:
        problems.add(f"text longer than {MAX_TEXT_CHARS} characters: the rest was cut")
    return _Body(
        text=text,
        attachments=tuple(attachments),
        report_part=report_part,
        parts=tuple(walked),
    )


def _filename(part: Message) -> str | None:
    """A part's file name on one clean line, or None."""
    try:
        name = part.get_filename()
    except Exception:  # malformed RFC 2231 parameters
        return None
    if not name:
        return None
    return _one_line(str(name), _MAX_FILENAME_CHARS) or None


def _decoded_size(part: Message) -> int:
    """The size of a part's content once its transfer encoding is undone; never opened."""
    payload = part.get_payload(decode=True)
    return len(payload) if isinstance(payload, bytes) else 0


def _message_size(part: Message) -> int:
    """About how many bytes an attached message holds: its parts' content and headers."""
    total = 0
    stack = list(cast(list[Message], part.get_payload()))
    visited = 0
    while stack and visited < MAX_MIME_PARTS:
        current = stack.pop()
        visited += 1
        total += sum(len(name) + len(str(value)) + 4 for name, value in current.raw_items())
        if current.is_multipart():
            stack.extend(cast(list[Message], current.get_payload()))
        else:
            total += _decoded_size(current)
    return total


def _part_text(part: Message, problems: _Problems) -> str:
    """A text part's content in its declared charset, or the likeliest one when that fails."""
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    declared = part.get_content_charset()
    return _decode(data, declared, problems)


def _codec(charset: str | None) -> str | None:
    """Python's codec for a declared charset, or None when Python has none it should use."""
    if not charset:
        return None
    try:
        name = codecs.lookup(charset).name
    except (LookupError, ValueError, TypeError):
        return None
    return None if name.replace("-", "_") in _REFUSED_CODECS else name


def _decode(data: bytes, declared: str | None, problems: _Problems) -> str:
    """Bytes as text: the declared charset, else UTF-8, else Windows-1252; never fails."""
    codec = _codec(declared or "us-ascii")
    if declared and codec is None:
        problems.add(f"unknown charset {_one_line(declared, 40)!r}")
    if codec is not None:
        try:
            return data.decode(codec)
        except (UnicodeError, LookupError):
            pass
    try:
        return data.decode("utf-8")
    except UnicodeError:
        pass
    # UTF-8 with a stray byte or two (it has some valid UTF-8 characters): keep it, marking
    # the damage; text without a single one is not UTF-8 at all.
    lenient = data.decode("utf-8", "replace")
    if _UTF8_CHARACTER.search(lenient):
        problems.add("text not valid in its charset: unreadable bytes replaced")
        return lenient
    problems.add("text not in its declared charset: read as Windows-1252")
    # Windows-1252 rather than plain Latin-1: mislabelled mail is nearly always from Windows,
    # and Latin-1 would turn its curly quotes into control characters, which are then removed.
    return data.decode("cp1252", "replace")


def _defect_names(message: Message, parts: tuple[Message, ...]) -> list[str]:
    """The kinds of MIME defect the parser noted, each once, at most five."""
    names: list[str] = []
    for part in (message, *parts):
        for defect in getattr(part, "defects", ()):
            name = type(defect).__name__
            if name not in names:
                names.append(name)
    return names[:5]


# --- HTML --------------------------------------------------------------------------------------

_HIDDEN_TAGS = frozenset({"script", "style", "head", "template", "title"})
_BLOCK_TAGS = frozenset(
    {
        "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol",
        "blockquote", "pre", "hr", "section", "article", "header", "footer", "dl", "dt", "dd",
        "address", "figure", "main", "nav", "aside", "form", "fieldset",
    }
)  # fmt: skip
_CELL_TAGS = frozenset({"td", "th"})
# Elements whose start marks the rest of an HTML reply as the message replied to (Outlook's
# reply header block, whatever its language), lower case.
_QUOTE_HEADER_IDS = frozenset({"divrplyfwdmsg"})
# A '<' whose next angle bracket is another '<' (or the end) starts nothing that can close.
_UNCLOSED_TAG = re.compile(r"<(?=[^<>]*(?:<|\Z))")
# Marked sections other than Word's closed <![if ...]>: html.parser asserts on unknown ones
# and rescans to the end for unclosed ones.
_MARKED_SECTION = re.compile(r"<!\[(?!(?:if|else|endif)\b[^<>]*\]\s*>)", re.IGNORECASE)


def _defused(html: str) -> str:
    """The HTML without comments, with every construct that cannot close escaped as text.

    html.parser (3.11) rescans from each unclosed construct to the end of the input, which
    is quadratic; afterwards every construct it meets ends before the next one begins.
    """
    pieces: list[str] = []
    position = 0
    while True:
        start = html.find("<!--", position)
        if start < 0:
            pieces.append(html[position:])
            break
        pieces.append(html[position:start])
        end = html.find("-->", start + 2)
        if end < 0:
            break  # an unclosed comment hides the rest, as it does in a browser
        position = end + 3
    text = _MARKED_SECTION.sub("&lt;![", "".join(pieces))
    return _UNCLOSED_TAG.sub("&lt;", text)


def _position_of(text: str, needle: str, count: int) -> int:
    """Where the `count`-th occurrence of `needle` starts (bisecting with str.count)."""
    low, high = 0, len(text)
    while low < high:
        middle = (low + high) // 2
        if text.count(needle, 0, middle + 1) > count:
            high = middle
        else:
            low = middle + 1
    return low


class _TextExtractor(HTMLParser):
    """Collects what a reader would see, with line breaks where blocks begin and end, and the
    lines of a quoted message marked with '>' as a plain-text client marks them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._pieces: list[tuple[str, int]] = []  # text, and how deep in quotes it is
        self._hidden = 0
        self._pre = 0
        self._quotes = 0
        self._quoted_to_the_end = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self._hidden = 0  # an unclosed <head> ends where the body starts, as in a browser
        elif tag in _HIDDEN_TAGS:
            self._hidden += 1
        elif tag == "br" or tag in _BLOCK_TAGS:
            self._pieces.append(("\n", 0))
        elif tag in _CELL_TAGS:
            self._pieces.append((" ", 0))
        if tag == "pre":
            self._pre += 1
        elif tag == "blockquote":
            self._quotes += 1
        if any(
            name == "id" and (value or "").lower() in _QUOTE_HEADER_IDS for name, value in attrs
        ):
            # Outlook's reply header: the message replied to follows it, unmarked, to the end.
            self._quoted_to_the_end = True

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BLOCK_TAGS:
            self._pieces.append(("\n", 0))
        if tag == "pre":
            self._pre = max(0, self._pre - 1)
        elif tag == "blockquote":
            self._quotes = max(0, self._quotes - 1)

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            depth = max(self._quotes, int(self._quoted_to_the_end))
            self._pieces.append((data if self._pre else _SPACES.sub(" ", data), depth))

    def text(self) -> str:
        """The collected text: lines trimmed, runs of blank lines collapsed to one, each line
        in a quote marked with as many '>' as it is deep (at most MAX_QUOTE_MARKS)."""
        lines: list[str] = []
        words: list[str] = []
        depth: int | None = None  # of the line's first visible text

        def end_line() -> None:
            line = "".join(words).strip()
            if line and depth:
                line = f"{'>' * min(depth, MAX_QUOTE_MARKS)} {line}"
            if line or (lines and lines[-1]):
                lines.append(line)

        for piece, piece_depth in self._pieces:
            for index, part in enumerate(piece.split("\n")):
                if index:
                    end_line()
                    words, depth = [], None
                words.append(part)
                if depth is None and part.strip():
                    depth = piece_depth
        end_line()
        return "\n".join(lines).strip()
