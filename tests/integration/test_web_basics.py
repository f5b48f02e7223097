"""What every learner page shares: the start page, local assets, headers, limits, error pages."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from intake.web.security import (
    CONTENT_SECURITY_POLICY,
    MAX_BODY_BYTES,
    STRICT_TRANSPORT_SECURITY,
)
from tests.integration.helpers import MONDAY_MORNING, load_example_directory
from tests.integration.webclient import WebClient, make_app, web_client


@pytest.fixture
def client(sqlite_engine: Engine) -> Iterator[WebClient]:
    load_example_directory(sqlite_engine)
    with web_client(make_app(sqlite_engine, clock=lambda: MONDAY_MORNING)) as client:
        yield client


def test_the_start_page_explains_the_pathways_and_confidentiality(client: WebClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    text = page.text
    for words in (
        "Your placement",
        "Your school or university",
        "NHS England",
        "incident reporting system",
        "Named:",
        "Confidential:",
        "Anonymous:",
        'href="/concerns/new"',
    ):
        assert words in text
    assert "<title>Raise a concern about your training placement" in text


def test_every_page_has_the_security_headers(client: WebClient) -> None:
    page = client.get("/")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-frame-options"] == "DENY"
    # Served over plain http (the embedded default) it would bind nothing: no HSTS.
    assert "strict-transport-security" not in page.headers


def test_served_at_an_https_address_the_browser_is_told_to_keep_to_https(
    sqlite_engine: Engine,
) -> None:
    load_example_directory(sqlite_engine)
    app = make_app(
        sqlite_engine, clock=lambda: MONDAY_MORNING, public_url="https://concerns.example.nhs.uk"
    )
    with web_client(app, base_url="https://concerns.example.nhs.uk") as client:
        for path in ("/", "/concerns/new", "/staff/sign-in", "/no-such-page"):
            page = client.get(path)
            assert page.headers["strict-transport-security"] == STRICT_TRANSPORT_SECURITY, path


def test_pages_have_no_inline_script_and_name_no_other_host(client: WebClient) -> None:
    text = client.get("/").text
    assert "<script>" not in text
    assert "<script " in text and all('src="/assets/' in tag for tag in text.split("<script ")[1:])
    assert "https://" not in text and "http://" not in text.replace("http://www.w3.org", "")


def test_assets_are_served_locally_without_external_fonts(client: WebClient) -> None:
    css = client.get("/assets/nhsuk-frontend.min.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert b"@font-face" not in css.content and b"assets.nhs.uk" not in css.content
    assert b".nhsuk-header" in css.content
    js = client.get("/assets/nhsuk-frontend.min.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert client.get("/assets/app/app.js").status_code == 200
    assert client.get("/assets/app/js-enabled.js").status_code == 200
    assert client.get("/assets/images/favicon.svg").status_code == 200
    cached = client.get("/assets/app/app.js", headers={"if-none-match": js.headers["etag"]})
    assert cached.status_code == 200  # another file's etag does not match
    again = client.get("/assets/app/app.js")
    assert (
        client.get(
            "/assets/app/app.js", headers={"if-none-match": again.headers["etag"]}
        ).status_code
        == 304
    )


@pytest.mark.parametrize(
    "path", ["/assets/../app/settings.py", "/assets/%2e%2e/pyproject.toml", "/assets/nope.css"]
)
def test_only_the_listed_assets_are_served(client: WebClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_an_unknown_page_gets_an_nhs_page_not_found(client: WebClient) -> None:
    page = client.get("/concerns/nowhere")
    assert page.status_code == 404
    assert "Page not found" in page.text and "nhsuk-header" in page.text
    assert page.headers["cache-control"] == "no-store"


def test_a_machine_path_keeps_json_errors(client: WebClient) -> None:
    page = client.get("/api/v1/nothing-here")
    assert page.status_code == 404 and page.json() == {"detail": "Not Found"}


def test_a_body_over_the_limit_gets_413(client: WebClient) -> None:
    too_big = b"x" * (MAX_BODY_BYTES + 1)
    declared = client.post("/concerns/new", content=too_big)
    assert declared.status_code == 413
    # Sent in chunks, without a length: counted as it arrives.

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(5):
            yield b"y" * (MAX_BODY_BYTES // 4)

    streamed = client.post("/concerns/new", content=chunks())
    assert streamed.status_code == 413


def test_a_body_over_the_limit_gets_413_where_the_framework_reads_it(client: WebClient) -> None:
    """The staff API's JSON is read by FastAPI, which answers any failure to read a body with
    its own 400: a body found too large as it arrives still gets the 413."""

    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"text": "'
        for _ in range(5):
            yield b"y" * (MAX_BODY_BYTES // 4)
        yield b'"}'

    streamed = client.post(
        "/api/v1/concerns/LC-2026-000001/feedback",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert streamed.status_code == 413
    assert streamed.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "path",
    [
        "/concerns/status",
        "/concerns/status/information",
        "/concerns/status/satisfied",
        "/concerns/status/concerned",
        "/concerns/status/sign-out",
        "/concerns/change-email",
        "/staff/sign-in",
    ],
)
def test_a_body_over_the_limit_that_is_not_a_form_gets_413(client: WebClient, path: str) -> None:
    """Read whole before the form is looked at: a body of another type would otherwise go
    unread, and be refused for its missing CSRF token instead."""

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(5):
            yield b"y" * (MAX_BODY_BYTES // 4)

    streamed = client.post(path, content=chunks(), headers={"content-type": "text/plain"})
    assert streamed.status_code == 413
