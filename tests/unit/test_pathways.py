"""Where a concern starts on the escalation ladder, and where it moves next."""

from __future__ import annotations

import itertools

import pytest

from routing.model import Pathway, RaisedBefore
from routing.pathways import next_pathway, starting_pathway


def test_default_is_pathway_1_and_pathway_1_is_told() -> None:
    start = starting_pathway(raised_before=RaisedBefore.NO, about_pathway1_contact=False)
    assert start.pathway == Pathway.CLINICAL_LEARNING_ENVIRONMENT
    assert start.tell_pathway1 is True
    assert start.reasons == (
        "Pathway 1 (clinical learning environment) is used in the first instance",
    )


def test_about_a_pathway1_contact_starts_at_2_and_no_pathway1_contact_is_told() -> None:
    start = starting_pathway(raised_before=RaisedBefore.NO, about_pathway1_contact=True)
    assert start.pathway == Pathway.SCHOOL_OR_EDUCATION_PROVIDER
    assert start.tell_pathway1 is False
    assert start.reasons == (
        "The concern is about a pathway-1 contact -> start at pathway 2;"
        " no pathway-1 contact is told",
    )


def test_cannot_raise_locally_starts_at_2_and_no_pathway1_contact_is_told() -> None:
    start = starting_pathway(
        raised_before=RaisedBefore.NO, about_pathway1_contact=False, cannot_raise_locally=True
    )
    assert start.pathway == Pathway.SCHOOL_OR_EDUCATION_PROVIDER
    assert start.tell_pathway1 is False
    assert start.reasons == (
        "The learner cannot raise it in the clinical learning environment"
        " -> start at pathway 2; no pathway-1 contact is told",
    )


def test_still_concerned_after_pathway1_starts_at_2() -> None:
    start = starting_pathway(raised_before=RaisedBefore.PATHWAY1, about_pathway1_contact=False)
    assert start.pathway == Pathway.SCHOOL_OR_EDUCATION_PROVIDER
    assert start.tell_pathway1 is True
    assert start.reasons == (
        "Already raised at pathway 1 and still concerned -> start at pathway 2",
    )


def test_still_concerned_after_pathways_1_and_2_starts_at_3() -> None:
    start = starting_pathway(
        raised_before=RaisedBefore.PATHWAY1_AND_2, about_pathway1_contact=False
    )
    assert start.pathway == Pathway.DEAN
    assert start.tell_pathway1 is False
    assert start.reasons == (
        "Already raised at pathways 1 and 2 and still concerned -> start at pathway 3",
    )


def test_the_highest_rule_wins_and_every_rule_is_explained() -> None:
    start = starting_pathway(
        raised_before=RaisedBefore.PATHWAY1_AND_2,
        about_pathway1_contact=True,
        cannot_raise_locally=True,
    )
    assert start.pathway == Pathway.DEAN
    assert start.tell_pathway1 is False
    assert start.reasons == (
        "Already raised at pathways 1 and 2 and still concerned -> start at pathway 3",
        "The concern is about a pathway-1 contact -> start at pathway 2;"
        " no pathway-1 contact is told",
        "The learner cannot raise it in the clinical learning environment"
        " -> start at pathway 2; no pathway-1 contact is told",
        "The highest applicable rule wins -> pathway 3",
    )


def test_raised_at_pathway1_but_about_a_pathway1_contact_keeps_pathway1_out() -> None:
    start = starting_pathway(raised_before=RaisedBefore.PATHWAY1, about_pathway1_contact=True)
    assert start.pathway == Pathway.SCHOOL_OR_EDUCATION_PROVIDER
    assert start.tell_pathway1 is False


# Every combination of the three answers, with the expected start written out by hand.
EXPECTED_STARTS = {
    # (raised_before, about_pathway1_contact, cannot_raise_locally): (pathway, tell_pathway1)
    (RaisedBefore.NO, False, False): (1, True),
    (RaisedBefore.NO, False, True): (2, False),
    (RaisedBefore.NO, True, False): (2, False),
    (RaisedBefore.NO, True, True): (2, False),
    (RaisedBefore.PATHWAY1, False, False): (2, True),
    (RaisedBefore.PATHWAY1, False, True): (2, False),
    (RaisedBefore.PATHWAY1, True, False): (2, False),
    (RaisedBefore.PATHWAY1, True, True): (2, False),
    (RaisedBefore.PATHWAY1_AND_2, False, False): (3, False),
    (RaisedBefore.PATHWAY1_AND_2, False, True): (3, False),
    (RaisedBefore.PATHWAY1_AND_2, True, False): (3, False),
    (RaisedBefore.PATHWAY1_AND_2, True, True): (3, False),
}


def test_every_combination_is_listed() -> None:
    assert set(EXPECTED_STARTS) == set(
        itertools.product(RaisedBefore, [False, True], [False, True])
    )


@pytest.mark.parametrize(
    ("raised_before", "about_pathway1_contact", "cannot_raise_locally", "pathway", "tell"),
    [(*answers, *expected) for answers, expected in EXPECTED_STARTS.items()],
)
def test_every_combination_of_answers(
    raised_before: RaisedBefore,
    about_pathway1_contact: bool,
    cannot_raise_locally: bool,
    pathway: int,
    tell: bool,
) -> None:
    start = starting_pathway(
        raised_before=raised_before,
        about_pathway1_contact=about_pathway1_contact,
        cannot_raise_locally=cannot_raise_locally,
    )
    assert (start.pathway, start.tell_pathway1) == (pathway, tell)
    assert start.reasons
    if about_pathway1_contact:
        assert start.tell_pathway1 is False


@pytest.mark.parametrize(
    ("pathway", "expected"),
    [
        (Pathway.CLINICAL_LEARNING_ENVIRONMENT, Pathway.SCHOOL_OR_EDUCATION_PROVIDER),
        (Pathway.SCHOOL_OR_EDUCATION_PROVIDER, Pathway.DEAN),
        (Pathway.DEAN, None),
    ],
)
def test_next_pathway(pathway: Pathway, expected: Pathway | None) -> None:
    assert next_pathway(pathway) == expected
