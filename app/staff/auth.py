"""Who is calling: a signed-in browser (the staff session cookie) or an API client (a bearer
token). Each request reads the account and works out its rights afresh, so a role changed in the
directory, or an account switched off, takes effect on the next request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool

from app.staff.context import StaffContext
from escalation.casework import principal_of
from intake.web.security import posted_form, sent_from_our_page
from routing.access import Principal, StaffRole, sees_dashboard, sees_kept_aside
from storage import staff as accounts
from storage.db import transaction
from storage.tables import StaffMember

STAFF_COOKIE = "concerns_staff"
SIGN_IN_PATH = "/staff/sign-in"

ROLE_WORDS = {
    StaffRole.CONTACT: "contact",
    StaffRole.SCHOOL_LEAD: "school or provider lead",
    StaffRole.DEAN: "dean",
    StaffRole.QUALITY_TEAM: "quality team",
    StaffRole.ADMIN: "admin",
}


@dataclass(frozen=True)
class SignedIn:
    """The member of staff behind a request, and what their role lets them see and do."""

    member: StaffMember
    who: Principal

    @property
    def email(self) -> str:
        return self.who.email

    @property
    def role_words(self) -> str:
        return ROLE_WORDS[self.who.role]

    @property
    def navigation(self) -> list[dict[str, Any]]:
        items = [{"href": "/staff", "text": "My concerns"}]
        if sees_dashboard(self.who):
            items.append({"href": "/staff/dashboard", "text": "Dashboard"})
        if sees_kept_aside(self.who):
            items.append({"href": "/staff/kept-aside", "text": "Kept aside"})
        return items


class SignInNeeded(HTTPException):
    """A staff page asked for without a live session: the browser is sent to sign in, and
    brought back afterwards."""

    def __init__(self, back_to: str) -> None:
        super().__init__(
            status_code=303,
            headers={"Location": f"{SIGN_IN_PATH}?next={quote(back_to, safe='/')}"},
        )


class SignedOutWhileWriting(HTTPException):
    """A staff form with words in it, sent from our own page after the session ended (a
    supervisor called away for an hour mid-feedback): nothing is done, and the words are shown
    back to copy before signing in again (see app.staff.mount), not lost in a redirect."""

    def __init__(self, text: str, *, back_to: str) -> None:
        super().__init__(status_code=403, detail="signed out")
        self.text = text
        self.back_to = back_to


def _from_member(context: StaffContext, member: StaffMember | None) -> SignedIn | None:
    if member is None:
        return None
    with transaction(context.engine) as session:
        who = principal_of(session, member)
    return SignedIn(member, who) if who is not None else None


def signed_in_by_cookie(context: StaffContext, value: str | None) -> SignedIn | None:
    if not value:
        return None
    with transaction(context.engine) as session:
        member = accounts.staff_by_session(
            session, value, now=context.clock(), idle=context.session_idle
        )
    return _from_member(context, member)


def signed_in_by_bearer(context: StaffContext, authorization: str | None) -> SignedIn | None:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    with transaction(context.engine) as session:
        member = accounts.staff_by_token(session, token.strip())
    return _from_member(context, member)


async def staff_page_user(request: Request) -> SignedIn:
    """The dependency of every staff page: the signed-in member, or off to sign in."""
    context: StaffContext = request.app.state.staff
    signed_in = await run_in_threadpool(
        signed_in_by_cookie, context, request.cookies.get(STAFF_COOKIE)
    )
    if signed_in is None:
        if request.method == "POST" and sent_from_our_page(request, context.policy.public_url):
            written = _written(await posted_form(request))
            if written:
                raise SignedOutWhileWriting(written, back_to=_page_of(request.url.path))
        back_to = request.url.path if request.method == "GET" else "/staff"
        raise SignInNeeded(back_to)
    request.state.signed_in = signed_in
    return signed_in


# What a staff form may hold that someone typed, as it is shown back to copy.
_TYPED_FIELDS = (
    ("email", "The learner's correct email address: "),
    ("name", "The learner's name: "),
    ("text", ""),
)


def _written(form: Mapping[str, Any]) -> str:
    """What was typed into a staff form: the note or feedback, and on the form that corrects a
    learner's email address, the address and name typed too."""
    parts = []
    for field, label in _TYPED_FIELDS:
        value = form.get(field)
        if isinstance(value, str) and value.strip():
            parts.append(label + value.strip())
    return "\n\n".join(parts)


def _page_of(posted_to: str) -> str:
    """The page a staff form was on: a concern's actions are posted to the concern's address
    and one more part ('/staff/concerns/LC-2026-000001/feedback')."""
    parts = posted_to.split("/")
    if len(parts) == 5 and parts[:3] == ["", "staff", "concerns"]:
        return "/".join(parts[:4])
    return "/staff"


async def api_user(request: Request) -> SignedIn:
    """The dependency of every API endpoint: the token's account, or 401."""
    context: StaffContext = request.app.state.staff
    signed_in = await run_in_threadpool(
        signed_in_by_bearer, context, request.headers.get("authorization")
    )
    if signed_in is None:
        raise HTTPException(
            status_code=401,
            detail="A valid API token is needed (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return signed_in
