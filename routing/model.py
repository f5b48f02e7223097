"""The vocabulary of the rule book (domain.md): the choices a learner makes and the names of roles.

Every value here is what is stored in the database and accepted on every channel, so renaming one
is a data migration, not a refactor.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class LearnerGroup(StrEnum):
    FOUNDATION = "foundation"
    SPECIALTY = "specialty"
    UNDERGRADUATE_MEDICAL = "undergraduate_medical"
    UNDERGRADUATE_DENTAL = "undergraduate_dental"
    UNDERGRADUATE_PHARMACY = "undergraduate_pharmacy"
    NURSING = "nursing"
    MIDWIFERY = "midwifery"
    AHP = "ahp"
    HEALTHCARE_SCIENCE = "healthcare_science"
    SUPPORT_WORKFORCE = "support_workforce"


class Frequency(StrEnum):
    """How often does this happen?"""

    ONCE = "once"
    OCCASIONALLY = "occasionally"
    OFTEN = "often"
    CONTINUING = "continuing"
    # An email says what happened but not how often: asked in the acknowledgement.
    NOT_ANSWERED = "not_answered"


class Harm(StrEnum):
    """Has anyone been harmed, or could they be?"""

    PATIENT_HARMED = "patient_harmed"
    PATIENT_AT_RISK = "patient_at_risk"
    LEARNERS_AFFECTED = "learners_affected"
    MINOR = "minor"
    NOT_SURE = "not_sure"
    # An email says what happened but not who was harmed: asked in the acknowledgement.
    NOT_ANSWERED = "not_answered"


class RaisedBefore(StrEnum):
    NO = "no"
    PATHWAY1 = "pathway1"
    PATHWAY1_AND_2 = "pathway1_and_2"


class Confidentiality(StrEnum):
    NAMED = "named"
    CONFIDENTIAL = "confidential"
    ANONYMOUS = "anonymous"


class Pathway(IntEnum):
    CLINICAL_LEARNING_ENVIRONMENT = 1
    SCHOOL_OR_EDUCATION_PROVIDER = 2
    DEAN = 3


class Rating(StrEnum):
    """A cell of the 5x5 matrix: green, green/amber, amber, amber/red, red."""

    G = "G"
    G_A = "G/A"
    A = "A"
    A_R = "A/R"
    R = "R"


class RiskLevel(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Role(StrEnum):
    """Who a message is for. Directory contacts carry one of the person or mailbox roles."""

    # pathway 1, inside the placement provider
    SUPERVISOR = "supervisor"
    CLINICAL_TUTOR = "clinical_tutor"
    SPEAK_UP_GUARDIAN = "speak_up_guardian"
    # pathway 2, the body responsible for the learner's programme
    FOUNDATION_SCHOOL = "foundation_school"
    SPECIALTY_SCHOOL = "specialty_school"
    EDUCATION_PROVIDER = "education_provider"
    PATHWAY2_MAILBOX = "pathway2_mailbox"  # the school's or provider's generic mailbox
    # pathway 3, the region
    DEAN = "dean"
    QUALITY_TEAM = "quality_team"
    # the person who raised the concern
    LEARNER = "learner"


class ConcernStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
