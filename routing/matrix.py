"""The 5x5 risk matrix of domain.md: likelihood x impact -> rating -> risk level."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from routing.model import Rating, RiskLevel

G, GA, A, AR, R = Rating.G, Rating.G_A, Rating.A, Rating.A_R, Rating.R

# Laid out exactly like the normative table in domain.md (likelihood 5 on top, impact 1..5 left to
# right) so that a reviewer can check it cell by cell against the rule book.
_ROWS: tuple[tuple[int, tuple[Rating, Rating, Rating, Rating, Rating]], ...] = (
    (5, (G, A, AR, R, R)),
    (4, (G, A, AR, R, R)),
    (3, (G, GA, A, AR, R)),
    (2, (G, GA, A, A, AR)),
    (1, (G, G, GA, GA, A)),
)

MATRIX: Mapping[tuple[int, int], Rating] = MappingProxyType(
    {
        (likelihood, impact): rating
        for likelihood, row in _ROWS
        for impact, rating in enumerate(row, start=1)
    }
)

# A product decision (domain.md "Risk level"), kept as data so that a region can change it.
LEVEL_OF_RATING: Mapping[Rating, RiskLevel] = MappingProxyType(
    {
        Rating.R: RiskLevel.HIGH,
        Rating.A_R: RiskLevel.HIGH,
        Rating.A: RiskLevel.MEDIUM,
        Rating.G_A: RiskLevel.LOW,
        Rating.G: RiskLevel.LOW,
    }
)

LIKELIHOOD_SCALE: Mapping[int, str] = MappingProxyType(
    {1: "rare", 2: "unlikely", 3: "possible", 4: "likely", 5: "almost certain"}
)

IMPACT_SCALE: Mapping[int, str] = MappingProxyType(
    {1: "negligible", 2: "minor", 3: "moderate", 4: "major", 5: "significant"}
)


def rate(*, likelihood: int, impact: int) -> Rating:
    """Return the matrix cell for a likelihood and an impact, each 1..5."""
    if likelihood not in LIKELIHOOD_SCALE:
        raise ValueError(f"likelihood must be 1..5, got {likelihood!r}")
    if impact not in IMPACT_SCALE:
        raise ValueError(f"impact must be 1..5, got {impact!r}")
    return MATRIX[(likelihood, impact)]


def risk_level(rating: Rating) -> RiskLevel:
    """Return the risk level (high, medium, low) a rating belongs to."""
    return LEVEL_OF_RATING[rating]
