"""The staff pages' Jinja environment: our templates, the learner side's shared ones (the error
page), then the NHS.UK frontend macros. Autoescape everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from intake.web.security import csrf_token
from intake.web.templating import templates

TEMPLATES = Path(__file__).parent / "templates"
SERVICE_NAME = "Learner concerns: staff"
# A one-line message for the next staff page shown ("You acknowledged LC-..."), kept in the
# session between a POST and the page it redirects to. Never learner text: the session cookie is
# signed, not encrypted.
NOTICE_KEY = "staff_notice"


def leave_notice(request: Request, text: str) -> None:
    """Show this on the next staff page this browser opens."""
    request.session[NOTICE_KEY] = text


def take_notice(request: Request) -> str | None:
    """The notice left for this page, once."""
    text = request.session.pop(NOTICE_KEY, None)
    return text if isinstance(text, str) else None


def staff_templates() -> Jinja2Templates:
    return templates(first=TEMPLATES, service_name=SERVICE_NAME)


def staff_page(
    templates: Jinja2Templates,
    request: Request,
    name: str,
    values: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """Render a staff page with what every page needs: the CSRF token, and who is signed in
    (`signed_in`, set by the page's dependency, None on the sign-in pages)."""
    context = {
        "csrf_token": csrf_token(request),
        "signed_in": getattr(request.state, "signed_in", None),
        **(values or {}),
    }
    return templates.TemplateResponse(request, name, context, status_code=status_code)
