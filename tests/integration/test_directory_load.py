"""Loading directory files into the database: upserts by key, deactivation, one transaction."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

from storage.db import transaction
from storage.directory import (
    DirectoryError,
    LoadSummary,
    TableChanges,
    describe_directory,
    example_directory_path,
    format_directory,
    has_directory,
    load_directory,
    load_directory_file,
    parse_directory,
)
from storage.tables import (
    Concern,
    ConcernContact,
    Contact,
    Department,
    DirectoryLoad,
    Organisation,
    ProgrammeBody,
    Region,
    Site,
)

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
LATER = datetime(2026, 3, 9, 9, 30, tzinfo=UTC)
DIRECTORY_TABLES: tuple[type[SQLModel], ...] = (
    Region,
    Organisation,
    Site,
    Department,
    ProgrammeBody,
    Contact,
    DirectoryLoad,
)

FIRST = """\
regions:
  - key: north
    name: North
    escalation_mailbox: esc@example.nhs.uk
    dean: {name: Dr Dean, email: dean@example.nhs.uk}
    quality_team: {name: Quality Team, email: qt@example.nhs.uk}
    organisations:
      - key: trust
        name: Trust
        kind: nhs_trust
        speak_up_guardian: {name: Guardian, email: guardian@trust.example.nhs.uk}
        clinical_tutor: {name: Tutor, email: tutor@trust.example.nhs.uk}
        sites:
          - {key: main, name: Main Hospital}
          - {key: annexe, name: Annexe, address: 2 Side Street}
        departments:
          - key: ed
            name: ED
            site: main
            supervisors:
              - {name: Sue Pervisor, email: sue@trust.example.nhs.uk, lead: true}
              - {name: Sam Second, email: sam@trust.example.nhs.uk}
          - key: ward
            name: Ward 9
            site: annexe
            supervisors:
              - {name: Wyn Ward, email: wyn@trust.example.nhs.uk, slack_user_id: U0WYN}
    schools:
      - key: fs
        kind: foundation_school
        name: Foundation School
        lead: {name: Fran Director, email: fran@example.nhs.uk}
        mailbox: fs@example.nhs.uk
    education_providers:
      - key: uni
        name: University
        lead: {name: Pat Placement, email: pat@uni.example.ac.uk}
        mailbox: placements@uni.example.ac.uk
        learner_groups: [nursing]
        placement_organisations: [trust]
"""

# The trust renamed, Ward 9 (and its supervisor) and the annexe gone, Sam gone, an ICU added,
# the dean's email changed (a new contact row), Sue renamed, a college added.
SECOND = (
    FIRST.replace("name: Trust\n", "name: Trust Renamed\n")
    .replace("dean@example.nhs.uk", "new.dean@example.nhs.uk")
    .replace("{name: Sue Pervisor,", "{name: Dr Sue Pervisor,")
    .replace("          - {key: annexe, name: Annexe, address: 2 Side Street}\n", "")
    .replace("              - {name: Sam Second, email: sam@trust.example.nhs.uk}\n", "")
    .replace(
        """          - key: ward
            name: Ward 9
            site: annexe
            supervisors:
              - {name: Wyn Ward, email: wyn@trust.example.nhs.uk, slack_user_id: U0WYN}
""",
        """          - key: icu
            name: Intensive Care
            supervisors:
              - {name: Ivy Care, email: ivy@trust.example.nhs.uk}
""",
    )
    + """\
      - key: college
        name: College
        lead: {name: Col Lead, email: lead@college.example.ac.uk}
        mailbox: office@college.example.ac.uk
        learner_groups: [support_workforce]
"""
)


def load_text(engine: Engine, text: str, *, now: datetime = NOW) -> LoadSummary:
    spec = parse_directory(text, source="test.yaml")
    with transaction(engine) as session:
        return load_directory(session, spec, source="test.yaml", sha256="0" * 64, now=now)


def load_example(engine: Engine) -> LoadSummary:
    with transaction(engine) as session:
        return load_directory_file(session, example_directory_path(), now=NOW)


def snapshot(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every directory row, as plain values, in id order."""
    with Session(engine) as session:
        return {
            model.__name__: sorted(
                (row.model_dump() for row in session.exec(select(model))),
                key=lambda values: values["id"],
            )
            for model in DIRECTORY_TABLES
        }


def count(session: Session, model: type[SQLModel]) -> int:
    return len(session.exec(select(model)).all())


def contact(session: Session, key: str) -> Contact:
    return session.exec(select(Contact).where(Contact.key == key)).one()


def changes(summary: LoadSummary) -> dict[str, tuple[int, int, int]]:
    return {
        name: (change.added, change.updated, change.deactivated)
        for name, change in summary.tables.items()
    }


# --- the shipped example ----------------------------------------------------------------------


def test_loading_the_example_creates_its_rows(engine: Engine) -> None:
    summary = load_example(engine)

    assert changes(summary) == {
        "regions": (1, 0, 0),
        "organisations": (2, 0, 0),
        "sites": (3, 0, 0),
        "departments": (6, 0, 0),
        "programme_bodies": (5, 0, 0),
        "contacts": (31, 0, 0),
    }
    with Session(engine) as session:
        region = session.exec(select(Region)).one()
        assert (region.key, region.name) == ("north-vale", "North Vale")
        trust = session.exec(select(Organisation).where(Organisation.key == "vale-general")).one()
        assert trust.region_id == region.id
        emergency = session.exec(
            select(Department).where(
                Department.organisation_id == trust.id, Department.key == "emergency"
            )
        ).one()
        royal = session.exec(select(Site).where(Site.key == "vale-royal")).one()
        assert (emergency.site_id, royal.organisation_id) == (royal.id, trust.id)

        dean = contact(session, "dean:north-vale:morgan.example@example.nhs.uk")
        assert (dean.role, dean.region_id, dean.organisation_id, dean.body_id) == (
            "dean",
            region.id,
            None,
            None,
        )
        assert (dean.is_lead, dean.slack_user_id) == (True, "U0EXDEAN01")

        lead = contact(
            session, "supervisor:vale-general/emergency:jordan.sample@vale-general.example.nhs.uk"
        )
        other = contact(
            session,
            "supervisor:vale-general/emergency:taylor.specimen@vale-general.example.nhs.uk",
        )
        assert (lead.department_id, lead.organisation_id, lead.is_lead) == (
            emergency.id,
            trust.id,
            True,
        )
        assert (other.department_id, other.is_lead) == (emergency.id, False)

        dme = contact(session, "clinical_tutor:vale-general:dme@vale-general.example.nhs.uk")
        assert (dme.organisation_id, dme.department_id) == (trust.id, None)
        guardian = contact(
            session, "speak_up_guardian:vale-general:speakup@vale-general.example.nhs.uk"
        )
        assert (guardian.organisation_id, guardian.department_id) == (trust.id, None)


def test_programme_bodies_and_their_contacts_are_loaded(engine: Engine) -> None:
    load_example(engine)

    with Session(engine) as session:
        bodies = {body.key: body for body in session.exec(select(ProgrammeBody))}
        assert {key: body.kind for key, body in bodies.items()} == {
            "north-vale-foundation": "foundation_school",
            "north-vale-surgery": "specialty_school",
            "north-vale-medicine": "specialty_school",
            "university-of-vale": "education_provider",
            "northgate-university": "education_provider",
        }
        surgery = bodies["north-vale-surgery"]
        assert surgery.learner_groups == ["specialty"]
        assert "urology" in surgery.programmes
        assert bodies["north-vale-foundation"].learner_groups == ["foundation"]
        university = bodies["university-of-vale"]
        assert university.placement_organisations == ["vale-general", "riverside-surgery"]
        assert "midwifery" in university.learner_groups

        head = contact(session, "specialty_school:north-vale-surgery:harper.example@example.nhs.uk")
        mailbox = contact(
            session, "pathway2_mailbox:north-vale-surgery:surgery.school.northvale@example.nhs.uk"
        )
        assert (head.role, head.body_id, head.organisation_id) == (
            "specialty_school",
            surgery.id,
            None,
        )
        assert (mailbox.name, mailbox.body_id, mailbox.is_lead) == (
            "North Vale School of Surgery mailbox",
            surgery.id,
            True,
        )


def test_a_file_load_is_recorded_with_its_hash(engine: Engine) -> None:
    with Session(engine) as session:
        assert not has_directory(session)

    summary = load_example(engine)

    path = example_directory_path()
    expected_sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert (summary.source, summary.sha256) == (str(path), expected_sha)
    with Session(engine) as session:
        assert has_directory(session)
        load = session.exec(select(DirectoryLoad)).one()
        assert (load.source, load.sha256, load.loaded_at) == (str(path), expected_sha, NOW)


def test_loading_the_same_file_twice_changes_nothing(engine: Engine) -> None:
    load_example(engine)
    before = snapshot(engine)

    summary = load_example(engine)

    assert not summary.changed
    assert set(changes(summary).values()) == {(0, 0, 0)}
    after = snapshot(engine)
    assert {name: rows for name, rows in after.items() if name != "DirectoryLoad"} == {
        name: rows for name, rows in before.items() if name != "DirectoryLoad"
    }
    assert len(after["DirectoryLoad"]) == 2


# --- reloading a changed file -----------------------------------------------------------------


def test_a_changed_file_updates_adds_and_deactivates(engine: Engine) -> None:
    load_text(engine, FIRST)

    summary = load_text(engine, SECOND, now=LATER)

    assert changes(summary) == {
        "regions": (0, 0, 0),
        "organisations": (0, 1, 0),
        "sites": (0, 0, 1),
        "departments": (1, 0, 1),
        "programme_bodies": (1, 0, 0),
        "contacts": (4, 1, 3),
    }
    with Session(engine) as session:
        trust = session.exec(select(Organisation)).one()
        assert (trust.name, trust.active) == ("Trust Renamed", True)
        departments = {row.key: row.active for row in session.exec(select(Department))}
        assert departments == {"ed": True, "ward": False, "icu": True}
        sites = {row.key: row.active for row in session.exec(select(Site))}
        assert sites == {"main": True, "annexe": False}
        sue = contact(session, "supervisor:trust/ed:sue@trust.example.nhs.uk")
        assert (sue.name, sue.active, sue.is_lead) == ("Dr Sue Pervisor", True, True)
        assert not contact(session, "supervisor:trust/ed:sam@trust.example.nhs.uk").active
        assert not contact(session, "dean:north:dean@example.nhs.uk").active
        assert contact(session, "dean:north:new.dean@example.nhs.uk").active
        assert count(session, Contact) == 15


def test_a_concern_keeps_its_links_to_removed_entries(engine: Engine) -> None:
    load_text(engine, FIRST)
    with transaction(engine) as session:
        ward = session.exec(select(Department).where(Department.key == "ward")).one()
        wyn = contact(session, "supervisor:trust/ward:wyn@trust.example.nhs.uk")
        concern = new_concern(region_id=ward_region(session), department=ward)
        session.add(concern)
        session.flush()
        assert concern.id is not None and wyn.id is not None
        session.add(
            ConcernContact(
                concern_id=concern.id,
                pathway=1,
                contact_id=wyn.id,
                role="supervisor",
                part="primary",
                assigned_at=NOW,
            )
        )
        ids = (concern.id, ward.id, wyn.id)

    load_text(engine, SECOND, now=LATER)

    concern_id, ward_id, wyn_id = ids
    with Session(engine) as session:
        stored = session.get(Concern, concern_id)
        assert stored is not None and stored.department_id == ward_id
        link = session.exec(select(ConcernContact)).one()
        assert link.contact_id == wyn_id
        department = session.get(Department, ward_id)
        assert department is not None
        assert (department.name, department.active) == ("Ward 9", False)
        person = session.get(Contact, wyn_id)
        assert person is not None
        assert (person.name, person.slack_user_id, person.active) == ("Wyn Ward", "U0WYN", False)


def test_an_entry_back_in_the_file_reactivates_the_same_row(engine: Engine) -> None:
    load_text(engine, FIRST)
    with Session(engine) as session:
        ward_id = session.exec(select(Department).where(Department.key == "ward")).one().id
    load_text(engine, SECOND, now=LATER)

    summary = load_text(engine, FIRST, now=LATER)

    assert summary.tables["departments"] == TableChanges(added=0, updated=1, deactivated=1)
    with Session(engine) as session:
        ward = session.exec(select(Department).where(Department.key == "ward")).one()
        assert (ward.id, ward.active) == (ward_id, True)
        assert count(session, Department) == 3


def ward_region(session: Session) -> int:
    region_id = session.exec(select(Region)).one().id
    assert region_id is not None
    return region_id


def new_concern(*, region_id: int, department: Department) -> Concern:
    return Concern(
        reference="LC-2026-000001",
        year=2026,
        number=1,
        channel="web",
        status="open",
        pathway=1,
        confidentiality="named",
        region_id=region_id,
        organisation_id=department.organisation_id,
        site_id=department.site_id,
        department_id=department.id,
        summary="No senior cover at night",
        description="Left alone on nights on Ward 9 with no senior cover.",
        frequency="often",
        harm="patient_at_risk",
        raised_before="no",
        likelihood=4,
        impact=4,
        rating="R",
        risk_level="high",
        auto_likelihood=4,
        auto_impact=4,
        created_at=NOW,
        level_reached_at=NOW,
        ack_reminder_at=NOW,
        ack_due_at=NOW,
        feedback_reminder_at=NOW,
        feedback_due_at=NOW,
    )


# --- all or nothing ---------------------------------------------------------------------------


def test_a_bad_file_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    load_text(engine, FIRST)
    before = snapshot(engine)
    bad = tmp_path / "directory.yaml"
    bad.write_text(SECOND.replace("kind: nhs_trust", "kind: hospital"), encoding="utf-8")

    with pytest.raises(DirectoryError) as caught, transaction(engine) as session:
        load_directory_file(session, bad, now=LATER)

    assert str(caught.value) == (
        f"{bad}, line 10: regions[0].organisations[0]: unknown organisation kind 'hospital' "
        "(choose from: nhs_trust, gp_practice, private_provider, other)"
    )
    assert snapshot(engine) == before


def test_a_bad_file_on_an_empty_database_leaves_no_directory(
    engine: Engine, tmp_path: Path
) -> None:
    bad = tmp_path / "directory.yaml"
    bad.write_text("regions:\n  - key: north\n    name: [unclosed\n", encoding="utf-8")

    with (
        pytest.raises(DirectoryError, match=r"directory\.yaml, line 3: invalid YAML"),
        transaction(engine) as session,
    ):
        load_directory_file(session, bad, now=NOW)

    with Session(engine) as session:
        assert not has_directory(session)
        assert count(session, Region) == 0


def test_a_failure_after_the_load_rolls_all_of_it_back(engine: Engine) -> None:
    load_text(engine, FIRST)
    before = snapshot(engine)
    spec = parse_directory(SECOND)

    with pytest.raises(RuntimeError, match="later step"), transaction(engine) as session:
        summary = load_directory(session, spec, source="second", sha256="1" * 64, now=LATER)
        assert summary.changed  # written (flushed) in this transaction...
        raise RuntimeError("a later step of the same unit of work failed")

    assert snapshot(engine) == before  # ...and gone with it


def test_a_missing_file_is_a_directory_error(engine: Engine, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"

    with (
        pytest.raises(DirectoryError, match=r"nowhere\.yaml: cannot read"),
        transaction(engine) as session,
    ):
        load_directory_file(session, missing, now=NOW)


def test_a_file_that_is_not_utf8_is_a_directory_error(engine: Engine, tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("regions:\n  - name: Gwynedd Môn\n".encode("latin-1"))

    with (
        pytest.raises(DirectoryError, match=r"latin1\.yaml: not UTF-8 text"),
        transaction(engine) as session,
    ):
        load_directory_file(session, latin1, now=NOW)


# --- showing the directory --------------------------------------------------------------------


def test_describe_directory_has_the_contract_shape(engine: Engine) -> None:
    load_example(engine)

    with Session(engine) as session:
        described = describe_directory(session)

    json.dumps(described)  # plain data, ready for --json
    assert [region["key"] for region in described["regions"]] == ["north-vale"]
    organisations = {entry["key"]: entry for entry in described["organisations"]}
    assert set(organisations) == {"vale-general", "riverside-surgery"}
    trust = organisations["vale-general"]
    assert (trust["name"], trust["region"], trust["kind"]) == (
        "Vale General Hospitals NHS Trust",
        "north-vale",
        "nhs_trust",
    )
    assert [site["key"] for site in trust["sites"]] == ["brookside", "vale-royal"]
    departments = {entry["key"]: entry for entry in trust["departments"]}
    assert departments["emergency"]["name"] == "Emergency Department"
    assert departments["emergency"]["site"] == "vale-royal"
    assert departments["emergency"]["contacts"][0] == {
        "name": "Dr Jordan Sample",
        "role": "supervisor",
        "email": "jordan.sample@vale-general.example.nhs.uk",
        "lead": True,
        "slack_user_id": "U0EXSUP001",
        "teams_user_id": None,
    }
    assert [c["role"] for c in departments["emergency"]["contacts"]] == [
        "supervisor",
        "supervisor",
        "clinical_tutor",
    ]
    assert [c["role"] for c in trust["contacts"]] == ["clinical_tutor", "speak_up_guardian"]
    for organisation in described["organisations"]:
        assert organisation["name"]
        assert all(department["name"] for department in organisation["departments"])
    assert [school["key"] for school in described["schools"]] == [
        "north-vale-foundation",
        "north-vale-medicine",
        "north-vale-surgery",
    ]
    assert [provider["key"] for provider in described["education_providers"]] == [
        "northgate-university",
        "university-of-vale",
    ]
    assert [c["role"] for c in described["regions"][0]["contacts"]] == ["dean", "quality_team"]
    assert described["last_load"]["source"] == str(example_directory_path())


def test_describe_directory_shows_active_entries_only(engine: Engine) -> None:
    load_text(engine, FIRST)
    load_text(engine, SECOND, now=LATER)

    with Session(engine) as session:
        described = describe_directory(session)

    trust = described["organisations"][0]
    assert trust["name"] == "Trust Renamed"
    assert [department["key"] for department in trust["departments"]] == ["ed", "icu"]
    assert [site["key"] for site in trust["sites"]] == ["main"]
    assert [c["name"] for c in trust["departments"][0]["contacts"]] == ["Dr Sue Pervisor"]
    assert [c["email"] for c in described["regions"][0]["contacts"]] == [
        "new.dean@example.nhs.uk",
        "qt@example.nhs.uk",
    ]


def test_format_directory_prints_an_indented_tree(engine: Engine) -> None:
    load_text(engine, FIRST)
    with Session(engine) as session:
        text = format_directory(describe_directory(session))

    lines = text.splitlines()
    assert lines[0] == "Loaded from test.yaml at 2026-03-02T09:30:00+00:00"
    assert "  North [north], escalation mailbox esc@example.nhs.uk" in lines
    assert "    dean (lead): Dr Dean <dean@example.nhs.uk>" in lines
    assert "  Trust [trust], nhs_trust in north" in lines
    assert "    site Annexe [annexe]: 2 Side Street" in lines
    assert "    department Ward 9 [ward] at annexe" in lines
    assert "      supervisor (lead): Wyn Ward <wyn@trust.example.nhs.uk>, Slack U0WYN" in lines
    assert "    learner groups: nursing" in lines
    assert "    pathway2 mailbox (lead): University mailbox <placements@uni.example.ac.uk>" in lines


def test_format_directory_says_when_nothing_is_loaded(engine: Engine) -> None:
    with Session(engine) as session:
        text = format_directory(describe_directory(session))

    assert text == "The directory is empty: load one with `concerns directory load FILE`."
