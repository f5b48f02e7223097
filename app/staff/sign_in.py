"""Staff sign-in: an emailed link, or the organisation's OpenID Connect provider; and sign-out.

A link is asked for with an email address. Whoever asks, the answer is the same "Check your
email" page, so the page never tells anyone which addresses have accounts. A link goes to an
active account, or to an active directory contact (whose account is made then, following the
directory). The link carries a signed, timed token over a random nonce: a tampered or old link is
refused before the database is asked, and the nonce's row makes the link work once.

Opening a link does not sign in (mail scanners fetch links): it shows a button, and the POST
signs in. A session is a random cookie value kept only as its hash; storage.staff ends it when
idle or at its absolute end.
"""

from __future__ import annotations

import logging
import secrets
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.common.errors import AuthlibBaseError
from email_validator import EmailNotValidError, validate_email
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer
from joserfc.errors import JoseError
from markupsafe import escape
from sqlmodel import col, select
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from app.staff.auth import SIGN_IN_PATH, STAFF_COOKIE
from app.staff.context import StaffContext
from app.staff.templating import leave_notice, staff_page, take_notice
from escalation.casework import member_for, principal_of
from intake.web.security import CSRF_FIELD, CSRF_SESSION_KEY, posted_form, require_csrf
from storage import repositories
from storage import staff as accounts
from storage.db import transaction
from storage.tables import OutboxMessage, SignInLink, id_of

with warnings.catch_warnings():
    # authlib 1.9 warns, once on import, that it would rather have httpx2 than httpx: httpx is
    # what it is given here, and works. Its warnings module, imported first, puts a filter of
    # its own in front of every other; inside this block that filter goes when the block ends.
    import authlib.deprecate  # noqa: F401

    warnings.filterwarnings(
        "ignore", message="The httpx module is deprecated", category=DeprecationWarning
    )
    from authlib.integrations.starlette_client import OAuth

log = logging.getLogger(__name__)

SIGN_OUT_PATH = "/staff/sign-out"
OIDC_PATH = "/staff/sign-in/oidc"
OIDC_CALLBACK_PATH = "/staff/sign-in/oidc/callback"
STAFF_HOME = "/staff"
TOKEN_SALT = "staff-sign-in"
OIDC_NEXT_KEY = "staff_oidc_next"
OIDC_CLIENT = "staff"
EMAIL_LIMIT = 320
NEXT_LIMIT = 500
# A used, expired or tampered link: one status for all, so none can be told apart.
LINK_GONE_STATUS = 410

SIGNED_OUT = "You have signed out."
ENTER_EMAIL = "Enter your work email address"
EMAIL_FORMAT = "Enter an email address in the correct format, like name@example.nhs.uk"


def safe_next(value: object) -> str:
    """Where to go after signing in: a path on the staff side, or the staff home page. Never
    another site (absolute or protocol-relative URLs, backslashes, control characters)."""
    if not isinstance(value, str) or not value or len(value) > NEXT_LIMIT:
        return STAFF_HOME
    if "\\" in value or any(ord(character) < 0x20 or ord(character) == 0x7F for character in value):
        return STAFF_HOME
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or value.startswith("//"):
        return STAFF_HOME
    if parts.path != STAFF_HOME and not parts.path.startswith(STAFF_HOME + "/"):
        return STAFF_HOME
    return value


def normalised_email(value: str) -> str | None:
    """The address in lower case, or None when it is not an email address."""
    if len(value) > EMAIL_LIMIT:
        return None
    try:
        checked = validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return None
    return accounts.normalise_email(checked.normalized)


def unverified(claims: Mapping[str, Any]) -> bool:
    """Whether the ID token has an `email_verified` claim that is anything but true (fails
    closed: false, "False", 0, "no" and the like are all unverified)."""
    if "email_verified" not in claims:
        return False
    value = claims["email_verified"]
    return not (value is True or (isinstance(value, str) and value.strip().lower() == "true"))


def oidc_email(claims: Mapping[str, Any]) -> str | None:
    """The ID token's email address, None when there is none we can trust.

    Staff rights follow the email address, and at a provider that lets users type their own
    address anyone could claim a dean's. So:
    - with an `email_verified` claim (Google, Keycloak, Okta), only a verified `email` counts;
    - without one (Microsoft Entra ID sends none), `email`, else `preferred_username` or `upn`
      when one is an email address (Entra often sends only those). Such a provider is trusted
      for the addresses its directory holds: register the app for your own tenant only.
    """
    if unverified(claims):
        return None
    claims_read = (
        ("email",) if "email_verified" in claims else ("email", "preferred_username", "upn")
    )
    for claim in claims_read:
        value = claims.get(claim)
        if isinstance(value, str) and value.strip():
            found = normalised_email(value.strip())
            if found is not None:
                return found
    return None


def link_email(link: str, minutes: int) -> tuple[str, str, str]:
    """Subject, text and HTML of the sign-in email."""
    subject = "Your sign-in link for the learner concerns service"
    lines = (
        "Use this link to sign in to the learner concerns service (staff):",
        link,
        f"The link works once, within {minutes} minutes.",
        "If you did not ask to sign in, you can ignore this email: nobody can sign in without "
        "the link.",
    )
    text = (
        "\n\n".join(lines)
        + "\n\nThis message was sent automatically by the learner "
        + ("concerns service.\n")
    )
    html = (
        f"<p>{escape(lines[0])}</p>\n"
        f'<p><a href="{escape(link)}">Sign in to the learner concerns service</a></p>\n'
        f"<p>{escape(lines[2])}</p>\n<p>{escape(lines[3])}</p>\n"
        "<p>This message was sent automatically by the learner concerns service.</p>\n"
    )
    return subject, text, html


@dataclass(frozen=True)
class LinkTokens:
    """Signed, timed tokens over a sign-in nonce, timed by the service's clock."""

    context: StaffContext

    def _serializer(self) -> URLSafeTimedSerializer:
        clock = self.context.clock

        class ClockSigner(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(clock().timestamp())

        return URLSafeTimedSerializer(
            self.context.keys_for("staff-sign-in"), salt=TOKEN_SALT, signer=ClockSigner
        )

    def make(self, nonce: str, next_path: str) -> str:
        return str(self._serializer().dumps({"n": nonce, "next": next_path}))

    def read(self, token: str) -> tuple[str, str] | None:
        """The nonce and where to go next; None for a tampered, malformed or old token."""
        if len(token) > 2_000:
            return None
        max_age = int(self.context.sign_in_lifetime.total_seconds())
        try:
            data = self._serializer().loads(token, max_age=max_age)
        except BadData:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("n"), str):
            return None
        return data["n"], safe_next(data.get("next"))


def router(context: StaffContext) -> APIRouter:
    routes = APIRouter(include_in_schema=False)
    tokens = LinkTokens(context)
    public_url = context.policy.public_url.rstrip("/")
    minutes = int(context.sign_in_lifetime.total_seconds() // 60)

    oauth = OAuth()
    if context.oidc is not None:
        oauth.register(
            name=OIDC_CLIENT,
            server_metadata_url=context.oidc.metadata_url,
            client_id=context.oidc.client_id,
            client_secret=context.oidc.client_secret,
            client_kwargs={"scope": "openid email profile"},
        )

    # --- pages --------------------------------------------------------------------------------

    def sign_in_page(
        request: Request,
        *,
        next_path: str,
        email: str = "",
        errors: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> HTMLResponse:
        errors = errors or {}
        return staff_page(
            context.templates,
            request,
            "sign_in.html",
            {
                "next": next_path,
                "email": email,
                "errors": errors,
                "error_list": [
                    {"text": text, "href": f"#{field}"} for field, text in errors.items()
                ],
                "notice": take_notice(request),
                "oidc_name": context.oidc.name if context.oidc is not None else None,
                "oidc_path": OIDC_PATH,
                "minutes": minutes,
            },
            status_code=status_code,
        )

    def link_gone(request: Request) -> HTMLResponse:
        return staff_page(
            context.templates, request, "sign_in_expired.html", status_code=LINK_GONE_STATUS
        )

    def refused(request: Request, *, heading: str, text: str, status_code: int) -> HTMLResponse:
        return staff_page(
            context.templates,
            request,
            "sign_in_refused.html",
            {"heading": heading, "text": text},
            status_code=status_code,
        )

    def signed_in_response(request: Request, cookie: str, next_path: str) -> Response:
        # A new CSRF token for the signed-in session: one seen before sign-in is no use after.
        request.session[CSRF_SESSION_KEY] = secrets.token_urlsafe(32)
        response = RedirectResponse(next_path, status_code=303)
        response.set_cookie(
            STAFF_COOKIE,
            cookie,
            httponly=True,
            samesite="lax",
            secure=context.secure_cookies,
            path="/",
        )
        return response

    # --- the database -------------------------------------------------------------------------

    def queue_link(email: str, next_path: str) -> None:
        now = context.clock()
        with transaction(context.engine) as session:
            member = member_for(session, email, now=now)
            if member is None:
                return
            nonce = accounts.new_sign_in(
                session, staff_id=id_of(member), now=now, lifetime=context.sign_in_lifetime
            )
            link = f"{public_url}/staff/sign-in/{tokens.make(nonce, next_path)}"
            subject, text, html = link_email(link, minutes)
            repositories.queue_message(
                session,
                OutboxMessage(
                    idempotency_key=f"staff_sign_in:{accounts.digest(nonce)}",
                    channel="email",
                    kind="staff_sign_in",
                    recipient_role="staff",
                    recipient_address=member.email,
                    subject=subject,
                    body_text=text,
                    body_html=html,
                    created_at=now,
                    send_after=now,
                ),
            )

    def queue_link_quietly(email: str, next_path: str) -> None:
        """queue_link after the answer has gone: a failure can only be logged (the type only:
        the error's text could quote the address)."""
        try:
            queue_link(email, next_path)
        except Exception as error:
            log.error("staff sign-in: no link was queued (%s)", type(error).__name__)
            context.sign_in_failed()

    def link_unused(nonce: str) -> bool:
        with transaction(context.engine) as session:
            found = session.exec(
                select(SignInLink.id).where(
                    SignInLink.nonce_hash == accounts.digest(nonce),
                    col(SignInLink.used_at).is_(None),
                    col(SignInLink.expires_at) > context.clock(),
                )
            ).first()
        return found is not None

    def use_link(nonce: str) -> str | None:
        """A new session's cookie value, using the link up; None when it cannot be used."""
        now = context.clock()
        with transaction(context.engine) as session:
            staff_id = accounts.use_sign_in(session, nonce, now=now)
            if staff_id is None:
                return None
            member = accounts.staff_by_id(session, staff_id)
            if member is None or principal_of(session, member) is None:
                return None
            return accounts.open_session(
                session, staff_id=staff_id, now=now, lifetime=context.session_lifetime
            )

    def session_for_email(email: str) -> str | None:
        now = context.clock()
        with transaction(context.engine) as session:
            member = member_for(session, email, now=now)
            if member is None:
                return None
            return accounts.open_session(
                session, staff_id=id_of(member), now=now, lifetime=context.session_lifetime
            )

    def sign_out(value: str) -> None:
        with transaction(context.engine) as session:
            accounts.end_session(session, value, now=context.clock())

    # --- asking for a link --------------------------------------------------------------------

    @routes.get(SIGN_IN_PATH, response_class=HTMLResponse)
    async def show(request: Request) -> HTMLResponse:
        return sign_in_page(request, next_path=safe_next(request.query_params.get("next")))

    @routes.post(SIGN_IN_PATH, response_class=HTMLResponse)
    async def ask(request: Request) -> HTMLResponse:
        form = await posted_form(request)
        require_csrf(request, form.get(CSRF_FIELD))
        context.limits.hit("sign_ins", context.limits.client(request))
        next_path = safe_next(form.get("next"))
        raw = form.get("email")
        typed = raw.strip() if isinstance(raw, str) else ""
        email = normalised_email(typed) if typed else None
        if email is None:
            error = EMAIL_FORMAT if typed else ENTER_EMAIL
            return sign_in_page(
                request,
                next_path=next_path,
                email=typed[:EMAIL_LIMIT],
                errors={"email": error},
                status_code=400,
            )
        context.limits.hit("sign_ins", "email:" + accounts.digest(email))
        response = staff_page(
            context.templates,
            request,
            "sign_in_check_email.html",
            {"email": email, "minutes": minutes},
        )
        # The address is looked up only once this page has gone. For a member, that work (an
        # account made from the directory, a link, its email queued) took longer than finding
        # nobody, so the time to answer told which addresses belong to staff. (That work still
        # shares the process with the next request; the rate limits above bound what timing
        # that can tell.)
        response.background = BackgroundTask(queue_link_quietly, email, next_path)
        return response

    # --- using a link (the OIDC start is a fixed path, so it is routed first) -----------------

    @routes.get(OIDC_PATH)
    async def oidc_start(request: Request) -> Response:
        return await start_oidc(request)

    @routes.get(SIGN_IN_PATH + "/{token}", response_class=HTMLResponse)
    async def open_link(request: Request, token: str) -> HTMLResponse:
        found = tokens.read(token)
        if found is None or not await run_in_threadpool(link_unused, found[0]):
            return link_gone(request)
        return staff_page(
            context.templates,
            request,
            "sign_in_link.html",
            {"action": f"{SIGN_IN_PATH}/{token}"},
        )

    @routes.post(SIGN_IN_PATH + "/{token}")
    async def use(request: Request, token: str) -> Response:
        form = await posted_form(request)
        require_csrf(request, form.get(CSRF_FIELD))
        found = tokens.read(token)
        if found is None:
            return link_gone(request)
        nonce, next_path = found
        cookie = await run_in_threadpool(use_link, nonce)
        if cookie is None:
            return link_gone(request)
        return signed_in_response(request, cookie, next_path)

    # --- signing out --------------------------------------------------------------------------

    @routes.post(SIGN_OUT_PATH)
    async def leave(request: Request) -> Response:
        form = await posted_form(request)
        require_csrf(request, form.get(CSRF_FIELD))
        value = request.cookies.get(STAFF_COOKIE)
        if value:
            await run_in_threadpool(sign_out, value)
        request.session[CSRF_SESSION_KEY] = secrets.token_urlsafe(32)
        leave_notice(request, SIGNED_OUT)
        response = RedirectResponse(SIGN_IN_PATH, status_code=303)
        response.delete_cookie(
            STAFF_COOKIE,
            path="/",
            httponly=True,
            samesite="lax",
            secure=context.secure_cookies,
        )
        return response

    # --- OpenID Connect -----------------------------------------------------------------------

    def provider() -> Any:
        if context.oidc is None:
            raise HTTPException(status_code=404, detail="Not Found")
        return oauth.create_client(OIDC_CLIENT)

    async def start_oidc(request: Request) -> Response:
        client = provider()
        request.session[OIDC_NEXT_KEY] = safe_next(request.query_params.get("next"))
        response: Response = await client.authorize_redirect(
            request, public_url + OIDC_CALLBACK_PATH
        )
        return response

    @routes.get(OIDC_CALLBACK_PATH)
    async def oidc_callback(request: Request) -> Response:
        client = provider()
        name = context.oidc.name if context.oidc is not None else ""
        try:
            token = await client.authorize_access_token(request)
        except (AuthlibBaseError, JoseError, httpx.HTTPError, ValueError):
            return refused(
                request,
                heading="Sign-in did not work",
                text=f"{name} did not confirm who you are. Try signing in again.",
                status_code=400,
            )
        claims = token.get("userinfo") if isinstance(token, dict) else None
        email = oidc_email(claims) if isinstance(claims, Mapping) else None
        if isinstance(claims, Mapping) and unverified(claims):
            log.warning("OIDC sign-in refused: the provider has not verified the email address")
            return refused(
                request,
                heading="Sign-in did not work",
                text=f"{name} has not verified your email address, so we cannot tell which "
                f"account is yours. Verify it with {name}, then sign in again.",
                status_code=403,
            )
        if email is None:
            log.warning("OIDC sign-in refused: no usable email address in the ID token")
            return refused(
                request,
                heading="Sign-in did not work",
                text=f"{name} did not give us your email address, so we cannot tell which "
                "account is yours.",
                status_code=400,
            )
        cookie = await run_in_threadpool(session_for_email, email)
        if cookie is None:
            return refused(
                request,
                heading="Your account does not have access",
                text=f"{email} does not have access to the staff side of the learner concerns "
                "service. If you think it should, ask your service administrator.",
                status_code=403,
            )
        next_path = safe_next(request.session.pop(OIDC_NEXT_KEY, None))
        return signed_in_response(request, cookie, next_path)

    return routes
