"""Phrases.found_in, which only tries its pattern where a phrase may start, against a plain reading.

The reference below tries one regex per phrase, longest first, at every character of the text:
slow, but obviously the rules of routing.triage. The generated texts mix the words of the real
tables with other words, capitals, curly apostrophes, negations, hyphens and punctuation.
"""

from __future__ import annotations

import re
import sys

from hypothesis import example, given, settings
from hypothesis import strategies as st

from routing.standards import THEMES
from routing.triage import NEGATIONS_WITHOUT_APOSTROPHE, SIGNALS, ConcernText, Phrases

# Deterministic so that a failure in CI is the same failure on a laptop.
PROPERTIES = settings(derandomize=True, deadline=None, max_examples=200)

TABLES: tuple[Phrases, ...] = (
    *(signal.phrases for signal in SIGNALS),
    *(theme.phrases for theme in THEMES),
)

_NEGATIONS = {"no", "not", "never", "nobody", "none", "without", *NEGATIONS_WITHOUT_APOSTROPHE}
_CLAUSE_MARKS = set(",.;:!?&\n()\u2013\u2014")


def _negated(before: str) -> bool:
    """Read word by word from the end: a negation among the last three words, with only
    separators free of clause punctuation after it and no "and" between."""
    pieces = re.findall(r"\w+n't|\w+|\W+", before, re.IGNORECASE)
    words_read = 0
    while pieces and words_read < 3:
        separator = pieces.pop()
        if (
            re.fullmatch(r"\w.*", separator)
            or _CLAUSE_MARKS & set(separator)
            or " - " in separator
            or not pieces
        ):
            return False
        word = pieces.pop().lower()
        if word in _NEGATIONS or (word.endswith("n't") and len(word) > 3):
            return True
        if word == "and":
            return False
        words_read += 1
    return False


def _reference_pattern(phrase: str) -> re.Pattern[str]:
    separator = r"[\s-]+"
    regex = ""
    for token in phrase.split():
        if token == "...":
            regex += rf"(?:{separator}[\w']+){{0,4}}"
            continue
        word = separator.join(re.escape(part) for part in token.split("-"))
        regex += (separator if regex else "") + word
    if phrase.isupper():
        return re.compile(rf"\b{regex}\b")
    return re.compile(rf"\b{regex}(?:s|es|ed|ing)?\b", re.IGNORECASE)


def reference_found_in(phrases: Phrases, text: str) -> tuple[str, ...]:
    text = text.replace("\u2019", "'")
    shouting = not any(character.islower() for character in text)
    longest_first = [
        (phrase, _reference_pattern(phrase))
        for phrase in sorted(phrases.phrases, key=len, reverse=True)
    ]
    found: dict[str, None] = {}
    position = 0
    while position < len(text):
        first = next(
            (
                (phrase, match)
                for phrase, pattern in longest_first
                if (match := pattern.match(text, position))
            ),
            None,
        )
        if first is None:
            position += 1
            continue
        phrase, match = first
        position = match.end()
        if phrases.skip_negated and _negated(text[max(0, match.start() - 60) : match.start()]):
            continue
        if phrase.isupper():
            if not shouting:
                found[phrase] = None
        elif "..." in phrase.split():
            found[phrase] = None
        else:
            found[" ".join(match.group().lower().split())] = None
    return tuple(found)


TABLE_PHRASES = sorted({phrase for table in TABLES for phrase in table.phrases})
TABLE_WORDS = sorted(
    {part for phrase in TABLE_PHRASES for part in re.split(r"[\s-]+", phrase) if part != "..."}
)
NEGATIONS = ["no", "not", "never", "nobody", "none", "without", "wasn't", "didn\u2019t", "can't"]
NEGATIONS += ["and", "AND", "&", "wasnt", "DIDNT", "dont"]
# Letters that re.IGNORECASE matches to ASCII ones, and letters it does not.
ODD_LETTERS = "\u0130\u0131\u017f\u212a\u00e9\u00df_0"
SEPARATORS = [" ", " ", " ", "  ", "-", " - ", "\n", ", ", ". ", "; ", "'", "\u2019", "...", "("]
SEPARATORS += [")", "/", "\u2014", "\t", "", "!", " \u2019", "\u00a0", " & ", ": ", "? "]
SEPARATORS += [" \u2013 ", "\n", " -  ", "  - "]

random_words = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyz'" + ODD_LETTERS), min_size=1, max_size=8
)
inflected = st.builds(
    str.__add__, st.sampled_from(TABLE_WORDS), st.sampled_from(["s", "es", "ed", "ing", "ish"])
)
odd_spelling = st.builds(
    lambda word, letter, at: word[:at] + letter + word[at + 1 :],
    st.sampled_from(TABLE_WORDS),
    st.sampled_from(ODD_LETTERS),
    st.integers(min_value=0, max_value=3),
)
GAP_PHRASES = [phrase for phrase in TABLE_PHRASES if "..." in phrase.split()]
gap_filled = st.builds(
    lambda phrase, gap: phrase.replace("...", " ".join(gap)),
    st.sampled_from(GAP_PHRASES),
    st.lists(st.one_of(st.sampled_from(TABLE_WORDS), random_words), max_size=5),
)
words = st.one_of(
    st.sampled_from(TABLE_PHRASES),
    st.sampled_from(TABLE_PHRASES),
    gap_filled,
    st.sampled_from(["IT", "It", "ARCP", "Arcp", "QIP", "qip"]),
    st.sampled_from(TABLE_WORDS),
    inflected,
    st.sampled_from(NEGATIONS),
    random_words,
    odd_spelling,
)
cased_words = st.builds(
    lambda word, case: case(word),
    words,
    st.sampled_from([str.lower, str.lower, str.upper, str.title, str.swapcase, str.strip]),
)


@st.composite
def texts(draw: st.DrawFn) -> str:
    pieces = draw(
        st.lists(st.tuples(cased_words, st.sampled_from(SEPARATORS)), min_size=1, max_size=40)
    )
    text = draw(st.sampled_from(["", " ", "(", "\u2019"])) + "".join(
        word + separator for word, separator in pieces
    )
    # Shouted text, where acronyms are not reported.
    return text.upper() if draw(st.integers(min_value=0, max_value=5)) == 0 else text


@PROPERTIES
@given(text=texts())
@example(text="not seen and harmed")  # "and" ends the negation's reach
@example(text="no x y harm")  # two words between: still negated
@example(text="no x y z harm")  # three: out of reach
@example(text="No registrar\npatient died")  # a line break ends it too
@example(text="the patient wasnt harmed")
def test_the_tables_find_what_one_regex_per_phrase_finds(text: str) -> None:
    prepared = ConcernText(text)
    for table in TABLES:
        expected = reference_found_in(table, text)
        assert table.found_in(text) == expected, table.phrases
        assert table.found_in(prepared) == expected, table.phrases


# Words unlike the tables': letters outside ASCII, digits, underscores, punctuation or a hyphen
# first (phrases starting with those are tried at every character), and capitals.
ODD_WORDS = ["\u00e9clair", "_x", "2nd", "co-op", "IT", "QIP", "x-ray", "c++", "\u017ftress"]
ODD_WORDS += ["-ray", "na\u00efve", "\u212aelvin", "K9", "'til", "x_y"]
phrase_words = st.one_of(st.sampled_from(ODD_WORDS), st.sampled_from(TABLE_WORDS))
phrases = st.one_of(
    st.builds(" ".join, st.lists(phrase_words, min_size=1, max_size=3)),
    st.builds(lambda first, last: f"{first} ... {last}", phrase_words, phrase_words),
)


@PROPERTIES
@given(
    table=st.builds(Phrases, st.lists(phrases, min_size=1, max_size=6).map(tuple), st.booleans()),
    text=st.one_of(
        texts(),
        st.builds(
            "".join,
            st.lists(st.one_of(phrase_words, st.sampled_from(SEPARATORS), words), max_size=30),
        ),
    ),
)
@example(table=Phrases(("-ray", "'til", "x-ray")), text="An x-ray, then rock'til dawn: x -ray")
def test_any_table_finds_what_one_regex_per_phrase_finds(table: Phrases, text: str) -> None:
    assert table.found_in(text) == reference_found_in(table, text)


@PROPERTIES
@given(text=st.text(alphabet=st.characters(max_codepoint=127)))
def test_ascii_text_is_spaced_as_any_other_text(text: str) -> None:
    assert ConcernText(text).spaced == " " + re.sub(r"\W", " ", text.lower())


ALL_CHARACTERS = [chr(code) for code in range(sys.maxunicode + 1)]
_WORD = re.compile(r"\w")


def test_lower_casing_keeps_every_character_in_or_out_of_words() -> None:
    # ConcernText.spaced puts a space before every word of the text only because of this.
    changed = [
        character
        for character in ALL_CHARACTERS
        if bool(_WORD.match(character)) != bool(_WORD.match(character.lower()[0]))
    ]
    assert changed == []


def test_every_letter_matched_without_case_lower_cases_to_the_ascii_letter() -> None:
    # ConcernText.spaced holds a phrase's first letters wherever re.IGNORECASE finds them.
    everything = "".join(c for c in ALL_CHARACTERS if not "\ud800" <= c <= "\udfff")
    for letter in "abcdefghijklmnopqrstuvwxyz":
        for character in set(re.findall(letter, everything, re.IGNORECASE)):
            assert ConcernText(character).spaced == " " + letter, character
