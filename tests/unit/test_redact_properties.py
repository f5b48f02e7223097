"""redact_identity against generated texts: a learner's name goes in whatever case, accents and
apostrophes it is written, and everything else in the text is kept as it was written.

The folding below is the plain reading of "the same name": case folded, accents dropped, a few
letters whose mark NFKD keeps written plain, every apostrophe alike, invisible characters not
there; and a symbol is never read as letters ('™' is not 'tm').
"""

from __future__ import annotations

import re
import unicodedata

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from escalation.redact import REMOVED, redact_identities, redact_identity
from escalation.redact import _fold_character as _fold_character
from escalation.redact import _folded as _folded

# Deterministic so that a failure in CI is the same failure on a laptop.
PROPERTIES = settings(derandomize=True, deadline=None, max_examples=200)

NAMES = (
    "Jane Smith",
    "José Núñez",
    "Siobhán O'Brien",
    "Zoë D’Souza",
    "Priya Patel",
    "Mary-Jane Smith-Jones",
    "Łukasz Wójcik",
    "Søren Ødegaard",
    "Jürgen Strauß",
    "François Lefèvre",
    "Anaïs Müller",
    "Ngozi Okonkwo-Adébáyọ̀",
    "Nguyễn Thị Minh",
    "Chloé de la Cruz",
    "Aoife Ní Bhriain",
    "Ward",
)
APOSTROPHES = "'\u2019\u2018`"
_PLAIN = str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O"})
# Characters whose folding changes the length of the text, or takes a character away, and
# symbols that NFKD writes as letters.
TRICKY = ("ﬁ", "ﬃ", "ß", "ẞ", "İ", "ŉ", "½", "Ǆ", "\u0301", "\u0323", "ﬅ", "㎏")
TRICKY += ("™", "№", "Ⓐ", "⼈", "\u00ad", "\u200b", "\u200d", "\u2060")
# Format characters that are not seen: inside a name it is still the name.
INVISIBLE = ("\u00ad", "\u200c", "\u200d", "\u2060", "\ufeff")
SEPARATORS = (" ", "_", ".", "-", "\n", ", ", "’s ", " (", ") ", "/")
SEPARATORS += ("™", "℠", "№", "₨", "Ⓐ", "ⓩ", "⼈", "\u200b", "\u00ad ", " \u2060")
# How a name is typed without the letters a keyboard lacks.
SPELLED_OUT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ø": "oe", "å": "aa", "·": ""})


def plain(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_PLAIN))
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


def folded_character(character: str) -> str:
    if unicodedata.category(character) == "Cf":
        return " " if character == "\u200b" else ""
    text = re.sub(f"[{APOSTROPHES}]", "'", plain(plain(character).casefold()))
    if not character.isalnum() and re.search(r"[^\W_]", text):
        return character
    return text


def folded(text: str) -> str:
    return "".join(map(folded_character, text))


def spellings(name: str) -> list[str]:
    """The name as written, and spelled without the letters a keyboard lacks."""
    return [name, unicodedata.normalize("NFC", name).lower().translate(SPELLED_OUT)]


def parts(name: str) -> list[str]:
    """The parts of the name of three letters or more, folded, in every spelling."""
    return [
        part
        for spelling in spellings(name)
        for part in re.split(r"[\W_]+", folded(spelling))
        if len(part) >= 3
    ]


def written_as_a_word(part: str, text: str) -> bool:
    return re.search(rf"(?<![^\W_]){re.escape(part)}(?![^\W_])", folded(text)) is not None


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


def as_given(text: str) -> str:
    return text


CASES = (as_given, str.upper, str.lower, str.title)
ACCENTS = (nfc, nfd, plain)


@st.composite
def written(draw: st.DrawFn, name: str) -> str:
    """A name as a learner may type it: any case, accents kept, decomposed, left off or spelled
    out, any apostrophe, and an invisible character in it."""
    name = draw(st.sampled_from(spellings(name)))
    case = draw(st.sampled_from(CASES))
    accents = draw(st.sampled_from(ACCENTS))
    apostrophe = draw(st.sampled_from(APOSTROPHES))
    name = case(accents(re.sub(f"[{APOSTROPHES}]", apostrophe, name)))
    if draw(st.booleans()):
        at = draw(st.integers(min_value=1, max_value=len(name) - 1))
        name = name[:at] + draw(st.sampled_from(INVISIBLE)) + name[at:]
    return name


filler = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyz ABC123.,'’\n") | st.sampled_from(TRICKY),
    max_size=30,
)


@st.composite
def naming(draw: st.DrawFn, names: list[str]) -> str:
    """A text that writes the names and their parts, in any form, among other words."""
    pieces = [
        piece
        for name in names
        for piece in [
            name,
            *name.split(),
            *(part for word in name.split() for part in word.split("-")),
        ]
    ]
    text = draw(filler)
    for piece in draw(st.lists(st.sampled_from(pieces), min_size=1)):
        text += draw(st.sampled_from(SEPARATORS)) + draw(written(piece))
        text += draw(st.sampled_from(SEPARATORS)) + draw(filler)
    return text


@PROPERTIES
@given(data=st.data(), name=st.sampled_from(NAMES))
@example(data=None, name="Siobhán O'Brien")
def test_no_part_of_a_name_survives_in_any_form(data: st.DataObject | None, name: str) -> None:
    # The example: the apostrophe case the generated ones start from.
    text = "O’BRIEN, o'brien, OBrien and Siobhan" if data is None else data.draw(naming([name]))
    result = redact_identity(text, name=name, address=None)
    for part in parts(name):
        assert not written_as_a_word(part, result), (part, text, result)


# Names that are words of the marker itself.
MARKER_WORDS = ("Name", "Removed", "Name Removed", "name removed")


@PROPERTIES
@given(
    data=st.data(), names=st.lists(st.sampled_from(NAMES + MARKER_WORDS), min_size=1, max_size=4)
)
@example(data=None, names=["Priya Patel", "Name"])
def test_several_names_go_in_one_pass_and_a_marker_is_never_taken_out_again(
    data: st.DataObject | None, names: list[str]
) -> None:
    text = "Priya wrote; Patel named the Name" if data is None else data.draw(naming(names))
    result = redact_identities(text, names=names, addresses=())
    # The text has no brackets of its own: any left beside a marker are a marker nested in one.
    assert "[" not in result.replace(REMOVED, ""), (text, result)
    for name in names:
        for part in parts(name):
            assert not written_as_a_word(part, result.replace(REMOVED, " ")), (part, text, result)
    # Another pass, as the names on the concern and the record get after 'for_contacts', takes
    # nothing more out.
    assert redact_identities(result, names=names, addresses=()) == result


@PROPERTIES
@given(
    text=st.text(alphabet=st.characters() | st.sampled_from(TRICKY + INVISIBLE + ("ł", "ʼ", "’")))
)
@example(text="日本語。Jos\u0301é、ﬁ Ⓐ\u200b" + "".join(map(chr, range(0x4E00, 0x4E40))))
def test_text_folds_as_each_of_its_characters_does(text: str) -> None:
    # Runs of characters that fold to themselves are copied whole, not folded one by one: the
    # folded text is still each character's folding, in order, and each maps back to its own.
    folded_text, origin = _folded(text)
    assert folded_text == "".join(map(_fold_character, text))
    if origin is not None:
        assert origin == [i for i, c in enumerate(text) for _ in _fold_character(c)] + [len(text)]


@PROPERTIES
@given(
    name=st.sampled_from(NAMES),
    data=st.data(),
    before=st.text(alphabet=st.characters() | st.sampled_from(TRICKY)),
    after=st.text(alphabet=st.characters() | st.sampled_from(TRICKY)),
    separators=st.tuples(st.sampled_from(SEPARATORS), st.sampled_from(SEPARATORS)),
)
@example(
    name="Jürgen Strauß",
    data=None,
    before="ﬃ Straße ß İ\u0301",
    after="\u0301ﬁ ß ŉ ½",
    separators=(" ", "_"),
)
@example(  # the name ends in two accents written as marks of their own, and they go with it
    name="Ngozi Okonkwo-Adébáyọ̀", data=None, before="Dr", after="\u0301 ok", separators=(" ", " ")
)
def test_the_text_around_a_name_is_kept_as_it_was_written(
    name: str,
    data: st.DataObject | None,
    before: str,
    after: str,
    separators: tuple[str, str],
) -> None:
    # Whatever the text around it folds to, and however long that is, the name is cut out of
    # the original exactly: the rest is the same, character for character.
    assume(not any(part in folded(before + "\n" + after) for part in parts(name)))
    name_written = nfd(name.upper()) if data is None else data.draw(written(name))
    text = f"{before}{separators[0]}{name_written}{separators[1]}{after}"
    result = redact_identity(text, name=name, address=None)
    assert result == f"{before}{separators[0]}{REMOVED}{separators[1]}{after}"
