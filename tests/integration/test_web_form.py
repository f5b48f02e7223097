"""The learner's web form and its confirmation page, in process against SQLite."""

from __future__ import annotations

import asyncio
import base64
import html
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import select

from intake.web import form as web_form
from intake.web.form_fields import derive_summary
from intake.web.security import RateLimitRules
from storage import repositories
from storage.db import transaction
from storage.tables import Concern, Learner, OutboxMessage, ReceivedSubmission
from tests.integration.helpers import MONDAY_MORNING, load_example_directory
from tests.integration.webclient import WebClient, make_app, web_client

REFERENCE = re.compile(r'id="reference">(LC-\d{4}-\d{6})<')
CODE = re.compile(r'id="code">([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})<')
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
PAYLOAD = SCRIPT + IMG


@pytest.fixture
def engine(sqlite_engine: Engine) -> Engine:
    load_example_directory(sqlite_engine)
    return sqlite_engine


@pytest.fixture
def client(engine: Engine) -> Iterator[WebClient]:
    with web_client(make_app(engine, clock=lambda: MONDAY_MORNING)) as client:
        yield client


def answers(**changes: str) -> dict[str, str]:
    """A complete named concern as the form sends it."""
    form = {
        "group": "foundation",
        "organisation": "vale-general",
        "organisation-other": "",
        "site": "",
        "department": "vale-general/emergency",
        "department-other": "",
        "programme": "Foundation Programme FY1",
        "description": "Nobody signs off our assessments. It has gone on for weeks.",
        "frequency": "often",
        "harm": "learners_affected",
        "raised-before": "no",
        "raised-with": "",
        "about-supervisor": "no",
        "pathway1-contact": "",
        "confidentiality": "named",
        "name": "Priya Testlearner",
        "email": "priya.testlearner@example.nhs.uk",
    }
    form.update(changes)
    return form


def send(client: WebClient, **changes: str) -> Any:
    token = client.csrf("/concerns/new")
    return client.post("/concerns/new", data={"csrf_token": token, **answers(**changes)})


def concern_count(engine: Engine) -> int:
    with transaction(engine) as session:
        return int(session.exec(select(func.count()).select_from(Concern)).one())


def stored(engine: Engine, reference: str) -> Concern:
    with transaction(engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None
        session.expunge(concern)
        return concern


def confirmed(client: WebClient, response: Any) -> str:
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/concerns/confirmation"
    page = client.get("/concerns/confirmation")
    assert page.status_code == 200
    return page.text


def test_the_form_asks_every_question_and_lists_the_directory(client: WebClient) -> None:
    page = client.get("/concerns/new")
    assert page.status_code == 200
    text = page.text
    assert "<title>Tell us about your concern" in text
    for name in (
        "group",
        "organisation",
        "organisation-other",
        "site",
        "department",
        "department-other",
        "programme",
        "description",
        "frequency",
        "harm",
        "raised-before",
        "raised-with",
        "about-supervisor",
        "cannot-raise-locally",
        "confidentiality",
        "name",
        "email",
        "csrf_token",
    ):
        assert f'name="{name}"' in text, name
    assert text.count('name="group"') == 10
    assert 'value="not_answered"' not in text
    assert "Vale General Hospitals NHS Trust</option>" in text
    assert "Riverside Surgery</option>" in text
    assert (
        "Emergency Department, Vale Royal Infirmary, Vale General Hospitals NHS Trust</option>"
        in text
    )
    assert "My organisation is not listed" in text
    assert 'data-maxlength="5000"' in text
    assert "Send my concern" in text
    assert "<script>" not in text and "style=" not in text and "onclick" not in text


def test_a_named_concern_is_raised_and_confirmed_once(engine: Engine, client: WebClient) -> None:
    page = confirmed(client, send(client, **{"raised-before": "pathway1", "raised-with": "Dr Lee"}))
    reference = REFERENCE.search(page)
    assert reference, page
    assert "Concern sent" in page and "nhsuk-panel" in page
    assert 'id="code"' not in page
    assert "your placement" in page
    concern = stored(engine, reference.group(1))
    assert concern.channel == "web" and concern.confidentiality == "named"
    assert concern.learner_id is not None and concern.code_hash is None
    assert concern.summary == "Nobody signs off our assessments."
    assert concern.description.endswith("\n\nRaised before with: Dr Lee")
    assert concern.department_id is not None and concern.placement_text is None
    again = client.get("/concerns/confirmation")
    assert again.status_code == 200
    assert "already been shown" in again.text and reference.group(1) not in again.text
    assert 'href="/concerns/status"' in again.text


def test_a_confidential_concern_about_the_supervisor_goes_to_the_school(
    engine: Engine, client: WebClient
) -> None:
    page = confirmed(
        client, send(client, confidentiality="confidential", **{"about-supervisor": "yes"})
    )
    reference = REFERENCE.search(page)
    assert reference
    concern = stored(engine, reference.group(1))
    assert concern.confidentiality == "confidential" and concern.about_pathway1_contact
    assert concern.pathway == 2
    assert "your school or university" in page


def test_an_anonymous_concern_keeps_no_identity_and_shows_its_code_once(
    engine: Engine, client: WebClient
) -> None:
    before = _learners(engine)
    page = confirmed(
        client,
        send(
            client,
            confidentiality="anonymous",
            name="",
            email="",
            **{"cannot-raise-locally": "yes"},
        ),
    )
    reference, code = REFERENCE.search(page), CODE.search(page)
    assert reference and code, page
    assert "Write down your code now" in page and "never shown again" in page
    assert 'href="/concerns/status"' in page
    concern = stored(engine, reference.group(1))
    assert concern.confidentiality == "anonymous" and concern.learner_id is None
    assert concern.code_hash and code.group(1) not in concern.code_hash
    assert concern.cannot_raise_locally
    assert _learners(engine) == before
    again = client.get("/concerns/confirmation").text
    assert code.group(1) not in again and "already been shown" in again
    with transaction(engine) as session:
        for message in session.exec(select(OutboxMessage)):
            assert code.group(1) not in message.body_text
            assert code.group(1) not in (message.body_html or "")


def test_the_code_cannot_be_read_from_the_cookie_nor_shown_again_later_with_a_saved_one(
    engine: Engine,
) -> None:
    """The session cookie is signed, not encrypted: the code in it is sealed, and a cookie saved
    from just after sending shows nothing once the confirmation's few minutes are over."""
    now = [MONDAY_MORNING]
    with web_client(make_app(engine, clock=lambda: now[0])) as client:
        sent = send(client, confidentiality="anonymous", name="", email="")
        saved = client.cookie_header()
        page = confirmed(client, sent)
        code = CODE.search(page)
        assert code
        payload = saved.split("=", 1)[1].split(".")[0]
        readable = base64.b64decode(payload + "=" * (-len(payload) % 4)).decode()
        assert "confirmation" in readable and code.group(1) not in readable
        assert code.group(1).replace("-", "") not in readable
        now[0] += timedelta(minutes=11)
        client.set_cookie("concerns_session", saved.split("=", 1)[1])
        again = client.get("/concerns/confirmation").text
        assert code.group(1) not in again and "already been shown" in again


LEARNER_EMAIL = "priya.testlearner@example.nhs.uk"
EMAIL_SENT_TO = f"We have sent a confirmation email to {LEARNER_EMAIL}."
NOT_YOUR_EMAIL = "If this is not your email address, change it now"


def _words(page: str) -> str:
    """The page's text as read: tags dropped, spacing collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", page)).split())


@pytest.mark.parametrize("confidentiality", ["named", "confidential"])
def test_the_confirmation_shows_where_the_acknowledgement_was_sent(
    engine: Engine, confidentiality: str
) -> None:
    now = [MONDAY_MORNING]
    with web_client(make_app(engine, clock=lambda: now[0])) as client:
        sent = send(client, confidentiality=confidentiality)
        saved = client.cookie_header()
        page = confirmed(client, sent)
        words = _words(page)
        assert EMAIL_SENT_TO in words
        assert f'<strong id="email">{LEARNER_EMAIL}</strong>' in page
        assert NOT_YOUR_EMAIL in words and "raise your concern again" not in words
        assert '<a href="/concerns/change-email">Change email address</a>' in page
        reference = REFERENCE.search(page)
        assert reference
        # It is where the acknowledgement (and its status link) really went.
        with transaction(engine) as session:
            acknowledged = session.exec(
                select(OutboxMessage.recipient_address).where(
                    OutboxMessage.concern_id == stored(engine, reference.group(1)).id,
                    OutboxMessage.kind == "learner_ack",
                )
            ).all()
        assert acknowledged == [LEARNER_EMAIL]
        # The signed (not encrypted) session cookie does not give the address away...
        payload = saved.split("=", 1)[1].split(".")[0]
        readable = base64.b64decode(payload + "=" * (-len(payload) % 4)).decode()
        assert "confirmation" in readable and "testlearner" not in readable
        # ... the page shows it once ...
        assert LEARNER_EMAIL not in client.get("/concerns/confirmation").text
        # ... and a cookie saved from then shows nothing once the few minutes are over.
        now[0] += timedelta(minutes=11)
        client.set_cookie("concerns_session", saved.split("=", 1)[1])
        again = client.get("/concerns/confirmation").text
        assert LEARNER_EMAIL not in again and "already been shown" in again
    # Another browser never sees it.
    with web_client(make_app(engine, clock=lambda: MONDAY_MORNING)) as other:
        assert LEARNER_EMAIL not in other.get("/concerns/confirmation").text


def test_an_anonymous_confirmation_mentions_no_email(engine: Engine, client: WebClient) -> None:
    page = confirmed(client, send(client, confidentiality="anonymous", name="", email=""))
    words = _words(page)
    assert "confirmation email" not in words and NOT_YOUR_EMAIL not in words
    assert "/concerns/change-email" not in page
    assert 'id="email"' not in page and "@" not in words.split("Concern sent", 1)[1]


def test_a_placement_not_in_the_directory_is_kept_in_the_learners_words(
    engine: Engine, client: WebClient
) -> None:
    page = confirmed(
        client,
        send(
            client,
            organisation="not-listed",
            department="not-listed",
            site="Hilltop Clinic",
            **{"organisation-other": "Hilltop Health", "department-other": "Clinic B"},
        ),
    )
    reference = REFERENCE.search(page)
    assert reference
    concern = stored(engine, reference.group(1))
    assert concern.organisation_id is None
    assert concern.placement_text == "Clinic B, Hilltop Clinic, Hilltop Health"
    assert "could not find your placement" in page


UNLISTED_PLACE = {
    "organisation": "not-listed",
    "department": "not-listed",
    "organisation-other": "Hilltop Health",
    "department-other": "Clinic B",
}
UNLISTED_DEPARTMENT = {"department": "not-listed", "department-other": "The new day unit"}
SENT_TO_PLACEMENT = "We have sent your concern to your placement"
SCHOOL_NOT_CLEAR = "If we cannot tell from what you told us which school or university is yours"
QUALITY_TEAM_PLACES_IT = (
    "We could not find your placement in our list, so we have sent your concern to the "
    "regional quality team. They will find the right people at your placement and pass it on "
    "to them."
)


def told_first(engine: Engine, reference: str) -> list[str]:
    """Who was sent the new concern (by email)."""
    with transaction(engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None
        return sorted(
            session.exec(
                select(OutboxMessage.recipient_address).where(
                    OutboxMessage.concern_id == concern.id,
                    OutboxMessage.kind == "new_concern",
                    OutboxMessage.channel == "email",
                )
            ).all()
        )


def what_happens_next(page: str) -> str:
    """The confirmation's words from "What happens next" on, tags and spacing dropped."""
    after = page.split("What happens next", 1)[1]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", after)).split())


@pytest.mark.parametrize(
    ("changes", "says", "never_says", "told"),
    [
        pytest.param(
            {},
            [SENT_TO_PLACEMENT + ": the department's supervisor or clinical tutor"],
            ["could not find", "quality team will", SCHOOL_NOT_CLEAR],
            ["jordan.sample@vale-general.example.nhs.uk"],
            id="listed",
        ),
        pytest.param(
            UNLISTED_PLACE,
            [QUALITY_TEAM_PLACES_IT],
            [SENT_TO_PLACEMENT, "could not find your department"],
            ["quality.northvale@example.nhs.uk"],
            id="organisation-not-listed",
        ),
        pytest.param(
            UNLISTED_DEPARTMENT,
            [
                "We could not find your department in our list, so we have sent your concern to "
                "your organisation's clinical tutor or Freedom to Speak Up guardian. They will "
                "deal with it or pass it on to the right people in your department."
            ],
            [SENT_TO_PLACEMENT, "could not find your placement", "quality team will"],
            ["dme@vale-general.example.nhs.uk"],
            id="department-not-listed",
        ),
        pytest.param(
            {**UNLISTED_PLACE, "about-supervisor": "yes"},
            [
                "We have sent your concern to your school or university",
                "We could not find your placement in our list, so they will see it as you "
                "described it.",
            ],
            [SENT_TO_PLACEMENT, "quality team will"],
            ["ellis.sampleton@example.nhs.uk"],
            id="not-listed-at-pathway-2",
        ),
        pytest.param(
            # Two specialty schools, neither naming paediatrics nor serving the placement: the
            # quality team takes it (escalation.contacts.choose_programme_body), and the page
            # has said so since the school may not be clear.
            {"group": "specialty", "programme": "Paediatrics ST3", "about-supervisor": "yes"},
            [
                "We have sent your concern to your school or university",
                SCHOOL_NOT_CLEAR + ", the regional quality team gets your concern instead and "
                "passes it on to the right one.",
            ],
            [SENT_TO_PLACEMENT, "could not find"],
            ["quality.northvale@example.nhs.uk"],
            id="school-not-clear-at-pathway-2",
        ),
        pytest.param(
            {"raised-before": "pathway1_and_2"},
            [
                "We have sent your concern to NHS England",
                "This is the highest level. If feedback is late, the regional quality team is "
                "told.",
            ],
            ["could not find", "moves up to the next step", SCHOOL_NOT_CLEAR],
            ["morgan.example@example.nhs.uk", "quality.northvale@example.nhs.uk"],
            id="at-pathway-3",
        ),
    ],
)
def test_the_confirmation_says_one_true_thing_about_where_the_concern_went(
    engine: Engine,
    client: WebClient,
    changes: dict[str, str],
    says: list[str],
    never_says: list[str],
    told: list[str],
) -> None:
    page = confirmed(client, send(client, **changes))
    reference = REFERENCE.search(page)
    assert reference
    # What the page says is what happened.
    assert told_first(engine, reference.group(1)) == told
    words = what_happens_next(page)
    for sentence in says:
        assert sentence in words
    for sentence in never_says:
        assert sentence not in words


def _learners(engine: Engine) -> int:
    with transaction(engine) as session:
        return int(session.exec(select(func.count()).select_from(Learner)).one())


def test_without_a_csrf_token_nothing_is_stored(engine: Engine, client: WebClient) -> None:
    client.get("/concerns/new")
    refused = client.post("/concerns/new", data=answers())
    assert refused.status_code == 403
    assert "Your session has expired" in refused.text
    assert concern_count(engine) == 0


def test_a_form_sent_after_the_session_ended_comes_back_with_every_answer(
    engine: Engine, client: WebClient
) -> None:
    """A phone that closed the browser loses the session cookie, not the page: the form sent
    from our own page is refused (nothing stored) but not lost, and sending it again works."""
    written = "Nobody signs off our assessments. <b>It has gone on for weeks.</b>"
    for browser_says in ({"Sec-Fetch-Site": "same-origin"}, {"Origin": "http://testserver"}):
        refused = client.post(
            "/concerns/new",
            data={"csrf_token": "from-a-session-gone", **answers(description=written)},
            headers=browser_says,
        )
        assert refused.status_code == 403
        assert "your concern has not been sent yet" in refused.text
        assert "<title>Error: Tell us about your concern" in refused.text
        assert "Nobody signs off our assessments. &lt;b&gt;It has gone on" in refused.text
        assert 'value="Foundation Programme FY1"' in refused.text
        assert concern_count(engine) == 0

    token = re.search(r'name="csrf_token" value="([^"]+)"', refused.text)
    key = re.search(r'name="submission_key" value="([^"]+)"', refused.text)
    assert token and key
    form = {"csrf_token": token.group(1), "submission_key": key.group(1)}
    sent = client.post("/concerns/new", data={**form, **answers(description=written)})
    assert sent.status_code == 303
    assert concern_count(engine) == 1


def test_a_form_sent_after_the_session_ended_behind_a_proxy_comes_back(engine: Engine) -> None:
    """Behind a reverse proxy that sends its own Host (or whose X-Forwarded-Proto is not
    believed), this site is CONCERNS_PUBLIC_URL, not the address the request reached: a browser
    that sends Origin but no Sec-Fetch-Site (Safari before 16.4) still gets its answers back."""
    app = make_app(
        engine, clock=lambda: MONDAY_MORNING, public_url="https://concerns.example.nhs.uk/"
    )
    written = "Nobody signs off our assessments, week after week."
    with web_client(app, "http://127.0.0.1:8000") as behind_proxy:
        refused = behind_proxy.post(
            "/concerns/new",
            data={"csrf_token": "from-a-session-gone", **answers(description=written)},
            headers={"Origin": "https://concerns.example.nhs.uk"},
        )
        assert refused.status_code == 403
        assert written in refused.text
        elsewhere = behind_proxy.post(
            "/concerns/new",
            data={"csrf_token": "gone", **answers(description="Ring 0900 000 000")},
            headers={"Origin": "https://concerns.example.nhs.uk.elsewhere.example"},
        )
        assert elsewhere.status_code == 403 and "0900" not in elsewhere.text
    assert concern_count(engine) == 0


def test_a_form_sent_from_another_site_is_never_shown_back(
    engine: Engine, client: WebClient
) -> None:
    """Another site's page must not make ours show words it chose."""
    client.get("/concerns/new")
    planted = answers(description="Your concern was closed. Ring 0900 000 000 to reopen it.")
    for browser_says in (
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://testserver"},
        {"Origin": "https://elsewhere.example"},
        {},
    ):
        refused = client.post("/concerns/new", data=planted, headers=browser_says)
        assert refused.status_code == 403
        assert "Your session has expired" in refused.text
        assert "0900" not in refused.text
    assert concern_count(engine) == 0


def test_another_sessions_token_is_refused(engine: Engine) -> None:
    app = make_app(engine, clock=lambda: MONDAY_MORNING)
    with web_client(app) as other:
        token = other.csrf("/concerns/new")
    with web_client(app) as client:
        client.get("/concerns/new")
        refused = client.post("/concerns/new", data={"csrf_token": token, **answers()})
    assert refused.status_code == 403
    assert concern_count(engine) == 0


def test_a_missing_answer_shows_the_error_summary_and_keeps_the_rest(
    engine: Engine, client: WebClient
) -> None:
    page = send(client, frequency="", programme="Core surgery", **{"about-supervisor": "yes"})
    assert page.status_code == 400
    text = page.text
    assert "<title>Error: Tell us about your concern" in text
    assert "nhsuk-error-summary" in text and "There is a problem" in text
    assert '<a href="#frequency">' in text
    assert 'id="frequency-error"' in text and "Select how often this happens" in text
    assert _checked(text, "group", "foundation")
    assert _checked(text, "about-supervisor", "yes")
    assert _checked(text, "confidentiality", "named")
    assert '<option value="vale-general/emergency" selected>' in text
    assert 'value="Core surgery"' in text
    assert "Nobody signs off our assessments" in text
    assert concern_count(engine) == 0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("frequency", "every-minute", "Select how often this happens"),
        ("harm", "catastrophic", "Select whether anyone has been harmed or could be"),
        ("group", "astronaut", "Select which kind of learner you are"),
        ("organisation", "Elsewhere Trust", "Select your organisation from the list"),
        ("department", "vale-general/nowhere", "Select your department or ward from the list"),
        ("department", "riverside-surgery/general-practice", "select one at your organisation"),
        ("confidentiality", "secret", "Select how you want your concern to be shared"),
        ("raised-before", "pathway3", "Select whether you have raised this before"),
        ("about-supervisor", "maybe", "Select yes if your concern is about your supervisor"),
        ("email", "not-an-address", "Enter an email address in the correct format"),
        ("email", "jöhn@example.nhs.uk", "Enter an email address in the correct format"),
        ("name", "", "Enter your name"),
        ("email", "", "Enter your email address, so we can reply"),
        ("description", "   ", "Enter what happened"),
    ],
)
def test_an_invalid_answer_is_explained_next_to_its_field(
    engine: Engine, client: WebClient, field: str, value: str, message: str
) -> None:
    page = send(client, **{field: value})
    assert page.status_code == 400
    assert "<title>Error: " in page.text
    assert f'<a href="#{field}">' in page.text
    assert f'id="{field}-error"' in page.text and message in page.text
    assert concern_count(engine) == 0


def test_an_anonymous_concern_with_a_name_is_refused(engine: Engine, client: WebClient) -> None:
    page = send(client, confidentiality="anonymous")
    assert page.status_code == 400
    assert 'id="name-error"' in page.text and 'id="email-error"' in page.text
    assert "we keep no contact details for an anonymous concern" in page.text
    assert concern_count(engine) == 0


def test_a_description_over_5000_characters_is_refused(engine: Engine, client: WebClient) -> None:
    page = send(client, description="a" * 5001)
    assert page.status_code == 400
    assert "must be 5,000 characters or fewer" in page.text
    assert concern_count(engine) == 0
    assert confirmed(client, send(client, description="a" * 5000))


def test_line_breaks_count_once_as_the_pages_character_count_counts_them(
    engine: Engine, client: WebClient
) -> None:
    """Browsers send a textarea's line breaks as CR LF; the count on the page counts one each."""
    in_the_browser = "\n".join(["x" * 82] * 60)  # 4,979 characters on the page
    page = confirmed(client, send(client, description=in_the_browser.replace("\n", "\r\n")))
    match = REFERENCE.search(page)
    assert match
    assert stored(engine, match.group(1)).description == in_the_browser
    over = "\r\n".join(["x" * 82] * 61)  # 5,062 on the page
    refused = send(client, description=over)
    assert refused.status_code == 400 and "(you have entered 5,062)" in refused.text


@pytest.mark.parametrize(
    ("field", "message"),
    [("description", "Enter what happened"), ("name", "Enter your name")],
)
@pytest.mark.parametrize("blank", ["\u200b\u200b", "\u2800", "\u3164 \ufeff", "\u00ad\u00a0"])
def test_an_answer_that_shows_nothing_counts_as_not_given(
    engine: Engine, client: WebClient, field: str, message: str, blank: str
) -> None:
    page = send(client, **{field: blank})
    assert page.status_code == 400
    assert message in page.text
    assert concern_count(engine) == 0


def test_unusual_characters_are_pointed_out_in_the_answer_that_has_them(
    engine: Engine, client: WebClient
) -> None:
    page = send(client, **{"raised-with": "my supervisor\x0b Dr X"})
    assert page.status_code == 400
    assert 'id="raised-with-error"' in page.text and 'id="description-error"' not in page.text
    # The error summary lists the messages alone: each says which answer it is about.
    assert "Remove the unusual characters from who you raised it with" in page.text
    described = send(client, description="Nobody signs off\x00 our assessments.")
    assert "Remove the unusual characters from what happened" in described.text
    assert concern_count(engine) == 0


def test_an_organisation_not_listed_without_its_name_is_one_error(
    engine: Engine, client: WebClient
) -> None:
    page = send(client, organisation="not-listed", department="", **{"organisation-other": ""})
    assert page.status_code == 400
    assert "Enter the name of your organisation" in page.text
    assert "Select your organisation, or enter its name" not in page.text
    assert concern_count(engine) == 0


def test_the_learner_may_choose_the_speak_up_guardian_in_their_placement(
    engine: Engine, client: WebClient
) -> None:
    form = client.get("/concerns/new").text
    assert "Who would you like to deal with it in your placement? (optional)" in form
    assert 'value="speak_up_guardian"' in form
    page = confirmed(client, send(client, **{"pathway1-contact": "speak_up_guardian"}))
    match = REFERENCE.search(page)
    assert match
    concern = stored(engine, match.group(1))
    assert concern.prefers_speak_up_guardian and concern.pathway == 1
    with transaction(engine) as session:
        told = session.exec(
            select(OutboxMessage.recipient_address).where(
                OutboxMessage.concern_id == concern.id,
                OutboxMessage.kind == "new_concern",
                OutboxMessage.channel == "email",
            )
        ).all()
    assert told == ["speakup@vale-general.example.nhs.uk"]
    # Not choosing leaves it with the supervisor; a made-up choice is refused.
    page = confirmed(client, send(client, description="Teaching was cancelled again."))
    match = REFERENCE.search(page)
    assert match and not stored(engine, match.group(1)).prefers_speak_up_guardian
    refused = send(client, **{"pathway1-contact": "the-chief-executive"})
    assert refused.status_code == 400 and 'id="pathway1-contact-error"' in refused.text


TEXT_FIELDS = (
    "organisation-other",
    "site",
    "department-other",
    "programme",
    "description",
    "raised-with",
    "name",
    "email",
)


def _assert_inert(html: str) -> None:
    assert SCRIPT not in html and IMG not in html
    assert "<img src=x" not in html


def test_markup_in_every_field_is_escaped_when_the_form_is_shown_again(
    client: WebClient,
) -> None:
    page = send(
        client,
        frequency="",
        **{name: PAYLOAD for name in TEXT_FIELDS},
    )
    assert page.status_code == 400
    _assert_inert(page.text)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_markup_is_inert_in_the_stored_concern_and_its_emails(
    engine: Engine, client: WebClient
) -> None:
    page = confirmed(
        client,
        send(
            client,
            organisation="not-listed",
            department="not-listed",
            name=f"Priya {PAYLOAD}",
            **{
                name: PAYLOAD
                for name in TEXT_FIELDS
                if name not in ("name", "email", "organisation", "department")
            },
        ),
    )
    _assert_inert(page)
    reference = REFERENCE.search(page)
    assert reference
    with transaction(engine) as session:
        messages = list(session.exec(select(OutboxMessage)))
    assert messages
    # The learner's words reach the emails, escaped.
    assert any(
        "&lt;script&gt;alert(1)&lt;/script&gt;" in m.body_html for m in messages if m.body_html
    )
    for message in messages:
        assert message.body_html
        _assert_inert(message.body_html)
        assert "\n" not in message.subject and "\r" not in message.subject
        assert "<script" not in message.subject


@pytest.mark.parametrize("field", ["name", "email"])
@pytest.mark.parametrize("breaker", ["\r\n", "\n", "\r"])
def test_line_breaks_in_contact_details_are_refused(
    engine: Engine, client: WebClient, field: str, breaker: str
) -> None:
    value = answers()[field] + breaker + "Bcc: everyone@example.com"
    page = send(client, **{field: value})
    assert page.status_code == 400
    assert f'id="{field}-error"' in page.text
    assert concern_count(engine) == 0
    with transaction(engine) as session:
        assert not list(session.exec(select(OutboxMessage)))


def test_the_submissions_limit_gives_a_clear_429(engine: Engine) -> None:
    app = make_app(
        engine, clock=lambda: MONDAY_MORNING, rate_limits=RateLimitRules(submissions="2/minute")
    )
    with web_client(app) as client:
        assert send(client).status_code == 303
        assert send(client).status_code == 303
        third = send(client, description="It happened again on Friday night.")
    assert third.status_code == 429
    assert "You have sent too many concerns" in third.text
    assert "try again in 1 minute" in third.text and third.headers["Retry-After"]
    # Nothing sent, and what the learner wrote is there to send again.
    assert "It happened again on Friday night." in third.text
    assert concern_count(engine) == 2


def test_correcting_answers_does_not_count_against_the_submissions_limit(engine: Engine) -> None:
    app = make_app(
        engine, clock=lambda: MONDAY_MORNING, rate_limits=RateLimitRules(submissions="2/minute")
    )
    with web_client(app) as client:
        assert send(client, frequency="").status_code == 400
        assert send(client, email="").status_code == 400
        assert send(client).status_code == 303
        assert send(client).status_code == 303
        assert send(client).status_code == 429
    assert concern_count(engine) == 2


def test_a_form_over_the_size_limit_gets_413(engine: Engine, client: WebClient) -> None:
    token = client.csrf("/concerns/new")
    page = client.post(
        "/concerns/new", data={"csrf_token": token, **answers(description="a" * 300_000)}
    )
    assert page.status_code == 413
    # The refusal carries the same security headers as every page.
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Cache-Control"] == "no-store"
    assert "default-src" in page.headers["Content-Security-Policy"]
    assert concern_count(engine) == 0


@pytest.mark.parametrize(
    ("description", "summary"),
    [
        ("Short one. Then more.", "Short one."),
        ("First line without a stop\nSecond line.", "First line without a stop"),
        ("Is it safe? I do not think so.", "Is it safe?"),
        # A greeting or an introduction says nothing of the concern.
        (
            "My name is Priya and I'm a 4th year medical student on the surgical firm. "
            "Nobody has taught us for six weeks.",
            "Nobody has taught us for six weeks.",
        ),
        (
            "Hi,\nI'm a student nurse at Brookside.\nI am left alone on nights.",
            "I am left alone on nights.",
        ),
        ("I am a student nurse.", "I am a student nurse."),
        ("I am being bullied by my supervisor.", "I am being bullied by my supervisor."),
        # A sentence that greets or introduces and goes on to say something is the summary.
        (
            "Hi, I was left alone with 20 patients on nights. Thank you for reading.",
            "Hi, I was left alone with 20 patients on nights.",
        ),
        (
            "I'm a student nurse on Ward 7 and I was left alone with 20 patients last night. "
            "Please can someone look into this.",
            "I'm a student nurse on Ward 7 and I was left alone with 20 patients last night.",
        ),
        (
            "Dear Sir or Madam, a patient died on Ward 7 because nobody senior came. Help.",
            "Dear Sir or Madam, a patient died on Ward 7 because nobody senior came.",
        ),
        (
            "My name is Priya and my consultant shouted at me in front of patients. It recurs.",
            "My name is Priya and my consultant shouted at me in front of patients.",
        ),
        ("Dear Sir or Madam,\nThe rota has gaps.", "The rota has gaps."),
        # A title or an initial does not end a sentence; pleasantries are not the concern.
        (
            "Hi, I am writing to report that Dr. Smith left me alone on nights.",
            "Hi, I am writing to report that Dr. Smith left me alone on nights.",
        ),
        ("My name is Dr. J. Bloggs, FY1. Left alone on nights.", "Left alone on nights."),
        (
            "Hello, I hope you are well. I wanted to raise something. Our rota has gaps.",
            "Our rota has gaps.",
        ),
        ("word " * 40, ("word " * 23).strip() + "…"),
        ("x" * 130, "x" * 119 + "…"),
    ],
)
def test_the_summary_is_the_first_sentence_cut_between_words(
    description: str, summary: str
) -> None:
    derived = derive_summary(description)
    assert derived == summary
    assert len(derived) <= 120


def _checked(html: str, name: str, value: str) -> bool:
    return re.search(rf'name="{name}" type="radio" value="{value}"[^>]* checked', html) is not None


SUBMISSION_KEY = re.compile(r'name="submission_key" value="([^"]+)"')


def drawn_form(client: WebClient) -> dict[str, str]:
    """The hidden fields of the form as drawn for this browser: its CSRF token and one-time key."""
    page = client.get("/concerns/new").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    key = SUBMISSION_KEY.search(page)
    assert token and key
    return {"csrf_token": token.group(1), "submission_key": key.group(1)}


def test_the_same_form_sent_twice_raises_one_concern_and_confirms_it_both_times(
    engine: Engine, client: WebClient
) -> None:
    """A second press of Send without JavaScript: the browser shows the second answer only, so
    it must confirm the first sending's concern, with its one-time code."""
    form = {**drawn_form(client), **answers(confidentiality="anonymous", name="", email="")}
    first = confirmed(client, client.post("/concerns/new", data=form))
    again = confirmed(client, client.post("/concerns/new", data=form))
    assert concern_count(engine) == 1
    (reference,) = set(REFERENCE.findall(first)) | set(REFERENCE.findall(again))
    code_first, code_again = CODE.search(first), CODE.search(again)
    assert code_first and code_again and code_first.group(1) == code_again.group(1)
    assert stored(engine, reference).confidentiality == "anonymous"


def test_two_sendings_at_once_raise_one_concern(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second sending arrives while the first is still being stored: it waits for it."""
    real = web_form.receive_concern
    calls: list[int] = []
    release = threading.Event()

    def held(**kwargs: Any) -> Any:
        calls.append(1)
        assert release.wait(10), "the second sending never arrived"
        return real(**kwargs)

    monkeypatch.setattr(web_form, "receive_concern", held)
    woken: list[int] = []
    app = make_app(engine, clock=lambda: MONDAY_MORNING, on_received=lambda: woken.append(1))
    with web_client(app) as client:
        form = {**drawn_form(client), **answers()}

        async def both() -> list[Any]:
            first = asyncio.ensure_future(client._client.post("/concerns/new", data=form))
            while not calls:  # the first sending is being stored
                await asyncio.sleep(0.01)
            second = asyncio.ensure_future(client._client.post("/concerns/new", data=form))
            await asyncio.sleep(0.2)  # the second is waiting for it
            assert not second.done()
            release.set()
            return [await first, await second]

        answered = client._runner.run(both())
        assert [answer.status_code for answer in answered] == [303, 303]
        confirmed_page = client.get("/concerns/confirmation").text
    assert calls == [1]  # stored once
    assert woken == [1]  # and raising woken once
    with transaction(engine) as session:
        (waiting,) = session.exec(select(ReceivedSubmission.reference)).all()
    assert waiting in confirmed_page


def test_another_browser_with_the_same_key_and_answers_gets_its_own_concern(
    engine: Engine,
) -> None:
    """The key counts only with the session's own CSRF token: nobody else can fetch a learner's
    reference or code by sending their form again."""
    anonymous = answers(confidentiality="anonymous", name="", email="")
    with (
        web_client(make_app(engine, clock=lambda: MONDAY_MORNING)) as learner,
        web_client(make_app(engine, clock=lambda: MONDAY_MORNING)) as other,
    ):
        hidden = drawn_form(learner)
        first = confirmed(learner, learner.post("/concerns/new", data={**hidden, **anonymous}))
        theirs = {**hidden, "csrf_token": drawn_form(other)["csrf_token"]}
        second = confirmed(other, other.post("/concerns/new", data={**theirs, **anonymous}))
    assert concern_count(engine) == 2
    code_first, code_second = CODE.search(first), CODE.search(second)
    assert code_first and code_second and code_first.group(1) != code_second.group(1)
    assert REFERENCE.findall(first) != REFERENCE.findall(second)


def test_a_second_press_does_not_count_against_the_submissions_limit(engine: Engine) -> None:
    app = make_app(
        engine,
        clock=lambda: MONDAY_MORNING,
        rate_limits=RateLimitRules(submissions="1/10 minutes"),
    )
    with web_client(app) as client:
        form = {**drawn_form(client), **answers(confidentiality="anonymous", name="", email="")}
        first = confirmed(client, client.post("/concerns/new", data=form))
        again = confirmed(client, client.post("/concerns/new", data=form))
        assert CODE.findall(first) == CODE.findall(again)
        other = {**drawn_form(client), **answers()}
        assert client.post("/concerns/new", data=other).status_code == 429
    assert concern_count(engine) == 1


def test_an_edited_form_or_a_new_one_is_a_new_concern(engine: Engine, client: WebClient) -> None:
    """Nothing the learner wrote is dropped: the same key with other answers is not the same
    form, and each form drawn has its own key."""
    hidden = drawn_form(client)
    confirmed(client, client.post("/concerns/new", data={**hidden, **answers()}))
    edited = answers(description="Nobody signs off our assessments. Now the rota is short too.")
    confirmed(client, client.post("/concerns/new", data={**hidden, **edited}))
    assert concern_count(engine) == 2
    confirmed(client, client.post("/concerns/new", data={**drawn_form(client), **answers()}))
    assert concern_count(engine) == 3
    assert drawn_form(client)["submission_key"] != drawn_form(client)["submission_key"]


def test_a_form_sent_again_after_a_while_is_a_new_concern(
    engine: Engine, client: WebClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    form = {**drawn_form(client), **answers()}
    confirmed(client, client.post("/concerns/new", data=form))
    monkeypatch.setattr(web_form, "SENT_REMEMBERED_SECONDS", -1.0)
    confirmed(client, client.post("/concerns/new", data=form))
    assert concern_count(engine) == 2


def test_a_sending_that_failed_to_be_stored_can_be_sent_again(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = web_form.receive_concern
    calls: list[int] = []

    def fails_once(**kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database away")
        return real(**kwargs)

    monkeypatch.setattr(web_form, "receive_concern", fails_once)
    with web_client(make_app(engine, clock=lambda: MONDAY_MORNING)) as client:
        form = {**drawn_form(client), **answers()}
        failed = client.post("/concerns/new", data=form)
        # Nothing stored, and the learner's words are on the page to send again.
        assert failed.status_code == 503 and "has not been sent" in failed.text
        assert answers()["description"] in failed.text
        assert "<title>Error: " in failed.text
        assert concern_count(engine) == 0
        confirmed(client, client.post("/concerns/new", data=form))
    assert concern_count(engine) == 1


def test_a_second_sending_waiting_on_a_failed_first_stores_the_form_itself(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = web_form.receive_concern
    calls: list[int] = []
    release = threading.Event()

    def first_fails(**kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            assert release.wait(10), "the second sending never arrived"
            raise RuntimeError("database away")
        return real(**kwargs)

    monkeypatch.setattr(web_form, "receive_concern", first_fails)
    with web_client(make_app(engine, clock=lambda: MONDAY_MORNING)) as client:
        form = {**drawn_form(client), **answers()}

        async def both() -> tuple[int, int]:
            first = asyncio.ensure_future(client._client.post("/concerns/new", data=form))
            while not calls:
                await asyncio.sleep(0.01)
            second = asyncio.ensure_future(client._client.post("/concerns/new", data=form))
            await asyncio.sleep(0.2)
            release.set()
            return (await first).status_code, (await second).status_code

        first_status, second_status = client._runner.run(both())
    assert first_status == 503
    assert second_status == 303
    assert calls == [1, 1]
    assert concern_count(engine) == 1
