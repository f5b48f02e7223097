"""Explainable severity triage: a learner's answers and words -> likelihood, impact and reasons."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from routing.interventions import recommended_interventions
from routing.matrix import IMPACT_SCALE, LIKELIHOOD_SCALE, rate, risk_level
from routing.model import Frequency, Harm, Rating, RiskLevel

# Words may be split by spaces or hyphens ("near-miss", "sign-off") however the learner types them.
_SEPARATOR = r"[\s-]+"
# "..." in a phrase stands for a few words the learner puts in between: "cannot get my ARCP
# competencies signed off" must match "cannot get ... signed off". Four keeps it within a clause.
_GAP = r"(?:[\s-]+[\w']+){0,4}"
# Regular endings only; irregular forms ("bullied", "undermined") are listed in the tables, which
# keeps every match predictable from reading the table.
_INFLECTION = r"(?:s|es|ed|ing)?"


def _is_acronym(phrase: str) -> bool:
    # "IT" must not match "it" in every sentence, so acronyms are matched in capitals only.
    return phrase.isupper()


def _phrase_regex(phrase: str) -> str:
    regex = ""
    for token in phrase.split():
        if token == "...":
            regex += _GAP
            continue
        word = _SEPARATOR.join(re.escape(part) for part in token.split("-"))
        regex += (_SEPARATOR if regex else "") + word
    if _is_acronym(phrase):
        return rf"\b(?-i:{regex})\b"
    return rf"\b{regex}{_INFLECTION}\b"


# re.IGNORECASE lets four letters outside ASCII stand for ASCII ones (Python's re documentation,
# re.IGNORECASE): K (Kelvin sign) lower-cases to "k"; these three do not. The unit tests check
# this against every character.
_LIKE_ASCII = {"\u0130": "i", "\u0131": "i", "\u017f": "s"}
_NOT_WORD = re.compile(r"\W")
# ConcernText.spaced of ASCII text in one step, many times faster than lower() and a substitution.
_ASCII_SPACED = {
    code: " " if _NOT_WORD.match(chr(code)) else chr(code).lower() for code in range(128)
}


@dataclass(frozen=True)
class ConcernText:
    """A concern's words, prepared once however many tables of phrases read them."""

    raw: str
    # Curly apostrophes come from phones and word processors; the tables use straight ones.
    text: str = field(init=False, repr=False, compare=False)
    # In text typed all in capitals an acronym cannot be told from an ordinary word.
    shouting: bool = field(init=False, repr=False, compare=False)
    # A space, then the text in lower case with every character outside words made a space, so
    # position i + 1 here is position i of the text. A phrase found case-insensitively on a word
    # boundary has its first letters here in lower case, after a space. (Lower-casing a character
    # never changes whether it belongs to a word.)
    spaced: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        text = self.raw.replace("\u2019", "'")
        if text.isascii():
            spaced = text.translate(_ASCII_SPACED)
        else:
            lowered = text
            for letter, ascii_letter in _LIKE_ASCII.items():
                lowered = lowered.replace(letter, ascii_letter)
            lowered = lowered.lower()
            # Only U+0130 lower-cases to two characters, and it was replaced above.
            assert len(lowered) == len(text)
            spaced = _NOT_WORD.sub(" ", lowered)
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "shouting", not any(character.islower() for character in text))
        object.__setattr__(self, "spaced", " " + spaced)


def _first_letters(phrase: str) -> str:
    # The ASCII letters and digits a phrase starts with, lower-cased, as ConcernText.spaced has
    # them. They hold no space, so a search for them that does not overlap skips no place where a
    # phrase could start.
    first_part = phrase.split()[0].split("-")[0]
    letters = re.match(r"[a-zA-Z0-9]*", first_part)
    assert letters is not None
    return letters.group().lower()


@dataclass(frozen=True)
class Phrases:
    """Words and phrases found case-insensitively on word boundaries, with regular endings."""

    phrases: tuple[str, ...]
    # For themes that are bad when present (harm, bullying): "no patient was harmed" is no
    # signal. Themes of absence ("no teaching", "no wifi") keep their negations.
    skip_negated: bool = False
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)
    # Where a phrase may start, found in ConcernText.spaced: trying _pattern at every character
    # took a large share of the time to raise a concern, while re jumps straight from space to
    # space when a pattern starts with one.
    _starts: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for phrase in self.phrases:
            tokens = phrase.split()
            if not tokens or "..." in (tokens[0], tokens[-1]):
                raise ValueError(f"a phrase needs words at both ends, got {phrase!r}")
        # Longest first, so that "left unsupervised" is reported rather than "unsupervised".
        order = sorted(range(len(self.phrases)), key=lambda index: -len(self.phrases[index]))
        alternatives = "|".join(
            f"(?P<p{index}>{_phrase_regex(self.phrases[index])})" for index in order
        )
        object.__setattr__(self, "_pattern", re.compile(alternatives, re.IGNORECASE))
        first_letters = {_first_letters(phrase) for phrase in self.phrases}
        # A phrase starting with any other character is tried at every character instead.
        starts = (
            None if "" in first_letters else re.compile(f" (?:{'|'.join(sorted(first_letters))})")
        )
        object.__setattr__(self, "_starts", starts)

    def found_in(self, text: str | ConcernText) -> tuple[str, ...]:
        """Return the words found, lower-cased (acronyms as written), in order of appearance.

        Pass a ConcernText when many tables read the same text, so it is prepared only once.
        """
        words = text if isinstance(text, ConcernText) else ConcernText(text)
        found: dict[str, None] = {}
        for match in self._matches(words):
            assert match.lastgroup is not None
            if self.skip_negated and _NEGATED.search(
                words.text[max(0, match.start() - 60) : match.start()]
            ):
                # "No patient was harmed" must not read as harm.
                continue
            phrase = self.phrases[int(match.lastgroup[1:])]
            if _is_acronym(phrase):
                if not words.shouting:
                    found[phrase] = None
            elif "..." in phrase.split():
                # The gap holds the learner's own words; quoting the table phrase keeps reasons
                # short and free of free text.
                found[phrase] = None
            else:
                found[" ".join(match.group().lower().split())] = None
        return tuple(found)

    def _matches(self, words: ConcernText) -> Iterator[re.Match[str]]:
        """The matches of _pattern.finditer(words.text), tried only where a phrase may start."""
        if self._starts is None:
            starts: Iterable[int] = range(len(words.text))
        else:
            # The space is at start() in spaced, so the first letters are at start() in the text.
            starts = (space.start() for space in self._starts.finditer(words.spaced))
        end = 0
        for start in starts:
            if start < end:
                continue
            match = self._pattern.match(words.text, start)
            if match:
                yield match
                end = match.end()


# "wasn't" as it is typed on a phone.
NEGATIONS_WITHOUT_APOSTROPHE = (
    "wasnt", "werent", "isnt", "arent", "didnt", "dont", "doesnt", "hasnt", "havent", "hadnt",
)  # fmt: skip
# A negating word at most two words before a phrase: "no patient was harmed", "not unsafe",
# "nobody was bullied", "wasn't harmed"; never over "and", a clause's punctuation, a line break,
# a bracket or a dash ("not reviewed and the patient died", "nobody came, the patient died", a
# summary "No registrar" above "Patient died overnight").
_NOT_A_CLAUSE_BREAK = r"(?:(?! - )[^\w,.;:!?&\n()\u2013\u2014])+"
_NEGATED = re.compile(
    rf"\b(?:no|not|never|nobody|none|without|\w+n't|{'|'.join(NEGATIONS_WITHOUT_APOSTROPHE)})"
    rf"{_NOT_A_CLAUSE_BREAK}"
    rf"(?:(?!and\b)\w+{_NOT_A_CLAUSE_BREAK}){{0,2}}$",
    re.IGNORECASE,
)


# Words for negative behaviours, shared with the standards tagging so the two never drift.
BULLYING_WORDS: tuple[str, ...] = (
    "bully",
    "bullied",
    "bullies",
    "harass",
    "harassment",
    "undermine",
    "undermined",
    "undermining",
    "humiliate",
    "humiliated",
    "humiliating",
    "humiliation",
    "belittle",
    "belittled",
    "belittling",
    "intimidated",
    "intimidating",
    "shouted at",
    "shouts at",
    "shouting at",
    "screamed at",
    "screams at",
    "yelled at",
    "yells at",
    "picked on by",
    "picks on me",
    "picking on me",
    "picks on us",
    "picking on us",
)
DISCRIMINATION_WORDS: tuple[str, ...] = (
    "discrimination",
    "discriminated",
    "discriminatory",
    "racist",
    "racism",
    "sexist",
    "sexism",
    "homophobic",
)


# Who is cared for, and what happened to them, for the patient safety signal.
CARED_FOR: tuple[str, ...] = ("patient", "patients", "baby", "babies", "mother", "resident")
HARM_TO_SOMEONE: tuple[str, ...] = tuple(
    f"{someone} {happened}"
    for someone in CARED_FOR
    for happened in (
        "... died",
        "... passed away",
        "fell",
        "had a fall",
        "has fallen",
        "had fallen",
        # Not "patient ... injured": a negation inside the gap ("the patient was not
        # injured") is not looked for.
        "was injured",
        "were injured",
        "injured",
        "injury",
        "injuries",
    )
)


@dataclass(frozen=True)
class Signal:
    """A theme in the learner's words that sets a floor under the impact."""

    name: str
    phrases: Phrases
    min_impact: int
    patient_safety: bool = False


# domain.md "How likelihood and impact are found". A single occurrence is scored "unlikely"
# rather than "rare": it has happened, so it is more than a rare circumstance.
LIKELIHOOD_OF_FREQUENCY: Mapping[Frequency, int] = MappingProxyType(
    {
        Frequency.ONCE: 2,
        Frequency.OCCASIONALLY: 3,
        Frequency.OFTEN: 4,
        Frequency.CONTINUING: 5,
        # Careful default until the learner answers: neither rare nor certain.
        Frequency.NOT_ANSWERED: 3,
    }
)

FREQUENCY_NOTES: Mapping[Frequency, str] = MappingProxyType(
    {Frequency.NOT_ANSWERED: "treated as possible until the learner answers"}
)

IMPACT_OF_HARM: Mapping[Harm, int] = MappingProxyType(
    {
        Harm.PATIENT_HARMED: 5,
        Harm.PATIENT_AT_RISK: 4,
        Harm.LEARNERS_AFFECTED: 3,
        Harm.MINOR: 2,
        # Careful default: a learner who cannot tell is not told their concern is minor.
        Harm.NOT_SURE: 3,
        Harm.NOT_ANSWERED: 3,
    }
)

HARM_NOTES: Mapping[Harm, str] = MappingProxyType(
    {
        Harm.NOT_SURE: "unsure is treated as moderate until someone reviews it",
        Harm.NOT_ANSWERED: "treated as moderate until the learner answers",
    }
)

PATIENT_SAFETY_HARMS: frozenset[Harm] = frozenset({Harm.PATIENT_HARMED, Harm.PATIENT_AT_RISK})

# Signals only ever raise the impact, so a facilities word in a patient-safety concern is harmless.
SIGNALS: tuple[Signal, ...] = (
    Signal(
        name="patient safety",
        phrases=Phrases(
            (
                "left unsupervised",
                "unsupervised",
                "without supervision",
                "no supervision",
                "no senior cover",
                "no senior support",
                "no senior help",
                "no consultant cover",
                "nobody senior came",
                "no one senior came",
                "no senior came",
                # Supervision missing, as learners put it: alone with patients, nobody to ask
                # for help. Each names the patients, the ward or the help, so that "nobody to
                # ask about study leave" or "on my own with the paperwork" is not read as it.
                "left alone on ... ward",
                "left alone on nights",
                "left alone at night",
                "on my own with ... patients",
                "left alone with ... patients",
                "nobody to ask for help",
                "no one to ask for help",
                "noone to ask for help",
                "nobody to ask if",
                "no one to ask if",
                "nobody to escalate to",
                "no one to escalate to",
                "without ... senior cover",
                "don't feel safe",
                "dont feel safe",
                "do not feel safe",
                "unsafe",
                "unsafely",
                "not safe",
                "dangerous",
                "dangerously",
                "harm",
                "harmful",
                # Harm that happened to someone cared for, in the words learners use for it.
                # Only with them: a learner's grandmother died, a learner had a fall in the car
                # park, patient numbers fell, teaching on cardiac arrest was cancelled.
                *HARM_TO_SOMEONE,
                "patient's death",
                "patient death",
                "patient fall",
                "patients are dying",
                "patient is dying",
                "avoidable death",
                "unexpected death",
                "unwitnessed fall",
                "badly injured",
                "seriously injured",
                "got injured",
                "serious injury",
                "serious injuries",
                "fell out of bed",
                "had a cardiac arrest",
                "given an overdose",
                "wrong dose",
                "wrong drug",
                "wrong patient",
                "missed diagnosis",
                "missed diagnoses",
                "near miss",
                "patient safety",
                "medication error",
                "drug error",
                "prescribing error",
                "serious incident",
                "never event",
            ),
            skip_negated=True,
        ),
        min_impact=4,
        patient_safety=True,
    ),
    Signal(
        name="negative behaviours",
        phrases=Phrases(
            BULLYING_WORDS + DISCRIMINATION_WORDS,
            skip_negated=True,
        ),
        min_impact=3,
    ),
    Signal(
        name="progression at risk",
        phrases=Phrases(
            (
                "no teaching",
                "teaching ... cancelled",
                "cancelled teaching",
                "cannot get ... signed off",
                "can't get ... signed off",
                "unable to get ... signed off",
                "not signed off",
                "not been signed off",
                "sign off",
                # Assessments that do not happen; a bare "assessment" would also catch a risk
                # assessment or an assessment that went well.
                "assessment ... cancelled",
                "assessment ... postponed",
                "assessment never happen",
                "assessments never happen",
                "no assessment",
                "missed assessment",
                "competency",
                "competencies",
                "ARCP",
                "no induction",
                "no proper induction",
                "without an induction",
                "never had an induction",
            )
        ),
        min_impact=3,
    ),
    Signal(
        name="facilities or inconvenience",
        phrases=Phrases(
            (
                "facilities",
                "facility",
                "IT",
                "computer",
                "rota",
                "parking",
                "locker",
                "library",
                "libraries",
                "wifi",
                "wi-fi",
                "printer",
            )
        ),
        min_impact=2,
    ),
)


@dataclass(frozen=True)
class TriageInput:
    """What triage reads: the two structured answers, the concern's words and the department's load.

    text is the summary and the description together; related_open_concerns counts the other open
    concerns about the same department within 90 days (the caller counts them).
    """

    frequency: Frequency
    harm: Harm
    text: str
    related_open_concerns: int = 0

    def __post_init__(self) -> None:
        if self.related_open_concerns < 0:
            raise ValueError("related_open_concerns cannot be negative")


@dataclass(frozen=True)
class Triage:
    """A rating with every reason that produced it."""

    likelihood: int
    impact: int
    rating: Rating
    level: RiskLevel
    reasons: tuple[str, ...]
    patient_safety: bool
    hotspot: bool
    interventions: tuple[str, ...]


def _likelihood_words(likelihood: int) -> str:
    return f"likelihood {likelihood} ({LIKELIHOOD_SCALE[likelihood]})"


def _impact_words(impact: int) -> str:
    return f"impact {impact} ({IMPACT_SCALE[impact]})"


def _rating_words(*, likelihood: int, impact: int, rating: Rating, level: RiskLevel) -> str:
    return f"Likelihood {likelihood} x impact {impact} -> rating {rating} -> {level} risk"


def _quoted(phrases: tuple[str, ...]) -> str:
    return ", ".join(f"'{phrase}'" for phrase in phrases)


def triage(answers: TriageInput) -> Triage:
    """Rate a concern from the learner's answers and words, giving a reason for every step."""
    reasons: list[str] = []

    likelihood = LIKELIHOOD_OF_FREQUENCY[answers.frequency]
    frequency_reason = (
        f"How often: '{answers.frequency.replace('_', ' ')}' -> {_likelihood_words(likelihood)}"
    )
    if answers.frequency in FREQUENCY_NOTES:
        frequency_reason += f": {FREQUENCY_NOTES[answers.frequency]}"
    reasons.append(frequency_reason)

    impact = IMPACT_OF_HARM[answers.harm]
    patient_safety = answers.harm in PATIENT_SAFETY_HARMS
    harm_reason = f"Anyone harmed: '{answers.harm.replace('_', ' ')}' -> {_impact_words(impact)}"
    if patient_safety:
        harm_reason += " (patient safety)"
    if answers.harm in HARM_NOTES:
        harm_reason += f": {HARM_NOTES[answers.harm]}"
    reasons.append(harm_reason)

    words = ConcernText(answers.text)
    for signal in SIGNALS:
        found = signal.phrases.found_in(words)
        if not found:
            continue
        impact = max(impact, signal.min_impact)
        patient_safety = patient_safety or signal.patient_safety
        reasons.append(
            f"Text mentions {_quoted(found)} ({signal.name})"
            f" -> impact at least {signal.min_impact} ({IMPACT_SCALE[signal.min_impact]})"
        )

    # Triangulation: several open concerns about one department make a recurrence more likely.
    hotspot = answers.related_open_concerns >= 1
    if hotspot:
        count = answers.related_open_concerns
        concerns = "concern" if count == 1 else "concerns"
        raised = min(likelihood + 1, max(LIKELIHOOD_SCALE))
        change = "raised to" if raised > likelihood else "already at the highest,"
        likelihood = raised
        reasons.append(
            f"{count} other open {concerns} about this department in the last 90 days"
            f" -> likelihood {change} {likelihood} (hotspot)"
        )

    rating = rate(likelihood=likelihood, impact=impact)
    level = risk_level(rating)
    reasons.append(_rating_words(likelihood=likelihood, impact=impact, rating=rating, level=level))
    return Triage(
        likelihood=likelihood,
        impact=impact,
        rating=rating,
        level=level,
        reasons=tuple(reasons),
        patient_safety=patient_safety,
        hotspot=hotspot,
        interventions=recommended_interventions(level),
    )


def override(auto: Triage, *, likelihood: int, impact: int, reason: str) -> Triage:
    """Apply a staff override with a written reason, keeping the automatic reasons and flags."""
    if not reason.strip():
        raise ValueError("an override needs a written reason")
    rating = rate(likelihood=likelihood, impact=impact)
    level = risk_level(rating)
    rated = _rating_words(likelihood=likelihood, impact=impact, rating=rating, level=level)
    return Triage(
        likelihood=likelihood,
        impact=impact,
        rating=rating,
        level=level,
        reasons=(
            *auto.reasons,
            f"Staff override of rating {auto.rating} ({auto.level} risk): {rated}."
            f" Reason given: {reason.strip()}",
        ),
        # The override changes the scores only: what the learner reported stays on the record.
        patient_safety=auto.patient_safety,
        hotspot=auto.hotspot,
        interventions=recommended_interventions(level),
    )
