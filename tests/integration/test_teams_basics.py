"""/api/messages: absent without Teams settings; authenticated by the SDK; repeats have one
effect; what the bot sends goes to the service URL Teams named."""

from __future__ import annotations

from collections.abc import Iterator

import jwt
import pytest
from microsoft_agents.activity import Activity
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import select

from storage.db import transaction
from storage.tables import ChatDelivery, TeamsConversation
from tests.integration.fake_teams import TeamsUser, message
from tests.integration.helpers import MONDAY_MORNING, load_example_directory
from tests.integration.teams_harness import APP_ID, TeamsHarness, teams_harness
from tests.integration.webclient import make_app, web_client

LEARNER = TeamsUser(
    teams_id="29:1learner",
    aad_object_id="6a1e0000-0000-4000-8000-00000000aa01",
    name="Sam Learner",
    email="sam.learner@nhs.example",
)


@pytest.fixture
def harness(sqlite_engine: Engine) -> Iterator[TeamsHarness]:
    load_example_directory(sqlite_engine)
    with teams_harness(sqlite_engine, clock=lambda: MONDAY_MORNING) as running:
        yield running


@pytest.fixture
def strict(sqlite_engine: Engine) -> Iterator[TeamsHarness]:
    load_example_directory(sqlite_engine)
    with teams_harness(sqlite_engine, clock=lambda: MONDAY_MORNING, strict=True) as running:
        yield running


def _counts(engine: Engine) -> tuple[int, int]:
    with transaction(engine) as session:
        deliveries = session.exec(select(func.count()).select_from(ChatDelivery)).one()
        conversations = session.exec(select(func.count()).select_from(TeamsConversation)).one()
    return int(deliveries), int(conversations)


def test_without_teams_settings_the_path_does_not_exist(sqlite_engine: Engine) -> None:
    app = make_app(sqlite_engine, clock=lambda: MONDAY_MORNING)
    with web_client(app) as client:
        answer = client.post("/api/messages", json={"type": "message"})
    assert answer.status_code == 404


def test_a_message_is_answered_in_the_persons_chat(harness: TeamsHarness) -> None:
    answer = harness.say(LEARNER, "hello")
    assert answer.status_code in (200, 201, 202)
    sent = harness.fake.sent(LEARNER.conversation_id)
    assert sent, "the bot answered nowhere"
    assert all(call.authorization in (None, "") for call in harness.fake.calls)


def test_the_conversation_is_remembered_for_later_messages(harness: TeamsHarness) -> None:
    harness.install(LEARNER)
    with transaction(harness.engine) as session:
        row = session.exec(
            select(TeamsConversation).where(
                TeamsConversation.aad_object_id == LEARNER.aad_object_id
            )
        ).one()
    assert row.teams_user_id == LEARNER.teams_id
    assert row.reference["serviceUrl"] == harness.fake.url
    assert row.reference["conversation"]["id"] == LEARNER.conversation_id


def test_a_repeated_activity_has_one_effect(harness: TeamsHarness) -> None:
    harness.say(LEARNER, "hello", activity_id="repeat-1")
    first = len(harness.fake.sent())
    again = harness.say(LEARNER, "hello", activity_id="repeat-1")
    assert again.status_code in (200, 201, 202)
    assert len(harness.fake.sent()) == first


def test_a_proactive_message_reaches_a_remembered_conversation(harness: TeamsHarness) -> None:
    harness.install(LEARNER)
    with transaction(harness.engine) as session:
        reference = session.exec(select(TeamsConversation)).one().reference
    sent_id = harness.web.run(
        harness.bot.send_to(reference, Activity(type="message", text="A reminder"))
    )
    assert sent_id
    assert any(
        body.get("text") == "A reminder" for body in harness.fake.sent(LEARNER.conversation_id)
    )


def test_not_an_activity_gets_400_and_changes_nothing(harness: TeamsHarness) -> None:
    before = _counts(harness.engine)
    answer = harness.web.post(
        "/api/messages", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400
    answer = harness.web.post("/api/messages", json={"type": "message"})
    assert answer.status_code == 400
    assert _counts(harness.engine) == before
    assert harness.fake.calls == []


def _forged(kind: str) -> str:
    claims = {"aud": APP_ID, "iss": "https://api.botframework.com", "serviceurl": "http://x"}
    key = "a-forger-s-own-key-that-is-long-enough-for-hs256"
    if kind == "no key id":
        return jwt.encode(claims, key, algorithm="HS256")
    if kind == "not a token":
        return "not-a-token"
    raise AssertionError(kind)


@pytest.mark.parametrize("how", ["no token", "not a token", "no key id", "basic scheme"])
def test_without_valid_authentication_gets_401_and_changes_nothing(
    strict: TeamsHarness, how: str
) -> None:
    activity = message(LEARNER, "let me in", service_url=strict.fake.url)
    headers: dict[str, str] = {}
    if how in ("not a token", "no key id"):
        headers["Authorization"] = "Bearer " + _forged(how)
    elif how == "basic scheme":
        headers["Authorization"] = "Basic dXNlcjpwYXNz"
    before = _counts(strict.engine)
    answer = strict.post(activity, **headers)
    assert answer.status_code == 401
    assert _counts(strict.engine) == before
    assert strict.fake.calls == []
