"""Delivery status reports (bounces): which recipients a returned message failed for, and the
headers of the message that failed.

A standard report (RFC 3464) is `multipart/report; report-type=delivery-status`: a note for
people, a `message/delivery-status` part with a block per recipient (`Final-Recipient`,
`Action: failed`), and the returned message itself (`message/rfc822`) or only its headers
(`text/rfc822-headers`). Only those top-level parts are read; nothing in them is answered,
opened or followed. The caller matches the returned headers against our own tokens, bound to
the recipient's address, so a forged report can name only messages sent to the address it names.

Intake reads every automatic message here, inside its transaction: a message is parsed only when
its own Content-Type says it is such a report, and then only as much of it as `intake.emails`
parses, so that no message, however large or deeply nested, holds intake up for long.
"""

from __future__ import annotations

from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message
from email.parser import BytesHeaderParser, HeaderParser

from intake.emails import MAX_MIME_PARTS, header_block, readable_prefix

# The headers of the returned message that can carry our token.
THREADING_HEADERS = ("message-id", "in-reply-to", "references")
# A report names at most this many recipients here; the rest are not read.
MAX_RECIPIENTS = 50


@dataclass(frozen=True)
class Bounce:
    """Recipients a message could not be delivered to, and the returned message's headers."""

    failed: tuple[str, ...]
    returned_headers: tuple[str, ...]


def read_bounce(raw: bytes) -> Bounce | None:
    """The failed deliveries a delivery status report tells of; None for anything else,
    however malformed (a report is read only to note a failure: it must never stop intake)."""
    try:
        readable = readable_prefix(raw)
        headers = BytesHeaderParser(policy=policy.compat32).parsebytes(header_block(readable))
        if not _is_delivery_report(headers):
            return None  # only the headers were read
        return _read(message_from_bytes(readable, policy=policy.compat32))
    except Exception:
        return None


def _is_delivery_report(headers: Message) -> bool:
    """Whether a message's own Content-Type is multipart/report; report-type=delivery-status."""
    report_type = headers.get_param("report-type", header="content-type")
    return (
        headers.get_content_type() == "multipart/report"
        and isinstance(report_type, str)
        and report_type.strip().lower() == "delivery-status"
    )


def _read(message: Message) -> Bounce | None:
    if message.get_content_type() != "multipart/report" or not message.is_multipart():
        return None
    failed: list[str] = []
    returned: list[str] = []
    parts = message.get_payload()
    for part in parts[:MAX_MIME_PARTS] if isinstance(parts, list) else ():
        if not isinstance(part, Message):
            continue
        kind = part.get_content_type()
        if kind in ("message/delivery-status", "message/global-delivery-status"):
            failed.extend(_failed_recipients(part))
        elif kind in ("message/rfc822", "message/global"):
            inner = part.get_payload()
            original = inner[0] if isinstance(inner, list) and inner else None
            if isinstance(original, Message):
                returned.extend(_threading_values(original))
        elif kind == "text/rfc822-headers":
            text = part.get_payload(decode=True)
            decoded = text.decode("utf-8", "replace") if isinstance(text, bytes) else ""
            headers = HeaderParser().parsestr(decoded)
            returned.extend(_threading_values(headers))
    unique = tuple(dict.fromkeys(failed))[:MAX_RECIPIENTS]
    if not unique or not returned:
        return None
    return Bounce(failed=unique, returned_headers=tuple(returned))


def _failed_recipients(part: Message) -> list[str]:
    blocks = part.get_payload()
    if not isinstance(blocks, list):
        return []
    found: list[str] = []
    for block in blocks:
        if not isinstance(block, Message):
            continue
        if str(block.get("Action", "")).strip().lower() != "failed":
            continue
        recipient = str(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
        _, _, address = recipient.partition(";")
        address = address.strip().strip("<>").strip().lower()
        if "@" in address and " " not in address:
            found.append(address)
    return found


def _threading_values(headers: Message) -> list[str]:
    return [str(value) for name in THREADING_HEADERS for value in headers.get_all(name) or ()]
