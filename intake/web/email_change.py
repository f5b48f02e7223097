"""Right after sending the form, the learner can correct a mistyped email address, at
/concerns/change-email.

A mistyped address sends a stranger the acknowledgement, with the concern's signed status link
and the reply token. Only the browser session that sent the form may correct it, and only for
`CHANGE_EMAIL_WITHIN` after sending: what proves it is the session's own note of the sending (the
reference, when, and the address and name given, sealed as the confirmation's code is), which
nobody else's browser holds. The change itself is `escalation.actions.change_learner_email`.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from escalation.actions import (
    ActionRefused,
    Actor,
    ClosedConcernRefused,
    change_learner_email,
)
from intake.received import raise_if_waiting
from intake.web import form_fields
from intake.web.context import WebContext
from intake.web.form import (
    CHANGE_EMAIL_WITHIN,
    CHANGE_KEY,
    EMAIL_SEAL_PURPOSE,
    NAME_SEAL_PURPOSE,
    note_sending,
    unseal_text,
)
from intake.web.security import CSRF_FIELD, posted_form, require_csrf
from intake.web.status import grant_access
from intake.web.templating import page
from storage import repositories
from storage.db import transaction

log = logging.getLogger(__name__)

CHANGE_PATH = "/concerns/change-email"
CLOCK_LEEWAY_SECONDS = 60


def router(context: WebContext) -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    def noted(request: Request) -> tuple[str, str, str | None] | None:
        """The reference, address and name of the form this session sent, while it may still
        correct the address; None otherwise."""
        note = request.session.get(CHANGE_KEY)
        if not isinstance(note, dict) or not isinstance(note.get("reference"), str):
            return None
        reference: str = note["reference"]
        sent_at = note.get("sent_at")
        if not isinstance(sent_at, int | float):
            return None
        age = context.clock().timestamp() - sent_at
        if not -CLOCK_LEEWAY_SECONDS <= age <= CHANGE_EMAIL_WITHIN.total_seconds():
            return None

        def unsealed(field: str, purpose: str) -> str | None:
            sealed = note.get(field)
            if not isinstance(sealed, str):
                return None
            return unseal_text(context.keys_for(purpose), sealed, reference)

        email = unsealed("sealed_email", EMAIL_SEAL_PURPOSE)
        if email is None:
            return None
        return reference, email, unsealed("sealed_name", NAME_SEAL_PURPOSE)

    def change_page(
        request: Request,
        values: dict[str, Any],
        *,
        status_code: int = 200,
    ) -> HTMLResponse:
        errors: dict[str, str] = values.get("errors") or {}
        return page(
            context.templates,
            request,
            "email_change.html",
            {
                "refused": False,
                "done": False,
                "errors": errors,
                "error_list": [
                    {"text": text, "href": f"#{field}"} for field, text in errors.items()
                ],
                "minutes": int(CHANGE_EMAIL_WITHIN.total_seconds() // 60),
                **values,
            },
            status_code=status_code,
        )

    def refused(request: Request, *, closed: str | None = None) -> HTMLResponse:
        """Not this browser, not now; or (`closed`: its reference) the concern has closed."""
        return change_page(request, {"refused": True, "closed": closed}, status_code=403)

    @routes.get(CHANGE_PATH, response_class=HTMLResponse)
    async def show(request: Request) -> HTMLResponse:
        found = noted(request)
        if found is None:
            return refused(request)
        reference, email, _ = found
        return change_page(
            request, {"reference": reference, "email": email, "values": {"email": email}}
        )

    @routes.post(CHANGE_PATH, response_class=HTMLResponse)
    async def change(request: Request) -> Response:
        form = await posted_form(request)
        require_csrf(request, form.get(CSRF_FIELD))
        context.limits.hit("learner_actions", context.limits.client(request))
        found = noted(request)
        named = form.get("reference")
        if found is None or named != found[0]:
            # Another concern sent from this browser since (another tab): not this one.
            return refused(request)
        reference, email, name = found
        entered, error = form_fields.read_email(form.get("email"))
        if error:
            return change_page(
                request,
                {
                    "reference": reference,
                    "email": email,
                    "values": {"email": entered},
                    "errors": {"email": error},
                },
                status_code=400,
            )

        def run() -> tuple[int, bool] | None:
            now = context.clock()
            # The form stores first and raises just after: a concern still waiting is raised
            # first, so its acknowledgement (to the old address) is given up with the rest.
            if raise_if_waiting(
                engine=context.engine, policy=context.policy, reference=reference, now=now
            ):
                context.raised_here()
            with transaction(context.engine) as session:
                found = repositories.concern_by_reference(session, reference)
                concern = (
                    repositories.lock_concern(session, found.id) if found and found.id else None
                )
                if concern is None:
                    return None  # still waiting: raising it failed, and will be tried again
                changed = change_learner_email(
                    session=session,
                    concern=concern,
                    email=entered,
                    name=name,
                    by=Actor(kind="learner", channel="web"),
                    now=now,
                    policy=context.policy,
                )
                return concern.link_version, changed

        try:
            outcome = await run_in_threadpool(run)
        except ClosedConcernRefused:
            return refused(request, closed=reference)
        except ActionRefused:
            return refused(request)
        except Exception:
            log.exception("web: a learner's email address could not be changed")
            outcome = None
        if outcome is None:
            return change_page(
                request,
                {
                    "reference": reference,
                    "email": email,
                    "values": {"email": entered},
                    "errors": {
                        "email": "Sorry, there is a problem with the service and your email "
                        "address has not been changed. Try again in a few minutes."
                    },
                },
                status_code=503,
            )
        note_sending(
            request.session,
            keys=context.keys_for,
            reference=reference,
            email=entered,
            name=name,
            sent_at=request.session[CHANGE_KEY]["sent_at"],
        )
        # Links sent to the old address no longer open the concern; this browser, which sent
        # it, may look at it now. Only when it did change it: the address already shown, sent
        # back, opens nothing (the status page wants the link or the code).
        version, changed = outcome
        if changed:
            grant_access(request.session, reference, link_version=version, now=context.clock())
        return change_page(
            request,
            {
                "done": True,
                "reference": reference,
                "email": entered,
                # Nothing changed: the address was already this one (sent twice, or unchanged).
                "old_email": email if changed else None,
                "unchanged": not changed and version == 0,
            },
        )

    return routes
