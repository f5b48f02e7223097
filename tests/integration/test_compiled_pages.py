"""`concerns serve` compiles every page and email before it listens, so that nobody waits for it.

Once `compile_pages` has run, opening the pages (learner and staff, their error states included)
and rendering every email loads no template: each one, and every NHS.UK macro it imports, is
already in Jinja's cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from jinja2 import Environment
from sqlalchemy.engine import Engine

from app.web import compile_pages
from notifications import render
from tests.integration.staff_world import StaffWorld, keep_aside, staff_world
from tests.integration.webclient import make_app


@pytest.fixture
def world(sqlite_engine: Engine) -> Iterator[StaffWorld]:
    yield from staff_world(sqlite_engine)


def count_loads(monkeypatch: pytest.MonkeyPatch, environment: Environment) -> list[str]:
    """The names of the templates `environment` reads from its loader from now on."""
    loads: list[str] = []
    loader: Any = environment.loader
    load: Callable[..., Any] = loader.load  # every loader's way in (ChoiceLoader's included)

    def counting(env: Environment, name: str, globals: Any = None) -> Any:
        loads.append(name)
        return load(env, name, globals)

    monkeypatch.setattr(loader, "load", counting)
    return loads


def test_once_compiled_no_page_or_email_waits_for_a_template(
    world: StaffWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    render.environment.cache_clear()  # the emails' environment is shared with other tests
    app = make_app(world.engine, clock=world.clock)
    assert compile_pages(app) > 50  # ours and the NHS.UK macros they import
    learner_loads = count_loads(monkeypatch, app.state.web.templates.env)
    staff_loads = count_loads(monkeypatch, app.state.staff.templates.env)
    email_loads = count_loads(monkeypatch, render.environment())
    message = keep_aside(world.engine, subject="Re: teaching", body="Still cancelled")
    reference = world.concerns["named"]

    learner = world.browser(app=app)
    for path in ("/", "/concerns/new", "/concerns/confirmation", "/concerns/status"):
        assert learner.get(path).status_code == 200, path
    assert learner.get("/nowhere").status_code == 404
    form = learner.get("/concerns/new").text
    token = form.split('name="csrf_token" value="')[1].split('"')[0]
    assert learner.post("/concerns/new", data={"csrf_token": token}).status_code == 400
    assert learner.post("/concerns/new", data={}).status_code == 403
    looked_up = learner.post(
        "/concerns/status", data={"csrf_token": token, "reference": reference, "code": "WRONG"}
    )
    assert looked_up.status_code == 400  # the error summary

    dean = world.browser("dean", app=app)
    for path in (
        "/staff",
        "/staff/dashboard",
        f"/staff/concerns/{reference}",
        f"/staff/concerns/{reference}/audit",
        "/staff/kept-aside",
        f"/staff/kept-aside/mail/{message}",
    ):
        assert dean.get(path).status_code == 200, path
    assert world.browser(app=app).get("/staff/sign-in").status_code == 200

    environment = render.environment()
    for name in render.TEMPLATES.iterdir():
        environment.get_template(name.name)

    assert learner_loads == []
    assert staff_loads == []
    assert email_loads == []


def test_without_compiling_the_first_view_of_a_page_loads_its_templates(
    world: StaffWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above can fail: a fresh app reads each template when it is first shown."""
    app = make_app(world.engine, clock=world.clock)
    learner_loads = count_loads(monkeypatch, app.state.web.templates.env)
    assert world.browser(app=app).get("/concerns/new").status_code == 200
    assert "form.html" in learner_loads
    assert any(name.startswith("nhsuk/") for name in learner_loads)
