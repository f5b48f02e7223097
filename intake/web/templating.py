"""The Jinja environment of the learner pages (our templates, then the NHS.UK frontend macros),
which the staff pages reuse with their own folder searched first."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import (
    ChainableUndefined,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    TemplateNotFound,
    meta,
)

from intake.web.security import csrf_token

TEMPLATES = Path(__file__).parent / "templates"
SERVICE_NAME = "Raise a concern about your placement"


def templates(*, first: Path | None = None, service_name: str = SERVICE_NAME) -> Jinja2Templates:
    """Autoescape everywhere. ChainableUndefined because the NHS.UK macros read optional,
    nested parameters (`params.hint.text`) that are often absent; our own templates are
    covered by tests that render every page and state. `first`: a folder searched before the
    learner pages' own (the staff side's)."""
    folders = [first, TEMPLATES] if first else [TEMPLATES]
    environment = Environment(
        loader=ChoiceLoader(
            [
                *(FileSystemLoader(folder) for folder in folders),
                PackageLoader("nhsuk_frontend_jinja"),
            ]
        ),
        autoescape=True,
        undefined=ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals["service_name"] = service_name
    return Jinja2Templates(env=environment)


def compile_templates(environment: Environment, names: Iterable[str]) -> int:
    """Load these templates now, and every template they import, include or extend, so that the
    first learner or member of staff to open a page does not wait for it to be compiled (about
    0.2 to 0.3 s a page on the development VM). Jinja keeps what it loads (400 templates, well
    above what our pages use). Returns how many were loaded."""
    waiting = [(name, True) for name in names]
    loaded: set[str] = set()
    while waiting:
        name, ours = waiting.pop()
        if name in loaded:
            continue
        try:
            environment.get_template(name)
        except TemplateNotFound:
            if ours:
                raise
            # Named by an `include ... ignore missing` or a list of choices: the page does
            # without it, and so does start-up.
            continue
        loaded.add(name)
        source, _, _ = environment.loader.get_source(environment, name)  # type: ignore[union-attr]
        waiting += [
            (named, False)
            for named in meta.find_referenced_templates(environment.parse(source))
            if named is not None  # a name made at render time: compiled when first shown
        ]
    return len(loaded)


def template_names(folder: Path) -> list[str]:
    """The names of the templates in one of our folders (HTML, and the emails' plain text)."""
    return sorted(path.name for path in folder.iterdir() if path.suffix in {".html", ".txt"})


def page(
    templates: Jinja2Templates,
    request: Request,
    name: str,
    values: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """Render a learner page with what every page needs (the CSRF token for its forms)."""
    context = {"csrf_token": csrf_token(request), **(values or {})}
    return templates.TemplateResponse(request, name, context, status_code=status_code)
