"""Who is told at each pathway, and who may see the learner's identity."""

from __future__ import annotations

import itertools

import pytest

from routing.model import Confidentiality, LearnerGroup, Pathway, Role
from routing.recipients import (
    HIGH_RISK_ALERT_ROLES,
    PATHWAY2_ROLE_BY_GROUP,
    SECONDARY_ROLE,
    UNKNOWN_GROUP_PATHWAY2_ROLE,
    RecipientRoles,
    may_see_identity,
    recipient_roles,
)

PATHWAY2_EXPECTED = [
    (LearnerGroup.FOUNDATION, Role.FOUNDATION_SCHOOL),
    (LearnerGroup.SPECIALTY, Role.SPECIALTY_SCHOOL),
    (LearnerGroup.UNDERGRADUATE_MEDICAL, Role.EDUCATION_PROVIDER),
    (LearnerGroup.UNDERGRADUATE_DENTAL, Role.EDUCATION_PROVIDER),
    (LearnerGroup.UNDERGRADUATE_PHARMACY, Role.EDUCATION_PROVIDER),
    (LearnerGroup.NURSING, Role.EDUCATION_PROVIDER),
    (LearnerGroup.MIDWIFERY, Role.EDUCATION_PROVIDER),
    (LearnerGroup.AHP, Role.EDUCATION_PROVIDER),
    (LearnerGroup.HEALTHCARE_SCIENCE, Role.EDUCATION_PROVIDER),
    (LearnerGroup.SUPPORT_WORKFORCE, Role.EDUCATION_PROVIDER),
]


def test_every_learner_group_has_one_row() -> None:
    assert len(PATHWAY2_ROLE_BY_GROUP) == 10
    assert set(PATHWAY2_ROLE_BY_GROUP) == {group for group, _ in PATHWAY2_EXPECTED}


@pytest.mark.parametrize(("group", "role"), PATHWAY2_EXPECTED)
def test_every_learner_groups_pathway2_role(group: LearnerGroup, role: Role) -> None:
    assert PATHWAY2_ROLE_BY_GROUP[group] == role
    assert recipient_roles(pathway=Pathway.SCHOOL_OR_EDUCATION_PROVIDER, group=group) == (
        RecipientRoles(primary=role, secondary=Role.PATHWAY2_MAILBOX, copy=())
    )


def test_unknown_group_goes_to_the_quality_team_at_pathway2() -> None:
    assert UNKNOWN_GROUP_PATHWAY2_ROLE == Role.QUALITY_TEAM
    roles = recipient_roles(pathway=Pathway.SCHOOL_OR_EDUCATION_PROVIDER, group=None)
    assert roles.primary == Role.QUALITY_TEAM


@pytest.mark.parametrize(
    ("pathway", "secondary"),
    [
        (Pathway.CLINICAL_LEARNING_ENVIRONMENT, Role.CLINICAL_TUTOR),
        (Pathway.SCHOOL_OR_EDUCATION_PROVIDER, Role.PATHWAY2_MAILBOX),
        (Pathway.DEAN, Role.QUALITY_TEAM),
    ],
)
def test_every_pathways_secondary_role(pathway: Pathway, secondary: Role) -> None:
    assert SECONDARY_ROLE[pathway] == secondary


@pytest.mark.parametrize(
    ("pathway", "group", "prefer_guardian", "expected"),
    [
        (
            Pathway.CLINICAL_LEARNING_ENVIRONMENT,
            LearnerGroup.NURSING,
            False,
            RecipientRoles(primary=Role.SUPERVISOR, secondary=Role.CLINICAL_TUTOR, copy=()),
        ),
        (
            Pathway.CLINICAL_LEARNING_ENVIRONMENT,
            None,
            True,
            RecipientRoles(primary=Role.SPEAK_UP_GUARDIAN, secondary=Role.CLINICAL_TUTOR, copy=()),
        ),
        (
            Pathway.SCHOOL_OR_EDUCATION_PROVIDER,
            LearnerGroup.FOUNDATION,
            True,
            RecipientRoles(
                primary=Role.FOUNDATION_SCHOOL, secondary=Role.PATHWAY2_MAILBOX, copy=()
            ),
        ),
        (
            Pathway.DEAN,
            LearnerGroup.SPECIALTY,
            False,
            RecipientRoles(
                primary=Role.DEAN, secondary=Role.QUALITY_TEAM, copy=(Role.QUALITY_TEAM,)
            ),
        ),
        (
            Pathway.DEAN,
            None,
            True,
            RecipientRoles(
                primary=Role.DEAN, secondary=Role.QUALITY_TEAM, copy=(Role.QUALITY_TEAM,)
            ),
        ),
    ],
)
def test_recipient_roles_by_pathway(
    pathway: Pathway,
    group: LearnerGroup | None,
    prefer_guardian: bool,
    expected: RecipientRoles,
) -> None:
    assert (
        recipient_roles(pathway=pathway, group=group, prefer_speak_up_guardian=prefer_guardian)
        == expected
    )


def test_high_risk_alerts_go_to_the_dean_and_quality_team() -> None:
    assert HIGH_RISK_ALERT_ROLES == (Role.DEAN, Role.QUALITY_TEAM)


# Who may see a learner's identity, written out for every role and every choice.
SEES_IDENTITY = {
    Confidentiality.NAMED: set(Role),
    Confidentiality.CONFIDENTIAL: {Role.DEAN, Role.QUALITY_TEAM, Role.LEARNER},
    Confidentiality.ANONYMOUS: set(),
}


@pytest.mark.parametrize(
    ("role", "confidentiality"), list(itertools.product(Role, Confidentiality))
)
def test_identity_visibility_for_every_role_and_choice(
    role: Role, confidentiality: Confidentiality
) -> None:
    expected = role in SEES_IDENTITY[confidentiality]
    assert may_see_identity(role=role, confidentiality=confidentiality) is expected


@pytest.mark.parametrize(
    "role",
    [
        Role.SUPERVISOR,
        Role.CLINICAL_TUTOR,
        Role.SPEAK_UP_GUARDIAN,
        Role.FOUNDATION_SCHOOL,
        Role.SPECIALTY_SCHOOL,
        Role.EDUCATION_PROVIDER,
        Role.PATHWAY2_MAILBOX,
    ],
)
def test_pathway1_and_2_contacts_never_see_a_confidential_learner(role: Role) -> None:
    assert may_see_identity(role=role, confidentiality=Confidentiality.CONFIDENTIAL) is False
    assert may_see_identity(role=role, confidentiality=Confidentiality.NAMED) is True
