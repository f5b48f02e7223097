"""Who is told about a concern at each pathway, by role, and who may see the learner's identity."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from routing.model import Confidentiality, LearnerGroup, Pathway, Role

# domain.md "Pathway 2 contacts": the body responsible for the learner's programme.
PATHWAY2_ROLE_BY_GROUP: Mapping[LearnerGroup, Role] = MappingProxyType(
    {
        LearnerGroup.FOUNDATION: Role.FOUNDATION_SCHOOL,
        LearnerGroup.SPECIALTY: Role.SPECIALTY_SCHOOL,
        LearnerGroup.UNDERGRADUATE_MEDICAL: Role.EDUCATION_PROVIDER,
        LearnerGroup.UNDERGRADUATE_DENTAL: Role.EDUCATION_PROVIDER,
        LearnerGroup.UNDERGRADUATE_PHARMACY: Role.EDUCATION_PROVIDER,
        LearnerGroup.NURSING: Role.EDUCATION_PROVIDER,
        LearnerGroup.MIDWIFERY: Role.EDUCATION_PROVIDER,
        LearnerGroup.AHP: Role.EDUCATION_PROVIDER,
        LearnerGroup.HEALTHCARE_SCIENCE: Role.EDUCATION_PROVIDER,
        LearnerGroup.SUPPORT_WORKFORCE: Role.EDUCATION_PROVIDER,
    }
)

# An anonymous learner may not say which group they are in; the quality team can still work out
# the responsible school or provider from the concern and route it on.
UNKNOWN_GROUP_PATHWAY2_ROLE = Role.QUALITY_TEAM

PRIMARY_ROLE: Mapping[Pathway, Role] = MappingProxyType(
    {
        Pathway.CLINICAL_LEARNING_ENVIRONMENT: Role.SUPERVISOR,
        Pathway.DEAN: Role.DEAN,
    }
)

# Told when the acknowledgement deadline passes (domain.md "How a concern moves up").
SECONDARY_ROLE: Mapping[Pathway, Role] = MappingProxyType(
    {
        Pathway.CLINICAL_LEARNING_ENVIRONMENT: Role.CLINICAL_TUTOR,
        Pathway.SCHOOL_OR_EDUCATION_PROVIDER: Role.PATHWAY2_MAILBOX,
        Pathway.DEAN: Role.QUALITY_TEAM,
    }
)

COPY_ROLES: Mapping[Pathway, tuple[Role, ...]] = MappingProxyType(
    {
        Pathway.CLINICAL_LEARNING_ENVIRONMENT: (),
        Pathway.SCHOOL_OR_EDUCATION_PROVIDER: (),
        Pathway.DEAN: (Role.QUALITY_TEAM,),
    }
)

# The roles that belong to each level of the ladder. A concern is handled at its level, or by the
# quality team, who stand in for anyone missing; it never goes back down (a concern that started at
# pathway 2 because it is about the supervisor must never reach pathway-1 contacts).
ROLES_OF_PATHWAY: Mapping[Pathway, frozenset[Role]] = MappingProxyType(
    {
        Pathway.CLINICAL_LEARNING_ENVIRONMENT: frozenset(
            {Role.SUPERVISOR, Role.CLINICAL_TUTOR, Role.SPEAK_UP_GUARDIAN}
        ),
        Pathway.SCHOOL_OR_EDUCATION_PROVIDER: frozenset(
            {
                Role.FOUNDATION_SCHOOL,
                Role.SPECIALTY_SCHOOL,
                Role.EDUCATION_PROVIDER,
                Role.PATHWAY2_MAILBOX,
            }
        ),
        Pathway.DEAN: frozenset({Role.DEAN, Role.QUALITY_TEAM}),
    }
)

# "Inform key stakeholders of emerging high-risk concerns", whatever pathway the concern is on.
HIGH_RISK_ALERT_ROLES: tuple[Role, ...] = (Role.DEAN, Role.QUALITY_TEAM)

# The learner sees their own identity on their own concern; anonymous concerns store none at all.
IDENTITY_VISIBLE_TO: Mapping[Confidentiality, frozenset[Role]] = MappingProxyType(
    {
        Confidentiality.NAMED: frozenset(Role),
        Confidentiality.CONFIDENTIAL: frozenset({Role.DEAN, Role.QUALITY_TEAM, Role.LEARNER}),
        Confidentiality.ANONYMOUS: frozenset(),
    }
)


@dataclass(frozen=True)
class RecipientRoles:
    """The roles told about a concern at one pathway."""

    primary: Role
    secondary: Role
    copy: tuple[Role, ...]


def pathway2_role(*, group: LearnerGroup | None) -> Role:
    """Return the pathway-2 role responsible for a learner group, or the quality team if unknown."""
    if group is None:
        return UNKNOWN_GROUP_PATHWAY2_ROLE
    return PATHWAY2_ROLE_BY_GROUP[group]


def recipient_roles(
    *,
    pathway: Pathway,
    group: LearnerGroup | None,
    prefer_speak_up_guardian: bool = False,
) -> RecipientRoles:
    """Return the primary, secondary and copy roles for a concern at a pathway."""
    if pathway == Pathway.SCHOOL_OR_EDUCATION_PROVIDER:
        primary = pathway2_role(group=group)
    elif pathway == Pathway.CLINICAL_LEARNING_ENVIRONMENT and prefer_speak_up_guardian:
        # domain.md: a learner may always choose the speak-up guardian as their pathway-1 contact.
        primary = Role.SPEAK_UP_GUARDIAN
    else:
        primary = PRIMARY_ROLE[pathway]
    return RecipientRoles(
        primary=primary, secondary=SECONDARY_ROLE[pathway], copy=COPY_ROLES[pathway]
    )


def may_handle_at(*, role: Role, pathway: Pathway) -> bool:
    """Say whether a contact in a role may be given a concern at a pathway (by a redirect)."""
    return role in ROLES_OF_PATHWAY[pathway] or role is Role.QUALITY_TEAM


def may_see_identity(*, role: Role, confidentiality: Confidentiality) -> bool:
    """Say whether a role may see the learner's name, email and chat handle."""
    return role in IDENTITY_VISIBLE_TO[confidentiality]
