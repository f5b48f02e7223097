"""Puts the learner pages on the app: middleware, assets, routers and the error pages."""

from __future__ import annotations

import logging
from typing import Any

import itsdangerous
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import Session, SessionMiddleware
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from intake.web import assets, email_change, form, start, status
from intake.web.context import WebContext
from intake.web.security import (
    AccessLog,
    Answering,
    BodyLimit,
    RateLimited,
    SecurityHeaders,
)
from intake.web.templating import page

log = logging.getLogger(__name__)

SLACK_MAX_BODY_BYTES = 2 * 1024 * 1024

SESSION_COOKIE = "concerns_session"
# Paths that answer machines, not people: their errors stay JSON.
MACHINE_PREFIXES = ("/api/", "/slack/", "/healthz", "/metrics", "/docs", "/openapi.json")

ERROR_PAGES: dict[int, tuple[str, tuple[str, ...]]] = {
    403: (
        "Your session has expired",
        (
            "For your security, forms stop working after a while or when cookies are blocked. "
            "Nothing you entered was sent.",
            "Go back, reload the page and try again.",
        ),
    ),
    404: ("Page not found", ("If you typed the web address, check it is correct.",)),
    405: ("Page not found", ("If you typed the web address, check it is correct.",)),
    429: (
        "You have tried too many times",
        ("For your security, you need to wait before you try again.",),
    ),
}
# The NHS service manual's "there is a problem with the service" page: no code, no cause, and
# nothing promised that is not known (whether what was being sent was saved is not).
SERVER_ERROR_HEADING = "Sorry, there is a problem with the service"
SERVER_ERROR_PARAGRAPHS = ("Try again later.",)


class _UnexpectedErrors:
    """An exception no route handled: logged with its traceback, and answered with the NHS error
    page (bare JSON on machine paths), revealing nothing of it.

    Starlette's own handler for exceptions sits outside every middleware, so its answer would
    miss the security headers: this one sits inside SecurityHeaders (and outside the body
    limit, which answers its own 413)."""

    def __init__(self, app: ASGIApp, *, templates: Jinja2Templates) -> None:
        self.app = app
        self.templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answering = Answering(send)
        try:
            await self.app(scope, receive, answering)
        except Exception:
            if answering.started:
                raise  # too late for a page: the server ends the response (and logs it)
            # The route's template, never the path: a path can carry a status link's token.
            route = getattr(scope.get("route"), "path", None) or "(no route)"
            log.exception("unexpected error answering %s %s", scope["method"], route)
            response = self._answer(scope)
            response.headers["Cache-Control"] = "no-store"
            await response(scope, receive, send)

    def _answer(self, scope: Scope) -> Response:
        if str(scope["path"]).startswith(MACHINE_PREFIXES):
            return JSONResponse({"detail": "Internal Server Error"}, status_code=500)
        try:
            return self.templates.TemplateResponse(
                Request(scope),
                "error.html",
                {
                    "heading": SERVER_ERROR_HEADING,
                    "paragraphs": SERVER_ERROR_PARAGRAPHS,
                    "link": {"href": "/", "text": "Go to the start page"},
                },
                status_code=500,
            )
        except Exception:
            log.exception("the error page could not be shown")
            return PlainTextResponse(f"{SERVER_ERROR_HEADING}. Try again later.", status_code=500)


class _Sessions(SessionMiddleware):
    """Starlette's signed-cookie sessions, signed with the current secret's key and still read
    when signed with a previous secret's (a form drawn before the key changed can be sent). A
    session read under a previous key is written back under the current one, so it no longer
    needs the previous key, even if nothing in it changes."""

    def __init__(self, app: ASGIApp, /, *, secret_keys: list[str], **options: Any) -> None:
        super().__init__(app, secret_key=secret_keys[-1], **options)
        # Starlette reads and signs with `self.signer`: one over every key signs with the last
        # (the current) and accepts any.
        self.signer = itsdangerous.TimestampSigner(secret_keys)
        if len(secret_keys) > 1:
            self.app = self._resigning(app, itsdangerous.TimestampSigner(secret_keys[-1]))

    def _resigning(self, app: ASGIApp, current: itsdangerous.TimestampSigner) -> ASGIApp:
        async def resign_if_old(scope: Scope, receive: Receive, send: Send) -> None:
            session = scope.get("session")
            cookie = HTTPConnection(scope).cookies.get(self.session_cookie)
            if isinstance(session, Session) and session and cookie:
                try:
                    current.unsign(cookie.encode("utf-8"), max_age=self.max_age)
                except itsdangerous.BadSignature:
                    session.mark_modified()  # read under a previous key: sign it afresh
            await app(scope, receive, send)

        return resign_if_old


def mount(app: FastAPI, context: WebContext, served_assets: dict[str, assets.Asset]) -> None:
    """Add the learner side to `app` (the outermost middleware is added last)."""
    app.include_router(assets.router(served_assets))
    app.include_router(start.router(context))
    app.include_router(form.router(context))
    app.include_router(status.router(context))
    app.include_router(email_change.router(context))

    secure = context.policy.public_url.lower().startswith("https://")
    app.add_middleware(
        _Sessions,
        secret_keys=context.keys_for("web-session"),
        session_cookie=SESSION_COOKIE,
        max_age=None,  # ends with the browser session; status access also expires sooner
        same_site="lax",
        https_only=secure,
    )
    # Slack sends a modal's whole view back with each submission: a directory's option lists
    # can make that several hundred KB.
    app.add_middleware(BodyLimit, larger={"/slack/events": SLACK_MAX_BODY_BYTES})
    app.add_middleware(_UnexpectedErrors, templates=context.templates)
    # Outside the body limit and the error page, so their answers carry the security headers too.
    app.add_middleware(SecurityHeaders, https=secure)
    app.add_middleware(AccessLog)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if request.url.path.startswith(MACHINE_PREFIXES) or error.status_code not in ERROR_PAGES:
            return JSONResponse(
                {"detail": error.detail}, status_code=error.status_code, headers=error.headers
            )
        heading, paragraphs = ERROR_PAGES[error.status_code]
        if isinstance(error, RateLimited):
            paragraphs = (
                *paragraphs,
                f"Try again in {error.wait}. Nothing was sent. Go back to find what you entered.",
            )
        response = page(
            context.templates,
            request,
            "error.html",
            {
                "heading": heading,
                "paragraphs": paragraphs,
                "link": {"href": "/", "text": "Go to the start page"},
            },
            status_code=error.status_code,
        )
        for name, value in (error.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, error: RequestValidationError) -> Response:
        # Our forms validate themselves and show the error summary; this is a request no form of
        # ours would send. The details are not echoed back.
        return JSONResponse({"detail": "malformed request"}, status_code=400)
