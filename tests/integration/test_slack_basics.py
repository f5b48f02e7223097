"""/slack/events: absent without Slack settings; every request's signature checked for real."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import select

from storage.db import transaction
from storage.tables import ChatDelivery
from tests.integration.fake_slack import signed
from tests.integration.helpers import MONDAY_MORNING, load_example_directory
from tests.integration.slack_harness import SIGNING_SECRET, SlackHarness, slack_harness
from tests.integration.webclient import make_app, web_client

CHALLENGE = json.dumps({"token": "x", "challenge": "c-123", "type": "url_verification"})


@pytest.fixture
def harness(sqlite_engine: Engine) -> Iterator[SlackHarness]:
    load_example_directory(sqlite_engine)
    with slack_harness(sqlite_engine, clock=lambda: MONDAY_MORNING) as running:
        yield running


def test_without_slack_settings_the_path_does_not_exist(sqlite_engine: Engine) -> None:
    app = make_app(sqlite_engine, clock=lambda: MONDAY_MORNING)
    with web_client(app) as client:
        answer = client.post("/slack/events", content=CHALLENGE)
    assert answer.status_code == 404


def test_a_signed_url_verification_is_answered(harness: SlackHarness) -> None:
    answer = harness.post(CHALLENGE, content_type="application/json")
    assert answer.status_code == 200
    assert "c-123" in answer.text


@pytest.mark.parametrize(
    "forgery",
    ["bad signature", "tampered body", "stale timestamp", "no signature"],
)
def test_a_forged_request_gets_401_and_changes_nothing(harness: SlackHarness, forgery: str) -> None:
    body = json.dumps(
        {
            "type": "event_callback",
            "event_id": "Ev0FORGED",
            "team_id": "T0EXAMPLE1",
            "event": {"type": "message", "channel_type": "im", "user": "U0LEARNER", "text": "hi"},
        }
    )
    headers: dict[str, str] = {}
    at = None
    if forgery == "bad signature":
        headers = {"X-Slack-Signature": "v0=" + "0" * 64}
    elif forgery == "stale timestamp":
        at = time.time() - 6 * 60
    elif forgery == "no signature":
        headers = {"X-Slack-Signature": ""}
    if forgery == "tampered body":
        # Signed for the original body; another one is sent.
        sent = {"Content-Type": "application/json", **signed(body, secret=SIGNING_SECRET)}
        answer = harness.web.post(
            "/slack/events", content=body.replace("hi", "hello").encode(), headers=sent
        )
    else:
        answer = harness.post(body, content_type="application/json", at=at, headers=headers)
    assert answer.status_code == 401
    with transaction(harness.engine) as session:
        assert session.exec(select(func.count()).select_from(ChatDelivery)).one() == 0
    assert [call.method for call in harness.fake.calls if call.method != "auth.test"] == []


def test_slack_may_send_a_large_modal_back_but_not_an_unbounded_one(harness: SlackHarness) -> None:
    """A modal's submission carries its whole view (a directory's option lists), well over the
    learner pages' 256 KiB; Slack's path allows 2 MiB and no more."""
    large = json.dumps(
        {"token": "x", "challenge": "c-large", "type": "url_verification", "pad": "x" * 500_000}
    )
    assert harness.post(large, content_type="application/json").status_code == 200
    too_large = json.dumps(
        {"token": "x", "challenge": "c-huge", "type": "url_verification", "pad": "x" * 2_200_000}
    )
    assert harness.post(too_large, content_type="application/json").status_code == 413
