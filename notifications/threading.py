"""Threading tokens: what lets a reply land on its concern, and nothing else does.

Every email we send carries a token in its Message-ID and in a `+token` Reply-To address. The token
names the outbox row and is an HMAC over that row and the recipient's address, so it cannot be
guessed, and a reply proves itself only when the token *and* the sender's address both match.
Nothing secret is stored: the key is the service's secret key. After the key is changed, tokens
made with a previous key (listed in `previous_secrets`) still prove a reply; new ones use the
current key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

# 20 base32 characters: 100 bits of HMAC, far beyond guessing.
MAC_LENGTH = 20
# Mail kept aside is filed by the tokens it carries: this many distinct ids at most are looked up.
MOST_TOKENS_LOOKED_UP = 20
TOKEN = re.compile(r"lc([0-9]{1,18})x([a-z2-7]{20})", re.IGNORECASE)
# Outbox ids are PostgreSQL integers: a token naming a larger one is not ours, and looking it up
# would make the database refuse the query (integer out of range).
MAX_OUTBOX_ID = 2**31 - 1
_MAX_LABEL_CHARS = 63  # DNS's limit; punycode decoding is quadratic in the label's length


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def same_address(address: str) -> str:
    """An address as compared: without case, its domain in Unicode (NFC).

    The directory takes an international domain only in its ASCII form ('xn--bcher-kva.example'),
    while a reply's sender is read, and a form's address checked, into Unicode ('bücher.example'):
    both are the same address. ASCII addresses come out as they always did (lower case), so
    tokens already sent still prove their replies.
    """
    local, at, domain = address.strip().rpartition("@")
    if not at or ("xn--" not in domain.lower() and domain.isascii()):
        return address.strip().lower()
    labels = [_unicode_label(label) for label in domain.split(".")]
    return f"{local}@{unicodedata.normalize('NFC', '.'.join(labels))}".lower()


def _unicode_label(label: str) -> str:
    """One domain label in Unicode; as it is when it is not valid punycode."""
    if not label.lower().startswith("xn--") or len(label) > _MAX_LABEL_CHARS:
        return label
    try:
        return label[4:].encode("ascii").decode("punycode")
    except (UnicodeError, ValueError):
        return label


@dataclass(frozen=True)
class MailThreading:
    secret: bytes = field(repr=False)
    mailbox: str  # the service's address, e.g. escalating-concerns@example.nhs.uk
    previous_secrets: tuple[bytes, ...] = field(default=(), repr=False)

    @property
    def domain(self) -> str:
        return self.mailbox.rpartition("@")[2] or "localhost"

    def _mac(self, purpose: str, *parts: object, secret: bytes | None = None) -> str:
        message = "\0".join([purpose, *(str(part) for part in parts)]).encode("utf-8")
        digest = hmac.new(secret or self.secret, message, hashlib.sha256).digest()
        return base64.b32encode(digest).decode("ascii").lower()[:MAC_LENGTH]

    def token_for(self, outbox_id: int, address: str) -> str:
        """The token of one sent message, bound to the address it was sent to."""
        return self._token(outbox_id, address, self.secret)

    def _token(self, outbox_id: int, address: str, secret: bytes) -> str:
        mac = self._mac("reply", outbox_id, same_address(address), secret=secret)
        return f"lc{outbox_id}x{mac}"

    def _is_token(self, found: str, outbox_id: int, address: str) -> bool:
        """Whether a token found in mail is this message's, under the current or a previous key."""
        return any(
            hmac.compare_digest(found.lower(), self._token(outbox_id, address, secret))
            for secret in (self.secret, *self.previous_secrets)
        )

    def message_id(self, outbox_id: int, address: str, *, queued_at: datetime | None = None) -> str:
        """The Message-ID of one sent message: its token, and the moment its row was queued.

        The same row gives the same Message-ID however often it is sent (a resend after a crash
        is dropped by mail clients as the copy it is). Outbox ids start again from the last one
        kept when a database is restored from a backup: without the moment, a new message to
        someone the lost one went to would carry its Message-ID, and their mail client would
        drop the new one as a copy of a message they already have. The moment is written as a
        MAC of it, not as it is: when a confidential concern was raised, to the microsecond,
        could help its reader guess who raised it."""
        token = self.token_for(outbox_id, address)
        if queued_at is None:
            return f"<{token}@{self.domain}>"
        # Exact, and a TypeError for a moment without a time zone (which the machine's own
        # would otherwise decide).
        stamp = (queued_at - _EPOCH) // timedelta(microseconds=1)
        return f"<{token}.{self._mac('queued', outbox_id, stamp)[:8]}@{self.domain}>"

    def reply_to(self, outbox_id: int, address: str) -> str:
        local, _, domain = self.mailbox.rpartition("@")
        return f"{local}+{self.token_for(outbox_id, address)}@{domain}"

    def thread_root(self, reference: str, address: str) -> str:
        """One Message-ID per concern and recipient that every message about it refers to.

        It keeps a recipient's messages about a concern in one thread; it is not a token and
        grants nothing. It is made with the current key only: after the key changes, mail
        about a concern may start a new thread in the recipient's mail client.
        """
        mac = self._mac("thread", reference, address.strip().lower())[:12]
        return f"<{reference.lower()}.{mac}@{self.domain}>"

    def verified_outbox_ids(self, *, sender: str, places: Iterable[str]) -> list[int]:
        """Outbox ids named by tokens in these header values whose MAC matches the sender."""
        found: list[int] = []
        for place in places:
            for match in TOKEN.finditer(place or ""):
                outbox_id = int(match.group(1))
                if outbox_id > MAX_OUTBOX_ID:
                    continue
                if outbox_id not in found and self._is_token(match.group(0), outbox_id, sender):
                    found.append(outbox_id)
        return found

    def genuine_outbox_ids(
        self,
        *,
        places: Iterable[str],
        recipients_of: Callable[[list[int]], Mapping[int, str]],
    ) -> list[int]:
        """Outbox ids named by tokens whose MAC matches the address that message was sent to,
        whoever now sends them on. Never proof of the sender: used only to file mail kept aside
        under the region it concerns. At most `MOST_TOKENS_LOOKED_UP` distinct ids are looked up,
        in one call, however many a hostile message carries."""
        named: dict[int, str] = {}
        for place in places:
            for match in TOKEN.finditer(place or ""):
                outbox_id = int(match.group(1))
                if outbox_id > MAX_OUTBOX_ID:
                    continue
                if outbox_id not in named and len(named) >= MOST_TOKENS_LOOKED_UP:
                    continue
                named.setdefault(outbox_id, match.group(0).lower())
        if not named:
            return []
        recipients = recipients_of(list(named))
        return [
            outbox_id
            for outbox_id, token in named.items()
            if outbox_id in recipients and self._is_token(token, outbox_id, recipients[outbox_id])
        ]

    @staticmethod
    def has_token(places: Iterable[str]) -> bool:
        """Whether anything in these header values looks like one of our tokens."""
        return any(TOKEN.search(place or "") for place in places)
