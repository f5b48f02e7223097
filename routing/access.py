"""Who on the staff side may see a concern, see who raised it, and act on it.

The rule book:
- A **contact** (supervisor, clinical tutor, speak-up guardian) sees the concerns they were told
  about, at any level, and acts on a concern while they are one of its current level's contacts.
- A **school or education-provider lead** sees the concerns of their school or provider once they
  reach pathway 2, and acts on them while they are at pathway 2.
- The **dean** and the **quality team** see every concern of their region and take every action.
- An **admin** runs the service: sees every concern of every region and acts on none.
- Mail kept aside for staff (a reply whose token does not match its sender, mail that could not
  be read) is read by deans and quality teams only: it belongs to no concern yet, and its sender
  may be a learner. When the region it concerns is known, only that region's; when it is not,
  every region's. Admins see that it is there, and which submissions keep failing to be raised,
  but not who sent what.
- Anyone who was told about a concern as a contact sees it, whatever their role.
- A confidential learner's identity is known to the dean and the quality team of the concern's
  region only; a named learner's identity goes to everyone who sees the concern; an anonymous
  concern has none to show.
Anything a role may not see does not exist for it: the staff pages and the API answer 404.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from routing.model import Confidentiality, Pathway, Role

SCHOOL = Pathway.SCHOOL_OR_EDUCATION_PROVIDER


class StaffRole(StrEnum):
    CONTACT = "contact"
    SCHOOL_LEAD = "school_lead"
    DEAN = "dean"
    QUALITY_TEAM = "quality_team"
    ADMIN = "admin"


class CaseAction(StrEnum):
    """Every action of the escalation engine staff can take on a concern."""

    ACKNOWLEDGE = "acknowledge"
    FEEDBACK = "feedback"
    ESCALATE = "escalate"
    CLOSE = "close"
    REOPEN = "reopen"
    OVERRIDE_TRIAGE = "override_triage"
    EDIT_STANDARDS = "edit_standards"
    REDIRECT = "redirect"
    # Where the learner's email goes, when they tell the region it was mistyped.
    CORRECT_LEARNER_EMAIL = "correct_learner_email"


# The staff role a directory contact signs in with: roles follow the directory.
STAFF_ROLE_OF = {
    Role.SUPERVISOR: StaffRole.CONTACT,
    Role.CLINICAL_TUTOR: StaffRole.CONTACT,
    Role.SPEAK_UP_GUARDIAN: StaffRole.CONTACT,
    Role.FOUNDATION_SCHOOL: StaffRole.SCHOOL_LEAD,
    Role.SPECIALTY_SCHOOL: StaffRole.SCHOOL_LEAD,
    Role.EDUCATION_PROVIDER: StaffRole.SCHOOL_LEAD,
    Role.PATHWAY2_MAILBOX: StaffRole.SCHOOL_LEAD,
    Role.DEAN: StaffRole.DEAN,
    Role.QUALITY_TEAM: StaffRole.QUALITY_TEAM,
}

# Which roles hold more rights than another, when one person holds several (a dean who is
# also a supervisor signs in as the dean).
RANK = {
    StaffRole.CONTACT: 1,
    StaffRole.SCHOOL_LEAD: 2,
    StaffRole.QUALITY_TEAM: 3,
    StaffRole.DEAN: 4,
    StaffRole.ADMIN: 5,
}

# What a contact of the current level may do: the engine's contact actions.
CONTACT_ACTIONS = frozenset(
    {CaseAction.ACKNOWLEDGE, CaseAction.FEEDBACK, CaseAction.ESCALATE, CaseAction.REDIRECT}
)
# What a school or provider lead may do while the concern is at pathway 2.
SCHOOL_LEAD_ACTIONS = CONTACT_ACTIONS | {CaseAction.EDIT_STANDARDS}
REGION_ROLES = frozenset({StaffRole.DEAN, StaffRole.QUALITY_TEAM})
# Where a learner raising a concern in chat follows it.
CHAT_CHANNELS = frozenset({"slack", "teams"})


@dataclass(frozen=True)
class Principal:
    """A signed-in member of staff, with the scope their role covers."""

    staff_id: int
    email: str
    role: StaffRole
    # The dean's or quality team's regions.
    region_ids: frozenset[int] = frozenset()
    # The school's or provider's programme bodies.
    body_ids: frozenset[int] = frozenset()
    # Every directory contact with their email: what they were told about, as whom.
    contact_ids: frozenset[int] = frozenset()


@dataclass(frozen=True)
class CaseScope:
    """What the rules need to know of a concern."""

    region_id: int
    programme_body_id: int | None
    pathway: int
    confidentiality: str
    # Every contact told about the concern, at any level.
    told_contact_ids: frozenset[int]
    # The contacts of the current level who act on it (not the dean's alert copy).
    acting_contact_ids: frozenset[int]
    # Where the learner raised it: email, web, slack, teams or cli.
    channel: str = "web"


def may_see(who: Principal, case: CaseScope) -> bool:
    if who.role is StaffRole.ADMIN:
        return True
    if who.contact_ids & case.told_contact_ids:
        return True
    if who.role in REGION_ROLES:
        return case.region_id in who.region_ids
    if who.role is StaffRole.SCHOOL_LEAD:
        return case.programme_body_id in who.body_ids and case.pathway >= SCHOOL
    return False


def sees_identity(who: Principal, case: CaseScope) -> bool:
    """Whether the learner's name, email and chat handles may be shown to this person."""
    if not may_see(who, case):
        return False
    if case.confidentiality == Confidentiality.NAMED.value:
        return True
    if case.confidentiality == Confidentiality.CONFIDENTIAL.value:
        return who.role in REGION_ROLES and case.region_id in who.region_ids
    return False


def acts_as_staff(who: Principal, case: CaseScope, action: CaseAction) -> bool:
    """Whether the role's own rights cover the action (the engine then skips its check that the
    person is a contact of the current level)."""
    if action is CaseAction.CORRECT_LEARNER_EMAIL:
        # Where the learner's mail and status links go: only the dean and quality team of the
        # concern's region, who may see a named or confidential learner's identity. An
        # anonymous learner has no address; one who raised it in chat follows it there.
        return (
            who.role in REGION_ROLES
            and case.region_id in who.region_ids
            and case.confidentiality != Confidentiality.ANONYMOUS.value
            and case.channel not in CHAT_CHANNELS
        )
    if who.role in REGION_ROLES:
        return case.region_id in who.region_ids
    if who.role is StaffRole.SCHOOL_LEAD:
        return (
            action in SCHOOL_LEAD_ACTIONS
            and case.programme_body_id in who.body_ids
            and case.pathway == SCHOOL
        )
    return False


def acting_contact(who: Principal, case: CaseScope, action: CaseAction) -> int | None:
    """The directory contact this person acts as, when they are one of the current level's."""
    if action not in CONTACT_ACTIONS:
        return None
    mine = sorted(who.contact_ids & case.acting_contact_ids)
    return mine[0] if mine else None


def may_act(who: Principal, case: CaseScope, action: CaseAction) -> bool:
    if not may_see(who, case):
        return False
    return acts_as_staff(who, case, action) or acting_contact(who, case, action) is not None


def allowed_actions(who: Principal, case: CaseScope) -> frozenset[CaseAction]:
    return frozenset(action for action in CaseAction if may_act(who, case, action))


def sees_dashboard(who: Principal) -> bool:
    """The region-wide dashboard and its export: deans, quality teams and admins."""
    return who.role in REGION_ROLES or who.role is StaffRole.ADMIN


def sees_kept_aside(who: Principal) -> bool:
    """The list of mail kept aside and of submissions not yet raised: deans, quality teams and
    admins (who run the service)."""
    return who.role in REGION_ROLES or who.role is StaffRole.ADMIN


def reads_kept_aside_mail(who: Principal) -> bool:
    """Who sent mail kept aside, its subject and its text: deans and quality teams only (of the
    regions `kept_aside_regions` names)."""
    return who.role in REGION_ROLES


def kept_aside_regions(who: Principal) -> frozenset[int] | None:
    """The regions whose kept-aside mail this person is shown, besides mail of no known region;
    None: every region's (an admin, who sees only that it is there)."""
    return who.region_ids if who.role in REGION_ROLES else None
