"""Takes a learner's name and address out of what they wrote by email, before anyone reads it.

An email concern is confidential by default, but people sign their emails: "Thanks, Jane Smith,
FY1". The text that supervisors and schools read must not give the name away, so the sign-off
is dropped and the sender's name and address are replaced wherever they appear. The raw message
is kept untouched for the dean and quality team, who may know who raised it.
"""

from __future__ import annotations

import re

REMOVED = "[name removed]"

# A line that starts a sign-off: everything from it to the end is the signature.
_SIGN_OFF = re.compile(
    r"^\s*(--\s*|(kind(est)?|best|warm(est)?)?\s*(regards|wishes)\b.*|many thanks\b.*|"
    r"thanks\b.*|thank you\b.*|cheers\b.*|yours( sincerely| faithfully| truly)?\b.*|"
    r"sent from my\b.*|get outlook for\b.*)$",
    re.IGNORECASE,
)
# A sign-off is only taken as one near the end: "Thanks to the ward sister..." early in a long
# email is part of the story.
SIGNATURE_MAX_LINES = 8


def drop_signature(text: str) -> str:
    """The text without its trailing sign-off and signature block."""
    lines = text.rstrip().split("\n")
    for index in range(max(0, len(lines) - SIGNATURE_MAX_LINES), len(lines)):
        if index > 0 and _SIGN_OFF.match(lines[index]):
            return "\n".join(lines[:index]).rstrip()
    return text.rstrip()


def redact_identity(text: str, *, name: str | None, address: str | None) -> str:
    """Replace the sender's address, full name and each part of their name with a marker."""
    targets: list[str] = []
    # A display name may have an address written in it ('Jane Smith (jane@nhs.net)'): that
    # address goes as the sender's does. The other words in its brackets ('(on behalf of
    # bob.jones@nhs.net)', '(née Patel, jane@...)') are not the full name, but each may be part
    # of it (a maiden or first name written only there), so each goes as a part does: only
    # words that are never a name ('behalf', 'via') are kept.
    written = [address or ""]
    beside: list[str] = []
    for bracketed in _BRACKETED_ADDRESS.findall(name or ""):
        for word in _words(bracketed):
            (written if "@" in word else beside).append(word)
    words = _words(_without_organisation(_BRACKETED_ADDRESS.sub(" ", name or "")))
    written += [word for word in words if "@" in word]
    for each in written:
        targets += _address_parts(each)
    words = [word for word in words if "@" not in word]
    if words:
        targets.append(" ".join(words))
    # Each half of a double-barrelled name ('Smith-Jones'), or of one written with another mark
    # between its parts ('Jane.Smith', as mail clients write it), is written alone too.
    parts = [*words, *beside, *(half for word in words + beside for half in _pieces(word))]
    targets += [
        part
        for part in parts
        if len(part) >= 3 and not _title(part) and part.lower() not in _NEVER_A_NAME
    ]
    for target in sorted({t for t in targets if t}, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(target)}(?!\w)", REMOVED, text, flags=re.IGNORECASE)
    return text


# A bracketed part of a display name with an address in it.
_BRACKETED_ADDRESS = re.compile(r"[(\[<]([^()\[\]<>]*@[^()\[\]<>]*)[)\]>]")
# Words written beside an address in a display name that are nobody's name.
_NEVER_A_NAME = frozenset({"and", "behalf", "for", "from", "sent", "the", "via"})
# A bracketed part of a display name, without an address.
_BRACKETED = re.compile(r"[(\[]([^()\[\]<>@]*)[)\]]")
# Words that make a bracketed part an organisation's name: NHSmail shows every sender as
# 'SMITH, Jane (VALE GENERAL HOSPITALS NHS TRUST)'.
_ORGANISATION_WORDS = frozenset(
    {"nhs", "trust", "hospital", "hospitals", "university", "college", "practice", "surgery"}
)


def _without_organisation(name: str) -> str:
    """A display name without the organisation written in brackets after it: its words are not
    the person's name, and taken as parts of it they cut the learner's placement ('Vale',
    'General', 'NHS', 'Trust') out of everything contacts read. Other bracketed words may be a
    name ('(née Patel)') and stay."""

    def kept(match: re.Match[str]) -> str:
        named = {word.lower() for word in _words(match.group(1))}
        return " " if named & _ORGANISATION_WORDS else match.group(0)

    return _BRACKETED.sub(kept, name)


def _words(text: str) -> list[str]:
    return re.sub(r"[\"'()<>\[\],;]", " ", text).split()


def _address_parts(address: str) -> list[str]:
    """An address, its local part, and the parts of that: jane.smith@ -> jane, smith."""
    if not address:
        return []
    local = address.partition("@")[0]
    parts = [local] if len(local) >= 3 else []
    parts += [part for part in _pieces(local) if len(part) >= 3]
    return [address, *parts]


def _pieces(word: str) -> list[str]:
    """The runs of letters and digits in a word: 'jane.smith' and 'Smith-Jones' in two."""
    return re.split(r"[\W_]+", word)


def _title(word: str) -> bool:
    """Titles and grades in a display name ('Dr', 'FY1') are not the person's name."""
    return word.strip(".").lower() in {"dr", "mr", "mrs", "ms", "miss", "mx", "prof", "fy1", "fy2"}


def for_contacts(text: str, *, name: str | None, address: str | None) -> str:
    """What contacts may read of an email: no signature, no name, no address."""
    return redact_identity(drop_signature(text), name=name, address=address)
