"""Explainable triage: answers and words -> likelihood, impact, rating and the reasons why."""

from __future__ import annotations

import pytest

from routing.model import Frequency, Harm, Rating, RiskLevel
from routing.triage import (
    IMPACT_OF_HARM,
    LIKELIHOOD_OF_FREQUENCY,
    SIGNALS,
    Phrases,
    Triage,
    TriageInput,
    override,
    triage,
)


def _triage(
    text: str = "",
    *,
    frequency: Frequency = Frequency.ONCE,
    harm: Harm = Harm.MINOR,
    related_open_concerns: int = 0,
) -> Triage:
    return triage(
        TriageInput(
            frequency=frequency,
            harm=harm,
            text=text,
            related_open_concerns=related_open_concerns,
        )
    )


@pytest.mark.parametrize(
    ("frequency", "likelihood", "reason"),
    [
        (Frequency.ONCE, 2, "How often: 'once' -> likelihood 2 (unlikely)"),
        (Frequency.OCCASIONALLY, 3, "How often: 'occasionally' -> likelihood 3 (possible)"),
        (Frequency.OFTEN, 4, "How often: 'often' -> likelihood 4 (likely)"),
        (Frequency.CONTINUING, 5, "How often: 'continuing' -> likelihood 5 (almost certain)"),
        (
            Frequency.NOT_ANSWERED,
            3,
            "How often: 'not answered' -> likelihood 3 (possible):"
            " treated as possible until the learner answers",
        ),
    ],
)
def test_every_frequency_sets_the_base_likelihood(
    frequency: Frequency, likelihood: int, reason: str
) -> None:
    result = _triage(frequency=frequency)
    assert LIKELIHOOD_OF_FREQUENCY[frequency] == likelihood
    assert result.likelihood == likelihood
    assert reason in result.reasons


@pytest.mark.parametrize(
    ("harm", "impact", "patient_safety", "reason"),
    [
        (
            Harm.PATIENT_HARMED,
            5,
            True,
            "Anyone harmed: 'patient harmed' -> impact 5 (significant) (patient safety)",
        ),
        (
            Harm.PATIENT_AT_RISK,
            4,
            True,
            "Anyone harmed: 'patient at risk' -> impact 4 (major) (patient safety)",
        ),
        (
            Harm.LEARNERS_AFFECTED,
            3,
            False,
            "Anyone harmed: 'learners affected' -> impact 3 (moderate)",
        ),
        (Harm.MINOR, 2, False, "Anyone harmed: 'minor' -> impact 2 (minor)"),
        (
            Harm.NOT_SURE,
            3,
            False,
            "Anyone harmed: 'not sure' -> impact 3 (moderate):"
            " unsure is treated as moderate until someone reviews it",
        ),
        (
            Harm.NOT_ANSWERED,
            3,
            False,
            "Anyone harmed: 'not answered' -> impact 3 (moderate):"
            " treated as moderate until the learner answers",
        ),
    ],
)
def test_every_harm_answer_sets_the_base_impact(
    harm: Harm, impact: int, patient_safety: bool, reason: str
) -> None:
    result = _triage(harm=harm)
    assert IMPACT_OF_HARM[harm] == impact
    assert result.impact == impact
    assert result.patient_safety is patient_safety
    assert reason in result.reasons


# One sample sentence per signal in the table, with what it must do, written out independently.
@pytest.mark.parametrize(
    ("name", "text", "min_impact", "patient_safety", "reason"),
    [
        (
            "patient safety",
            "I was left unsupervised in resus",
            4,
            True,
            "Text mentions 'left unsupervised' (patient safety) -> impact at least 4 (major)",
        ),
        (
            "negative behaviours",
            "The registrar bullied me in front of patients",
            3,
            False,
            "Text mentions 'bullied' (negative behaviours) -> impact at least 3 (moderate)",
        ),
        (
            "progression at risk",
            "Teaching is always cancelled for ward work",
            3,
            False,
            "Text mentions 'teaching ... cancelled' (progression at risk)"
            " -> impact at least 3 (moderate)",
        ),
        (
            "facilities or inconvenience",
            "There is no wifi in the doctors' mess",
            2,
            False,
            "Text mentions 'wifi' (facilities or inconvenience) -> impact at least 2 (minor)",
        ),
    ],
)
def test_every_signal_sets_its_floor(
    name: str, text: str, min_impact: int, patient_safety: bool, reason: str
) -> None:
    signal = next(signal for signal in SIGNALS if signal.name == name)
    assert (signal.min_impact, signal.patient_safety) == (min_impact, patient_safety)
    # From the lowest harm answer (minor, impact 2), so that the signal alone decides the impact.
    result = _triage(text, harm=Harm.MINOR)
    assert result.impact == min_impact
    assert result.patient_safety is patient_safety
    assert reason in result.reasons


def test_the_signal_table_is_the_one_tested() -> None:
    assert [signal.name for signal in SIGNALS] == [
        "patient safety",
        "negative behaviours",
        "progression at risk",
        "facilities or inconvenience",
    ]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("I was unsupervised", "unsupervised"),
        ("there was no senior cover overnight", "no senior cover"),
        ("a mum bled and nobody senior came for 40 minutes", "nobody senior came"),
        ("No senior support at weekends", "no senior support"),
        ("the ward is UNSAFE", "unsafe"),
        ("we were working unsafely", "unsafely"),
        ("a patient came to harm", "harm"),
        ("a patient was harmed", "harmed"),
        ("we had a near miss", "near miss"),
        ("two near-misses this week", "near-misses"),
        ("this is a patient safety issue", "patient safety"),
        ("there was a medication error", "medication error"),
        ("a patient died waiting for a review", "patient ... died"),
        ("the patient in bed 4 passed away", "patient ... passed away"),
        ("patients are dying on trolleys", "patients are dying"),
        ("a baby died after a delayed review", "baby ... died"),
        ("a resident fell in the night", "resident fell"),
        ("a patient's death was not reported", "patient's death"),
        ("the patient had a cardiac arrest", "had a cardiac arrest"),
        ("a patient injury went unreported", "patient injury"),
        ("patient deaths are not reviewed", "patient deaths"),
        ("a patient fell twice this week", "patient fell"),
        ("patient falls are not reviewed", "patient falls"),
        ("an elderly patient had a fall", "patient had a fall"),
        ("the patient was injured", "patient was injured"),
        ("he was given the wrong dose", "wrong dose"),
        # Supervision missing, as learners put it (an exploratory test's email).
        ("Most nights I get left on my own with like 12 patients", "on my own with ... patients"),
        ("I was on my own with 14 patients", "on my own with ... patients"),
        ("there's nobody to ask if something goes wrong", "nobody to ask if"),
        ("there is no one to ask for help at night", "no one to ask for help"),
        ("I don't feel safe on nights", "don't feel safe"),
        ("I was left alone on the ward again", "left alone on ... ward"),
        ("nights without any senior cover", "without ... senior cover"),
        # A negation does not reach over "and".
        ("the patient was not reviewed and died", "patient ... died"),
        ("she was not seen and was harmed", "harmed"),
        ("nobody came, the patient died", "patient ... died"),
        ("No senior review, patient died", "patient ... died"),
    ],
)
def test_patient_safety_words_are_found_with_their_endings(text: str, found: str) -> None:
    result = _triage(text)
    assert result.patient_safety is True
    assert result.impact == 4
    assert f"Text mentions '{found}' (patient safety) -> impact at least 4 (major)" in (
        result.reasons
    )


@pytest.mark.parametrize(
    "text",
    [
        "I feel bullied",
        "constant bullying",
        "I was harassed",
        "sexual harassment",
        "my decisions are undermined",
        "undermining comments",
        "racial discrimination",
        "a racist remark",
        "a sexist joke",
        "I was humiliated on the ward round",
        "he humiliates me in front of patients",
        "she keeps belittling me",
        "the registrar shouts at us",
        "I am picked on by the registrar every shift",
    ],
)
def test_negative_behaviours_raise_impact_to_moderate(text: str) -> None:
    result = _triage(text)
    assert result.impact == 3
    assert result.patient_safety is False
    assert any("(negative behaviours) -> impact at least 3 (moderate)" in r for r in result.reasons)


@pytest.mark.parametrize(
    "text",
    [
        "there is no teaching on this placement",
        "teaching cancelled every week",
        "I cannot get my competencies signed off",
        "I can\u2019t get my logbook signed off",
        "my portfolio is not signed off",
        "supervisor refuses to sign off my placement",
        "workplace assessments never happen",
        "no induction at all",
    ],
)
def test_progression_words_raise_impact_to_moderate(text: str) -> None:
    result = _triage(text)
    assert result.impact == 3
    assert any("(progression at risk) -> impact at least 3 (moderate)" in r for r in result.reasons)


@pytest.mark.parametrize(
    "text",
    [
        "The IT system is down all day",
        "no computer to write discharge letters",
        "the rota is published late",
        "parking costs a fortune",
        "no locker to keep things in",
        "the library closes at five",
        "the wi-fi does not work",
        "facilities are poor",
    ],
)
def test_facilities_words_set_impact_two(text: str) -> None:
    result = _triage(text, harm=Harm.MINOR)
    assert result.impact == 2
    assert any("(facilities or inconvenience)" in r for r in result.reasons)


def test_facilities_words_never_lower_the_impact() -> None:
    result = _triage("the rota and the IT are bad", harm=Harm.PATIENT_HARMED)
    assert result.impact == 5


def test_signals_only_raise_impact_and_take_the_highest() -> None:
    result = _triage("bullied, and left unsupervised, and no parking", harm=Harm.MINOR)
    assert result.impact == 4
    assert result.patient_safety is True


@pytest.mark.parametrize(
    "text",
    [
        "the feedback was harmless",
        "pharmacy placement, it was fine",
        "it is what it is",
        "It was a good week",
        "I visited the ward",
        "Harmless banter, honestly",
        "unsafeness is not a word we match",
        "bullyish is not a word we match",
        "rotation to a new ward",
        # Harm words in other senses: a learner falls behind, patient numbers fall, a learner's
        # relative dies, teaching is about cardiac arrest.
        "I fell behind with my portfolio",
        "I fell asleep in the car after nights",
        "the teaching fell through",
        "Patient numbers fell over the summer",
        "patient feedback fell sharply",
        "My grandmother died and I was refused compassionate leave",
        "I was asked to verify a death on my own",
        "FY1s complete death certificates for patients they never met",
        "I injured my back lifting a patient",
        "teaching on cardiac arrest management was moved",
        "we see lots of overdose patients",
        "I had a fall in the car park",
        "the lecture on caring for patients who are dying was good",
    ],
)
def test_words_that_only_look_like_signals_are_not_matched(text: str) -> None:
    result = _triage(text)
    assert result.impact == 2
    assert result.patient_safety is False
    assert not any(r.startswith("Text mentions") for r in result.reasons)


def test_it_in_capitals_matches_only_as_an_acronym() -> None:
    phrases = Phrases(("IT",))
    assert phrases.found_in("The IT helpdesk never answers") == ("IT",)
    assert phrases.found_in("it never answers; It is slow") == ()
    # In shouted text an acronym cannot be told from the word "it".
    assert phrases.found_in("IT IS ALWAYS LIKE THIS") == ()


def test_a_phrase_is_reported_once_in_order_of_first_appearance() -> None:
    phrases = Phrases(("unsafe", "left unsupervised", "unsupervised"))
    text = "Unsafe. I was left unsupervised; unsafe again, then unsupervised"
    assert phrases.found_in(text) == ("unsafe", "left unsupervised", "unsupervised")


@pytest.mark.parametrize("phrase", ["", "   ", "... signed off", "cannot get ..."])
def test_a_phrase_needs_words_at_both_ends(phrase: str) -> None:
    with pytest.raises(ValueError, match="words at both ends"):
        Phrases((phrase,))


@pytest.mark.parametrize(
    ("related", "likelihood", "reason"),
    [
        (
            1,
            5,
            "1 other open concern about this department in the last 90 days"
            " -> likelihood raised to 5 (hotspot)",
        ),
        (
            2,
            5,
            "2 other open concerns about this department in the last 90 days"
            " -> likelihood raised to 5 (hotspot)",
        ),
    ],
)
def test_related_open_concerns_raise_likelihood_and_mark_a_hotspot(
    related: int, likelihood: int, reason: str
) -> None:
    result = _triage(frequency=Frequency.OFTEN, related_open_concerns=related)
    assert result.likelihood == likelihood
    assert result.hotspot is True
    assert reason in result.reasons


def test_triangulation_caps_likelihood_at_five() -> None:
    result = _triage(frequency=Frequency.CONTINUING, related_open_concerns=3)
    assert result.likelihood == 5
    assert result.hotspot is True
    assert (
        "3 other open concerns about this department in the last 90 days"
        " -> likelihood already at the highest, 5 (hotspot)"
    ) in result.reasons


def test_no_related_concerns_is_no_hotspot() -> None:
    result = _triage(frequency=Frequency.OFTEN)
    assert result.likelihood == 4
    assert result.hotspot is False
    assert not any("hotspot" in r for r in result.reasons)


def test_negative_related_concerns_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        TriageInput(frequency=Frequency.ONCE, harm=Harm.MINOR, text="", related_open_concerns=-1)


def test_a_full_triage_explains_every_step_in_order() -> None:
    result = _triage(
        "Left unsupervised on nights again and the registrar undermined me",
        frequency=Frequency.OFTEN,
        harm=Harm.NOT_SURE,
        related_open_concerns=2,
    )
    assert result == Triage(
        likelihood=5,
        impact=4,
        rating=Rating.R,
        level=RiskLevel.HIGH,
        reasons=(
            "How often: 'often' -> likelihood 4 (likely)",
            "Anyone harmed: 'not sure' -> impact 3 (moderate):"
            " unsure is treated as moderate until someone reviews it",
            "Text mentions 'left unsupervised' (patient safety) -> impact at least 4 (major)",
            "Text mentions 'undermined' (negative behaviours) -> impact at least 3 (moderate)",
            "2 other open concerns about this department in the last 90 days"
            " -> likelihood raised to 5 (hotspot)",
            "Likelihood 5 x impact 4 -> rating R -> high risk",
        ),
        patient_safety=True,
        hotspot=True,
        interventions=("Urgent risk review", "Programme review"),
    )


@pytest.mark.parametrize(
    ("frequency", "harm", "rating", "level", "interventions"),
    [
        (
            Frequency.OFTEN,
            Harm.PATIENT_AT_RISK,
            Rating.R,
            RiskLevel.HIGH,
            ("Urgent risk review", "Programme review"),
        ),
        (
            Frequency.OCCASIONALLY,
            Harm.LEARNERS_AFFECTED,
            Rating.A,
            RiskLevel.MEDIUM,
            ("Programme review", "Learner/educator review"),
        ),
        (
            Frequency.ONCE,
            Harm.MINOR,
            Rating.G_A,
            RiskLevel.LOW,
            ("Desktop review", "Programme review", "Learner/educator review"),
        ),
    ],
)
def test_the_rating_brings_its_level_and_interventions(
    frequency: Frequency,
    harm: Harm,
    rating: Rating,
    level: RiskLevel,
    interventions: tuple[str, ...],
) -> None:
    result = _triage(frequency=frequency, harm=harm)
    assert (result.rating, result.level, result.interventions) == (rating, level, interventions)


def test_override_rerates_and_keeps_the_automatic_reasons_and_flags() -> None:
    auto = _triage(
        "left unsupervised",
        frequency=Frequency.OFTEN,
        harm=Harm.PATIENT_AT_RISK,
        related_open_concerns=1,
    )
    assert auto.rating == Rating.R

    overridden = override(
        auto, likelihood=2, impact=3, reason="  Senior cover confirmed on every rota since May  "
    )

    assert (overridden.likelihood, overridden.impact) == (2, 3)
    assert overridden.rating == Rating.A
    assert overridden.level == RiskLevel.MEDIUM
    assert overridden.interventions == ("Programme review", "Learner/educator review")
    assert overridden.reasons[:-1] == auto.reasons
    assert overridden.reasons[-1] == (
        "Staff override of rating R (high risk):"
        " Likelihood 2 x impact 3 -> rating A -> medium risk."
        " Reason given: Senior cover confirmed on every rota since May"
    )
    assert overridden.patient_safety is True
    assert overridden.hotspot is True


@pytest.mark.parametrize("reason", ["", "   ", "\n\t"])
def test_override_needs_a_written_reason(reason: str) -> None:
    with pytest.raises(ValueError, match="written reason"):
        override(_triage(), likelihood=3, impact=3, reason=reason)


@pytest.mark.parametrize(("likelihood", "impact"), [(0, 3), (3, 6)])
def test_override_scores_must_be_on_the_scale(likelihood: int, impact: int) -> None:
    with pytest.raises(ValueError, match=r"must be 1\.\.5"):
        override(_triage(), likelihood=likelihood, impact=impact, reason="checked")


@pytest.mark.parametrize(
    "text",
    [
        "No patient was harmed, but the parking is awful",
        "Nobody was harmed and it is not unsafe, just inconvenient",
        "The patient wasn't harmed",
        "No patient died and nobody was injured",
        "We had a risk assessment training session that went well",
    ],
)
def test_negated_or_harmless_mentions_raise_nothing(text: str) -> None:
    result = triage(TriageInput(frequency=Frequency.ONCE, harm=Harm.MINOR, text=text))
    assert not result.patient_safety
    assert result.impact == 2


def test_harm_after_an_unrelated_negation_still_counts() -> None:
    text = "There was no senior cover on the ward and a patient was harmed"
    result = triage(TriageInput(frequency=Frequency.ONCE, harm=Harm.MINOR, text=text))
    assert result.patient_safety and result.impact >= 4


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("she was not seen and harmed", True),  # "and" ends a negation's reach
        ("no one x harm", False),  # two words between: still negated
        ("no one x y harm", True),  # three: out of reach
        ("No registrar\npatient died overnight", True),  # a line break ends it
        ("Nobody came \u2014 the patient fell", True),  # so does a dash
        ("Nobody came - the patient fell", True),  # as typed
        ("The patient was badly injured", True),
        ("No doctor came (patient fell twice)", True),  # and a bracket
        ("the patient wasnt harmed", False),  # typed without the apostrophe
        ("the patient had no injuries", False),
    ],
)
def test_where_a_negation_reaches(text: str, found: bool) -> None:
    result = _triage(text)
    assert result.patient_safety is found, result.reasons


@pytest.mark.parametrize(
    "text",
    [
        "There is nobody to ask about study leave or annual leave.",
        "There was no one to ask for a locker key.",
        "I was left on my own with the discharge paperwork.",
        "Without a senior's signature I cannot get study leave.",
        "I would like more time alone with patients to practise taking histories.",
        "I got picked on the ballot for annual leave.",
    ],
)
def test_ordinary_words_about_being_alone_or_picked_are_no_signal(text: str) -> None:
    """The reviewer's examples: none is patient safety or a negative behaviour."""
    result = _triage(text, harm=Harm.MINOR)
    assert not result.patient_safety, result.reasons
    assert result.impact < 3, result.reasons
