"""The staff JSON API, under /api/v1: the concerns a member of staff may see, each one in full,
its audit trail, and every action of the escalation engine.

Every endpoint needs a bearer token (`concerns staff add` issues one); the rules are the staff
pages' own (`escalation.casework`). A concern the caller may not see answers 404 exactly as one
that does not exist; an action the engine refuses answers 409 with the reason; a body that does
not fit answers 422 with FastAPI's field errors.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, Security
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from pydantic import AfterValidator, BaseModel, EmailStr, Field
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from app.staff import docs
from app.staff.auth import SignedIn, api_user
from app.staff.context import StaffContext
from escalation import casework
from escalation.casework import ActionRefused, CaseAction
from escalation.dashboard import Dashboard, dashboard_data, dashboard_regions
from escalation.views import concern_summary
from intake.submission import sendable_address
from routing.access import sees_dashboard
from storage.db import transaction
from storage.tables import id_of

PREFIX = "/api/v1"
TAG = "concerns"
NOT_FOUND = "Not found"
# A reference is letters, digits and hyphens: anything else cannot name a concern, so it is not
# looked up (and answers the same 404 as a reference that names nobody's concern).
REFERENCE_SHAPE = re.compile(r"[A-Z0-9][A-Z0-9-]{0,39}")

T = TypeVar("T")

# Every endpoint's caller: the bearer token's live staff account, or 401.
Caller = Annotated[SignedIn, Depends(api_user)]

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="StaffToken",
    description="A staff API token, as issued by `concerns staff add`.",
)


# --- the shapes -------------------------------------------------------------------------------


class Problem(BaseModel):
    detail: str


class ConcernSummary(BaseModel):
    reference: str
    status: str
    pathway: int
    risk_level: str
    rating: str
    place: str
    summary: str
    confidentiality: str
    created_at: datetime
    ack_due_at: datetime
    feedback_due_at: datetime | None
    acknowledged: bool
    feedback_given: bool
    overdue_at_dean: bool


class ConcernList(BaseModel):
    concerns: list[ConcernSummary]


class AutomaticRisk(BaseModel):
    likelihood: int
    impact: int


class Risk(BaseModel):
    likelihood: int
    impact: int
    rating: str
    level: str
    reasons: list[str]
    interventions: list[str]
    automatic: AutomaticRisk
    override_reason: str | None


class AssignedContact(BaseModel):
    pathway: int
    role: str
    part: str
    name: str | None


class CaseEvent(BaseModel):
    at: datetime
    kind: str
    actor: str
    channel: str
    pathway: int | None
    from_pathway: int | None = None
    to_pathway: int | None = None
    detail: dict[str, Any]


class LearnerIdentity(BaseModel):
    name: str | None
    email: str | None
    slack_user_id: str | None
    teams_user_id: str | None


class ConcernDetail(BaseModel):
    reference: str
    status: str
    pathway: int
    confidentiality: str
    channel: str
    learner_group: str | None
    place: str
    summary: str
    description: str
    patient_safety: bool
    hotspot: bool
    risk: Risk
    standards: list[str]
    created_at: datetime
    level_reached_at: datetime | None
    ack_due_at: datetime | None
    feedback_due_at: datetime | None
    acknowledged_at: datetime | None
    feedback_at: datetime | None
    overdue_at_dean_at: datetime | None
    closed_at: datetime | None
    closed_reason: str | None
    next_due_at: datetime | None
    contacts: list[AssignedContact]
    events: list[CaseEvent]
    identity: LearnerIdentity | None = Field(
        description="The learner, where the caller's role may know who they are"
    )
    identity_withheld: bool = Field(
        description="True when the learner is confidential and the caller may not know them"
    )
    as_written: bool = Field(
        description="True when the summary and description are as the learner wrote them, and "
        "contacts who may not know the learner read them without the learner's name and address"
    )
    allowed_actions: list[CaseAction]


class AuditEntry(BaseModel):
    at: datetime
    kind: str
    actor: str
    channel: str
    pathway: int | None
    detail: dict[str, Any]


class AuditTrail(BaseModel):
    reference: str
    entries: list[AuditEntry]


class Feedback(BaseModel):
    text: str = Field(description="The feedback for the learner")


class Reason(BaseModel):
    reason: str


class LearnerEmail(BaseModel):
    email: Annotated[EmailStr, AfterValidator(sendable_address)] = Field(
        description="The learner's correct email address"
    )
    reason: str = Field(description="How the learner told you their address or name was wrong")
    name: str = Field(
        default="",
        max_length=casework.MAX_NAME_CHARACTERS,
        description="The learner's name, only if the one held for them is wrong or missing",
    )


class Triage(BaseModel):
    likelihood: int = Field(ge=1, le=5)
    impact: int = Field(ge=1, le=5)
    reason: str


class Standards(BaseModel):
    standards: list[str] = Field(
        max_length=100, description="Quality Framework standard codes, replacing the current ones"
    )


class Redirect(BaseModel):
    reason: str = ""
    to_contact_id: int | None = Field(
        default=None, description="The contact to hand the concern to (default: the next one)"
    )


UNAUTHORISED: dict[int | str, dict[str, Any]] = {
    401: {
        "model": Problem,
        "description": "No token, or one that is not a live staff account's",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    }
}
HIDDEN: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such concern, or not one the caller may see"}
}
REFUSED: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "The action is not possible now (the reason says why)"}
}


# --- FastAPI's 422 on this API (the learner pages answer a bare 400 to requests no form sends) --


class ValidatedRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as error:
                return JSONResponse({"detail": jsonable_encoder(error.errors())}, status_code=422)

        return checked


# --- the endpoints ----------------------------------------------------------------------------


def router(context: StaffContext) -> APIRouter:
    """The API and its documentation (/docs, /openapi.json is FastAPI's own)."""
    routes = APIRouter()
    routes.include_router(_api(context))
    routes.include_router(docs.router())
    return routes


def _api(context: StaffContext) -> APIRouter:
    api = APIRouter(
        prefix=PREFIX,
        tags=[TAG],
        route_class=ValidatedRoute,
        dependencies=[Security(bearer)],
        responses=UNAUTHORISED,
    )

    async def in_transaction(work: Callable[[Session], T]) -> T:
        def run() -> T:
            with transaction(context.engine) as session:
                return work(session)

        try:
            return await run_in_threadpool(run)
        except casework.NotFound:
            raise HTTPException(status_code=404, detail=NOT_FOUND) from None
        except ActionRefused as refused:
            raise HTTPException(status_code=409, detail=str(refused)) from None

    def found(session: Session, signed_in: SignedIn, reference: str) -> Any:
        if not REFERENCE_SHAPE.fullmatch(reference.strip().upper()):
            raise casework.NotFound(reference)
        concern = casework.find_case(session, signed_in.who, reference)
        if concern is None:
            raise casework.NotFound(reference)
        return concern

    @api.get("/concerns", summary="The concerns the caller may see, newest first")
    async def list_concerns(
        signed_in: Caller,
        status: Annotated[
            Literal["open", "closed"] | None,
            Query(description="Only open, or only closed, concerns"),
        ] = None,
    ) -> ConcernList:
        def work(session: Session) -> ConcernList:
            rows = [
                concern_summary(session, concern)
                | {
                    "ack_due_at": concern.ack_due_at,
                    "acknowledged": concern.acknowledged_at is not None,
                    "feedback_given": concern.feedback_at is not None,
                }
                for concern in casework.visible_concerns(session, signed_in.who, status=status)
            ]
            return ConcernList.model_validate({"concerns": rows})

        return await in_transaction(work)

    @api.get(
        "/concerns/{reference}",
        summary="A concern in full (the learner's identity only where the role may know it)",
        responses=HIDDEN,
    )
    async def read_concern(reference: str, signed_in: Caller) -> ConcernDetail:
        def work(session: Session) -> ConcernDetail:
            concern = found(session, signed_in, reference)
            return ConcernDetail.model_validate(
                casework.read_case(
                    session,
                    signed_in.who,
                    signed_in.member,
                    concern,
                    channel="api",
                    now=context.clock(),
                )
            )

        return await in_transaction(work)

    @api.get(
        "/concerns/{reference}/audit",
        summary="What happened to a concern, and who saw its learner's identity",
        responses=HIDDEN,
    )
    async def audit(reference: str, signed_in: Caller) -> AuditTrail:
        def work(session: Session) -> AuditTrail:
            concern = found(session, signed_in, reference)
            return AuditTrail.model_validate(
                {
                    "reference": concern.reference,
                    "entries": casework.audit_trail(session, signed_in.who, concern),
                }
            )

        return await in_transaction(work)

    async def act(
        signed_in: SignedIn,
        reference: str,
        action: CaseAction,
        *,
        text: str = "",
        likelihood: int | None = None,
        impact: int | None = None,
        standards: Sequence[str] = (),
        to_contact_id: int | None = None,
        email: str = "",
        name: str = "",
    ) -> ConcernDetail:
        """Take the action, then answer with the concern as it now stands."""

        def work(session: Session) -> ConcernDetail:
            found(session, signed_in, reference)
            now = context.clock()
            concern = casework.act(
                session,
                signed_in.who,
                reference,
                action,
                channel="api",
                now=now,
                policy=context.policy,
                text=text,
                likelihood=likelihood,
                impact=impact,
                standards=standards,
                to_contact_id=to_contact_id,
                email=email,
                name=name,
            )
            return ConcernDetail.model_validate(
                casework.read_case(
                    session, signed_in.who, signed_in.member, concern, channel="api", now=now
                )
            )

        return await in_transaction(work)

    acting = HIDDEN | REFUSED

    @api.post("/concerns/{reference}/acknowledge", summary="Acknowledge", responses=acting)
    async def acknowledge(reference: str, signed_in: Caller) -> ConcernDetail:
        return await act(signed_in, reference, CaseAction.ACKNOWLEDGE)

    @api.post("/concerns/{reference}/feedback", summary="Record feedback", responses=acting)
    async def feedback(reference: str, body: Feedback, signed_in: Caller) -> ConcernDetail:
        return await act(signed_in, reference, CaseAction.FEEDBACK, text=body.text)

    @api.post("/concerns/{reference}/escalate", summary="Escalate by hand", responses=acting)
    async def escalate(reference: str, body: Reason, signed_in: Caller) -> ConcernDetail:
        return await act(signed_in, reference, CaseAction.ESCALATE, text=body.reason)

    @api.post("/concerns/{reference}/close", summary="Close", responses=acting)
    async def close(reference: str, body: Reason, signed_in: Caller) -> ConcernDetail:
        return await act(signed_in, reference, CaseAction.CLOSE, text=body.reason)

    @api.post("/concerns/{reference}/reopen", summary="Reopen", responses=acting)
    async def reopen(reference: str, body: Reason, signed_in: Caller) -> ConcernDetail:
        return await act(signed_in, reference, CaseAction.REOPEN, text=body.reason)

    @api.post("/concerns/{reference}/triage", summary="Override the triage", responses=acting)
    async def triage(reference: str, body: Triage, signed_in: Caller) -> ConcernDetail:
        return await act(
            signed_in,
            reference,
            CaseAction.OVERRIDE_TRIAGE,
            text=body.reason,
            likelihood=body.likelihood,
            impact=body.impact,
        )

    @api.post("/concerns/{reference}/standards", summary="Edit the standards", responses=acting)
    async def standards(reference: str, body: Standards, signed_in: Caller) -> ConcernDetail:
        return await act(signed_in, reference, CaseAction.EDIT_STANDARDS, standards=body.standards)

    @api.post("/concerns/{reference}/redirect", summary="Redirect", responses=acting)
    async def redirect(reference: str, body: Redirect, signed_in: Caller) -> ConcernDetail:
        return await act(
            signed_in,
            reference,
            CaseAction.REDIRECT,
            text=body.reason,
            to_contact_id=body.to_contact_id,
        )

    @api.post(
        "/concerns/{reference}/learner-email",
        summary=(
            "Correct the learner's email address, or with the same address their name "
            "(the region's dean and quality team)"
        ),
        responses=acting,
    )
    async def learner_email(reference: str, body: LearnerEmail, signed_in: Caller) -> ConcernDetail:
        return await act(
            signed_in,
            reference,
            CaseAction.CORRECT_LEARNER_EMAIL,
            text=body.reason,
            email=str(body.email),
            name=body.name,
        )

    @api.get(
        "/dashboard",
        summary="The dashboard of the regions the caller covers (deans, quality teams, admins)",
        responses={404: {"model": Problem, "description": "The caller's role has no dashboard"}},
    )
    async def dashboard(signed_in: Caller) -> Dashboard:
        def work(session: Session) -> Dashboard:
            if not sees_dashboard(signed_in.who):
                raise casework.NotFound("dashboard")
            regions = dashboard_regions(session, signed_in.who)
            return dashboard_data(
                session,
                signed_in.who,
                now=context.clock(),
                policy=context.policy,
                region_ids=[id_of(region) for region in regions],
            )

        return await in_transaction(work)

    return api
