"""The staff access rules: who sees a concern, who sees who raised it, and who may act."""

from __future__ import annotations

import pytest

from routing.access import (
    CaseAction,
    CaseScope,
    Principal,
    StaffRole,
    allowed_actions,
    kept_aside_regions,
    may_act,
    may_see,
    reads_kept_aside_mail,
    sees_dashboard,
    sees_identity,
    sees_kept_aside,
)

REGION, OTHER_REGION = 1, 2
BODY, OTHER_BODY = 10, 11
SUPERVISOR, DEAN_CONTACT, STRANGER = 100, 101, 102


def case(pathway: int = 1, confidentiality: str = "confidential", **changes: object) -> CaseScope:
    values: dict[str, object] = {
        "region_id": REGION,
        "programme_body_id": BODY,
        "pathway": pathway,
        "confidentiality": confidentiality,
        "told_contact_ids": frozenset({SUPERVISOR}),
        "acting_contact_ids": frozenset({SUPERVISOR}) if pathway == 1 else frozenset(),
    }
    values.update(changes)
    return CaseScope(**values)  # type: ignore[arg-type]


def person(role: StaffRole, **changes: object) -> Principal:
    values: dict[str, object] = {"staff_id": 1, "email": "someone@example.nhs.uk", "role": role}
    values.update(changes)
    return Principal(**values)  # type: ignore[arg-type]


SUPERVISOR_P = person(StaffRole.CONTACT, contact_ids=frozenset({SUPERVISOR}))
STRANGER_P = person(StaffRole.CONTACT, contact_ids=frozenset({STRANGER}))
SCHOOL = person(StaffRole.SCHOOL_LEAD, body_ids=frozenset({BODY}))
OTHER_SCHOOL = person(StaffRole.SCHOOL_LEAD, body_ids=frozenset({OTHER_BODY}))
DEAN = person(StaffRole.DEAN, region_ids=frozenset({REGION}))
QUALITY = person(StaffRole.QUALITY_TEAM, region_ids=frozenset({REGION}))
OTHER_DEAN = person(StaffRole.DEAN, region_ids=frozenset({OTHER_REGION}))
ADMIN = person(StaffRole.ADMIN)


@pytest.mark.parametrize(
    ("who", "pathway", "sees"),
    [
        (SUPERVISOR_P, 1, True),
        (SUPERVISOR_P, 3, True),  # told at pathway 1: still sees it after it moved on
        (STRANGER_P, 1, False),
        (SCHOOL, 1, False),  # not yet at pathway 2
        (SCHOOL, 2, True),
        (SCHOOL, 3, True),
        (OTHER_SCHOOL, 2, False),
        (DEAN, 1, True),
        (QUALITY, 1, True),
        (OTHER_DEAN, 1, False),
        (ADMIN, 1, True),
    ],
)
def test_who_sees_a_concern(who: Principal, pathway: int, sees: bool) -> None:
    assert may_see(who, case(pathway)) is sees


def test_a_confidential_identity_is_for_the_dean_and_quality_team_of_its_region_only() -> None:
    confidential = case(2, "confidential")
    assert [sees_identity(who, confidential) for who in (DEAN, QUALITY)] == [True, True]
    for who in (SUPERVISOR_P, SCHOOL, ADMIN, OTHER_DEAN, STRANGER_P):
        assert not sees_identity(who, confidential)
    named = case(2, "named")
    assert sees_identity(SUPERVISOR_P, named) and sees_identity(SCHOOL, named)
    assert not sees_identity(STRANGER_P, named)
    assert not sees_identity(DEAN, case(1, "anonymous"))


def test_a_contact_acts_only_at_their_level_and_only_as_a_contact() -> None:
    at_one = case(1)
    assert allowed_actions(SUPERVISOR_P, at_one) == {
        CaseAction.ACKNOWLEDGE,
        CaseAction.FEEDBACK,
        CaseAction.ESCALATE,
        CaseAction.REDIRECT,
    }
    assert allowed_actions(SUPERVISOR_P, case(2)) == frozenset()


def test_a_school_lead_acts_at_pathway_2_only() -> None:
    assert may_act(SCHOOL, case(2), CaseAction.EDIT_STANDARDS)
    assert not may_act(SCHOOL, case(2), CaseAction.CLOSE)
    assert allowed_actions(SCHOOL, case(3)) == frozenset()
    assert allowed_actions(OTHER_SCHOOL, case(2)) == frozenset()


def test_deans_and_quality_teams_take_every_action_in_their_region_and_admins_none() -> None:
    for who in (DEAN, QUALITY):
        assert allowed_actions(who, case(1)) == set(CaseAction)
        assert allowed_actions(who, case(3, "named")) == set(CaseAction)
    assert allowed_actions(OTHER_DEAN, case(1)) == frozenset()
    assert allowed_actions(ADMIN, case(1)) == frozenset()


def test_a_dean_told_as_a_contact_sees_it_whatever_their_region() -> None:
    told = person(StaffRole.DEAN, region_ids=frozenset({OTHER_REGION}), contact_ids={DEAN_CONTACT})
    assert may_see(told, case(1, told_contact_ids=frozenset({DEAN_CONTACT})))


def test_the_dashboard_is_for_deans_quality_teams_and_admins() -> None:
    assert [sees_dashboard(who) for who in (DEAN, QUALITY, ADMIN)] == [True, True, True]
    assert [sees_dashboard(who) for who in (SUPERVISOR_P, SCHOOL)] == [False, False]


def test_mail_kept_aside_is_read_by_deans_and_quality_teams_and_admins_see_it_is_there() -> None:
    everyone = (DEAN, QUALITY, ADMIN, SUPERVISOR_P, SCHOOL)
    assert [sees_kept_aside(who) for who in everyone] == [True, True, True, False, False]
    assert [reads_kept_aside_mail(who) for who in everyone] == [True, True, False, False, False]
    # Deans and quality teams: their regions' mail (and mail of no known region); admins: all.
    assert kept_aside_regions(DEAN) == DEAN.region_ids
    assert kept_aside_regions(QUALITY) == QUALITY.region_ids
    assert kept_aside_regions(ADMIN) is None


def test_only_the_regions_dean_and_quality_team_correct_a_learners_email() -> None:
    correct = CaseAction.CORRECT_LEARNER_EMAIL
    for who in (DEAN, QUALITY):
        assert may_act(who, case(1, "named"), correct)
        assert may_act(who, case(2, "confidential"), correct)
        # No address to correct; or the learner follows it in chat.
        assert not may_act(who, case(1, "anonymous"), correct)
        assert not may_act(who, case(1, "named", channel="slack"), correct)
        assert not may_act(who, case(1, "named", channel="teams"), correct)
        assert may_act(who, case(1, "named", channel="email"), correct)
    told_dean = person(
        StaffRole.DEAN, region_ids=frozenset({OTHER_REGION}), contact_ids={DEAN_CONTACT}
    )
    for who in (SUPERVISOR_P, SCHOOL, OTHER_DEAN, ADMIN, told_dean):
        for pathway in (1, 2, 3):
            scope = case(pathway, "named", told_contact_ids=frozenset({SUPERVISOR, DEAN_CONTACT}))
            assert not may_act(who, scope, correct), (who.role, pathway)
