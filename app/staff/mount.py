"""Puts the staff side on the app: sign-in, the pages, the dashboard and the JSON API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import Response
from sqlalchemy.engine import Engine

from app.settings import Settings
from app.staff import api, dashboard, kept_aside, pages, sign_in
from app.staff.auth import SIGN_IN_PATH, SignedOutWhileWriting
from app.staff.context import OidcProvider, StaffContext
from app.staff.templating import staff_page, staff_templates
from escalation.policy import Policy
from intake.web.security import RateLimits

SIGN_IN_LIFETIME = timedelta(minutes=15)


def staff_context(
    *,
    settings: Settings,
    engine: Engine,
    policy: Policy,
    limits: RateLimits,
    clock: Callable[[], datetime] | None = None,
    on_sign_in_failed: Callable[[], None] | None = None,
) -> StaffContext:
    oidc = None
    if settings.oidc_metadata_url and settings.oidc_client_id and settings.oidc_client_secret:
        oidc = OidcProvider(
            metadata_url=settings.oidc_metadata_url,
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret.get_secret_value(),
            name=settings.oidc_provider_name,
        )
    return StaffContext(
        engine=engine,
        policy=policy,
        secret=settings.secret_key.get_secret_value(),
        templates=staff_templates(),
        limits=limits,
        clock=clock or (lambda: datetime.now(UTC)),
        session_idle=timedelta(minutes=settings.staff_session_idle_minutes),
        session_lifetime=timedelta(hours=settings.staff_session_hours),
        sign_in_lifetime=SIGN_IN_LIFETIME,
        oidc=oidc,
        secure_cookies=settings.public_url.lower().startswith("https://"),
        on_sign_in_failed=on_sign_in_failed,
        previous_secrets=settings.previous_secrets(),
    )


def mount_staff(app: FastAPI, context: StaffContext) -> None:
    app.state.staff = context
    # The pages are for people: only the JSON API (under /api/v1) is in the OpenAPI schema.
    app.include_router(sign_in.router(context), include_in_schema=False)
    app.include_router(pages.router(context), include_in_schema=False)
    app.include_router(dashboard.router(context), include_in_schema=False)
    app.include_router(kept_aside.router(context), include_in_schema=False)
    app.include_router(api.router(context))

    async def signed_out_while_writing(request: Request, error: Exception) -> Response:
        assert isinstance(error, SignedOutWhileWriting)
        response = staff_page(
            context.templates,
            request,
            "signed_out_while_writing.html",
            {"text": error.text, "sign_in": f"{SIGN_IN_PATH}?next={quote(error.back_to)}"},
            status_code=error.status_code,
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    app.add_exception_handler(SignedOutWhileWriting, signed_out_while_writing)
