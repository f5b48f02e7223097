"""Quality Framework standards: names from domain.md and suggestions from a concern's words."""

from __future__ import annotations

import pytest

from routing.model import Harm
from routing.standards import (
    DOMAINS,
    STANDARDS,
    THEMES,
    domain_of,
    suggest_standards,
)

EXPECTED_CODES = [
    *(f"1.{n}" for n in range(1, 7)),
    *(f"2.{n}" for n in range(1, 6)),
    *(f"3.{n}" for n in range(1, 6)),
    *(f"4.{n}" for n in range(1, 5)),
    *(f"5.{n}" for n in range(1, 4)),
    *(f"6.{n}" for n in range(1, 5)),
]


def test_every_standard_in_the_rule_book_is_named() -> None:
    assert list(STANDARDS) == EXPECTED_CODES
    assert all(title.strip() for title in STANDARDS.values())


@pytest.mark.parametrize(
    ("code", "title"),
    [
        ("1.1", "Safe, effective, compassionate care"),
        ("1.5", "Educational facilities (space, IT, library)"),
        ("2.4", "Equality and diversity"),
        ("3.4", "Timely induction"),
        ("4.1", "Educators trained"),
        ("6.1", "Attrition"),
    ],
)
def test_standard_titles(code: str, title: str) -> None:
    assert STANDARDS[code] == title


@pytest.mark.parametrize(
    ("key", "title"),
    [
        ("1", "Learning environment and culture"),
        ("2", "Educational governance and leadership"),
        ("3", "Supporting and empowering learners"),
        ("4", "Supporting and empowering educators"),
        ("5", "Delivering curricula and assessments"),
        ("6", "Developing a sustainable workforce"),
    ],
)
def test_every_domain_is_named(key: str, title: str) -> None:
    assert DOMAINS[key] == title


def test_there_are_six_domains() -> None:
    assert list(DOMAINS) == ["1", "2", "3", "4", "5", "6"]


@pytest.mark.parametrize(
    ("code", "domain"), [("1.1", "1"), ("2.5", "2"), ("3.4", "3"), ("4.4", "4"), ("6.4", "6")]
)
def test_domain_of_a_standard(code: str, domain: str) -> None:
    assert domain_of(code) == domain


@pytest.mark.parametrize("code", ["7.1", "1.7", "1", "", "safe"])
def test_domain_of_an_unknown_standard_is_refused(code: str) -> None:
    with pytest.raises(ValueError, match="unknown Quality Framework standard"):
        domain_of(code)


# One sample sentence per theme in the table, with the standards it must suggest, written out
# independently of the table.
THEME_SAMPLES = [
    ("supervision", "I am regularly left unsupervised on nights", ("1.1", "3.1")),
    ("negative behaviours", "The consultant bullies the juniors", ("1.2",)),
    ("discrimination", "I was discriminated against because of my accent", ("1.2", "2.4")),
    ("quality improvement and research", "No time for my QIP or any audit", ("1.3",)),
    ("reflective practice", "There was no debrief after the arrest", ("1.4",)),
    ("facilities", "The library is shut and the IT never works", ("1.5",)),
    ("inter-professional learning", "No interprofessional sessions happen", ("1.6",)),
    ("response to concerns", "I told the tutor and nothing was done", ("2.1",)),
    ("leadership", "Leadership on the unit does not care", ("2.2",)),
    ("team-working", "Poor communication between nurses and doctors", ("2.3",)),
    ("pastoral support", "My mental health is suffering", ("3.1",)),
    ("assessments", "I cannot get my competencies signed off", ("3.2", "5.1")),
    ("part of the team", "I feel like a pair of hands, not a learner", ("3.3",)),
    ("induction", "We never had an induction", ("3.4",)),
    ("understanding their role", "I am out of my depth on this ward", ("3.5",)),
    ("educators trained", "My supervisor has not been trained to supervise", ("4.1",)),
    ("educators know the curriculum", "My supervisor does not know the curriculum", ("4.2", "5.1")),
    ("educators supported", "Consultants are too busy to teach", ("4.4",)),
    ("teaching and curriculum", "There is no teaching on this placement", ("5.1",)),
    ("responsive to change", "The new curriculum is ignored here", ("5.1", "5.2")),
    ("patient and learner involvement", "There is no learner voice here", ("5.3",)),
    ("workload and attrition", "I am burnt out and thinking of leaving", ("6.1",)),
    ("careers advice", "Nobody gives any careers advice", ("6.2",)),
    ("staffing", "The ward is always understaffed", ("6.1", "6.3")),
    ("transition to employment", "My preceptorship was withdrawn", ("6.4",)),
]


def test_every_theme_has_a_sample() -> None:
    assert [theme.name for theme in THEMES] == [name for name, _, _ in THEME_SAMPLES]


def test_every_theme_points_at_real_standards() -> None:
    for theme in THEMES:
        assert set(theme.standards) <= set(STANDARDS), theme.name


@pytest.mark.parametrize(("name", "text", "expected"), THEME_SAMPLES)
def test_every_theme_suggests_its_standards(
    name: str, text: str, expected: tuple[str, ...]
) -> None:
    assert suggest_standards(text=text, harm=Harm.MINOR, patient_safety=False) == expected


@pytest.mark.parametrize(
    ("text", "harm", "patient_safety", "expected"),
    [
        ("a patient was given the wrong drug", Harm.PATIENT_HARMED, True, ("1.1", "2.5")),
        ("a patient could be hurt", Harm.PATIENT_AT_RISK, False, ("1.1", "2.5")),
        ("near miss on the ward", Harm.NOT_SURE, True, ("1.1", "2.5")),
        ("I was harassed by a patient's relative", Harm.LEARNERS_AFFECTED, False, ("1.2",)),
        ("a racist remark by the registrar", Harm.LEARNERS_AFFECTED, False, ("1.2", "2.4")),
        ("assessments keep being postponed", Harm.MINOR, False, ("3.2", "5.1")),
        ("the induction was two weeks late", Harm.MINOR, False, ("3.4",)),
        ("the rota means I am exhausted", Harm.MINOR, False, ("6.1",)),
        ("the wifi in the library is down", Harm.MINOR, False, ("1.5",)),
    ],
)
def test_suggestions_for_typical_concerns(
    text: str, harm: Harm, patient_safety: bool, expected: tuple[str, ...]
) -> None:
    assert suggest_standards(text=text, harm=harm, patient_safety=patient_safety) == expected


def test_suggestions_are_sorted_and_unique() -> None:
    codes = suggest_standards(
        text="Bullied, unsupervised, no induction, burnout, unsupervised again, the IT",
        harm=Harm.PATIENT_AT_RISK,
        patient_safety=True,
    )
    assert codes == ("1.1", "1.2", "1.5", "2.5", "3.1", "3.4", "6.1")


@pytest.mark.parametrize(
    ("harm", "patient_safety", "expected"),
    [
        (Harm.MINOR, False, ("3.1",)),
        (Harm.LEARNERS_AFFECTED, False, ("3.1",)),
        (Harm.NOT_SURE, False, ("3.1",)),
        (Harm.NOT_SURE, True, ("1.1", "2.5")),
        (Harm.PATIENT_HARMED, True, ("1.1", "2.5")),
    ],
)
def test_suggestions_are_never_empty(
    harm: Harm, patient_safety: bool, expected: tuple[str, ...]
) -> None:
    assert suggest_standards(
        text="Something is wrong.", harm=harm, patient_safety=patient_safety
    ) == (expected)
