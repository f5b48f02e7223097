"""Builds the email we send for one outbox row: safe headers, threading, text and HTML parts.

Everything here comes from stored text, so nothing is trusted: a subject with a line break is
flattened and an address that is not one plain `local@domain` is refused, so no stored value can
ever add a header (a Bcc, say) to what we send.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import Policy
from email.utils import format_datetime
from pathlib import PurePosixPath
from typing import Any, Protocol

from notifications.messages import MessageKind
from notifications.threading import MailThreading

FROM_NAME = "Learner concerns service"

# Line endings are CRLF on the wire; each part is 7-bit clean (quoted-printable or base64 when
# needed), so a relay without 8BITMIME carries it unchanged.
SMTP_POLICY = policy.SMTP.clone(cte_type="7bit")

# A conservative addr-spec: dot-atom local part and a host name. Quoted local parts, IP literals
# and comments are legal but never appear in a directory or on our form; refusing them keeps
# the rule short enough to trust.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_PART = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
ADDRESS_MAX = 254
# A reference goes into a Message-ID: anything but our own shape (LC-2026-000123) stays out.
_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# An attachment's name reaches a Content-Disposition header and, at the recipient, a file system:
# letters, digits, dot, dash and underscore only, no leading dot, no path.
_UNSAFE_FILENAME_RUN = re.compile(r"[^A-Za-z0-9._-]+")
FILENAME_MAX = 100
FALLBACK_FILENAME = "attachment"
# The Message-ID of the learner's own email, echoed back so our answer joins its thread: it came
# from their mail, so only a plain msg-id is used ('<left@right>', printable ASCII, no spaces, no
# line breaks, no '<', '>' or '@' beyond its own, no RFC 2047 '=?' that a client could decode).
# Anything else is left out, and the email still threads by our own thread root.
_ID_TEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+"
# An address literal on the right ('[192.0.2.1]', '[IPv6:2001:db8::1]') and nothing else in
# brackets: '<a@[b>,<c@d]>' would be read by clients as two ids of the sender's choosing.
_MSG_ID = re.compile(rf"<{_ID_TEXT}@(?:{_ID_TEXT}|\[[A-Za-z0-9.:-]+\])>")
MESSAGE_ID_MAX = 250
_MIME_TOKEN = r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}"
_CONTENT_TYPE = re.compile(rf"({_MIME_TOKEN})/({_MIME_TOKEN})")


class OutgoingEmail(Protocol):
    """What compose needs of one queued email (a storage row's fields, without storage)."""

    @property
    def id(self) -> int: ...
    @property
    def reference(self) -> str | None: ...
    @property
    def recipient_address(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def body_text(self) -> str: ...
    @property
    def body_html(self) -> str | None: ...
    @property
    def kind(self) -> str: ...
    @property
    def recipient_role(self) -> str: ...
    @property
    def created_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class Attachment:
    """A file sent with a message (the monthly report's CSV); its text is sent as UTF-8."""

    filename: str
    content_type: str
    text: str

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> Attachment:
        """An attachment as the outbox stores it ({filename, content_type, text}); raises
        ValueError when a field is missing or not text."""
        filename, content_type, text = (
            stored.get(name) for name in ("filename", "content_type", "text")
        )
        if not (isinstance(filename, str) and isinstance(content_type, str)):
            raise ValueError("an attachment needs a filename and a content_type")
        if not isinstance(text, str):
            raise ValueError("an attachment needs its text")
        return cls(filename=filename, content_type=content_type, text=text)

    def as_stored(self) -> dict[str, str]:
        """The JSON object the outbox keeps for this attachment."""
        return {"filename": self.filename, "content_type": self.content_type, "text": self.text}


# Mail clients thread by subject as well as by In-Reply-To/References: Outlook (NHSmail) groups a
# conversation by its subject alone, and Gmail splits a thread whose subject changes. So every
# email about one concern to one person carries the same subject, and what each one is about is
# its first line; the ones that call for action soon are marked important instead.
LEARNER_THREAD_SUBJECT = "Your concern"
CONTACT_THREAD_SUBJECT = "A learner's concern"
IMPORTANT_KINDS = frozenset(
    kind.value
    for kind in (
        MessageKind.HIGH_RISK_ALERT,
        MessageKind.ACK_MISSED,
        MessageKind.ACK_MISSED_SECONDARY,
        MessageKind.OVERDUE_AT_DEAN,
        MessageKind.STILL_CONCERNED,
        MessageKind.RATED_HIGH_OVER_OVERRIDE,
        MessageKind.DEADLINES_CHANGED,
    )
)


def thread_subject(message: OutgoingEmail) -> str:
    """The subject every email about this message's concern to its recipient carries: the
    reference and who it is for ('[LC-2026-000042] Your concern'); a message about no concern
    (a digest, a sign-in link) keeps its own."""
    return subject_sent(
        reference=message.reference, recipient_role=message.recipient_role, kept=message.subject
    )


def subject_sent(*, reference: str | None, recipient_role: str, kept: str) -> str:
    """The subject an outbox row's email carries (`thread_subject`), from the row's reference,
    recipient role and the subject `kept` on it."""
    if not (reference and _REFERENCE.fullmatch(reference)):
        return kept
    learner = recipient_role == "learner"
    return f"[{reference}] {LEARNER_THREAD_SUBJECT if learner else CONTACT_THREAD_SUBJECT}"


def usable_message_id(value: str | None) -> str | None:
    """A Message-ID taken from someone's mail, if it is one plain msg-id fit to quote in our
    In-Reply-To and References (see _MSG_ID); None otherwise."""
    if value is None or len(value) > MESSAGE_ID_MAX or "=?" in value:
        return None
    return value if _MSG_ID.fullmatch(value) else None


class _MessageIds(str):
    """An In-Reply-To or References header: its message ids as given, one to a line.

    The email package treats these headers as free text, and writes a word longer than a line
    (an Outlook Message-ID is about 80 characters) as an RFC 2047 encoded word, which mail
    clients do not decode in a msg-id: the reply would thread nowhere. Ids checked by
    usable_message_id or made by us are plain ASCII, at most MESSAGE_ID_MAX long, so written
    as they are each line stays within SMTP's 998."""

    name: str
    ids: tuple[str, ...]

    def __new__(cls, name: str, ids: Sequence[str]) -> _MessageIds:
        header = super().__new__(cls, " ".join(ids))
        header.name = name
        header.ids = tuple(ids)
        return header

    def __reduce__(self) -> tuple[type[_MessageIds], tuple[str, tuple[str, ...]]]:
        # Copied and pickled as itself: str's own way calls cls(str(self)), without the ids.
        return (type(self), (self.name, self.ids))

    def fold(self, *, policy: Policy) -> str:
        """The header as written out: Name: <id1> then each further id on a line of its own."""
        return f"{self.name}: {(policy.linesep + ' ').join(self.ids)}{policy.linesep}"


class UnusableAddress(ValueError):
    """An address we will not put in a header: sending can never succeed for this row."""


def compose(
    message: OutgoingEmail,
    *,
    threading: MailThreading,
    from_address: str,
    now: datetime,
    attachments: Sequence[Attachment] = (),
    learner_message_id: str | None = None,
) -> EmailMessage:
    """The email for one outbox row; raises UnusableAddress when its recipient is not usable,
    and ValueError when an attachment's content type is not a plain type/subtype.

    `learner_message_id` is the Message-ID of the learner's email that raised the concern: an
    email to the learner is then a reply to it (In-Reply-To, and first in References), so it
    joins the thread of what they sent. It is used only when the recipient is the learner and it
    is a plain msg-id; contacts never see it (it may name the learner's host)."""
    try:
        sender = plain_address(from_address)
    except UnusableAddress as error:
        # The service's own address is configuration, not this row's fault: never fail the row.
        raise ValueError(f"the from address is not usable: {error}") from None
    recipient = plain_address(message.recipient_address)
    email = EmailMessage(policy=SMTP_POLICY)
    email["From"] = Address(display_name=FROM_NAME, username=sender[0], domain=sender[1])
    email["To"] = Address(username=recipient[0], domain=recipient[1])
    # Tokens are bound to the address as stored, which is what a reply's sender is checked against.
    email["Reply-To"] = threading.reply_to(message.id, message.recipient_address.strip())
    # Stable per row: a resend after a crash carries the same Message-ID, so clients drop it.
    email["Message-ID"] = threading.message_id(
        message.id, message.recipient_address.strip(), queued_at=message.created_at
    )
    thread: list[str] = []
    if message.recipient_role == "learner" and (learners := usable_message_id(learner_message_id)):
        thread.append(learners)
    if message.reference and _REFERENCE.fullmatch(message.reference):
        thread.append(threading.thread_root(message.reference, message.recipient_address.strip()))
    if thread:
        # Every email to the learner answers their own (the acknowledgement and all later ones
        # alike): a client that threads by In-Reply-To alone then keeps them all under it. Our
        # root stays in References, so mail sent before (root only) is still the same thread.
        email["In-Reply-To"] = _MessageIds("In-Reply-To", thread[:1])
        email["References"] = _MessageIds("References", thread)
    email["Subject"] = one_line(thread_subject(message))
    if message.kind in IMPORTANT_KINDS:
        email["Importance"] = "high"
    email["Date"] = format_datetime(now)
    # Marks our mail as automatic so that auto-responders (ours included) never answer it. No
    # "Precedence: bulk": some systems drop or file bulk mail, and learners must receive this.
    email["Auto-Submitted"] = "auto-generated"
    email["X-Auto-Response-Suppress"] = "All"
    email.set_content(message.body_text)
    if message.body_html:
        email.add_alternative(message.body_html, subtype="html")
    for attachment in attachments:
        _attach(email, attachment)
    return email


def _attach(email: EmailMessage, attachment: Attachment) -> None:
    """Add one attachment (the message becomes multipart/mixed, its body parts first)."""
    matched = _CONTENT_TYPE.fullmatch(attachment.content_type.strip().lower())
    if matched is None:
        raise ValueError("an attachment's content type is not a plain type/subtype")
    maintype, subtype = matched.groups()
    filename = safe_filename(attachment.filename)
    if maintype == "text":
        email.add_attachment(attachment.text, subtype=subtype, filename=filename)
    else:
        email.add_attachment(
            attachment.text.encode("utf-8"), maintype=maintype, subtype=subtype, filename=filename
        )


def safe_filename(name: str) -> str:
    """A file name fit for a header and a recipient's disk: no path, no leading dot, no spaces
    or other characters beyond letters, digits, '.', '-' and '_', at most FILENAME_MAX long."""
    base = PurePosixPath(name.replace("\\", "/")).name
    cleaned = _UNSAFE_FILENAME_RUN.sub("-", base).strip(".-")
    if len(cleaned) > FILENAME_MAX:
        stem, dot, extension = cleaned.rpartition(".")
        if dot and 0 < len(extension) <= 10:
            cleaned = f"{stem[: FILENAME_MAX - len(extension) - 1]}.{extension}"
        else:
            cleaned = cleaned[:FILENAME_MAX]
    return cleaned or FALLBACK_FILENAME


def plain_address(address: str) -> tuple[str, str]:
    """(local part, ASCII domain) of one bare address; raises UnusableAddress for anything else."""
    candidate = address.strip()
    local, at, domain = candidate.rpartition("@")
    if not at or len(candidate) > ADDRESS_MAX:
        raise UnusableAddress("address is not a single local@domain address")
    try:
        # An internationalised domain travels as its ASCII (punycode) form.
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise UnusableAddress("address has an invalid domain") from None
    if not _LOCAL_PART.fullmatch(local) or not _DOMAIN.fullmatch(domain):
        raise UnusableAddress("address is not a single local@domain address")
    return local, domain


def one_line(text: str) -> str:
    """Text fit for a header: control characters and line breaks become single spaces, and an
    RFC 2047 encoded word ("=?utf-8?q?...?=") is broken up, since a header parser would decode
    it (a line break inside it included: a new header, on Pythons before 3.11.10)."""
    cleaned = "".join(
        " " if unicodedata.category(char) in ("Cc", "Zl", "Zp") else char for char in text
    )
    return " ".join(cleaned.split()).replace("=?", "=\N{ZERO WIDTH SPACE}?")
