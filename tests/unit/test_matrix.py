"""The 5x5 risk matrix matches domain.md cell by cell."""

from __future__ import annotations

import pytest

from routing.matrix import IMPACT_SCALE, LIKELIHOOD_SCALE, MATRIX, rate, risk_level
from routing.model import Rating, RiskLevel

# Copied from the normative table in domain.md:
# rows are likelihood 5 down to 1, columns are impact 1 to 5.
DOMAIN_TABLE = """
5 | G | A   | A/R | R   | R
4 | G | A   | A/R | R   | R
3 | G | G/A | A   | A/R | R
2 | G | G/A | A   | A   | A/R
1 | G | G   | G/A | G/A | A
"""


def _cells() -> list[tuple[int, int, str]]:
    cells = []
    for line in DOMAIN_TABLE.strip().splitlines():
        likelihood, *ratings = (cell.strip() for cell in line.split("|"))
        for impact, rating in enumerate(ratings, start=1):
            cells.append((int(likelihood), impact, rating))
    return cells


CELLS = _cells()


def test_the_written_out_grid_has_all_25_cells() -> None:
    assert len(CELLS) == 25
    assert {(likelihood, impact) for likelihood, impact, _ in CELLS} == set(MATRIX)


@pytest.mark.parametrize(("likelihood", "impact", "expected"), CELLS)
def test_every_cell_matches_the_rule_book(likelihood: int, impact: int, expected: str) -> None:
    assert rate(likelihood=likelihood, impact=impact) == expected
    assert MATRIX[(likelihood, impact)] == expected


@pytest.mark.parametrize(
    ("likelihood", "impact", "expected"),
    [(5, 3, "A/R"), (3, 2, "G/A"), (1, 5, "A"), (2, 5, "A/R"), (4, 4, "R"), (1, 1, "G")],
)
def test_cells_that_are_easy_to_get_wrong(likelihood: int, impact: int, expected: str) -> None:
    assert rate(likelihood=likelihood, impact=impact) == expected


@pytest.mark.parametrize(
    ("rating", "level"),
    [
        (Rating.R, RiskLevel.HIGH),
        (Rating.A_R, RiskLevel.HIGH),
        (Rating.A, RiskLevel.MEDIUM),
        (Rating.G_A, RiskLevel.LOW),
        (Rating.G, RiskLevel.LOW),
    ],
)
def test_every_rating_has_its_risk_level(rating: Rating, level: RiskLevel) -> None:
    assert risk_level(rating) == level


@pytest.mark.parametrize(("likelihood", "impact"), [(0, 3), (6, 3), (3, 0), (3, 6), (-1, -1)])
def test_scores_outside_one_to_five_are_refused(likelihood: int, impact: int) -> None:
    with pytest.raises(ValueError, match=r"must be 1\.\.5"):
        rate(likelihood=likelihood, impact=impact)


def test_scales_name_every_score() -> None:
    assert dict(LIKELIHOOD_SCALE) == {
        1: "rare",
        2: "unlikely",
        3: "possible",
        4: "likely",
        5: "almost certain",
    }
    assert dict(IMPACT_SCALE) == {
        1: "negligible",
        2: "minor",
        3: "moderate",
        4: "major",
        5: "significant",
    }


def test_the_tables_cannot_be_changed_at_run_time() -> None:
    with pytest.raises(TypeError):
        MATRIX[(1, 1)] = Rating.R  # type: ignore[index]
