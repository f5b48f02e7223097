"""An unexpected error on any page: an NHS page for people, bare JSON for machines, both through
the real middleware (security headers, no-store) and logged with their traceback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from app.staff.auth import STAFF_COOKIE
from intake.web.security import CONTENT_SECURITY_POLICY
from storage.staff import TOKEN_PREFIX
from tests.integration.helpers import MONDAY_MORNING, load_example_directory
from tests.integration.webclient import WebClient, make_app, web_client

# Stands for whatever an exception may carry: it must reach neither the page nor the log line.
INTERNAL_DETAIL = "db-host.internal:5432 user=concerns password=hunter2"


@pytest.fixture
def app(sqlite_engine: Engine) -> FastAPI:
    load_example_directory(sqlite_engine)
    app = make_app(sqlite_engine, clock=lambda: MONDAY_MORNING)

    # Routes made to fail, behind every middleware the real ones have.
    async def fails() -> None:
        raise RuntimeError(INTERNAL_DETAIL)

    async def fails_with_token(token: str) -> None:
        raise RuntimeError(INTERNAL_DETAIL)

    for path in ("/broken", "/concerns/broken", "/staff/broken", "/api/v1/broken", "/slack/broken"):
        app.add_api_route(path, fails, methods=["GET", "POST"])
    # Like a status link: the path itself carries a secret.
    app.add_api_route("/concerns/broken/link/{token}", fails_with_token, methods=["GET"])
    return app


@pytest.fixture
def client(app: FastAPI) -> Iterator[WebClient]:
    # As a browser meets it: what the server sends, not the exception.
    with web_client(app, raise_app_exceptions=False) as client:
        yield client


@contextmanager
def database_down(engine: Engine) -> Iterator[None]:
    """Every statement fails, as when the database stops answering."""

    def refuse(*_: Any) -> None:
        raise OperationalError(INTERNAL_DETAIL, None, Exception(INTERNAL_DETAIL))

    event.listen(engine, "before_cursor_execute", refuse)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", refuse)


def assert_error_page(page: Any) -> None:
    assert page.status_code == 500
    assert page.headers["content-type"].startswith("text/html")
    text = page.text
    assert "Sorry, there is a problem with the service" in text
    assert "Try again later." in text
    assert "nhsuk-header" in text and "<title>Sorry, there is a problem with the service" in text
    assert INTERNAL_DETAIL not in text and "Traceback" not in text
    assert "RuntimeError" not in text and "OperationalError" not in text
    assert_security_headers(page)


def assert_security_headers(page: Any) -> None:
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("path", ["/broken", "/concerns/broken", "/staff/broken"])
def test_an_unexpected_error_on_a_page_gets_the_nhs_error_page(
    client: WebClient, path: str
) -> None:
    assert_error_page(client.get(path))
    assert_error_page(client.post(path))


@pytest.mark.parametrize("path", ["/api/v1/broken", "/slack/broken"])
def test_an_unexpected_error_on_a_machine_path_gets_bare_json(client: WebClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 500
    assert answer.json() == {"detail": "Internal Server Error"}
    assert INTERNAL_DETAIL not in answer.text
    assert_security_headers(answer)


def test_the_status_look_up_with_the_database_down_gets_the_error_page(
    client: WebClient, sqlite_engine: Engine
) -> None:
    token = client.csrf("/concerns/status")
    with database_down(sqlite_engine):
        page = client.post(
            "/concerns/status",
            data={"csrf_token": token, "reference": "LC-2026-000001", "code": "x" * 20},
        )
    assert_error_page(page)


def test_a_staff_page_and_the_api_with_the_database_down(
    client: WebClient, sqlite_engine: Engine
) -> None:
    client.set_cookie(STAFF_COOKIE, "a-session")
    with database_down(sqlite_engine):
        assert_error_page(client.get("/staff"))
        answer = client.get(
            "/api/v1/concerns", headers={"Authorization": f"Bearer {TOKEN_PREFIX}a-token"}
        )
    assert answer.status_code == 500 and answer.json() == {"detail": "Internal Server Error"}
    assert_security_headers(answer)


def test_the_error_is_logged_with_its_traceback_and_route_only(
    client: WebClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        client.get("/concerns/broken/link/SECRET-TOKEN-VALUE?reference=LC-2026-000001")
    logged = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(logged) == 1
    record = logged[0]
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    message = record.getMessage()
    assert "GET /concerns/broken/link/{token}" in message
    assert INTERNAL_DETAIL not in message and "LC-2026-000001" not in message
    assert "SECRET-TOKEN-VALUE" not in message
