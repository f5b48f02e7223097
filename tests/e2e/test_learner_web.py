"""The learner's pages in headless Chromium against a real `concerns serve` process."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import APIResponse, Browser, Locator, Page, Route
from playwright.sync_api import Error as PlaywrightError
from sqlmodel import col, func, select

from app.bootstrap import build_policy
from app.settings import Settings
from escalation.actions import ACTING_PARTS, Actor, record_feedback
from storage import repositories
from storage.db import create_db_engine, transaction
from storage.tables import Concern, OutboxMessage, ReceivedSubmission, id_of
from tests.e2e.browser import Browsing
from tests.e2e.test_serve import CONCERNS, Server, free_port, server_env, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(Path(tmp_path_factory.mktemp("learner-web")))
    yield running
    running.stop()


def test_the_start_page_is_accessible_and_works_under_the_csp(
    server: Server, browsing: Browsing
) -> None:
    page = browsing.page
    page.goto(server.url + "/")
    assert page.title().startswith("Raise a concern about your training placement")
    # The external script ran (the strict CSP allows no inline script): the frontend is live.
    assert "nhsuk-frontend-supported" in page.evaluate("document.body.className")
    browsing.check("start")
    page.get_by_role("link", name="Raise a concern", exact=True).first.click()
    assert page.url.endswith("/concerns/new")


def test_serve_says_what_to_do_when_the_frontend_is_not_installed(tmp_path: Path) -> None:
    env = server_env(tmp_path, database=tmp_path / "c.db", http_port=free_port(), smtp_port=0)
    env["CONCERNS_FRONTEND_DIR"] = str(tmp_path / "nowhere")
    done = subprocess.run(
        [str(CONCERNS), "serve"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "the NHS.UK frontend is not installed" in done.stderr
    assert "make install" in done.stderr
    assert "Traceback" not in done.stderr


# --- the journeys ---------------------------------------------------------------------------------


def question(page: Page, legend: str) -> Locator:
    """A question's fieldset, found by its legend ("Yes" and "No" appear under several)."""
    return page.locator("fieldset").filter(has=page.locator("legend", has_text=legend)).last


def fill_the_form(page: Page, *, confidentiality: str, name: str = "", email: str = "") -> None:
    question(page, "Which kind of learner are you?").get_by_label("Foundation doctor").check()
    organisation = page.get_by_label("Organisation", exact=True)
    first = organisation.locator("option").nth(1).get_attribute("value")
    assert first
    organisation.select_option(first)
    department = page.get_by_label("Department or ward", exact=True)
    # Options are valued by directory key: a department's value starts with its organisation's.
    matching = department.locator(f"option[value^='{first}/']").first.get_attribute("value")
    assert matching
    department.select_option(matching)
    page.get_by_label("What happened?").fill(
        "FY1s are left without senior cover on nights in the emergency department. "
        "Teaching has been cancelled for three weeks."
    )
    question(page, "How often does this happen?").get_by_label("Often").check()
    question(page, "Has anyone been harmed").get_by_label(
        "Learners' training or wellbeing affected"
    ).check()
    question(page, "Have you raised this before?").get_by_label("No", exact=True).check()
    question(page, "Is your concern about your supervisor or tutor?").get_by_label(
        "No", exact=True
    ).check()
    question(page, "How do you want your concern to be shared?").get_by_label(
        confidentiality, exact=True
    ).check()
    if name:
        page.get_by_label("Full name").fill(name)
    if email:
        page.get_by_label("Email address").fill(email)


def status_link_for(server: Server, reference: str) -> str:
    """The status link in the learner's acknowledgement, as it waits in the outbox."""
    engine = create_db_engine(f"sqlite:///{server.database}")
    try:
        with transaction(engine) as session:
            bodies = session.exec(
                select(OutboxMessage.body_text).where(
                    col(OutboxMessage.reference) == reference,
                    col(OutboxMessage.recipient_role) == "learner",
                )
            ).all()
    finally:
        engine.dispose()
    for body in bodies:
        for word in body.split():
            if "/concerns/status/link/" in word:
                return word.replace(server_public_url(), server.url)
    raise AssertionError(f"no status link in the learner's messages for {reference}")


def server_public_url() -> str:
    return Settings(_env_file=None).public_url.rstrip("/")  # type: ignore[call-arg]


def give_feedback(server: Server, reference: str, text: str) -> None:
    """A contact of the current level gives feedback (the staff pages are another issue)."""
    engine = create_db_engine(f"sqlite:///{server.database}")
    policy = build_policy(Settings(_env_file=None))  # type: ignore[call-arg]
    try:
        with transaction(engine) as session:
            found = repositories.concern_by_reference(session, reference)
            assert found is not None
            concern = repositories.lock_concern(session, id_of(found))
            assert isinstance(concern, Concern)
            contact_id = next(
                assignment.contact_id
                for assignment, _ in repositories.assignments_of(
                    session, id_of(concern), pathway=concern.pathway
                )
                if assignment.part in ACTING_PARTS
            )
            record_feedback(
                session=session,
                concern=concern,
                by=Actor(kind="contact", channel="web", contact_id=contact_id),
                text=text,
                now=datetime.now(UTC),
                policy=policy,
            )
    finally:
        engine.dispose()


def test_a_named_learner_raises_a_concern_follows_it_and_remains_concerned(
    server: Server, browsing: Browsing
) -> None:
    page = browsing.page
    page.goto(server.url + "/concerns/new")
    browsing.check("form")

    # Sending nothing shows the NHS error summary, focused, with inline messages.
    page.get_by_role("button", name="Send my concern").click()
    assert page.title().startswith("Error:")
    summary = page.locator(".nhsuk-error-summary")
    assert summary.is_visible() and "There is a problem" in summary.inner_text()
    assert page.locator(".nhsuk-error-message").count() >= 5
    browsing.check("form-errors")

    fill_the_form(
        page, confidentiality="Named", name="Priya Browser", email="priya.browser@example.nhs.uk"
    )
    page.get_by_role("button", name="Send my concern").click()
    reference = page.locator("#reference").inner_text().strip()
    assert reference.startswith("LC-")
    assert page.locator("#code").count() == 0  # only anonymous concerns get a code
    browsing.check("confirmation-named")

    # The link in the learner's email opens the status page, and leaves the address bar.
    page.goto(status_link_for(server, reference))
    assert page.url.endswith("/concerns/status")
    assert reference in page.inner_text("main")
    assert "We received your concern" in page.inner_text("main")
    browsing.check("status-received")

    page.get_by_label("What would you like to add?").fill("It happened again last night.")
    page.get_by_role("button", name="Add information").click()
    assert "Your information has been added to your concern." in page.inner_text("main")
    assert "You added information" in page.inner_text("main")
    browsing.check("status-information-added")

    give_feedback(server, reference, "We have put a registrar on every night shift from Monday.")
    page.reload()
    main = page.inner_text("main")
    assert "Feedback given at pathway 1" in main
    assert "registrar on every night shift" in main
    browsing.check("status-feedback")

    page.get_by_role("button", name="I remain concerned").click()
    main = page.inner_text("main")
    assert "Your concern has moved to pathway 2: your school or university." in main
    assert "Moved to pathway 2" in main
    browsing.check("status-moved-to-pathway-2")

    page.get_by_role("button", name="Sign out").click()
    assert "You have signed out of your concern." in page.inner_text("main")
    browsing.check("status-signed-out")


def test_a_learner_corrects_a_mistyped_email_address(server: Server, browsing: Browsing) -> None:
    page = browsing.page
    page.goto(server.url + "/concerns/new")
    fill_the_form(
        page, confidentiality="Named", name="Priya Browser", email="priya.browsr@example.nhs.uk"
    )
    page.get_by_role("button", name="Send my concern").click()
    reference = page.locator("#reference").inner_text().strip()
    page.get_by_role("link", name="Change email address").click()
    assert page.url.endswith("/concerns/change-email")
    assert "priya.browsr@example.nhs.uk" in page.inner_text("main")
    browsing.check("change-email")

    page.get_by_label("Your correct email address").fill("priya at example")
    page.get_by_role("button", name="Change email address").click()
    assert page.title().startswith("Error:")
    assert "There is a problem" in page.locator(".nhsuk-error-summary").inner_text()
    browsing.check("change-email-errors")

    page.get_by_label("Your correct email address").fill("priya.browser@example.nhs.uk")
    page.get_by_role("button", name="Change email address").click()
    main = page.inner_text("main")
    assert "Email address changed" in main and "priya.browser@example.nhs.uk" in main
    browsing.check("change-email-done")
    page.get_by_role("link", name="Check your concern").click()
    assert reference in page.inner_text("main")


def test_an_anonymous_learner_gets_a_code_once_and_looks_their_concern_up(
    server: Server, browsing: Browsing
) -> None:
    page = browsing.page
    page.goto(server.url + "/concerns/new")
    fill_the_form(page, confidentiality="Anonymous")
    page.get_by_role("button", name="Send my concern").click()
    reference = page.locator("#reference").inner_text().strip()
    code = page.locator("#code").inner_text().strip()
    assert reference.startswith("LC-") and len(code) >= 8
    browsing.check("confirmation-anonymous")

    page.reload()  # the code is shown once only
    assert code not in page.content()
    browsing.check("confirmation-already-shown")

    page.goto(server.url + "/concerns/status")
    browsing.check("status-look-up")
    page.get_by_label("Reference").fill(reference)
    page.get_by_label("Follow-up code").fill("WRONG-CODE-0000")
    page.get_by_role("button", name="Continue").click()
    assert page.title().startswith("Error:")
    assert "The reference or code is not right" in page.inner_text("main")
    browsing.check("status-look-up-wrong-code")

    page.get_by_label("Reference").fill(reference)
    page.get_by_label("Follow-up code").fill(code)
    page.get_by_role("button", name="Continue").click()
    assert reference in page.inner_text("main")
    assert "We received your concern" in page.inner_text("main")
    browsing.check("status-anonymous")


def test_a_confidential_concern_can_be_sent_with_the_keyboard_alone(
    server: Server, browsing: Browsing
) -> None:
    page = browsing.page
    page.goto(server.url + "/concerns/new")

    def tab_to(selector: str) -> None:
        """Press Tab until the element has focus: it must be reachable by keyboard."""
        for _ in range(80):
            page.keyboard.press("Tab")
            if page.evaluate(
                "selector => document.activeElement && document.activeElement.matches(selector)",
                selector,
            ):
                return
        raise AssertionError(f"{selector} cannot be reached with the Tab key")

    def choose(name: str, value: str) -> None:
        tab_to(f"input[name='{name}']")
        for _ in range(12):
            if page.evaluate(
                "([name, value]) => document.activeElement.name === name"
                " && document.activeElement.value === value",
                [name, value],
            ):
                page.keyboard.press("Space")
                return
            page.keyboard.press("ArrowDown")
        raise AssertionError(f"{value} is not a choice of {name}")

    def pick(name: str, option_index: int) -> str:
        tab_to(f"select[name='{name}']")
        for _ in range(option_index):
            page.keyboard.press("ArrowDown")
        return str(page.evaluate("document.activeElement.value"))

    choose("group", "nursing")
    organisation = pick("organisation", 1)
    assert organisation
    departments = page.locator("select[name='department'] option")
    index = next(
        i
        for i in range(departments.count())
        if str(departments.nth(i).get_attribute("value")).startswith(f"{organisation}/")
    )
    pick("department", index)
    tab_to("textarea[name='description']")
    page.keyboard.type("Nobody has signed off my competencies in six weeks of placement.")
    choose("frequency", "continuing")
    choose("harm", "learners_affected")
    choose("raised-before", "no")
    choose("about-supervisor", "no")
    choose("confidentiality", "confidential")
    tab_to("input[name='name']")
    page.keyboard.type("Sam Keyboard")
    tab_to("input[name='email']")
    page.keyboard.type("sam.keyboard@example.nhs.uk")
    tab_to("button[type='submit'], input[type='submit']")
    page.keyboard.press("Enter")
    page.wait_for_url("**/concerns/confirmation")
    assert page.locator("#reference").inner_text().startswith("LC-")
    browsing.check("confirmation-confidential")


def concerns_once_raised(server: Server) -> int:
    """How many concerns the service holds once every stored submission is raised (it raises
    them just after answering, in the background)."""
    engine = create_db_engine(f"sqlite:///{server.database}")
    try:
        deadline = time.monotonic() + 20
        while True:
            with transaction(engine) as session:
                waiting = session.exec(select(func.count()).select_from(ReceivedSubmission)).one()
                concerns = session.exec(select(func.count()).select_from(Concern)).one()
            if not waiting:
                return int(concerns)
            assert time.monotonic() < deadline, "submissions were not raised"
            time.sleep(0.1)
    finally:
        engine.dispose()


def test_a_double_press_of_send_without_javascript_raises_one_concern(
    server: Server, browser: Browser
) -> None:
    """Without JavaScript nothing stops a second press: the browser sends the form twice and
    shows the second answer, which must confirm the one concern raised."""
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        page.goto(server.url + "/concerns/new")
        fill_the_form(page, confidentiality="Anonymous")
        concerns_before = concerns_once_raised(server)
        posts_before = server.output().count("POST /concerns/new 303")
        # A slow signal: the first sending reaches the service, but its answer is held back, so
        # the learner still sees the form and presses Send again.
        held: list[tuple[Route, APIResponse]] = []

        def slow_first_answer(route: Route) -> None:
            if route.request.method == "POST" and not held:
                held.append((route, route.fetch(max_redirects=0)))
            else:
                route.continue_()

        page.route("**/concerns/new", slow_first_answer)
        send = page.get_by_role("button", name="Send my concern")
        send.scroll_into_view_if_needed()
        box = send.bounding_box()
        assert box is not None
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        # The mouse itself, pressed twice: Playwright's click would wait for the first sending.
        page.mouse.click(x, y)
        deadline = time.monotonic() + 10
        while not held:
            assert time.monotonic() < deadline, "the form was not sent"
            page.wait_for_timeout(10)
        page.mouse.click(x, y)
        # Not wait_for_url: the first sending's navigation ends aborted (the second replaced it),
        # which that would report as a failure. A locator waits across navigations.
        page.locator("#reference").wait_for(state="visible")
        assert page.url.endswith("/concerns/confirmation")
        with contextlib.suppress(PlaywrightError):  # its page was replaced by the second's
            held[0][0].fulfill(response=held[0][1])
        reference = page.locator("#reference").inner_text().strip()
        code = page.locator("#code").inner_text().strip()
        assert reference.startswith("LC-") and len(code) >= 8
    finally:
        context.close()
    deadline = time.monotonic() + 10
    while server.output().count("POST /concerns/new 303") < posts_before + 2:
        assert time.monotonic() < deadline, "the browser sent the form once only"
        time.sleep(0.1)
    assert concerns_once_raised(server) == concerns_before + 1


def test_a_form_sent_after_the_session_ended_comes_back_filled_in(
    server: Server, browsing: Browsing
) -> None:
    """The phone closed the browser while the learner wrote (the session cookie is gone, the
    page is not): sending is refused, nothing is raised, and the form comes back with every
    answer, ready to send again. Chromium's own headers say the form is from our page."""
    page = browsing.page
    page.goto(server.url + "/concerns/new")
    fill_the_form(
        page, confidentiality="Named", name="Nia Learner", email="nia.learner@example.nhs.uk"
    )
    concerns_before = concerns_once_raised(server)
    page.context.clear_cookies()
    page.get_by_role("button", name="Send my concern").click()
    page.get_by_text("your concern has not been sent yet").first.wait_for()
    assert page.title().startswith("Error:")
    assert page.get_by_label("What happened?").input_value().startswith("FY1s are left without")
    assert page.get_by_label("Full name").input_value() == "Nia Learner"
    assert question(page, "How often does this happen?").get_by_label("Often").is_checked()
    browsing.check("session-ended")
    assert concerns_once_raised(server) == concerns_before

    page.get_by_role("button", name="Send my concern").click()
    page.locator("#reference").wait_for(state="visible")
    assert concerns_once_raised(server) == concerns_before + 1
