"""Where a concern starts on the three-pathway escalation ladder, and where it goes next."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from routing.model import Pathway, RaisedBefore


@dataclass(frozen=True)
class StartingPoint:
    """The pathway a new concern starts at, why, and whether pathway-1 contacts may be told."""

    pathway: Pathway
    reasons: tuple[str, ...]
    tell_pathway1: bool


@dataclass(frozen=True)
class StartRule:
    """One product rule from domain.md "Where a concern starts"."""

    pathway: Pathway
    tell_pathway1: bool
    reason: str


DEFAULT_START = StartRule(
    pathway=Pathway.CLINICAL_LEARNING_ENVIRONMENT,
    tell_pathway1=True,
    reason="Pathway 1 (clinical learning environment) is used in the first instance",
)

ABOUT_PATHWAY1_CONTACT = StartRule(
    pathway=Pathway.SCHOOL_OR_EDUCATION_PROVIDER,
    tell_pathway1=False,
    reason=(
        "The concern is about a pathway-1 contact -> start at pathway 2;"
        " no pathway-1 contact is told"
    ),
)

CANNOT_RAISE_LOCALLY = StartRule(
    pathway=Pathway.SCHOOL_OR_EDUCATION_PROVIDER,
    tell_pathway1=False,
    reason=(
        "The learner cannot raise it in the clinical learning environment -> start at pathway 2;"
        " no pathway-1 contact is told"
    ),
)

# Telling pathway 1 that an unresolved concern has moved on mirrors an escalation, where the
# previous level is told why it moved. Once pathway 2 has also failed the learner, the product
# rule sends it straight to the dean without involving the placement again.
START_BY_RAISED_BEFORE: Mapping[RaisedBefore, StartRule | None] = MappingProxyType(
    {
        RaisedBefore.NO: None,
        RaisedBefore.PATHWAY1: StartRule(
            pathway=Pathway.SCHOOL_OR_EDUCATION_PROVIDER,
            tell_pathway1=True,
            reason="Already raised at pathway 1 and still concerned -> start at pathway 2",
        ),
        RaisedBefore.PATHWAY1_AND_2: StartRule(
            pathway=Pathway.DEAN,
            tell_pathway1=False,
            reason="Already raised at pathways 1 and 2 and still concerned -> start at pathway 3",
        ),
    }
)

NEXT_PATHWAY: Mapping[Pathway, Pathway | None] = MappingProxyType(
    {
        Pathway.CLINICAL_LEARNING_ENVIRONMENT: Pathway.SCHOOL_OR_EDUCATION_PROVIDER,
        Pathway.SCHOOL_OR_EDUCATION_PROVIDER: Pathway.DEAN,
        # The dean is the top of the ladder: an overdue concern is flagged, not moved.
        Pathway.DEAN: None,
    }
)


def starting_pathway(
    *,
    raised_before: RaisedBefore,
    about_pathway1_contact: bool,
    cannot_raise_locally: bool = False,
) -> StartingPoint:
    """Decide where a new concern starts: the highest applicable rule wins."""
    applicable = [
        rule
        for rule in (
            START_BY_RAISED_BEFORE[raised_before],
            ABOUT_PATHWAY1_CONTACT if about_pathway1_contact else None,
            CANNOT_RAISE_LOCALLY if cannot_raise_locally else None,
        )
        if rule is not None
    ] or [DEFAULT_START]
    pathway = max(rule.pathway for rule in applicable)
    # Any one rule that keeps pathway 1 out is enough: telling the person the concern is about
    # would defeat the reason for going past them.
    tell_pathway1 = all(rule.tell_pathway1 for rule in applicable)
    reasons = [rule.reason for rule in applicable]
    if len(applicable) > 1:
        reasons.append(f"The highest applicable rule wins -> pathway {pathway.value}")
    return StartingPoint(pathway=pathway, reasons=tuple(reasons), tell_pathway1=tell_pathway1)


def next_pathway(pathway: Pathway) -> Pathway | None:
    """Return the pathway a concern escalates to, or None at the dean (no higher level)."""
    return NEXT_PATHWAY[pathway]
