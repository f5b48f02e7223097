"""Reading and checking directory files: the shipped example, and problems named by line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from routing.model import LearnerGroup, Role
from storage.directory import (
    ContactSpec,
    DirectoryError,
    DirectorySpec,
    example_directory_path,
    parse_directory,
)

# A small valid file. Tests replace numbered lines to make one mistake at a known place.
BASE = """\
regions:
  - key: north
    name: North
    escalation_mailbox: esc@example.nhs.uk
    dean: {name: Dean, email: dean@example.nhs.uk}
    quality_team: {name: Quality, email: qt@example.nhs.uk}
    organisations:
      - key: trust
        name: Trust
        kind: nhs_trust
        speak_up_guardian: {name: Guardian, email: g@example.nhs.uk}
        clinical_tutor: {name: Tutor, email: t@example.nhs.uk}
        sites:
          - {key: main, name: Main}
        departments:
          - key: ed
            name: ED
            site: main
            supervisors:
              - {name: Sup, email: s@example.nhs.uk}
    schools:
      - key: fs
        kind: foundation_school
        name: FS
        lead: {name: Lead, email: l@example.nhs.uk}
        mailbox: fs@example.nhs.uk
    education_providers:
      - key: uni
        name: Uni
        lead: {name: Placement, email: p@example.ac.uk}
        mailbox: uni@example.ac.uk
        learner_groups: [nursing]
        placement_organisations: [trust]
"""
DEPARTMENT = "regions[0].organisations[0].departments[0]"
PROVIDER = "regions[0].education_providers[0]"
ALL_GROUPS = ", ".join(group.value for group in LearnerGroup)


def edit(replacements: dict[int, str]) -> str:
    """BASE with the given 1-based lines replaced (a replacement may span several lines)."""
    lines = BASE.splitlines()
    for number, text in replacements.items():
        lines[number - 1] = text
    return "\n".join(lines) + "\n"


def problems(text: str) -> list[str]:
    with pytest.raises(DirectoryError) as caught:
        parse_directory(text, source="test.yaml")
    return str(caught.value).splitlines()


def example() -> DirectorySpec:
    path = example_directory_path()
    return parse_directory(path.read_text(encoding="utf-8"), source=str(path))


# --- valid files ------------------------------------------------------------------------------


def test_the_base_file_is_valid_and_read_as_written() -> None:
    spec = parse_directory(BASE)

    region = spec.regions[0]
    assert (region.key, region.name, region.escalation_mailbox) == (
        "north",
        "North",
        "esc@example.nhs.uk",
    )
    assert region.dean == ContactSpec(name="Dean", email="dean@example.nhs.uk", lead=True)
    organisation = region.organisations[0]
    assert organisation.kind == "nhs_trust"
    assert organisation.sites[0].key == "main"
    assert organisation.sites[0].address is None
    department = organisation.departments[0]
    assert (department.key, department.site, department.clinical_tutors) == ("ed", "main", ())
    # The only supervisor listed is the lead without saying so.
    assert department.supervisors == (ContactSpec(name="Sup", email="s@example.nhs.uk", lead=True),)
    school, provider = region.bodies
    assert (school.kind, school.learner_groups, school.programmes) == (
        Role.FOUNDATION_SCHOOL,
        (LearnerGroup.FOUNDATION,),
        (),
    )
    assert provider.kind is Role.EDUCATION_PROVIDER
    assert provider.learner_groups == (LearnerGroup.NURSING,)
    assert provider.placement_organisations == ("trust",)


def test_the_shipped_example_parses() -> None:
    region = example().regions[0]

    assert region.key == "north-vale"
    assert region.escalation_mailbox == "EscalatingConcerns.NorthVale@example.nhs.uk"
    assert region.dean.slack_user_id == "U0EXDEAN01"
    assert [organisation.kind for organisation in region.organisations] == [
        "nhs_trust",
        "gp_practice",
    ]
    trust = region.organisations[0]
    assert [site.key for site in trust.sites] == ["vale-royal", "brookside"]
    assert [department.key for department in trust.departments] == [
        "emergency",
        "general-surgery",
        "maternity",
        "care-of-older-people",
    ]
    assert [school.kind for school in region.schools] == [
        Role.FOUNDATION_SCHOOL,
        Role.SPECIALTY_SCHOOL,
        Role.SPECIALTY_SCHOOL,
    ]
    assert len(region.education_providers) == 2


def test_every_department_in_the_example_has_one_lead_supervisor_and_a_tutor() -> None:
    for organisation in example().regions[0].organisations:
        assert organisation.speak_up_guardians
        for department in organisation.departments:
            assert 1 <= len(department.supervisors) <= 2
            assert [person.lead for person in department.supervisors].count(True) == 1
            assert len(department.clinical_tutors) == 1
            assert department.site in {site.key for site in organisation.sites}


@pytest.mark.parametrize("group", list(LearnerGroup))
def test_every_learner_group_has_a_pathway2_body_in_the_example(group: LearnerGroup) -> None:
    bodies = example().regions[0].bodies
    expected_kind = {
        LearnerGroup.FOUNDATION: Role.FOUNDATION_SCHOOL,
        LearnerGroup.SPECIALTY: Role.SPECIALTY_SCHOOL,
    }.get(group, Role.EDUCATION_PROVIDER)

    responsible = [body for body in bodies if group in body.learner_groups]

    assert responsible
    assert {body.kind for body in responsible} == {expected_kind}
    assert all(body.mailbox and body.lead.email for body in responsible)


def test_specialty_schools_in_the_example_list_their_specialties() -> None:
    schools = {school.key: school for school in example().regions[0].schools}

    assert "trauma and orthopaedics" in schools["north-vale-surgery"].programmes
    assert "geriatric medicine" in schools["north-vale-medicine"].programmes


def test_the_example_in_the_documentation_parses() -> None:
    doc = Path(__file__).parents[2] / "docs" / "directory.md"
    block = re.search(r"```yaml\n(.*?)```", doc.read_text(encoding="utf-8"), re.DOTALL)

    assert block is not None
    spec = parse_directory(block.group(1), source="docs/directory.md")
    assert [body.key for body in spec.regions[0].bodies] == [
        "north-vale-foundation",
        "north-vale-surgery",
        "university-of-vale",
    ]


def test_no_lead_marked_makes_the_first_listed_the_lead() -> None:
    text = edit(
        {
            20: "              - {name: A, email: a@example.nhs.uk}\n"
            "              - {name: B, email: b@example.nhs.uk}"
        }
    )

    supervisors = parse_directory(text).regions[0].organisations[0].departments[0].supervisors

    assert [(person.name, person.lead) for person in supervisors] == [("A", True), ("B", False)]


def test_a_marked_lead_is_kept_and_chat_ids_are_read() -> None:
    text = edit(
        {
            20: "              - {name: A, email: a@example.nhs.uk}\n"
            "              - {name: B, email: b@example.nhs.uk, lead: true,"
            " slack_user_id: U0ABC123, teams_user_id: 29:1abc}"
        }
    )

    supervisors = parse_directory(text).regions[0].organisations[0].departments[0].supervisors

    assert supervisors[1] == ContactSpec(
        name="B",
        email="b@example.nhs.uk",
        slack_user_id="U0ABC123",
        teams_user_id="29:1abc",
        lead=True,
    )
    assert not supervisors[0].lead


def test_values_are_text_as_written_not_yaml_guesses() -> None:
    text = edit({9: "        name: yes", 14: "          - {key: main, name: 1.50, address: no}"})

    organisation = parse_directory(text).regions[0].organisations[0]

    assert organisation.name == "yes"
    assert (organisation.sites[0].name, organisation.sites[0].address) == ("1.50", "no")


def test_programme_words_are_lower_cased_tidied_and_unique() -> None:
    text = edit(
        {
            33: "        programmes: [Adult  Nursing, adult nursing, Midwifery]\n"
            "        placement_organisations: [trust]"
        }
    )

    provider = parse_directory(text).regions[0].education_providers[0]

    assert provider.programmes == ("adult nursing", "midwifery")


# --- problems, each at its line ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("replacements", "expected"),
    [
        pytest.param(
            {19: "            supervisors: {name: Sup, email: s@example.nhs.uk}", 20: ""},
            [f"test.yaml, line 19: {DEPARTMENT}: 'supervisors' must be a list"],
            id="not-a-list",
        ),
        pytest.param(
            {32: "        learner_groups: [nurse]"},
            [
                f"test.yaml, line 32: {PROVIDER}.learner_groups[0]: unknown learner group "
                f"'nurse' (choose from: {ALL_GROUPS})"
            ],
            id="unknown-learner-group",
        ),
        pytest.param(
            {14: "          - {key: main, name: Main}\n          - {key: main, name: Main again}"},
            [
                "test.yaml, line 15: regions[0].organisations[0].sites[1]: "
                "duplicate site key 'main' (first used on line 14)"
            ],
            id="duplicate-site-key",
        ),
        pytest.param(
            {5: "    dean: {name: Dean, email: dean.example.nhs.uk}"},
            [
                "test.yaml, line 5: regions[0].dean: "
                "'email' is not an email address: 'dean.example.nhs.uk'"
            ],
            id="bad-email",
        ),
        pytest.param(
            {2: "  - key: North Vale"},
            [
                "test.yaml, line 2: regions[0]: key 'North Vale' must be lower-case letters, "
                "digits and hyphens, like 'north-vale'"
            ],
            id="bad-key",
        ),
        pytest.param(
            {17: "            nmae: ED"},
            [
                f"test.yaml, line 16: {DEPARTMENT}: missing required key 'name'",
                f"test.yaml, line 17: {DEPARTMENT}: unknown key 'nmae' (did you mean 'name'?)",
            ],
            id="typo-in-key",
        ),
        pytest.param(
            {17: "            name: ED\n            name: ED again"},
            [f"test.yaml, line 18: {DEPARTMENT}: key 'name' appears more than once"],
            id="key-twice",
        ),
        pytest.param(
            {18: "            site: annexe"},
            [
                f"test.yaml, line 18: {DEPARTMENT}: unknown site 'annexe' "
                "(sites of organisation 'trust': main)"
            ],
            id="unknown-site",
        ),
        pytest.param(
            {33: "        placement_organisations: [trust, elsewhere]"},
            [
                f"test.yaml, line 33: {PROVIDER}.placement_organisations[1]: "
                "unknown organisation 'elsewhere' in this region (trust)"
            ],
            id="unknown-placement-organisation",
        ),
        pytest.param(
            {10: "        kind: hospital"},
            [
                "test.yaml, line 10: regions[0].organisations[0]: unknown organisation kind "
                "'hospital' (choose from: nhs_trust, gp_practice, private_provider, other)"
            ],
            id="unknown-organisation-kind",
        ),
        pytest.param(
            {12: ""},
            [
                f"test.yaml, line 16: {DEPARTMENT}: no clinical tutor: "
                "give the department or its organisation a 'clinical_tutor'"
            ],
            id="no-clinical-tutor",
        ),
        pytest.param(
            {23: "        kind: specialty_school"},
            [
                "test.yaml, line 22: regions[0].schools[0]: "
                "a specialty school needs 'specialties': the programme words it covers"
            ],
            id="specialty-school-without-specialties",
        ),
        pytest.param(
            {26: "        mailbox: fs@example.nhs.uk\n        specialties: [surgery]"},
            [
                "test.yaml, line 27: regions[0].schools[0]: "
                "'specialties' is only for specialty schools"
            ],
            id="foundation-school-with-specialties",
        ),
        pytest.param(
            {
                20: "              - {name: A, email: a@example.nhs.uk, lead: true}\n"
                "              - {name: B, email: b@example.nhs.uk, lead: true}"
            },
            [
                f"test.yaml, line 21: {DEPARTMENT}.supervisors[1]: "
                "only one person here can be the lead (line 20 already is)"
            ],
            id="two-leads",
        ),
        pytest.param(
            {
                20: "              - {name: A, email: a@example.nhs.uk}\n"
                "              - {name: A again, email: A@example.nhs.uk}"
            },
            [
                f"test.yaml, line 21: {DEPARTMENT}.supervisors[1]: "
                "'A@example.nhs.uk' is listed twice (first on line 20)"
            ],
            id="same-person-twice",
        ),
        pytest.param(
            {20: "              - {name: Sup, email: s@example.nhs.uk, lead: maybe}"},
            [f"test.yaml, line 20: {DEPARTMENT}.supervisors[0]: 'lead' must be true or false"],
            id="lead-not-a-flag",
        ),
        pytest.param(
            {5: "    dean: {name: Dean, email: dean@example.nhs.uk, slack_user_id: morgan}"},
            [
                "test.yaml, line 5: regions[0].dean: "
                "'slack_user_id' must be a Slack member ID like U012AB3CD, not 'morgan'"
            ],
            id="bad-slack-id",
        ),
        pytest.param(
            {5: "    dean: {name: Dean, email: dean@example.nhs.uk, lead: true}"},
            [
                "test.yaml, line 5: regions[0].dean: unknown key 'lead' "
                "(allowed here: name, email, slack_user_id, teams_user_id)"
            ],
            id="lead-on-a-single-person",
        ),
        pytest.param(
            {3: "    name:"},
            ["test.yaml, line 3: regions[0]: 'name' must not be empty"],
            id="empty-value",
        ),
        pytest.param(
            {6: "    quality_team: qt@example.nhs.uk"},
            ["test.yaml, line 6: regions[0]: 'quality_team' must be a mapping"],
            id="person-not-a-mapping",
        ),
        pytest.param(
            {4: ""},
            ["test.yaml, line 2: regions[0]: missing required key 'escalation_mailbox'"],
            id="missing-key",
        ),
    ],
)
def test_each_problem_names_its_line(replacements: dict[int, str], expected: list[str]) -> None:
    assert problems(edit(replacements)) == expected


def test_duplicate_organisation_keys_are_reported_across_regions() -> None:
    second_region = BASE.replace("regions:\n", "").replace("key: north\n", "key: south\n", 1)
    text = BASE + second_region

    reported = problems(text)

    assert reported[0] == (
        "test.yaml, line 40: regions[1].organisations[0]: "
        "duplicate organisation key 'trust' (first used on line 8)"
    )
    assert (
        "test.yaml, line 54: regions[1].schools[0]: "
        "duplicate school or education provider key 'fs' (first used on line 22)"
    ) in reported
    # Its sites and departments are not reported again: their keys are unique per entry.
    assert len(reported) == 3


def test_every_problem_is_reported_together_in_line_order() -> None:
    text = edit(
        {
            5: "    dean: {name: Dean, email: not-an-email}",
            10: "        kind: hospital",
            32: "        learner_groups: [nurse]",
            18: "            site: annexe",
        }
    )

    reported = problems(text)

    assert [line.split(":")[0] for line in reported] == [
        "test.yaml, line 5",
        "test.yaml, line 10",
        "test.yaml, line 18",
        "test.yaml, line 32",
    ]


def test_a_yaml_syntax_error_names_its_line() -> None:
    text = edit({17: "            name: ED: the front door"})

    assert problems(text) == [
        "test.yaml, line 17: invalid YAML: mapping values are not allowed here"
    ]


def test_an_unclosed_bracket_names_where_it_was_noticed_and_opened() -> None:
    text = edit({32: "        learner_groups: [nursing"})

    assert problems(text) == [
        "test.yaml, line 33: invalid YAML: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence started on line 32)"
    ]


def test_an_unclosed_quote_at_the_end_names_where_it_opened() -> None:
    assert problems("regions:\n  - key: 'north\n") == [
        "test.yaml, line 2: invalid YAML: found unexpected end of stream "
        "(while scanning a quoted scalar started on line 2)"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "test.yaml, line 1: the file is empty: it needs 'regions'"),
        ("# nothing but a comment\n", "test.yaml, line 1: the file is empty: it needs 'regions'"),
        (
            "- north\n",
            "test.yaml, line 1: the file must be a mapping with the keys: regions",
        ),
        ("regions: []\n", "test.yaml, line 1: 'regions' must not be an empty list"),
        (
            "region:\n  - key: north\n",
            "test.yaml, line 1: unknown key 'region' (did you mean 'regions'?)",
        ),
    ],
)
def test_the_top_level_is_checked(text: str, expected: str) -> None:
    assert expected in problems(text)


def test_unsafe_tags_are_never_constructed() -> None:
    # Nodes are never turned into Python objects: a tagged scalar is just its text, and a
    # tagged list where text belongs is the usual type problem.
    scalar = edit({3: "    name: !!python/name:os.system North"})
    applied = edit({3: "    name: !!python/object/apply:os.system ['echo hacked']"})

    assert parse_directory(scalar).regions[0].name == "North"
    assert problems(applied) == [
        "test.yaml, line 3: regions[0]: 'name' must be text, not a list or mapping"
    ]


def test_the_error_is_a_value_error_with_its_problems() -> None:
    with pytest.raises(ValueError, match="line 10") as caught:
        parse_directory(edit({10: "        kind: hospital"}), source="x.yaml")

    assert isinstance(caught.value, DirectoryError)
    assert caught.value.source == "x.yaml"
    assert [problem.line for problem in caught.value.problems] == [10]
