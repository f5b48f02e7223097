"""The learner's form: raise a concern at /concerns/new, then see its reference (and, for an
anonymous concern, its one-time code) once at /concerns/confirmation."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import select
from starlette.concurrency import run_in_threadpool

from intake.service import Submitted, submit_concern
from intake.submission import Channel
from intake.web import form_fields
from intake.web.context import WebContext
from intake.web.form_fields import Directory, Outcome
from intake.web.security import CSRF_FIELD, require_csrf
from intake.web.templating import page
from storage.db import transaction
from storage.tables import Department, Organisation

# The session key of the one-time confirmation: popped by the first view of the page.
FLASH_KEY = "confirmation"

_Named = TypeVar("_Named", Organisation, Department)


def router(context: WebContext) -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    def directory() -> Directory:
        """Active organisations and their departments by name (two small queries: every
        submission reads them to check the learner's choice)."""
        with transaction(context.engine) as session:
            organisations = _by_name(session.exec(select(Organisation).where(Organisation.active)))
            departments = _by_name(session.exec(select(Department).where(Department.active)))
            return Directory.of(
                {
                    "organisations": [
                        {
                            "key": organisation.key,
                            "name": organisation.name,
                            "departments": [
                                {"key": department.key, "name": department.name}
                                for department in departments
                                if department.organisation_id == organisation.id
                            ],
                        }
                        for organisation in organisations
                    ]
                }
            )

    def show_form(
        request: Request, directory: Directory, outcome: Outcome | None, status_code: int = 200
    ) -> HTMLResponse:
        values = outcome.values if outcome else form_fields.answers_of({})
        errors = outcome.errors if outcome else {}
        return page(
            context.templates,
            request,
            "form.html",
            _form_values(directory, values, errors),
            status_code=status_code,
        )

    @routes.get("/concerns/new", response_class=HTMLResponse)
    async def new_concern(request: Request) -> HTMLResponse:
        return show_form(request, await run_in_threadpool(directory), None)

    @routes.post("/concerns/new", response_class=HTMLResponse)
    async def submit(request: Request) -> Response:
        # Read the whole body first, whatever its type: the body limit counts it as it arrives
        # (a body that is not a form would otherwise go unread and never be counted).
        await request.body()
        form = await request.form()
        require_csrf(request, form.get(CSRF_FIELD))
        context.limits.hit("submissions", context.limits.client(request))

        def check_and_submit() -> tuple[Directory, Outcome, Submitted | None]:
            known = directory()
            outcome = form_fields.read(form, known)
            if outcome.concern is None:
                return known, outcome, None
            submitted = submit_concern(
                engine=context.engine,
                concern=outcome.concern,
                channel=Channel.WEB,
                now=context.clock(),
                policy=context.policy,
            )
            return known, outcome, submitted

        known, outcome, submitted = await run_in_threadpool(check_and_submit)
        if submitted is None or outcome.concern is None:
            return show_form(request, known, outcome, status_code=400)
        request.session[FLASH_KEY] = {
            "reference": submitted.reference,
            "code": submitted.code,
            "pathway": submitted.pathway,
            "placement_matched": submitted.placement_matched,
            "confidentiality": outcome.concern.confidentiality.value,
        }
        return RedirectResponse("/concerns/confirmation", status_code=303)

    @routes.get("/concerns/confirmation", response_class=HTMLResponse)
    async def confirmation(request: Request) -> HTMLResponse:
        flash = request.session.pop(FLASH_KEY, None)
        if not isinstance(flash, dict) or not isinstance(flash.get("reference"), str):
            return page(context.templates, request, "confirmation.html", {"shown": True})
        pathway = flash.get("pathway")
        return page(
            context.templates,
            request,
            "confirmation.html",
            {
                "shown": False,
                "reference": flash["reference"],
                "code": flash.get("code") if isinstance(flash.get("code"), str) else None,
                "anonymous": flash.get("confidentiality") == "anonymous",
                "confidential": flash.get("confidentiality") == "confidential",
                "pathway": pathway,
                "pathway_words": form_fields.PATHWAY_WORDS.get(
                    pathway if isinstance(pathway, int) else 0
                ),
                "placement_matched": flash.get("placement_matched") is not False,
            },
        )

    return routes


def _by_name(rows: Iterable[_Named]) -> list[_Named]:
    return sorted(rows, key=lambda row: (row.name.casefold(), row.key))


def _form_values(
    directory: Directory, values: dict[str, str], errors: dict[str, str]
) -> dict[str, Any]:
    """What form.html needs: choices for each question, the answers so far and the problems."""

    def items(labels: dict[str, str], hints: dict[str, str] | None = None) -> list[dict[str, Any]]:
        return [
            {"value": value, "text": label, **({"hint": {"text": hints[value]}} if hints else {})}
            for value, label in labels.items()
        ]

    organisations = [{"value": "", "text": "Select your organisation"}]
    organisations += [{"value": name, "text": name} for name in directory.organisation_names()]
    organisations.append({"value": form_fields.NOT_LISTED, "text": "My organisation is not listed"})
    departments = [{"value": "", "text": "Select your department or ward"}]
    departments += [
        {"value": value, "text": f"{department}, {organisation}"}
        for value, organisation, department in directory.departments()
    ]
    departments.append(
        {"value": form_fields.NOT_LISTED, "text": "My department or ward is not listed"}
    )
    return {
        "values": values,
        "errors": errors,
        "error_list": [{"text": message, "href": f"#{name}"} for name, message in errors.items()],
        "field_errors": {name: {"text": message} for name, message in errors.items()},
        "choices": {
            "group": items(form_fields.GROUP_LABELS),
            "organisation": organisations,
            "department": departments,
            "frequency": items(form_fields.FREQUENCY_LABELS),
            "harm": items(form_fields.HARM_LABELS),
            "raised_before": items(form_fields.RAISED_BEFORE_LABELS),
            "yes_no": items(form_fields.YES_NO_LABELS),
            "confidentiality": items(
                form_fields.CONFIDENTIALITY_LABELS, form_fields.CONFIDENTIALITY_HINTS
            ),
        },
        "description_limit": form_fields.DESCRIPTION_LIMIT,
    }
