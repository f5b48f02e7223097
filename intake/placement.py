"""Finds the placement an email names: the organisation, site and department in the directory.

Learners write "Vale General", "Ward 7" or "the Emergency Department at Vale Royal", not our keys.
Names are matched as whole words; a guess is taken only when exactly one place fits, because a
wrong guess would tell the wrong supervisor. What is not found is asked for in the reply.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Words that name a kind of place rather than the place: "Vale General Hospitals NHS Trust" is
# written "Vale General", "Maternity Unit" is written "maternity".
_GENERIC_TAIL = re.compile(
    r"(\s+(nhs|foundation|trust|hospitals?|unit|department|team|university|health|care))+$",
    re.IGNORECASE,
)
_PARENTHESES = re.compile(r"\(([^)]*)\)")
# An alias shorter than this, or a single common word, matches too much ordinary prose.
MIN_ALIAS_LENGTH = 4
COMMON_WORDS = frozenset({"emergency", "general", "practice", "surgery", "medicine", "ward"})


@dataclass(frozen=True)
class Department:
    key: str
    name: str


@dataclass(frozen=True)
class Organisation:
    key: str
    name: str
    sites: tuple[str, ...] = ()
    departments: tuple[Department, ...] = ()


@dataclass(frozen=True)
class Guess:
    organisation: str | None = None  # key
    department: str | None = None  # key


def aliases(name: str, key: str) -> set[str]:
    """The ways a learner may write a place's name, lower-case."""
    found = {name, key.replace("-", " ")}
    for inside in _PARENTHESES.findall(name):
        found.add(inside)
    bare = _PARENTHESES.sub("", name).strip()
    found.add(bare)
    found.add(_GENERIC_TAIL.sub("", bare))
    return {
        " ".join(alias.lower().split())
        for alias in found
        if len(alias.strip()) >= MIN_ALIAS_LENGTH and alias.strip().lower() not in COMMON_WORDS
    }


def _mentions(text: str, names: Iterable[str]) -> bool:
    return any(re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text) for name in names)


def guess_placement(text: str, organisations: Sequence[Organisation]) -> Guess:
    """The organisation and department the text names, where exactly one fits each."""
    prose = " ".join(text.lower().split())
    named = [
        organisation
        for organisation in organisations
        if _mentions(prose, aliases(organisation.name, organisation.key))
        or any(_mentions(prose, aliases(site, site)) for site in organisation.sites)
    ]
    candidates = named if len(named) == 1 else organisations if not named else []
    departments = [
        (organisation, department)
        for organisation in candidates
        for department in organisation.departments
        if _mentions(prose, aliases(department.name, department.key))
    ]
    if len(departments) == 1:
        organisation, department = departments[0]
        return Guess(organisation=organisation.key, department=department.key)
    if len(named) == 1:
        return Guess(organisation=named[0].key)
    return Guess()
