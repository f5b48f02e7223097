"""An email's placement is guessed from the directory only when exactly one place fits."""

from __future__ import annotations

import pytest

from intake.placement import Department, Guess, Organisation, aliases, guess_placement

VALE = Organisation(
    key="vale-general",
    name="Vale General Hospitals NHS Trust",
    sites=("Vale Royal Infirmary", "Brookside Community Hospital"),
    departments=(
        Department("emergency", "Emergency Department"),
        Department("general-surgery", "General Surgery (Ward 7)"),
        Department("maternity", "Maternity Unit"),
    ),
)
RIVERSIDE = Organisation(
    key="riverside-surgery",
    name="Riverside Surgery",
    departments=(Department("general-practice", "General Practice"),),
)
DIRECTORY = (VALE, RIVERSIDE)


def test_aliases_are_the_ways_people_write_a_name() -> None:
    assert {"vale general", "vale general hospitals nhs trust"} <= aliases(VALE.name, VALE.key)
    assert {"general surgery", "ward 7"} <= aliases("General Surgery (Ward 7)", "general-surgery")
    assert "maternity" in aliases("Maternity Unit", "maternity")
    # One common word alone would match ordinary prose.
    assert "emergency" not in aliases("Emergency Department", "emergency")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I am on placement at Vale General, Ward 7.", Guess("vale-general", "general-surgery")),
        ("Nights in the emergency department at Vale Royal", Guess("vale-general", "emergency")),
        ("I'm a student midwife in maternity", Guess("vale-general", "maternity")),
        ("At Riverside Surgery nobody teaches us", Guess("riverside-surgery", None)),
        ("It was an emergency and nobody came", Guess()),
        ("Vale General and Riverside Surgery both", Guess()),
        ("Somewhere else entirely", Guess()),
    ],
)
def test_guesses(text: str, expected: Guess) -> None:
    assert guess_placement(text, DIRECTORY) == expected


def test_names_match_as_whole_words_only() -> None:
    assert guess_placement("a wardrobe of 7 coats", DIRECTORY) == Guess()
