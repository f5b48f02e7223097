"""A region with concerns at every level and a member of staff in every role, for the staff
pages' and the API's tests (in process, on SQLite).

Concerns: `named`, `confidential` and `anonymous` at pathway 1; `at_school` (confidential) moved
to pathway 2; `at_dean` (named) moved to pathway 3.
Staff: `supervisor` (told about every pathway-1 concern), `other_supervisor` (a contact told
about none), `school_lead` (the programme body of the concerns) and `other_school_lead` (another
body), `dean` and `quality` (the region, from the directory), `other_dean` (another region,
added by `staff add`), `admin`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

from fastapi import FastAPI
from pydantic import TypeAdapter
from sqlalchemy.engine import Engine
from sqlmodel import col, func, select

from app.staff.auth import STAFF_COOKIE
from escalation import casework
from escalation.actions import Actor, escalate_by_hand
from intake.service import reference_for, submit_concern
from intake.submission import Channel, NewConcern, parse_submission
from storage import repositories
from storage import staff as accounts
from storage.db import transaction
from storage.tables import Contact, InboundMessage, ProgrammeBody, ReceivedSubmission, Region, id_of
from tests.integration.helpers import (
    MONDAY_MORNING,
    Clock,
    concern_input,
    example_placement,
    load_example_directory,
    policy,
)
from tests.integration.webclient import WebClient, make_app, web_client

LEARNER_NAME = "Priya Testlearner"
LEARNER_EMAIL = "priya.testlearner@example.nhs.uk"


@dataclass
class StaffWorld:
    engine: Engine
    clock: Clock
    concerns: dict[str, str]  # name -> reference
    emails: dict[str, str]  # who -> email
    tokens: dict[str, str]  # who -> API token
    staff_ids: dict[str, int]  # who -> staff account id
    _stack: ExitStack = field(default_factory=ExitStack)

    def browser(
        self, who: str | None = None, *, app: FastAPI | None = None, **settings: Any
    ) -> WebClient:
        """A browser on `app` or a fresh one, signed in as `who` (None: not signed in)."""
        client = self._stack.enter_context(
            web_client(app or make_app(self.engine, clock=self.clock, **settings))
        )
        if who is not None:
            with transaction(self.engine) as session:
                value = accounts.open_session(
                    session,
                    staff_id=self.staff_ids[who],
                    now=self.clock(),
                    lifetime=timedelta(hours=10),
                )
            client.set_cookie(STAFF_COOKIE, value)
        return client

    def api(self, who: str | None = None, **settings: Any) -> WebClient:
        """An API client whose requests carry `who`'s bearer token (None: no token)."""
        client = self._stack.enter_context(
            web_client(make_app(self.engine, clock=self.clock, **settings))
        )
        if who is not None:
            client._client.headers["Authorization"] = f"Bearer {self.tokens[who]}"
        return client

    def close(self) -> None:
        self._stack.close()


def _raise(engine: Engine, confidentiality: str, summary: str) -> str:
    changes: dict[str, Any] = {"confidentiality": confidentiality, "summary": summary}
    if confidentiality == "anonymous":
        changes["learner"] = {"group": "foundation", "programme": "Foundation Programme FY1"}
    return submit_concern(
        engine=engine,
        concern=parse_submission(concern_input(example_placement(engine), **changes)),
        channel=Channel.WEB,
        now=MONDAY_MORNING,
        policy=policy(),
    ).reference


def _escalate(engine: Engine, reference: str, times: int) -> None:
    for step in range(times):
        with transaction(engine) as session:
            found = repositories.concern_by_reference(session, reference)
            assert found is not None
            concern = repositories.lock_concern(session, id_of(found))
            assert concern is not None
            escalate_by_hand(
                session=session,
                concern=concern,
                by=Actor(kind="staff", channel="web"),
                reason=f"Set up for the staff tests ({step + 1})",
                now=MONDAY_MORNING + timedelta(minutes=step + 1),
                policy=policy(),
            )


def build_world(engine: Engine) -> StaffWorld:
    load_example_directory(engine)
    concerns = {
        "named": _raise(engine, "named", "Teaching cancelled again"),
        "confidential": _raise(engine, "confidential", "Rota leaves no senior cover"),
        "anonymous": _raise(engine, "anonymous", "Handover is rushed"),
        "at_school": _raise(engine, "confidential", "Assessments never signed off"),
        "at_dean": _raise(engine, "named", "No supervision on nights"),
    }
    _escalate(engine, concerns["at_school"], 1)
    _escalate(engine, concerns["at_dean"], 2)
    now = MONDAY_MORNING + timedelta(hours=1)
    with transaction(engine) as session:
        named = repositories.concern_by_reference(session, concerns["named"])
        at_school = repositories.concern_by_reference(session, concerns["at_school"])
        assert named is not None and at_school is not None
        told = {
            contact.id: contact
            for _, contact in repositories.assignments_of(session, id_of(named), pathway=1)
        }
        supervisor = next(
            contact for contact in told.values() if contact.role == "supervisor" and contact.email
        )
        every_told = {
            assignment.contact_id
            for reference in concerns.values()
            for found in [repositories.concern_by_reference(session, reference)]
            if found is not None
            for assignment, _ in repositories.assignments_of(session, id_of(found))
        }
        told_emails = {
            contact.email
            for contact in session.exec(
                select(Contact).where(col(Contact.id).in_(sorted(every_told)))
            )
        }
        other_supervisor = next(
            contact
            for contact in session.exec(select(Contact).where(Contact.role == "supervisor"))
            if contact.email and contact.email not in told_emails
        )
        body_id = at_school.programme_body_id
        assert body_id is not None
        school_lead = next(
            contact
            for contact in session.exec(select(Contact).where(Contact.body_id == body_id))
            if contact.email
        )
        other_school_lead = next(
            contact
            for contact in session.exec(select(Contact).where(col(Contact.body_id).is_not(None)))
            if contact.email and contact.body_id != body_id and contact.email not in told_emails
        )
        dean = session.exec(select(Contact).where(Contact.role == "dean")).first()
        quality = session.exec(select(Contact).where(Contact.role == "quality_team")).first()
        assert dean is not None and quality is not None
        session.add(Region(key="south-fen", name="South Fen", escalation_mailbox="sf@example.org"))
        emails = {
            "supervisor": str(supervisor.email),
            "other_supervisor": str(other_supervisor.email),
            "school_lead": str(school_lead.email),
            "other_school_lead": str(other_school_lead.email),
            "dean": str(dean.email),
            "quality": str(quality.email),
        }
        tokens: dict[str, str] = {}
        staff_ids: dict[str, int] = {}
        for who, email in emails.items():
            member = accounts.save_staff(
                session, email=email, role="contact", scope=None, follows_directory=True, now=now
            )
            staff_ids[who] = id_of(member)
            tokens[who] = accounts.issue_token(session, staff_id=id_of(member), now=now)
        session.flush()
        for who, email, role, scope in (
            ("other_dean", "dean@south-fen.example.nhs.uk", "dean", "south-fen"),
            ("admin", "admin@example.nhs.uk", "admin", None),
        ):
            member, token = casework.add_staff(
                session, email=email, role=role, scope=scope, now=now
            )
            emails[who], tokens[who], staff_ids[who] = email, token, id_of(member)
        assert session.exec(select(ProgrammeBody).where(ProgrammeBody.id == body_id)).first()
    return StaffWorld(
        engine=engine,
        clock=Clock(now),
        concerns=concerns,
        emails=emails,
        tokens=tokens,
        staff_ids=staff_ids,
    )


def staff_world(engine: Engine) -> Iterator[StaffWorld]:
    world = build_world(engine)
    try:
        yield world
    finally:
        world.close()


KEPT_ASIDE_WHY = "looks like a reply, but its token does not match the sender: kept for staff"


def keep_aside(
    engine: Engine,
    *,
    subject: str,
    body: str,
    status: str = "quarantined",
    why: str = KEPT_ASIDE_WHY,
    headers_noted: bool = True,
    region_key: str | None = None,
    received_at: datetime = MONDAY_MORNING,
) -> int:
    """Store an email as the mailbox keeps aside one it will not attach (or, with another
    status, one it dealt with). Without `headers_noted`, as mail whose processing kept failing is
    kept: before its sender and subject were noted. With `region_key`, filed under that region."""
    message = EmailMessage()
    message["From"] = "Someone Else <someone.else@example.org>"
    message["To"] = "escalating-concerns@localhost"
    message["Subject"] = subject
    message.set_content(body)
    message.add_attachment(
        b"%PDF-1.4 not opened", maintype="application", subtype="pdf", filename="rota.pdf"
    )
    raw = message.as_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    with transaction(engine) as session:
        region = (
            session.exec(select(Region).where(Region.key == region_key)).one()
            if region_key
            else None
        )
        row = InboundMessage(
            region_id=id_of(region) if region is not None else None,
            dedupe_key=digest,
            received_at=received_at,
            mail_from="someone.else@example.org",
            rcpt_tos=["escalating-concerns@localhost"],
            size=len(raw),
            sha256=digest,
            raw=raw,
            status=status,
            outcome=why if status == "quarantined" else "a new concern",
            from_address="someone.else@example.org" if headers_noted else None,
            subject=subject if headers_noted else None,
        )
        session.add(row)
        session.flush()
        return id_of(row)


def fail_to_raise(engine: Engine, *, error: str = "IntegrityError") -> str:
    """Store a form submission whose raising has failed once, in one transaction (a running
    service must not raise it first), with its next attempt a year away; its reference. The
    number is past any the counter hands out in these tests."""
    concern = parse_submission(
        concern_input(example_placement(engine), summary="Night rota has no registrar")
    )
    with transaction(engine) as session:
        taken = session.exec(select(func.max(ReceivedSubmission.number))).one() or 0
        number = max(900_000, int(taken) + 1)
        reference = reference_for(MONDAY_MORNING.year, number)
        session.add(
            ReceivedSubmission(
                reference=reference,
                year=MONDAY_MORNING.year,
                number=number,
                channel=Channel.WEB.value,
                received_at=MONDAY_MORNING,
                submission=TypeAdapter(NewConcern).dump_json(concern).decode(),
                attempts=1,
                last_error=error,
                next_attempt_at=datetime.now(UTC) + timedelta(days=365),
            )
        )
    return reference
