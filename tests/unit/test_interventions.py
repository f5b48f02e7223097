"""Recommended quality interventions by risk level, as in domain.md."""

from __future__ import annotations

import pytest

from routing.interventions import (
    ALIASES,
    INTERVENTIONS,
    OTHER_INTERVENTIONS,
    recommended_interventions,
)
from routing.model import RiskLevel


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (RiskLevel.HIGH, ("Urgent risk review", "Programme review")),
        (RiskLevel.MEDIUM, ("Programme review", "Learner/educator review")),
        (RiskLevel.LOW, ("Desktop review", "Programme review", "Learner/educator review")),
    ],
)
def test_every_level_has_its_interventions(level: RiskLevel, expected: tuple[str, ...]) -> None:
    assert recommended_interventions(level) == expected


def test_every_level_is_in_the_table() -> None:
    assert set(INTERVENTIONS) == set(RiskLevel)


@pytest.mark.parametrize(
    ("old_name", "current_name"),
    [
        ("Triggered visit", "Urgent risk review"),
        ("Learner/educator meetings", "Learner/educator review"),
    ],
)
def test_old_handbook_names_point_at_current_names(old_name: str, current_name: str) -> None:
    assert ALIASES[old_name] == current_name


def test_aliases_point_at_interventions_that_exist() -> None:
    recommended = {name for names in INTERVENTIONS.values() for name in names}
    assert set(ALIASES.values()) <= recommended


def test_other_interventions_staff_may_record() -> None:
    assert OTHER_INTERVENTIONS == (
        "Senior leader engagement visit",
        "Monitoring the learning environment",
        "Sharing good practice / peer review",
        "Advice to providers",
        "Learner involvement",
        "Shadowing / friendly critic",
        "Provision of training",
        "Financial support",
        "Professional support unit",
    )
