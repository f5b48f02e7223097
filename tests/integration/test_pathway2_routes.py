"""Every learner group's pathway-2 route, end to end through the example directory."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from intake.service import submit_concern
from intake.submission import Channel, parse_submission
from storage import repositories
from storage.db import transaction
from storage.tables import ProgrammeBody
from tests.integration.helpers import (
    MONDAY_MORNING,
    concern_input,
    example_placement,
    load_example_directory,
    policy,
)

# group -> (programme the learner gives, the body's role, the body's key in the example region)
ROUTES = {
    "foundation": ("Foundation Programme FY1", "foundation_school", "north-vale-foundation"),
    "specialty": ("General Surgery ST4", "specialty_school", "north-vale-surgery"),
    "undergraduate_medical": ("MBChB year 4", "education_provider", "northgate-university"),
    "undergraduate_dental": ("BDS year 3", "education_provider", "northgate-university"),
    "undergraduate_pharmacy": ("MPharm", "education_provider", "northgate-university"),
    "nursing": ("BSc Adult Nursing", "education_provider", "university-of-vale"),
    "midwifery": ("BSc Midwifery", "education_provider", "university-of-vale"),
    "ahp": ("BSc Physiotherapy", "education_provider", "university-of-vale"),
    "healthcare_science": ("BSc Healthcare Science", "education_provider", "university-of-vale"),
    "support_workforce": (
        "Nursing associate apprenticeship",
        "education_provider",
        "university-of-vale",
    ),
}


@pytest.mark.parametrize("group", sorted(ROUTES))
def test_a_learner_groups_concern_reaches_its_school_or_university_at_pathway_2(
    sqlite_engine: Engine, group: str
) -> None:
    programme, role, body_key = ROUTES[group]
    load_example_directory(sqlite_engine)
    raw = concern_input(example_placement(sqlite_engine), about_pathway1_contact=True)
    raw["learner"] = {**raw["learner"], "group": group, "programme": programme}
    submitted = submit_concern(
        engine=sqlite_engine,
        concern=parse_submission(raw),
        channel=Channel.CLI,
        now=MONDAY_MORNING,
        policy=policy(),
    )
    with transaction(sqlite_engine) as session:
        concern = repositories.concern_by_reference(session, submitted.reference)
        assert concern is not None and concern.pathway == 2
        body = session.get(ProgrammeBody, concern.programme_body_id)
        assert body is not None and body.key == body_key
        parts = {
            (a.part, a.role, c.body_id)
            for a, c in repositories.assignments_of(session, concern.id or 0)
        }
    assert parts == {("primary", role, body.id), ("secondary", "pathway2_mailbox", body.id)}


def test_a_specialty_trainee_whose_school_cannot_be_told_apart_goes_to_the_quality_team(
    sqlite_engine: Engine,
) -> None:
    load_example_directory(sqlite_engine)
    raw = concern_input(example_placement(sqlite_engine), about_pathway1_contact=True)
    raw["learner"] = {**raw["learner"], "group": "specialty", "programme": "ST3"}
    submitted = submit_concern(
        engine=sqlite_engine,
        concern=parse_submission(raw),
        channel=Channel.CLI,
        now=MONDAY_MORNING,
        policy=policy(),
    )
    with transaction(sqlite_engine) as session:
        concern = repositories.concern_by_reference(session, submitted.reference)
        assert concern is not None and concern.programme_body_id is None
        primary = [
            a.role
            for a, _ in repositories.assignments_of(session, concern.id or 0)
            if a.part == "primary"
        ]
    assert primary == ["quality_team"]
