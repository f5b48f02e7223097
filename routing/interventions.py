"""Proportionate quality interventions to recommend for each risk level (domain.md)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from routing.model import RiskLevel

# Current NHS England names; the older handbook names live in ALIASES so that records written with
# either name mean the same intervention.
INTERVENTIONS: Mapping[RiskLevel, tuple[str, ...]] = MappingProxyType(
    {
        RiskLevel.HIGH: ("Urgent risk review", "Programme review"),
        RiskLevel.MEDIUM: ("Programme review", "Learner/educator review"),
        RiskLevel.LOW: ("Desktop review", "Programme review", "Learner/educator review"),
    }
)

# Never recommended automatically, but staff may record them against a concern.
OTHER_INTERVENTIONS: tuple[str, ...] = (
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

ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "Triggered visit": "Urgent risk review",
        "Learner/educator meetings": "Learner/educator review",
    }
)


def recommended_interventions(level: RiskLevel) -> tuple[str, ...]:
    """Return the interventions recommended for a risk level, in the rule book's order."""
    return INTERVENTIONS[level]
