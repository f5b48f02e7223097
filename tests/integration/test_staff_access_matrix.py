"""The access matrix: every staff role (and nobody signed in) against every concern on every staff
page and API endpoint. A concern a role may see answers 200 with its reference; one it may not
answers 404, never 403, so its existence is not given away; without a sign-in the API answers 401
and the pages send the browser to sign in. The expected table is written out here, not derived
from `routing.access`, so a change of the rules fails this test.

Also: a confidential learner's name and email appear in no API answer to anyone below the dean,
and do appear in the dean's read of the concern."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from storage import migrate
from storage.db import create_db_engine
from tests.integration.staff_world import (
    LEARNER_EMAIL,
    LEARNER_NAME,
    StaffWorld,
    build_world,
)

API = "/api/v1"
CONCERNS = ("named", "confidential", "anonymous", "at_school", "at_dean")
CONFIDENTIAL = ("confidential", "at_school")
EVERY = frozenset(CONCERNS)

# Who sees which concern (a concern missing from a role's set is not theirs to see).
SEES: dict[str, frozenset[str]] = {
    "supervisor": EVERY,  # told about every one of them at pathway 1
    "other_supervisor": frozenset(),
    "school_lead": frozenset({"at_school", "at_dean"}),
    "other_school_lead": frozenset(),
    "dean": EVERY,
    "quality": EVERY,
    "admin": EVERY,
    "other_dean": frozenset(),
}
# Whose role has a dashboard, and how many open concerns it counts (the other region's dean has
# one, of a region with none).
DASHBOARD_COUNTS = {"dean": 5, "quality": 5, "admin": 5, "other_dean": 0}
ROLES = [*SEES, None]

# Every API action, with a body it accepts; in the matrix each is tried only where it changes
# nothing: by roles that may not see the concern (404) and, as `reopen` of an open concern, by
# those who may (409).
ACTIONS: dict[str, dict[str, object] | None] = {
    "acknowledge": None,
    "feedback": {"text": "Thank you for raising this."},
    "escalate": {"reason": "Not resolved here"},
    "close": {"reason": "Resolved"},
    "reopen": {"reason": "It happened again"},
    "triage": {"likelihood": 3, "impact": 3, "reason": "Reassessed"},
    "standards": {"standards": ["1.1"]},
    "redirect": {"reason": "Wrong team"},
    "learner-email": {"email": "someone.else@example.nhs.uk", "reason": "Mistyped"},
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaffWorld]:
    """One world for the whole matrix: nothing below changes a concern."""
    engine = create_db_engine(f"sqlite:///{tmp_path_factory.mktemp('db') / 'concerns.db'}")
    migrate.upgrade(engine)
    built = build_world(engine)
    try:
        yield built
    finally:
        built.close()
        engine.dispose()


@pytest.mark.parametrize("role", ROLES, ids=[str(role) for role in ROLES])
def test_each_role_sees_exactly_its_concerns_everywhere(
    world: StaffWorld, role: str | None
) -> None:
    api = world.api(role)
    browser = world.browser(role)
    sees = SEES.get(role or "", frozenset())
    reference_of = world.concerns

    listed = api.get(f"{API}/concerns")
    if role is None:
        assert listed.status_code == 401
    else:
        assert listed.status_code == 200
        assert {row["reference"] for row in listed.json()["concerns"]} == {
            reference_of[name] for name in sees
        }

    for name in CONCERNS:
        reference = reference_of[name]
        for path in (f"{API}/concerns/{reference}", f"{API}/concerns/{reference}/audit"):
            answered = api.get(path)
            _expect_api(answered, role, name in sees, reference, path)
        for action, body in ACTIONS.items():
            if name in sees and action != "reopen":
                continue
            answered = api.post(f"{API}/concerns/{reference}/{action}", json=body)
            if role is not None and name in sees:
                assert answered.status_code == 409, (role, name, answered.text)
            else:
                _expect_api(answered, role, False, reference, action)
        for path in (f"/staff/concerns/{reference}", f"/staff/concerns/{reference}/audit"):
            _expect_page(browser.get(path), role, name in sees, reference, path)

    answered = api.get(f"{API}/dashboard")
    if role is None:
        assert answered.status_code == 401
    elif role in DASHBOARD_COUNTS:
        assert answered.status_code == 200, answered.text
        counted = sum(
            row["high"] + row["medium"] + row["low"] for row in answered.json()["by_pathway"]
        )
        assert counted == DASHBOARD_COUNTS[role]
    else:
        assert (answered.status_code, answered.json()) == (404, {"detail": "Not found"})
    for path in ("/staff/dashboard", "/staff/dashboard.csv"):
        answered = browser.get(path)
        if role is None:
            _expect_sign_in(answered, path)
        elif role in DASHBOARD_COUNTS:
            assert answered.status_code == 200, (role, path)
        else:
            assert answered.status_code == 404, (role, path, answered.status_code)


def _expect_api(
    answered: httpx.Response, role: str | None, allowed: bool, reference: str, what: str
) -> None:
    where = (role, reference, what)
    if role is None:
        assert answered.status_code == 401, where
    elif allowed:
        assert answered.status_code == 200, (*where, answered.text)
        assert answered.json()["reference"] == reference, where
    else:
        assert answered.status_code == 404, (*where, answered.status_code)
        assert answered.json() == {"detail": "Not found"}, where


def _expect_page(
    answered: httpx.Response, role: str | None, allowed: bool, reference: str, path: str
) -> None:
    if role is None:
        _expect_sign_in(answered, path)
    elif allowed:
        assert answered.status_code == 200, (role, path, answered.status_code)
        assert reference in answered.text, (role, path)
    else:
        assert answered.status_code == 404, (role, path, answered.status_code)
        assert reference not in answered.text, (role, path)


def _expect_sign_in(answered: httpx.Response, path: str) -> None:
    assert answered.status_code == 303, (path, answered.status_code)
    assert answered.headers["location"].startswith("/staff/sign-in"), path


@pytest.mark.parametrize("role", ["supervisor", "school_lead", "admin", "dean"])
def test_a_confidential_learner_is_named_to_the_dean_only(world: StaffWorld, role: str) -> None:
    api = world.api(role)
    answers = [api.get(f"{API}/concerns").text]
    for name in CONFIDENTIAL:
        if name not in SEES[role]:
            continue
        reference = world.concerns[name]
        read = api.get(f"{API}/concerns/{reference}")
        assert read.status_code == 200
        if role == "dean":
            if name == "confidential":
                assert read.json()["identity"]["name"] == LEARNER_NAME
                assert read.json()["identity"]["email"] == LEARNER_EMAIL
        else:
            assert read.json()["identity"] is None
            assert read.json()["identity_withheld"] is True
            answers.append(read.text)
        answers.append(api.get(f"{API}/concerns/{reference}/audit").text)
    for text in answers:
        assert LEARNER_NAME not in text and LEARNER_EMAIL.lower() not in text.lower()
