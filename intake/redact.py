"""Takes a learner's name and address out of what they wrote by email, before anyone reads it.

An email concern is confidential by default, but people sign their emails: "Thanks, Jane Smith,
FY1". The text that supervisors and schools read must not give the name away, so the sign-off
is dropped and the sender's name and address are replaced wherever they appear. The raw message
is kept untouched for the dean and quality team, who may know who raised it.
"""

from __future__ import annotations

import functools
import re
import unicodedata

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
    """Replace the sender's address, full name and each part of their name with a marker,
    however the text writes them: in any case, with or without accents ('JOSE' for 'José'),
    with any apostrophe ('O’Brien' for "O'Brien"), or joined to other words by '_', '.' or '-'."""
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
    return _replaced(text, {folded for target in targets if (folded := _fold(target))})


def _replaced(text: str, targets: set[str]) -> str:
    """The text with every place a target is written replaced by the marker.

    Targets are found in a folded copy of the text ('José', 'JOSE' and 'Jose' read alike), but
    what is replaced is the original, so everything around a name stays as it was written. Each
    target is looked for on its own and places that overlap ('Smith-Jones' and 'Smith' in it)
    become one marker: no part of a name is left because a longer target was found first."""
    if not targets:
        return text
    folded, origin = _folded(text)
    found = sorted(
        match.span()
        for target in targets
        for match in re.finditer(
            rf"{_NOT_AFTER_A_LETTER}{re.escape(target)}{_NOT_BEFORE_A_LETTER}", folded
        )
    )
    if not found:
        return text
    kept: list[str] = []
    written = 0  # how much of the original text is already in `kept`
    start, end = _original_span(origin, *found[0])
    for span in found[1:]:
        next_start, next_end = _original_span(origin, *span)
        if next_start < end:
            end = max(end, next_end)
            continue
        kept += [text[written:start], REMOVED]
        written, start, end = end, next_start, next_end
    kept += [text[written:start], REMOVED, text[end:]]
    return "".join(kept)


# A name is found where it is not written inside a longer word: not next to a letter or digit.
# An underscore parts words as a dot or a hyphen does ('priya_patel' is two words, where \\w
# would make it one), and 'Ward' is still kept in 'Wardley'.
_NOT_AFTER_A_LETTER = r"(?<![^\W_])"
_NOT_BEFORE_A_LETTER = r"(?![^\W_])"


def _original_span(origin: list[int] | None, start: int, end: int) -> tuple[int, int]:
    """Where a place found in the folded text is written in the original: from the character
    its first folded letter came from to the end of the one its last came from ('ß' folds to
    'ss', and half a character is never left behind), with the accents written after it as
    marks of their own ('Jose' and a combining acute)."""
    if origin is None:
        return start, end
    last = origin[end - 1]
    while origin[end] == last:
        end += 1
    return origin[start], origin[end]


def _folded(text: str) -> tuple[str, list[int] | None]:
    """The text folded as names are compared, and for each folded character the position in
    the text of the character it came from (one more at the end: the text's length). None when
    the folded text has the positions of the original, as in plain ASCII, the usual case.

    Folding a character may lengthen it ('ﬁ' to 'fi', 'ß' to 'ss') or take it away (a combining
    accent), so positions are mapped back, not assumed; only characters outside ASCII are
    folded one by one, so a long English text costs about what lower() does."""
    if text.isascii():
        return _fold_ascii(text), None
    pieces: list[str] = []
    origin: list[int] = []
    position = 0
    for run in _NOT_ASCII.finditer(text):
        pieces.append(_fold_ascii(text[position : run.start()]))
        origin.extend(range(position, run.start()))
        for index in range(run.start(), run.end()):
            folded = _fold_character(text[index])
            pieces.append(folded)
            origin.extend([index] * len(folded))
        position = run.end()
    pieces.append(_fold_ascii(text[position:]))
    origin.extend(range(position, len(text) + 1))
    return "".join(pieces), origin


_NOT_ASCII = re.compile(r"[^\x00-\x7f]+")
# Apostrophes read alike: 'O’Brien' in the text is the learner 'O'Brien'.
_APOSTROPHES = "'\u2019\u2018`\u02bc"
# Letters with a mark that is part of the letter, not an accent over it, so that NFKD leaves
# them be; people who type without them write the plain letter ('Lukasz' for 'Łukasz').
_PLAIN_LETTERS = str.maketrans(
    {"ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ı": "i", "æ": "ae", "œ": "oe", "ð": "d", "þ": "th"}
    | {apostrophe: "'" for apostrophe in _APOSTROPHES}
)


def _fold(text: str) -> str:
    """A target folded as the text is: by the same rule, one character at a time."""
    return _folded(text)[0]


def _fold_ascii(text: str) -> str:
    return text.lower().replace("`", "'")


@functools.lru_cache(maxsize=4096)
def _fold_character(character: str) -> str:
    """One character without its accents and case: 'É' to 'e', 'ﬁ' to 'fi', 'ß' to 'ss'.
    Case folding may itself give a letter with an accent ('ǰ'), so accents are dropped again."""
    folded = _without_accents(_without_accents(character).casefold())
    return folded.translate(_PLAIN_LETTERS)


def _without_accents(text: str) -> str:
    return "".join(
        character
        for character in unicodedata.normalize("NFKD", text)
        if unicodedata.category(character) != "Mn"
    )


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
    return _NOT_IN_A_WORD.sub(" ", text).split()


# Quotes, straight or curly, and brackets around a name are not part of it, but an apostrophe
# between two letters is ('O'Brien', 'D’Souza'): split there, 'O'' was left before the marker.
_NOT_IN_A_WORD = re.compile(
    rf"[\"“”„«»()<>\[\],;]|(?<![^\W_])[{_APOSTROPHES}]|[{_APOSTROPHES}](?![^\W_])"
)


def _address_parts(address: str) -> list[str]:
    """An address, its local part, and the parts of that: jane.smith@ -> jane, smith.

    A tag after '+' ('priya+nhs@') only sorts the learner's mail, and a part that names an
    organisation ('jane.smith.nhs@') is nobody's name: each is taken out with the whole local
    part but not alone, or 'NHS' would go from every concern the learner writes."""
    if not address:
        return []
    local = address.partition("@")[0]
    untagged = local.partition("+")[0]
    parts = [part for part in dict.fromkeys((local, untagged)) if len(part) >= 3]
    parts += [
        part
        for part in _pieces(untagged)
        if len(part) >= 3 and part.lower() not in _ORGANISATION_WORDS
    ]
    return [address, *parts]


def _pieces(word: str) -> list[str]:
    """The runs of letters and digits in a word: 'jane.smith', 'Smith-Jones' and 'O'Brien' in
    two ('O' is then too short to take out alone)."""
    return re.split(rf"[\W_{_APOSTROPHES}]+", word)


def _title(word: str) -> bool:
    """Titles and grades in a display name ('Dr', 'FY1') are not the person's name."""
    return word.strip(".").lower() in {"dr", "mr", "mrs", "ms", "miss", "mx", "prof", "fy1", "fy2"}


def for_contacts(text: str, *, name: str | None, address: str | None) -> str:
    """What contacts may read of an email: no signature, no name, no address."""
    return redact_identity(drop_signature(text), name=name, address=address)
