"""The placement a learner picks on the form is the one their concern goes to, even where the
directory has two of a name (an Emergency Department at each of a trust's hospitals, two GP
practices called the same)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from intake.service import submit_concern
from intake.submission import Channel, parse_submission
from storage.db import transaction
from storage.directory import example_directory_path, load_directory_file
from storage.tables import Concern, ConcernContact, Contact, Department, Event, Organisation, Site
from tests.integration.helpers import MONDAY_MORNING, concern_input, policy
from tests.integration.test_web_form import REFERENCE, confirmed, send, stored
from tests.integration.webclient import WebClient, make_app, web_client

# A second Emergency Department at the trust's other hospital, and a second practice called
# Riverside Surgery: the directory allows both (keys are unique, names need not be).
SECOND_EMERGENCY = """
          - key: emergency-brookside
            name: Emergency Department
            site: brookside
            supervisors:
              - name: Dr Brook Other
                email: brook.other@vale-general.example.nhs.uk
                lead: true
            clinical_tutor:
              name: Dr Brook Tutor
              email: brook.tutor@vale-general.example.nhs.uk"""
SECOND_PRACTICE = """
      - key: riverside-surgery-east
        name: Riverside Surgery
        kind: gp_practice
        speak_up_guardian:
          name: East Guardian
          email: speakup@riverside-east.example.nhs.uk
        clinical_tutor:
          name: East Tutor
          email: tutor@riverside-east.example.nhs.uk
        sites:
          - key: riverside-east
            name: Riverside Surgery East
        departments:
          - key: general-practice
            name: General Practice
            site: riverside-east
            supervisors:
              - name: Dr East Trainer
                email: east.trainer@riverside-east.example.nhs.uk
                lead: true"""


@pytest.fixture
def engine(sqlite_engine: Engine, tmp_path: Path) -> Engine:
    text = example_directory_path().read_text()
    text = text.replace(
        "\n\n      - key: riverside-surgery",
        SECOND_EMERGENCY + "\n\n      - key: riverside-surgery",
        1,
    )
    text = text.replace("\n    schools:", SECOND_PRACTICE + "\n\n    schools:", 1)
    path = tmp_path / "directory.yaml"
    path.write_text(text)
    with transaction(sqlite_engine) as session:
        load_directory_file(session, path, now=datetime(2026, 11, 1, tzinfo=UTC))
        assert (
            len(
                session.exec(
                    select(Department).where(Department.name == "Emergency Department")
                ).all()
            )
            == 2
        )
        assert (
            len(
                session.exec(
                    select(Organisation).where(Organisation.name == "Riverside Surgery")
                ).all()
            )
            == 2
        )
    return sqlite_engine


@pytest.fixture
def client(engine: Engine) -> Iterator[WebClient]:
    with web_client(make_app(engine, clock=lambda: MONDAY_MORNING)) as client:
        yield client


def placed(engine: Engine, reference: str) -> tuple[str, str, str | None, list[str]]:
    """The concern's organisation and department keys, its site's key, and who was told."""
    with transaction(engine) as session:
        concern = session.exec(select(Concern).where(Concern.reference == reference)).one()
        organisation = session.get(Organisation, concern.organisation_id)
        department = session.get(Department, concern.department_id)
        site = session.get(Site, concern.site_id) if concern.site_id else None
        told = session.exec(
            select(Contact.email)
            .join(ConcernContact, col(ConcernContact.contact_id) == Contact.id)
            .where(ConcernContact.concern_id == concern.id)
        ).all()
        assert organisation and department
        return organisation.key, department.key, site.key if site else None, sorted(told)


def options(page: str, name: str) -> dict[str, str]:
    select_html = re.search(rf'<select[^>]*name="{name}".*?</select>', page, re.S)
    assert select_html
    return dict(re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select_html.group(0)))


def test_two_departments_of_one_name_are_told_apart_and_the_chosen_one_is_told(
    engine: Engine, client: WebClient
) -> None:
    listed = options(client.get("/concerns/new").text, "department")
    # The learner sees which hospital each is at.
    assert listed["vale-general/emergency"] == (
        "Emergency Department, Vale Royal Infirmary, Vale General Hospitals NHS Trust"
    )
    assert listed["vale-general/emergency-brookside"] == (
        "Emergency Department, Brookside Community Hospital, Vale General Hospitals NHS Trust"
    )
    page = confirmed(client, send(client, department="vale-general/emergency-brookside"))
    match = REFERENCE.search(page)
    assert match
    organisation, department, site, told = placed(engine, match.group(1))
    assert (organisation, department, site) == ("vale-general", "emergency-brookside", "brookside")
    assert "brook.other@vale-general.example.nhs.uk" in told
    assert "jordan.sample@vale-general.example.nhs.uk" not in told


def test_two_organisations_of_one_name_are_told_apart(engine: Engine, client: WebClient) -> None:
    listed = options(client.get("/concerns/new").text, "organisation")
    assert listed["riverside-surgery"] == listed["riverside-surgery-east"] == "Riverside Surgery"
    departments = options(client.get("/concerns/new").text, "department")
    assert departments["riverside-surgery-east/general-practice"] == (
        "General Practice, Riverside Surgery East, Riverside Surgery"
    )
    page = confirmed(
        client,
        send(
            client,
            organisation="riverside-surgery-east",
            department="riverside-surgery-east/general-practice",
        ),
    )
    match = REFERENCE.search(page)
    assert match
    organisation, department, _, told = placed(engine, match.group(1))
    assert (organisation, department) == ("riverside-surgery-east", "general-practice")
    assert "east.trainer@riverside-east.example.nhs.uk" in told
    # A department of the other practice of that name is refused with the organisation picked.
    refused = send(
        client,
        organisation="riverside-surgery",
        department="riverside-surgery-east/general-practice",
    )
    assert refused.status_code == 400 and "The department you selected is at" in refused.text


def test_a_name_two_share_matches_neither_and_staff_place_the_concern(engine: Engine) -> None:
    """Where only a name is given (an email, a chat form's free text), a name two places share
    is not guessed at: the concern keeps the learner's words for the quality team to place."""
    raw = concern_input(
        {"organisation": "Vale General Hospitals NHS Trust", "department": "Emergency Department"}
    )
    submitted = submit_concern(
        engine=engine,
        concern=parse_submission(raw),
        channel=Channel.CLI,
        now=MONDAY_MORNING,
        policy=policy(),
    )
    assert not submitted.placement_matched
    with transaction(engine) as session:
        concern = session.exec(
            select(Concern).where(Concern.reference == submitted.reference)
        ).one()
        assert concern.organisation_id is not None and concern.department_id is None
        assert concern.placement_text and "Emergency Department" in concern.placement_text


def test_the_site_a_learner_names_is_kept_beside_the_matched_department(
    engine: Engine, client: WebClient
) -> None:
    page = confirmed(client, send(client, site="Brookside annexe B"))
    match = REFERENCE.search(page)
    assert match
    concern = stored(engine, match.group(1))
    assert concern.placement_text is None and concern.site_id is not None
    with transaction(engine) as session:
        routed = session.exec(
            select(Event).where(Event.concern_id == concern.id, Event.kind == "routed")
        ).one()
    assert "Site as the learner gave it: 'Brookside annexe B'" in routed.detail["reasons"]
