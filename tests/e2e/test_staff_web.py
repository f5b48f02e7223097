"""The staff pages in headless Chromium against a real `concerns serve` process: accessible (no
axe-core violations) and working under the strict CSP, as the dean with every action form."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.staff.auth import STAFF_COOKIE
from app.staff.kept_aside import DEALT_WITH_NOTICE, PUT_BACK_NOTICE
from storage import staff as accounts
from storage.db import create_db_engine, transaction
from tests.e2e.browser import Browsing
from tests.e2e.test_serve import Server, start_server
from tests.integration.staff_world import (
    LEARNER_NAME,
    StaffWorld,
    build_world,
    fail_to_raise,
    keep_aside,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(Path(tmp_path_factory.mktemp("staff-web")))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def world(server: Server) -> Iterator[StaffWorld]:
    """The staff tests' region, concerns and accounts, in the server's own database."""
    engine = create_db_engine(f"sqlite:///{server.database}")
    built = build_world(engine)
    yield built
    built.close()
    engine.dispose()


def sign_in(server: Server, world: StaffWorld, browsing: Browsing, who: str) -> None:
    """A signed-in browser without the sign-in pages: a session row and its cookie."""
    with transaction(world.engine) as session:
        value = accounts.open_session(
            session,
            staff_id=world.staff_ids[who],
            now=datetime.now(UTC),
            lifetime=timedelta(hours=1),
        )
    browsing.page.context.add_cookies([{"name": STAFF_COOKIE, "value": value, "url": server.url}])


def test_the_deans_pages_are_accessible_and_their_forms_work(
    server: Server, world: StaffWorld, browsing: Browsing
) -> None:
    sign_in(server, world, browsing, "dean")
    page = browsing.page
    reference = world.concerns["confidential"]

    page.goto(server.url + "/staff")
    assert page.title().startswith("My concerns")
    assert "nhsuk-frontend-supported" in page.evaluate("document.body.className")
    assert reference in page.inner_text("main")
    browsing.check("staff-home")

    page.get_by_role("link", name=reference, exact=True).click()
    assert page.url.endswith(f"/staff/concerns/{reference}")
    main = page.inner_text("main")
    assert LEARNER_NAME in main  # the dean may see a confidential learner's identity
    assert page.get_by_role("button", name="Change the rating").is_visible()
    browsing.check("staff-concern")

    # An empty feedback: the error summary, focused, naming the field.
    page.get_by_role("button", name="Send feedback").click()
    assert page.title().startswith("Error:")
    summary = page.locator(".nhsuk-error-summary")
    assert "Write the feedback for the learner" in summary.inner_text()
    browsing.check("staff-concern-error")

    page.get_by_role("button", name="Acknowledge this concern").click()
    assert f"You acknowledged {reference}." in page.inner_text("main")
    browsing.check("staff-concern-acknowledged")

    page.get_by_role("link", name=f"See the audit trail of {reference}").click()
    assert page.url.endswith(f"/staff/concerns/{reference}/audit")
    assert "The learner's identity was viewed" in page.inner_text("main")
    browsing.check("staff-audit")

    # Signed out while writing feedback (the session is gone, the page is not): nothing is
    # recorded, and the words are there to copy before signing in again.
    page.go_back()
    page.get_by_label("Feedback for the learner").fill("Senior cover is now on every rota.")
    page.context.clear_cookies()
    page.get_by_role("button", name="Send feedback").click()
    assert page.title().startswith("You were signed out")
    assert page.get_by_label("What you wrote").input_value() == "Senior cover is now on every rota."
    browsing.check("staff-signed-out-while-writing")


def test_the_dashboard_is_accessible(server: Server, world: StaffWorld, browsing: Browsing) -> None:
    sign_in(server, world, browsing, "dean")
    browsing.page.goto(server.url + "/staff/dashboard")
    assert browsing.page.url.endswith("/staff/dashboard")
    browsing.check("staff-dashboard")


def test_the_kept_aside_pages_are_accessible(
    server: Server, world: StaffWorld, browsing: Browsing
) -> None:
    keep_aside(world.engine, subject="Re: my concern", body="Is anyone reading this?")
    reference = fail_to_raise(world.engine)
    sign_in(server, world, browsing, "dean")
    page = browsing.page
    page.goto(server.url + "/staff")
    page.get_by_role("link", name="Kept aside").first.click()
    assert page.url.endswith("/staff/kept-aside")
    assert reference in page.inner_text("main")
    browsing.check("staff-kept-aside")

    page.get_by_role("link", name="Re: my concern").click()
    assert "/staff/kept-aside/mail/" in page.url
    assert "Is anyone reading this?" in page.inner_text("main")
    browsing.check("staff-kept-aside-mail")

    page.get_by_role("button", name="Mark as dealt with").click()
    assert page.url.endswith("/staff/kept-aside")
    assert DEALT_WITH_NOTICE in page.inner_text("main")
    assert page.locator("#kept-aside-mail").count() == 0
    assert page.locator("#dealt-with-mail").get_by_role("link", name="Re: my concern").count() == 1
    browsing.check("staff-kept-aside-dealt-with")

    # Marked by mistake: the dean opens it from the list of mail dealt with and puts it back.
    page.locator("#dealt-with-mail").get_by_role("link", name="Re: my concern").click()
    assert "Dealt with by" in page.inner_text("main")
    browsing.check("staff-kept-aside-mail-dealt-with")
    page.get_by_role("button", name="Put back on the list").click()
    assert page.url.endswith("/staff/kept-aside")
    assert PUT_BACK_NOTICE in page.inner_text("main")
    assert page.locator("#kept-aside-mail").get_by_role("link", name="Re: my concern").count() == 1
    assert page.locator("#dealt-with-mail").count() == 0
    browsing.check("staff-kept-aside-put-back")
