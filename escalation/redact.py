"""Takes a learner's name and address out of what they wrote by email, before anyone reads it.

An email concern is confidential by default, but people sign their emails: "Thanks, Jane Smith,
FY1". The text that supervisors and schools read must not give the name away, so the sign-off
is dropped and the sender's name and address are replaced wherever they appear. The raw message
is kept untouched for the dean and quality team, who may know who raised it.
"""

from __future__ import annotations

import bisect
import functools
import re
import unicodedata
from collections.abc import Iterable

REMOVED = "[name removed]"
PHONE_REMOVED = "[phone number removed]"
# A UK mobile number as people write it: 07700 900123, 07700-900-123, (07700) 900123, 077009
# 00123, +44 7700 900123, +44 (0)7700 900123, 0044 7700 900123; not inside a longer run of digits.
_MOBILE = re.compile(r"(?<![\w+(])(?:(?:\+|00)44\s?(?:\(0\)\s?)?|\(?0)7(?:[\s.)-]{0,2}\d){9}(?!\w)")

# A line that starts a sign-off: everything from it to the end is the signature.
_SIGN_OFF = re.compile(
    r"^\s*(--\s*|(kind(est)?|best|warm(est)?)?\s*(regards|wishes)\b.*|many thanks\b.*|"
    r"thanks\b.*|thank you\b.*|cheers\b.*|yours( sincerely| faithfully| truly)?\b.*|"
    r"sent from my\b.*|get outlook for\b.*)$",
    re.IGNORECASE,
)
# A phone's footer: the sign-off may be above it, further from the end.
_DEVICE_FOOTER = re.compile(r"^\s*(sent from my|get outlook for)\b", re.IGNORECASE)
# Above a footer, only a sign-off of a line of its own ("Thanks", "Kind regards, Jess"): "Thanks
# to the staffing gaps, two patients fell" there is the story.
_SHORT_SIGN_OFF = re.compile(
    r"^\s*((kind(est)?|best|warm(est)?)?\s*(regards|wishes)|many thanks|thanks|thank you|cheers|"
    r"yours( sincerely| faithfully| truly)?|--)[\s,.!]*([\w'-]+[\s,.!]*){0,2}$",
    re.IGNORECASE,
)
# A sign-off is only taken as one near the end: "Thanks to the ward sister..." early in a long
# email is part of the story.
SIGNATURE_MAX_LINES = 8


def drop_signature(text: str) -> str:
    """The text without its trailing sign-off and signature block. Under a phone's footer ("Sent
    from my iPhone") it looks again for a sign-off line of its own: "Thanks, Jess" above a
    signature block of name, course, university and phone number is otherwise too far from the
    end to be seen."""
    lines = text.rstrip().split("\n")
    cut = _sign_off_at(lines, _SIGN_OFF)
    if cut is None:
        return text.rstrip()
    above = "\n".join(lines[:cut]).rstrip().split("\n")
    if _DEVICE_FOOTER.match(lines[cut]):
        again = _sign_off_at(above, _SHORT_SIGN_OFF)
        if again is not None:
            above = above[:again]
    return "\n".join(above).rstrip()


def _sign_off_at(lines: list[str], sign_off: re.Pattern[str]) -> int | None:
    """Where the sign-off starts among the last lines (never the first line); None if none."""
    return next(
        (
            index
            for index in range(max(1, len(lines) - SIGNATURE_MAX_LINES), len(lines))
            if sign_off.match(lines[index])
        ),
        None,
    )


def redact_identities(
    text: str, *, names: Iterable[str | None], addresses: Iterable[str | None]
) -> str:
    """Replace every given address, full name and each part of every name with a marker,
    however the text writes them: in any case, with or without accents ('JOSE' for 'José'),
    with any apostrophe ('O’Brien' for "O'Brien"), with the letters a keyboard lacks spelled
    out ('Mueller' for 'Müller'), or joined to other words by '_', '.' or '-'. A name written
    without its apostrophe ('OBrien', 'OBRIEN', 'jose.obrien@') is taken out where it is written
    as a name is, with a capital first, or in an address: in lower case it may be a word
    ('D'Eath' would take 'death' out of every concern the learner writes).

    All of them are looked for in one pass over the text as it was written: replacing one name
    after another would look for the next in the markers already written, and a learner whose
    name (or the one on their record) is 'Name' or 'Removed' would read '[[name removed]
    removed]'.

    A UK mobile number goes too, whoever's it is: a learner signs with theirs ("07700 900123"),
    and a ward's or a switchboard's is a landline."""
    targets = [target for name in names for target in _name_targets(name)]
    targets += [part for address in addresses for part in _address_parts(address or "")]
    spellings = {spelling for target in targets for spelling in _spellings(target)}
    capitalised = {
        without
        for spelling in spellings
        if "'" in spelling and _long_enough(without := spelling.replace("'", ""))
    }
    # A part of two letters ('Jo', 'Ng', 'Li') goes where it is written as a name (a capital
    # first, or beside another part of it), never in lower case ('do', 'an') nor in capitals
    # ('NG tube', 'ED' for a learner named Ed).
    short = {
        spelling for name in names for part in _short_parts(name) for spelling in _spellings(part)
    }
    return _MOBILE.sub(
        PHONE_REMOVED,
        _replaced(text, spellings, capitalised=capitalised - spellings, short=short - spellings),
    )


def summary_within(summary: str, limit: int) -> str:
    """A summary within its limit again once a short name was replaced by the longer marker."""
    return summary if len(summary) <= limit else summary[: limit - 1].rstrip() + "…"


def redact_identity(text: str, *, name: str | None, address: str | None) -> str:
    """Replace the sender's address, full name and each part of their name with a marker, as
    `redact_identities` does."""
    return redact_identities(text, names=(name,), addresses=(address,))


def _name_targets(name: str | None) -> list[str]:
    """What is taken out for a name: the full name, each part of it, and any address written in
    it."""
    name = _visible(name or "")
    targets: list[str] = []
    # A display name may have an address written in it ('Jane Smith (jane@nhs.net)'): that
    # address goes as the sender's does. The other words in its brackets ('(on behalf of
    # bob.jones@nhs.net)', '(née Patel, jane@...)') are not the full name, but each may be part
    # of it (a maiden or first name written only there), so each goes as a part does: only
    # words that are never a name ('behalf', 'via') are kept.
    written: list[str] = []
    beside: list[str] = []
    for bracketed in _BRACKETED_ADDRESS.findall(name):
        for word in _words(bracketed):
            (written if "@" in word else beside).append(word)
    words = _words(_without_organisation(_BRACKETED_ADDRESS.sub(" ", name)))
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
        if _long_enough(part) and not _title(part) and part.lower() not in _NEVER_A_NAME
    ]
    return targets


def _short_parts(name: str | None) -> list[str]:
    """The parts of a name too short to go wherever they are written: two letters ('Jo Bloggs',
    'Wei Ng'), not a title ('Dr')."""
    words = _words(_without_organisation(_BRACKETED_ADDRESS.sub(" ", _visible(name or ""))))
    return [
        part
        for word in words
        if "@" not in word
        for part in dict.fromkeys((word, *_pieces(word)))
        if part.isalpha()
        and not _long_enough(part)
        and len(unicodedata.normalize("NFC", part)) == 2
        and not _title(part)
        and part.lower() not in _NEVER_A_NAME
    ]


def _long_enough(part: str) -> bool:
    """Whether a part of a name is taken out alone: three characters or more, not counting
    the accents written as marks of their own ('Lê' decomposed, as some mail clients send it,
    is two, and must not take 'le' out of every sentence; Thai and Hindi vowel signs are
    marks too, and their names' parts keep their length)."""
    composed = unicodedata.normalize("NFC", part)
    return sum(not unicodedata.combining(character) for character in composed) >= 3


def _visible(name: str) -> str:
    """A name without the characters that are not seen (a soft hyphen, a joiner), which would
    split it into pieces that are not its parts ('Pri', 'ya'); a zero width space parts words.
    Composed (NFC), so each letter is one character however the name was sent."""
    visible = "".join(
        _ZERO_WIDTH_SPACE_FOLDED if character == _ZERO_WIDTH_SPACE else character
        for character in name
        if character == _ZERO_WIDTH_SPACE or unicodedata.category(character) != "Cf"
    )
    return unicodedata.normalize("NFC", visible)


def _spellings(target: str) -> set[str]:
    """A target folded, and as people write it when their keyboard has no key for its letters:
    'ü' written 'ue', 'ø' 'oe', 'å' 'aa' and Catalan 'l·l' 'll' ('Juergen Mueller', 'Oedegaard',
    'Collell'). Spellings are made only from the letters the name has: 'Muller' is not also
    'Mueller'."""
    spelled = unicodedata.normalize("NFC", target).translate(_SPELLED_OUT)
    return {each for each in (_fold(target), _fold(spelled)) if each}


# The letters a name may be written with, spelled as they are typed without them ('ß' folds to
# 'ss' already, and the plain letters, 'u' for 'ü', are what folding gives).
_SPELLED_OUT = str.maketrans(
    {"ä": "ae", "ö": "oe", "ü": "ue", "ø": "oe", "å": "aa", "·": "", "ŀ": "l"}
    | {"Ä": "AE", "Ö": "OE", "Ü": "UE", "Ø": "OE", "Å": "AA", "Ŀ": "L"}
)


def _replaced(
    text: str,
    targets: set[str],
    *,
    capitalised: frozenset[str] | set[str] = frozenset(),
    short: frozenset[str] | set[str] = frozenset(),
) -> str:
    """The text with every place a target is written replaced by the marker.

    Targets are found in a folded copy of the text ('José', 'JOSE' and 'Jose' read alike), but
    what is replaced is the original, so everything around a name stays as it was written. Each
    target is looked for on its own and places that overlap ('Smith-Jones' and 'Smith' in it)
    become one marker: no part of a name is left because a longer target was found first.

    A marker already in the text (what an earlier step took out) is kept as it is: a name
    'Name' or 'Removed' found in it would make '[[name removed] removed]'. The `capitalised`
    targets are taken out only where the text writes them as a name (`_written_as_a_name`); the
    `short` ones (two letters: 'Jo', 'Ng') only so and not in capitals ('NG tube', 'ED')."""
    if not targets and not capitalised and not short:
        return text
    folded, origin = _folded(text)
    markers = [match.span() for match in re.finditer(re.escape(REMOVED), text)]

    def places(of: Iterable[str]) -> list[tuple[int, int]]:
        return [
            span
            for target in of
            for match in re.finditer(
                rf"{_NOT_AFTER_A_LETTER}{re.escape(target)}{_NOT_BEFORE_A_LETTER}", folded
            )
            if not _inside_a_marker(span := _original_span(text, origin, *match.span()), markers)
        ]

    found = places(targets)
    edges = {edge for span in found for edge in span}
    found += [span for span in places(capitalised) if _written_as_a_name(text, span, edges)]
    found += [
        span
        for span in places(short)
        if _written_as_a_name(text, span, edges) and not text[span[0] : span[1]].isupper()
    ]
    found.sort()
    if not found:
        return text
    kept: list[str] = []
    written = 0  # how much of the original text is already in `kept`
    start, end = found[0]
    for next_start, next_end in found[1:]:
        if next_start < end:
            end = max(end, next_end)
            continue
        kept += [text[written:start], REMOVED]
        written, start, end = end, next_start, next_end
    kept += [text[written:start], REMOVED, text[end:]]
    return "".join(kept)


def _written_as_a_name(text: str, span: tuple[int, int], names: set[int]) -> bool:
    """Whether the text writes this place as a name: with a capital first; next to another part
    of the name ('jose obrien', `names`: where the others start and end); or in an address, a
    user name or a link ('jose.obrien@', 'obrien.j', 'obrien_j', '@obrien', '/obrien'). Never
    as a word in a sentence ('the death.')."""
    start, end = span
    before, after = text[max(0, start - 3) : start], text[end : end + 3]
    beside_a_name = any(
        start - gap in names and not text[start - gap : start].strip() for gap in (1, 2, 3)
    ) or any(end + gap in names and not text[end : end + gap].strip() for gap in (1, 2, 3))
    return (
        text[start].isupper()
        or beside_a_name
        or before[-1:] in (".", "_", "@", "/", "-")
        or after[:1] in ("@", "_")
        or (after[:1] in (".", "-") and after[1:2].isalnum())
    )


def _inside_a_marker(span: tuple[int, int], markers: list[tuple[int, int]]) -> bool:
    """Whether a span overlaps one of the markers (in order, apart): only the last marker that
    starts before the span ends can, so a text of thousands of markers costs a search each."""
    last = bisect.bisect_left(markers, (span[1],)) - 1
    return last >= 0 and markers[last][1] > span[0]


# A name is found where it is not written inside a longer word: not next to a letter or digit.
# An underscore parts words as a dot or a hyphen does ('priya_patel' is two words, where \\w
# would make it one), and 'Ward' is still kept in 'Wardley'.
_NOT_AFTER_A_LETTER = r"(?<![^\W_])"
_NOT_BEFORE_A_LETTER = r"(?![^\W_])"


def _original_span(text: str, origin: list[int] | None, start: int, end: int) -> tuple[int, int]:
    """Where a place found in the folded text is written in the original: from the character
    its first folded letter came from to the end of the one its last came from ('ß' folds to
    'ss', and half a character is never left behind), with the accents written after it as
    marks of their own ('Jose' and a combining acute). An invisible character after it folds to
    nothing too, but is not part of the name, and stays."""
    if origin is None:
        return start, end
    end = origin[end - 1] + 1
    while end < len(text) and unicodedata.category(text[end]) == "Mn":
        end += 1
    return origin[start], end


def _folded(text: str) -> tuple[str, list[int] | None]:
    """The text folded as names are compared, and for each folded character the position in
    the text of the character it came from (one more at the end: the text's length). None when
    the folded text has the positions of the original, as in plain ASCII, the usual case.

    Folding a character may lengthen it ('ﬁ' to 'fi', 'ß' to 'ss') or take it away (a combining
    accent), so positions are mapped back, not assumed. ASCII is folded a run at a time, so a
    long English text costs about what lower() does, and so is a run of letters that fold to
    themselves (Chinese, Japanese, Greek in lower case); only the rest is folded one character
    at a time, through a cache."""
    if text.isascii():
        return _fold_ascii(text), None
    pieces: list[str] = []
    origin: list[int] = []
    position = 0
    for written in _RUNS.findall(text):
        end = position + len(written)
        if written.isascii():
            pieces.append(_fold_ascii(written))
            origin.extend(range(position, end))
        elif written[0] >= _BEYOND_LATIN and _folds_to_itself(written):
            pieces.append(written)
            origin.extend(range(position, end))
        else:
            for index, character in enumerate(written, position):
                if character >= _BEYOND_LATIN and _folds_to_itself(character):
                    folded = character
                else:
                    folded = _fold_character(character)
                pieces.append(folded)
                origin.extend([index] * len(folded))
        position = end
    origin.append(len(text))
    return "".join(pieces), origin


# Text in runs: ASCII, letters and digits outside it, and other characters outside it.
_RUNS = re.compile(r"[\x00-\x7f]+|[^\W\x00-\x7f]+|[^\w\x00-\x7f]+")
# Latin letters, their accents and the marks written after them are a few hundred characters,
# which the cache always holds: they go straight to it. Beyond them are scripts of thousands.
_BEYOND_LATIN = "\u0370"


def _folds_to_itself(letters: str) -> bool:
    """Whether letters are their own folding, seen without folding them one by one and without
    the cache: a text in Chinese has more distinct characters than the cache holds, and each
    would push out another. Letters that NFKD and case folding leave alone, and that are none
    of the plain letters, fold to themselves; other characters (an accent, a soft hyphen, a
    symbol) are left to `_fold_character`."""
    return (
        letters.isalnum()
        and unicodedata.is_normalized("NFKD", letters)
        and letters.casefold() == letters
        and not _PLAIN_LETTER.search(letters)
    )


# Apostrophes read alike: 'O’Brien' in the text is the learner 'O'Brien'.
_APOSTROPHES = "'\u2019\u2018`\u02bc"
# Letters with a mark that is part of the letter, not an accent over it, so that NFKD leaves
# them be; people who type without them write the plain letter ('Lukasz' for 'Łukasz').
_PLAIN_LETTERS = str.maketrans(
    {"ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ı": "i", "æ": "ae", "œ": "oe", "ð": "d", "þ": "th"}
    | {apostrophe: "'" for apostrophe in _APOSTROPHES}
)

# One of the letters written plain, which fold to another although NFKD and casefold keep them.
_PLAIN_LETTER = re.compile("[" + re.escape("".join(map(chr, _PLAIN_LETTERS))) + "]")
# Format characters are not seen and fold to nothing ('Pri\u00adya', a soft hyphen in it, is
# 'Priya'), but a zero width space is one between words.
_ZERO_WIDTH_SPACE = "\u200b"
_ZERO_WIDTH_SPACE_FOLDED = " "


def _fold(text: str) -> str:
    """A target folded as the text is: by the same rule, one character at a time."""
    return _folded(text)[0]


def _fold_ascii(text: str) -> str:
    return text.lower().replace("`", "'")


@functools.lru_cache(maxsize=4096)
def _fold_character(character: str) -> str:
    """One character without its accents and case: 'É' to 'e', 'ﬁ' to 'fi', 'ß' to 'ss'.
    Case folding may itself give a letter with an accent ('ǰ'), so accents are dropped again.

    A character that is not seen folds to nothing (a zero width space to a space), and one that
    is no letter or digit never folds to one: '™' is 'TM' to NFKD, '№' 'No', 'Ⓐ' 'A', and
    written next to a name ('Priya™') it would make the name part of a longer word. Such a
    symbol is kept as it is; one that folds to a mark ('…', a no-break space, a full-width
    apostrophe) folds as before."""
    if unicodedata.category(character) == "Cf":
        return _ZERO_WIDTH_SPACE_FOLDED if character == _ZERO_WIDTH_SPACE else ""
    folded = _without_accents(_without_accents(character).casefold()).translate(_PLAIN_LETTERS)
    if not character.isalnum() and any(each.isalnum() for each in folded):
        return character
    return folded


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
    parts = [part for part in dict.fromkeys((local, untagged)) if _long_enough(part)]
    parts += [
        part
        for part in _pieces(untagged)
        if _long_enough(part) and part.lower() not in _ORGANISATION_WORDS
    ]
    return [address, *parts]


def _pieces(word: str) -> list[str]:
    """The runs of letters and digits in a word: 'jane.smith', 'Smith-Jones' and 'O'Brien' in
    two ('O' is then too short to take out alone). An accent written as a mark of its own is
    part of its letter ('Fọ́lákẹ́' is one piece, where splitting at its marks took 'lake' out
    of every text), as are the vowel signs of Thai or Hindi."""
    pieces = [""]
    for character in word:
        # An apostrophe may be a letter to Unicode ('ʼ', as Ukrainian names are written): it
        # still parts 'DʼSouza' as ' does.
        if character not in _APOSTROPHES and (
            character.isalnum() or unicodedata.category(character).startswith("M")
        ):
            pieces[-1] += character
        elif pieces[-1]:
            pieces.append("")
    return pieces


def _title(word: str) -> bool:
    """Titles and grades in a display name ('Dr', 'FY1') are not the person's name."""
    return word.strip(".").lower() in {"dr", "mr", "mrs", "ms", "miss", "mx", "prof", "fy1", "fy2"}
