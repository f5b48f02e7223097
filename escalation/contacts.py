"""Who, by name, holds a role for a concern: the directory lookup behind the routing roles.

`routing.recipients` says which roles are told; this module finds the people. When the directory
has nobody in a role, the concern still reaches someone: the fallback table says who stands in,
and the reason is recorded so staff can see the directory gap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlmodel import Session

from routing.model import LearnerGroup, Role
from storage import repositories
from storage.tables import Concern, Contact, Organisation, ProgrammeBody

# Who stands in when the directory has nobody in a role, tried in order.
FALLBACKS: Mapping[Role, tuple[Role, ...]] = {
    Role.SUPERVISOR: (Role.CLINICAL_TUTOR, Role.SPEAK_UP_GUARDIAN, Role.QUALITY_TEAM),
    Role.CLINICAL_TUTOR: (Role.SPEAK_UP_GUARDIAN, Role.QUALITY_TEAM),
    Role.SPEAK_UP_GUARDIAN: (Role.CLINICAL_TUTOR, Role.QUALITY_TEAM),
    Role.FOUNDATION_SCHOOL: (Role.PATHWAY2_MAILBOX, Role.QUALITY_TEAM),
    Role.SPECIALTY_SCHOOL: (Role.PATHWAY2_MAILBOX, Role.QUALITY_TEAM),
    Role.EDUCATION_PROVIDER: (Role.PATHWAY2_MAILBOX, Role.QUALITY_TEAM),
    Role.PATHWAY2_MAILBOX: (Role.QUALITY_TEAM,),
    Role.DEAN: (Role.QUALITY_TEAM,),
    Role.QUALITY_TEAM: (Role.DEAN,),
}

BODY_ROLES = (Role.FOUNDATION_SCHOOL, Role.SPECIALTY_SCHOOL, Role.EDUCATION_PROVIDER)


@dataclass(frozen=True)
class Found:
    contact: Contact
    role: Role
    note: str | None  # why someone else stands in for the role asked for


def find_contact(
    session: Session, concern: Concern, role: Role, *, avoid: frozenset[int] = frozenset()
) -> Found | None:
    """The contact holding `role` for this concern, or whoever stands in for them."""
    for candidate_role in (role, *FALLBACKS.get(role, ())):
        for contact in _holders(session, concern, candidate_role):
            if contact.id not in avoid:
                note = None
                if candidate_role is not role:
                    note = (
                        f"No {role.value.replace('_', ' ')} for this concern in the directory: "
                        f"the {candidate_role.value.replace('_', ' ')} was told instead"
                    )
                return Found(contact=contact, role=candidate_role, note=note)
    return None


def _holders(session: Session, concern: Concern, role: Role) -> list[Contact]:
    region = concern.region_id
    if role is Role.SUPERVISOR:
        if concern.department_id is None:
            return []
        return list(
            repositories.contacts_with_role(
                session, role=role, region_id=region, department_id=concern.department_id
            )
        )
    if role is Role.CLINICAL_TUTOR:
        found: list[Contact] = []
        if concern.department_id is not None:
            found += repositories.contacts_with_role(
                session, role=role, region_id=region, department_id=concern.department_id
            )
        if concern.organisation_id is not None:
            found += repositories.contacts_with_role(
                session,
                role=role,
                region_id=region,
                organisation_id=concern.organisation_id,
                organisation_wide=True,
            )
        return found
    if role is Role.SPEAK_UP_GUARDIAN:
        if concern.organisation_id is None:
            return []
        return list(
            repositories.contacts_with_role(
                session, role=role, region_id=region, organisation_id=concern.organisation_id
            )
        )
    if role in BODY_ROLES or role is Role.PATHWAY2_MAILBOX:
        if concern.programme_body_id is None:
            return []
        return list(
            repositories.contacts_with_role(
                session, role=role, region_id=region, body_id=concern.programme_body_id
            )
        )
    return list(repositories.contacts_with_role(session, role=role, region_id=region))


def choose_programme_body(
    session: Session,
    *,
    region_id: int,
    role: Role,
    group: LearnerGroup | None,
    programme: str | None,
    organisation: Organisation | None,
) -> ProgrammeBody | None:
    """The pathway-2 body responsible for this learner's programme, or None when unclear.

    Bodies that teach the learner's group are the candidates; among them a programme word the
    body lists counts most, then a placement it serves. A single candidate is responsible;
    between several with nothing to choose, nobody guesses: the quality team routes it.
    """
    if role not in BODY_ROLES:
        return None
    bodies = list(repositories.programme_bodies(session, region_id=region_id, kind=role.value))
    if group is not None:
        teaching = [b for b in bodies if not b.learner_groups or group.value in b.learner_groups]
        bodies = teaching or bodies
    programme_text = (programme or "").lower()

    def score(body: ProgrammeBody) -> int:
        points = 0
        names = [body.name, *body.programmes]
        if programme_text and any(word.lower() in programme_text for word in names):
            points += 4
        if organisation is not None and organisation.key in body.placement_organisations:
            points += 2
        return points

    ranked = sorted(bodies, key=score, reverse=True)
    if len(ranked) == 1:
        return ranked[0]
    if len(ranked) > 1 and score(ranked[0]) > score(ranked[1]):
        return ranked[0]
    return None
