"""The dashboard page and its CSV export against the staff world: its numbers are the world's,
it is the dean's, quality team's and admin's only (404 for everyone else), it covers the
person's regions only, and the export holds no identity or free text and is recorded."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlmodel import select

from storage import migrate
from storage.db import create_db_engine, transaction
from storage.tables import AccessRecord, Concern
from tests.integration.staff_world import (
    LEARNER_EMAIL,
    LEARNER_NAME,
    StaffWorld,
    build_world,
)

PAGE, CSV = "/staff/dashboard", "/staff/dashboard.csv"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaffWorld]:
    """One world for the module: reading the dashboard changes no concern."""
    engine = create_db_engine(f"sqlite:///{tmp_path_factory.mktemp('db') / 'concerns.db'}")
    migrate.upgrade(engine)
    built = build_world(engine)
    try:
        yield built
    finally:
        built.close()
        engine.dispose()


def _concerns(world: StaffWorld) -> list[Concern]:
    with transaction(world.engine) as session:
        return list(session.exec(select(Concern)).all())


def _numbers(page: str, attribute: str) -> dict[str, int]:
    """Every `data-<attribute>="key"` cell's number."""
    found = re.findall(rf'data-{attribute}="([^"]+)"[^>]*>\s*(?:<[^>]+>)?\s*(\d+)', page)
    return {key: int(value) for key, value in found}


def _pathway_rows(page: str) -> dict[tuple[int, str], int]:
    counts = {}
    for pathway, row in re.findall(r'data-pathway="(\d)">(.*?)</tr>', page, re.S):
        for level, value in _numbers(row, "level").items():
            counts[(int(pathway), level)] = value
    return counts


def _overdue_rows(page: str) -> dict[tuple[int, str], int]:
    counts = {}
    for pathway, row in re.findall(r'data-overdue-pathway="(\d)">(.*?)</tr>', page, re.S):
        for kind, value in _numbers(row, "overdue").items():
            counts[(int(pathway), kind)] = value
    return counts


def _heat(page: str) -> dict[tuple[int, int], int]:
    return {
        (int(likelihood), int(impact)): int(count)
        for likelihood, impact, count in re.findall(
            r'data-cell="(\d)-(\d)" data-count="(\d+)"', page
        )
    }


def test_the_numbers_are_the_worlds(world: StaffWorld) -> None:
    concerns = [c for c in _concerns(world) if c.status == "open"]
    assert len(concerns) == 5
    page = world.browser("dean").get(PAGE)
    assert page.status_code == 200, page.text
    text = page.text

    expected_risk = Counter((c.pathway, c.risk_level) for c in concerns)
    rows = _pathway_rows(text)
    for pathway in (1, 2, 3):
        for level in ("high", "medium", "low"):
            assert rows[(pathway, level)] == expected_risk[(pathway, level)], (pathway, level)
        assert rows[(pathway, "total")] == sum(1 for c in concerns if c.pathway == pathway)
    assert rows[(1, "total")] == 3 and rows[(2, "total")] == 1 and rows[(3, "total")] == 1

    heat = _heat(text)
    assert len(heat) == 25
    assert heat == {
        (likelihood, impact): sum(
            1 for c in concerns if (c.likelihood, c.impact) == (likelihood, impact)
        )
        for likelihood in range(1, 6)
        for impact in range(1, 6)
    }
    # Each cell says its rating and level in words, not by colour alone.
    assert re.search(r'nhsuk-tag--red">\d+ \(R, high\)', text)

    expected_domains = Counter(
        domain for c in concerns for domain in {code.split(".")[0] for code in c.standards}
    )
    assert _numbers(text, "domain") == {str(d): expected_domains[str(d)] for d in range(1, 7)}

    trend = _numbers(text, "month")
    assert len(trend) == 12
    assert trend.pop("2026-11") == 5
    assert set(trend.values()) == {0}
    assert "Hotspot</strong>" in text  # five concerns in one department within 90 days
    assert 'role="img"' in text and "<title" in text and "Nov 2026: 5" in text
    assert "style=" not in text and LEARNER_NAME not in text


def test_overdue_follows_the_clock(world: StaffWorld) -> None:
    assert set(_overdue_rows(world.browser("quality").get(PAGE).text).values()) == {0}
    before = world.clock.now
    world.clock.now = before + timedelta(days=60)
    try:
        # A fresh sign-in: the earlier session has expired by then.
        later = _overdue_rows(world.browser("quality").get(PAGE).text)
    finally:
        world.clock.now = before
    # Nobody acknowledged or gave feedback: every open concern is late on both counts.
    assert later == {
        (pathway, kind): count
        for pathway, count in ((1, 3), (2, 1), (3, 1))
        for kind in ("acknowledgement", "feedback", "either")
    }


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("dean", 200),
        ("quality", 200),
        ("admin", 200),
        ("other_dean", 200),
        ("supervisor", 404),
        ("other_supervisor", 404),
        ("school_lead", 404),
        ("other_school_lead", 404),
    ],
)
def test_only_deans_quality_teams_and_admins_have_it(
    world: StaffWorld, who: str, status: int
) -> None:
    browser = world.browser(who)
    assert browser.get(PAGE).status_code == status
    assert browser.get(CSV).status_code == status


def test_each_person_sees_their_regions_only(world: StaffWorld) -> None:
    references = set(world.concerns.values())
    other = world.browser("other_dean")
    page = other.get(PAGE).text
    assert set(_heat(page).values()) == {0}
    assert not any(reference in other.get(CSV).text for reference in references)
    assert other.get(PAGE, params={"region": "north-vale"}).status_code == 404

    dean = world.browser("dean")
    assert dean.get(PAGE, params={"region": "south-fen"}).status_code == 404
    assert dean.get(PAGE, params={"region": "north-vale"}).status_code == 200

    admin = world.browser("admin")
    assert sum(_heat(admin.get(PAGE).text).values()) == 5
    assert sum(_heat(admin.get(PAGE, params={"region": "south-fen"}).text).values()) == 0
    assert world.browser().get(PAGE).status_code == 303


def test_the_export_has_every_concern_no_identity_no_text_and_is_recorded(
    world: StaffWorld,
) -> None:
    before = len(_exports(world))
    answered = world.browser("dean").get(CSV)
    assert answered.status_code == 200
    assert answered.headers["content-type"].startswith("text/csv")
    assert answered.headers["content-disposition"].startswith("attachment;")
    rows = list(csv.DictReader(io.StringIO(answered.text)))
    assert {row["reference"] for row in rows} == set(world.concerns.values())
    for forbidden in (LEARNER_NAME, LEARNER_EMAIL):
        assert forbidden.lower() not in answered.text.lower()
    for concern in _concerns(world):
        assert concern.description not in answered.text
        assert concern.summary not in answered.text
    by_reference = {row["reference"]: row for row in rows}
    at_dean = by_reference[world.concerns["at_dean"]]
    assert at_dean["pathway"] == "3" and at_dean["status"] == "open"
    assert at_dean["organisation"] and at_dean["department"]

    records = _exports(world)
    assert len(records) == before + 1
    assert records[-1].channel == "web" and records[-1].detail["rows"] == 5


def _exports(world: StaffWorld) -> list[AccessRecord]:
    with transaction(world.engine) as session:
        return list(
            session.exec(
                select(AccessRecord)
                .where(
                    AccessRecord.kind == "exported",
                    AccessRecord.staff_id == world.staff_ids["dean"],
                )
                .order_by(AccessRecord.id)  # type: ignore[arg-type]
            ).all()
        )
