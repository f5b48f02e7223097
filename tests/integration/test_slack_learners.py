"""Learners in Slack, end to end through signed requests: the form (slash command, shortcut,
direct message), the concern it raises, the DM thread, App Home and the feedback buttons."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from sqlalchemy import create_engine, func
from sqlalchemy.engine import Engine
from sqlmodel import select

from bot import slack_learners
from bot.slack_learner_views import ANSWER, NOTICE_BLOCK
from escalation.actions import (
    ActionRefused,
    Actor,
    learner_remains_concerned,
    learner_satisfied,
    record_feedback,
    reopen_concern,
)
from intake.web.form_fields import NOT_LISTED
from notifications.outbox import DispatchReport
from notifications.slack_dispatch import dispatch_client, dispatch_due_slack
from notifications.slack_learners import FEEDBACK_ACTIONS_BLOCK
from notifications.slack_text import (
    CONCERN_MODAL,
    LEARNER_REMAINS_CONCERNED,
    LEARNER_SATISFIED,
    OPEN_CONCERN_MODAL,
)
from storage import repositories
from storage.db import transaction
from storage.outbox import SqlOutboxStore
from storage.tables import ChatDelivery, Concern, Event, Learner, OutboxMessage
from tests.integration.fake_slack import TEAM_ID, Call
from tests.integration.helpers import MONDAY_MORNING, load_example_directory, policy
from tests.integration.slack_harness import BOT_TOKEN, SlackHarness, slack_harness

LEARNER = "U0LEARNER"
DM = "D" + LEARNER  # the fake names a DM with a user after them
INJECTION = "<!channel> <@U123> <https://x|y>"

T = TypeVar("T")


@pytest.fixture
def harness(sqlite_engine: Engine) -> Iterator[SlackHarness]:
    load_example_directory(sqlite_engine)
    with slack_harness(sqlite_engine, clock=lambda: MONDAY_MORNING) as running:
        # A member of the bot's workspace whose email Slack has confirmed.
        running.fake.answers["users.info"] = lambda args: {
            "ok": True,
            "user": {
                "id": args.get("user"),
                "team_id": TEAM_ID,
                "is_email_confirmed": True,
                "profile": {"real_name": "Priya Testlearner", "email": "priya@example.nhs.uk"},
            },
        }
        yield running


def eventually(check: Callable[[], T | None], timeout: float = 10.0) -> T:
    """What `check` returns once it returns something (Bolt works after answering Slack); an
    empty list is nothing yet, so a check for rows waits for them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found is not None and found is not False and found != []:
            return found
        time.sleep(0.02)
    raise AssertionError("the expected effect did not happen in time")


SELECTS = {"group", "organisation", "department"}
RADIOS = {"frequency", "harm", "raised-before", "about-supervisor", "confidentiality"}


def good_answers(**changes: str) -> dict[str, str]:
    answers = {
        "group": "foundation",
        "organisation": "vale-general",
        "department": "vale-general/emergency",
        "description": "Regional teaching keeps being cancelled. It happened again this week.",
        "frequency": "occasionally",
        "harm": "learners_affected",
        "raised-before": "no",
        "about-supervisor": "no",
        "confidentiality": "named",
        "name": "Priya Testlearner",
        "email": "priya@example.nhs.uk",
    }
    answers.update(changes)
    return {name: value for name, value in answers.items() if value}


def submission(
    answers: dict[str, str],
    *,
    user: str = LEARNER,
    view_id: str = "V0FORM",
    view_hash: str = "h1",
    blocks: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in answers.items():
        if name in SELECTS:
            element = {"type": "static_select", "selected_option": {"value": value}}
        elif name in RADIOS:
            element = {"type": "radio_buttons", "selected_option": {"value": value}}
        elif name == "cannot-raise-locally":
            element = {"type": "checkboxes", "selected_options": [{"value": value}]}
        else:
            element = {"type": "plain_text_input", "value": value}
        values[name] = {ANSWER: element}
    return {
        "type": "view_submission",
        "team": {"id": TEAM_ID},
        "user": {"id": user, "team_id": TEAM_ID},
        "api_app_id": "A0CONCERNS",
        "trigger_id": "1.trigger",
        "view": {
            "id": view_id,
            "hash": view_hash,
            "type": "modal",
            "callback_id": CONCERN_MODAL,
            "team_id": TEAM_ID,
            "blocks": blocks or [],
            "state": {"values": values},
        },
    }


def button(
    action_id: str, value: str, *, user: str = LEARNER, message: dict[str, Any] | None = None
) -> dict[str, Any]:
    message = message or {"ts": "1700000001.000001", "text": "", "blocks": []}
    return {
        "type": "block_actions",
        "team": {"id": TEAM_ID},
        "user": {"id": user, "team_id": TEAM_ID},
        "api_app_id": "A0CONCERNS",
        "trigger_id": "2.trigger",
        "container": {"type": "message", "message_ts": message["ts"], "channel_id": DM},
        "channel": {"id": DM},
        "message": message,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": FEEDBACK_ACTIONS_BLOCK,
                "value": value,
                "action_ts": "1700000002.000002",
            }
        ],
    }


def dm(text: str, *, ts: str, thread_ts: str | None = None, user: str = LEARNER) -> dict[str, Any]:
    event = {
        "type": "message",
        "channel_type": "im",
        "channel": DM,
        "user": user,
        "text": text,
        "ts": ts,
        "event_ts": ts,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def concerns(engine: Engine) -> list[Concern]:
    with transaction(engine) as session:
        return list(repositories.all_concerns(session))


def dispatch(harness: SlackHarness) -> DispatchReport:
    """One pass of the Slack outbox dispatcher, as `concerns serve` runs it."""
    client = dispatch_client(token=BOT_TOKEN, api_url=harness.fake.url)
    return dispatch_due_slack(
        store=SqlOutboxStore(harness.engine), client=client, now=MONDAY_MORNING
    )


def to_learner(harness: SlackHarness) -> list[Call]:
    """What was posted in the learner's DM (by the dispatcher to their user id, or by the bot
    into the DM channel), in order."""
    return [
        call
        for call in harness.fake.called("chat.postMessage")
        if call.args.get("channel") in (LEARNER, DM)
    ]


def saved(harness: SlackHarness) -> Concern:
    """The concern the form raised, once it is saved (Bolt saves it after answering Slack)."""

    def found() -> Concern | None:
        with transaction(harness.engine) as session:
            return next(iter(repositories.all_concerns(session)), None)

    return eventually(found)


def raise_concern(harness: SlackHarness, **changes: str) -> Concern:
    """Send the form; the concern once its confirmation has been posted from the outbox."""
    answer = harness.interact(submission(good_answers(**changes)))
    assert answer.status_code == 200
    assert answer.json()["response_action"] == "update"
    concern = saved(harness)
    assert dispatch(harness).failed == 0
    return concern


def confirmation_of(harness: SlackHarness, concern: Concern) -> OutboxMessage:
    """The learner's Slack confirmation of a concern, as the outbox holds it."""
    with transaction(harness.engine) as session:
        [row] = [
            row
            for row in repositories.outbox_of(session, concern.id or 0)
            if (row.channel, row.kind) == ("slack", "learner_ack")
        ]
    return row


def thread_of(harness: SlackHarness, concern: Concern) -> str:
    """The ts of the posted confirmation: the thread in which replies are added."""
    row = confirmation_of(harness, concern)
    assert row.status == "sent" and row.external_ref is not None
    channel, _, ts = row.external_ref.partition(":")
    assert channel == DM
    return ts


# --- opening the form -------------------------------------------------------------------------


def test_the_slash_command_opens_the_form_with_the_directory(harness: SlackHarness) -> None:
    answer = harness.command(
        command="/concern", user_id=LEARNER, team_id=TEAM_ID, trigger_id="3.trigger", text=""
    )
    assert answer.status_code == 200
    [opened] = harness.fake.wait_for("views.open")
    view = opened.args["view"]
    assert opened.args["trigger_id"] == "3.trigger"
    assert view["callback_id"] == CONCERN_MODAL
    blocks = {block.get("block_id"): block for block in view["blocks"]}
    organisations = blocks["organisation"]["element"]["options"]
    assert {
        "text": {"type": "plain_text", "text": "Riverside Surgery"},
        "value": "riverside-surgery",
    } in organisations
    assert organisations[-1]["value"] == NOT_LISTED
    groups = blocks["department"]["element"]["option_groups"]
    vale = next(group for group in groups if group["label"]["text"].startswith("Vale General"))
    assert {
        "value": "vale-general/emergency",
        "text": {"type": "plain_text", "text": "Emergency Department"},
    } in vale["options"]
    # Contact details start from the learner's Slack profile.
    assert blocks["name"]["element"]["initial_value"] == "Priya Testlearner"
    assert blocks["email"]["element"]["initial_value"] == "priya@example.nhs.uk"
    assert concerns(harness.engine) == []


def test_the_global_shortcut_opens_the_same_form(harness: SlackHarness) -> None:
    harness.interact(
        {
            "type": "shortcut",
            "callback_id": "raise_concern",
            "team": {"id": TEAM_ID},
            "user": {"id": LEARNER},
            "trigger_id": "4.trigger",
        }
    )
    [opened] = harness.fake.wait_for("views.open")
    assert opened.args["view"]["callback_id"] == CONCERN_MODAL


def test_the_form_and_its_choices_do_not_wait_for_a_slow_database(
    harness: SlackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A select that loads as you type needs its choices in Slack's 3-second answer, and a form
    must open within 3 seconds of the click: both come from the directory as last read, while
    reading it again is stuck."""
    harness.command(command="/concern", user_id=LEARNER, team_id=TEAM_ID, trigger_id="1.t")
    harness.fake.wait_for("views.open")  # the directory has been read once
    # ... and is out of date at once: each use asks for it to be read again, which is stuck.
    monkeypatch.setattr(slack_learners, "DIRECTORY_FRESH_SECONDS", 0.0)
    stuck, reading = threading.Event(), threading.Event()
    real_places = repositories.active_places

    def slow_places(*args: Any, **kwargs: Any) -> Any:
        reading.set()
        stuck.wait(20)
        return real_places(*args, **kwargs)

    monkeypatch.setattr(repositories, "active_places", slow_places)
    try:
        began = time.monotonic()
        answer = harness.interact(
            {
                "type": "block_suggestion",
                "team": {"id": TEAM_ID},
                "user": {"id": LEARNER},
                "api_app_id": "A0CONCERNS",
                "action_id": ANSWER,
                "block_id": "organisation",
                "value": "vale",
                "view": {"id": "V0FORM", "callback_id": CONCERN_MODAL, "type": "modal"},
            }
        )
        # Within Slack's 3 s, and far under the 20 s the database is stuck for.
        assert time.monotonic() - began < 2.9
        assert answer.status_code == 200
        assert reading.wait(5), "reading the directory again was asked for"
        names = [option["text"]["text"] for option in answer.json()["options"]]
        assert "Vale General Hospitals NHS Trust" in names
        assert "Riverside Surgery" not in names
        began = time.monotonic()
        harness.command(command="/concern", user_id=LEARNER, team_id=TEAM_ID, trigger_id="2.t")
        harness.fake.wait_for("views.open", 2)
        assert time.monotonic() - began < 2.9
    finally:
        stuck.set()


# --- sending the form -------------------------------------------------------------------------


def test_the_form_raises_a_slack_concern_and_the_learner_gets_a_dm(harness: SlackHarness) -> None:
    harness.interact(submission(good_answers()))
    concern = saved(harness)
    assert concern.channel == "slack"
    assert concern.confidentiality == "named"
    assert concern.organisation_id is not None and concern.department_id is not None
    with transaction(harness.engine) as session:
        learner = session.get(Learner, concern.learner_id)
        assert learner is not None
        assert learner.slack_user_id == LEARNER
        assert learner.email == "priya@example.nhs.uk"
        kinds = {
            (row.channel, row.kind) for row in repositories.outbox_of(session, concern.id or 0)
        }
    # The confirmation is an outbox message like any other: the bot posts nothing itself.
    assert {("email", "learner_ack"), ("slack", "learner_ack")} <= kinds
    [updated] = harness.fake.wait_for("views.update")
    assert concern.reference in json.dumps(updated.args["view"])
    assert "here in Slack and by email" in json.dumps(updated.args["view"])
    harness.settle()
    assert to_learner(harness) == []

    dispatch(harness)
    dispatch(harness)  # a second pass (or a second instance) posts nothing again
    [posted] = to_learner(harness)
    assert posted.args["channel"] == LEARNER
    shown = json.dumps(posted.args["blocks"])
    assert concern.reference in shown
    assert "reply in this thread" in shown
    assert "this email" not in shown
    # Where it was posted is kept with the row: that names the thread replies are added from.
    assert thread_of(harness, concern).startswith("1700000000.")


def test_a_concern_raised_in_slack_is_counted_in_metrics(harness: SlackHarness) -> None:
    raised = 'concerns_raised_total{channel="slack"}'
    assert f"{raised} 0.0" in harness.web.get("/metrics").text
    harness.interact(submission(good_answers()))
    harness.fake.wait_for("views.update")  # the learner is told once it is saved and counted
    assert f"{raised} 1.0" in harness.web.get("/metrics").text


def test_a_form_error_is_returned_on_its_block_and_stores_nothing(harness: SlackHarness) -> None:
    answers = good_answers(description="", email="not an email")
    answer = harness.interact(submission(answers))
    assert answer.status_code == 200
    body = answer.json()
    assert body["response_action"] == "errors"
    assert set(body["errors"]) == {"description", "email"}
    assert concerns(harness.engine) == []
    assert harness.fake.called("chat.postMessage") == []


def test_a_department_of_another_organisation_is_an_error(harness: SlackHarness) -> None:
    answer = harness.interact(
        submission(good_answers(department="riverside-surgery/general-practice"))
    )
    assert answer.json()["response_action"] == "errors"
    assert "department" in answer.json()["errors"]
    assert concerns(harness.engine) == []


def test_anonymous_is_refused_in_slack_with_the_web_form_offered(harness: SlackHarness) -> None:
    answer = harness.interact(submission(good_answers(confidentiality="anonymous")))
    body = answer.json()
    assert body["response_action"] == "errors"
    refusal = body["errors"]["confidentiality"]
    assert "Slack knows who you are" in refusal
    assert policy().public_url.rstrip("/") + "/concerns/new" in refusal
    assert concerns(harness.engine) == []


def opened_form(harness: SlackHarness) -> list[dict[str, Any]]:
    """The form's blocks as /concern opened it (Slack sends them back with each submission)."""
    harness.command(
        command="/concern", user_id=LEARNER, team_id=TEAM_ID, trigger_id="9.trigger", text=""
    )
    [opened] = harness.fake.wait_for("views.open")
    return list(opened.args["view"]["blocks"])


def database_down(harness: SlackHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every use of the database by the bot fails, as in an outage."""

    def refuse() -> sqlite3.Connection:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(harness.bot, "engine", create_engine("sqlite://", creator=refuse))


def stored(engine: Engine) -> tuple[int, int, int]:
    """How many concerns, events and outbox messages the database holds."""
    with transaction(engine) as session:
        return tuple(  # type: ignore[return-value]
            session.exec(select(func.count()).select_from(table)).one()
            for table in (Concern, Event, OutboxMessage)
        )


KEPT_ANSWERS = {
    "description": "Teaching is cancelled <again> & nobody says why.\nSecond line.",
    "site": "North Wing",
    "cannot-raise-locally": "yes",
    "frequency": "often",
}


def test_a_concern_that_cannot_be_saved_comes_back_with_every_answer_kept(
    harness: SlackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = opened_form(harness)
    database_down(harness, monkeypatch)
    answer = harness.interact(submission(good_answers(**KEPT_ANSWERS), blocks=blocks))
    assert answer.json()["response_action"] == "update"  # "Sending…" at once

    [shown] = harness.fake.wait_for("views.update")
    assert shown.args["view_id"] == "V0FORM"
    form = shown.args["view"]
    assert form["callback_id"] == CONCERN_MODAL and form["submit"]["text"] == "Send"
    notice = form["blocks"][0]
    assert notice["block_id"] == NOTICE_BLOCK
    assert "could not save your concern just now" in notice["text"]["text"]
    assert "Nothing you wrote is lost" in notice["text"]["text"]
    elements = {b["block_id"]: b["element"] for b in form["blocks"] if b["type"] == "input"}
    assert elements["description"]["initial_value"] == KEPT_ANSWERS["description"]
    assert elements["site"]["initial_value"] == "North Wing"
    assert elements["name"]["initial_value"] == "Priya Testlearner"
    assert elements["group"]["initial_option"]["value"] == "foundation"
    assert elements["organisation"]["initial_option"]["value"] == "vale-general"
    assert elements["department"]["initial_option"]["value"] == "vale-general/emergency"
    assert elements["frequency"]["initial_option"]["value"] == "often"
    assert elements["confidentiality"]["initial_option"]["value"] == "named"
    assert [o["value"] for o in elements["cannot-raise-locally"]["initial_options"]] == ["yes"]
    harness.settle()
    assert stored(harness.engine) == (0, 0, 0)
    assert to_learner(harness) == []

    # The database is back and the learner presses Send again (Slack gives the view a new hash).
    monkeypatch.undo()
    again = harness.interact(
        submission(good_answers(**KEPT_ANSWERS), view_hash="h2", blocks=form["blocks"])
    )
    assert again.json()["response_action"] == "update"
    concern = saved(harness)
    assert concern.description == KEPT_ANSWERS["description"]
    received = harness.fake.wait_for("views.update", 2)[1]
    assert concern.reference in json.dumps(received.args["view"])
    assert len(concerns(harness.engine)) == 1


def test_when_the_form_cannot_be_shown_again_the_learner_gets_their_words_in_a_dm(
    harness: SlackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = opened_form(harness)
    database_down(harness, monkeypatch)
    harness.fake.answers["views.update"] = lambda args: {"ok": False, "error": "not_found"}
    harness.interact(submission(good_answers(**KEPT_ANSWERS), blocks=blocks))

    [dm_back] = eventually(lambda: to_learner(harness) or None)
    assert dm_back.args["channel"] == LEARNER
    text = dm_back.args["text"]
    assert "could not save" in text and "nothing has been recorded" in text
    # Their own words, escaped so that nothing in them is read as Slack markup.
    assert ">Teaching is cancelled &lt;again&gt; &amp; nobody says why.\n>Second line." in text
    assert ">North Wing" in text
    harness.settle()
    assert stored(harness.engine) == (0, 0, 0)


def test_a_confidential_concern_keeps_the_slack_id_for_the_learner_only(
    harness: SlackHarness,
) -> None:
    concern = raise_concern(harness, confidentiality="confidential")
    assert concern.confidentiality == "confidential"
    with transaction(harness.engine) as session:
        contact_rows = [
            row
            for row in repositories.outbox_of(session, concern.id or 0)
            if row.recipient_role != "learner"
        ]
    assert contact_rows
    for row in contact_rows:
        assert LEARNER not in row.body_text and "Priya" not in row.body_text


# --- direct messages --------------------------------------------------------------------------


def test_a_direct_message_gets_a_button_that_opens_the_form_prefilled(
    harness: SlackHarness,
) -> None:
    written = "No senior cover on nights &lt;again&gt;"
    harness.fake.answers["conversations.history"] = lambda args: {
        "ok": True,
        "messages": [{"type": "message", "user": LEARNER, "text": written, "ts": args["latest"]}],
    }
    harness.event(dm(written, ts="1700000100.000100"), event_id="Ev0DM1")
    [reply] = harness.fake.wait_for("chat.postMessage")
    assert reply.args["channel"] == DM
    [actions] = [block for block in reply.args["blocks"] if block["type"] == "actions"]
    [open_button] = actions["elements"]
    assert open_button["action_id"] == OPEN_CONCERN_MODAL
    assert open_button["value"] == "1700000100.000100"
    assert concerns(harness.engine) == []

    harness.interact(button(OPEN_CONCERN_MODAL, open_button["value"]))
    [opened] = harness.fake.wait_for("views.open")
    blocks = {block.get("block_id"): block for block in opened.args["view"]["blocks"]}
    assert blocks["description"]["element"]["initial_value"] == "No senior cover on nights <again>"


def test_a_retried_event_has_one_effect(harness: SlackHarness) -> None:
    event = dm("Something happened on the ward", ts="1700000200.000200")
    harness.event(event, event_id="Ev0RETRY")
    harness.event(
        event,
        event_id="Ev0RETRY",
        **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"},
    )
    # A different event afterwards, so the repeat has had its chance to act.
    harness.event(dm("And another thing", ts="1700000300.000300"), event_id="Ev0OTHER")
    harness.fake.wait_for("chat.postMessage", 2)
    harness.settle()
    assert len(harness.fake.called("chat.postMessage")) == 2


def added_information(harness: SlackHarness, concern: Concern) -> list[Event]:
    with transaction(harness.engine) as session:
        return [
            event
            for event in repositories.events_of(session, concern.id or 0)
            if event.kind == "learner_added_information"
        ]


def test_a_reply_in_the_confirmation_thread_is_added_to_the_concern(
    harness: SlackHarness,
) -> None:
    concern = raise_concern(harness)
    [confirmation] = to_learner(harness)
    thread_ts = thread_of(harness, concern)
    reply = dm("It happened again &amp; nobody came", ts="1700000400.000400", thread_ts=thread_ts)
    harness.event(reply, event_id="Ev0THREAD")
    harness.event(reply, event_id="Ev0THREAD", **{"X-Slack-Retry-Num": "1"})

    [information] = eventually(lambda: added_information(harness, concern))
    assert information.detail["text"] == "It happened again & nobody came"
    assert information.channel == "slack"
    answered = eventually(lambda: to_learner(harness)[1:] or None)
    assert answered[0].args["thread_ts"] == thread_ts
    assert concern.reference in answered[0].args["text"]
    harness.settle()
    assert len(added_information(harness, concern)) == 1
    assert len(to_learner(harness)) == 2
    assert confirmation.args["channel"] == LEARNER


def test_a_confidential_learners_name_is_kept_from_contacts_in_the_form_and_in_replies(
    harness: SlackHarness,
) -> None:
    concern = raise_concern(
        harness,
        confidentiality="confidential",
        description="Teaching keeps being cancelled. Priya Testlearner, FY1",
    )
    assert concern.description == "Teaching keeps being cancelled. [name removed], FY1"
    signed = "Again today. <mailto:priya@example.nhs.uk|priya@example.nhs.uk>"
    reply = dm(signed, ts="1700000500.000500", thread_ts=thread_of(harness, concern))
    harness.event(reply, event_id="Ev0SIGNED")
    [information] = eventually(lambda: added_information(harness, concern))
    assert information.detail["text"] == "Again today. [name removed]"


def test_a_reply_that_cannot_be_saved_is_answered_in_its_thread(
    harness: SlackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slack had its answer before the reply was saved and never sends it again: the learner
    is told in the thread, with their words, and sending it again works."""
    concern = raise_concern(harness)
    thread_ts = thread_of(harness, concern)

    def outage(**_: Any) -> None:
        raise OSError("the database went away")

    monkeypatch.setattr("bot.slack_learners.add_learner_information", outage)
    words = "The rota &lt;still&gt; has no senior on Friday"
    harness.event(dm(words, ts="1700000410.000410", thread_ts=thread_ts), event_id="Ev0LOST")
    [told] = eventually(lambda: to_learner(harness)[1:] or None)
    assert told.args["thread_ts"] == thread_ts
    assert "not been added" in told.args["text"] and "send it again" in told.args["text"]
    assert ">The rota &lt;still&gt; has no senior on Friday" in told.args["text"]
    assert added_information(harness, concern) == []
    with transaction(harness.engine) as session:
        assert (
            session.exec(select(ChatDelivery).where(ChatDelivery.key == "event:Ev0LOST")).all()
            == []
        )

    monkeypatch.undo()
    harness.event(dm(words, ts="1700000420.000420", thread_ts=thread_ts), event_id="Ev0AGAIN")
    [information] = eventually(lambda: added_information(harness, concern))
    assert information.detail["text"] == "The rota <still> has no senior on Friday"


def test_a_long_reply_that_cannot_be_saved_is_pointed_to_not_repeated(
    harness: SlackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    concern = raise_concern(harness)
    thread_ts = thread_of(harness, concern)

    def outage(**_: Any) -> None:
        raise OSError("the database went away")

    monkeypatch.setattr("bot.slack_learners.add_learner_information", outage)
    long = "Nobody came to the ward round. " * 40
    harness.event(dm(long, ts="1700000430.000430", thread_ts=thread_ts), event_id="Ev0LONG")
    [told] = eventually(lambda: to_learner(harness)[1:] or None)
    assert "not been added" in told.args["text"]
    assert "still in this thread, just above" in told.args["text"]
    assert "Nobody came" not in told.args["text"]


def test_a_refused_reply_is_answered_with_the_reason(
    harness: SlackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    concern = raise_concern(harness)
    thread_ts = thread_of(harness, concern)

    def refuse(**_: Any) -> None:
        raise ActionRefused(f"{concern.reference} cannot take more information now")

    monkeypatch.setattr("bot.slack_learners.add_learner_information", refuse)
    harness.event(dm("More detail", ts="1700000440.000440", thread_ts=thread_ts), event_id="Ev0NO")
    [told] = eventually(lambda: to_learner(harness)[1:] or None)
    assert told.args["thread_ts"] == thread_ts
    assert "not added your message" in told.args["text"]
    assert f"{concern.reference} cannot take more information now" in told.args["text"]
    assert added_information(harness, concern) == []


def test_someone_elses_reply_in_a_thread_adds_nothing(harness: SlackHarness) -> None:
    concern = raise_concern(harness)
    harness.event(
        dm(
            "let me in",
            ts="1700000500.000500",
            thread_ts=thread_of(harness, concern),
            user="U0OTHER",
        ),
        event_id="Ev0INTRUDER",
    )
    # Treated as any other message: offered the form, nothing added.
    [offered] = eventually(lambda: to_learner(harness)[1:] or None)
    assert "thread_ts" not in offered.args
    assert OPEN_CONCERN_MODAL in json.dumps(offered.args["blocks"])
    assert added_information(harness, concern) == []


# --- App Home ---------------------------------------------------------------------------------


def test_app_home_lists_the_learners_concerns(harness: SlackHarness) -> None:
    concern = raise_concern(harness)
    harness.event(
        {"type": "app_home_opened", "user": LEARNER, "channel": DM, "tab": "home"},
        event_id="Ev0HOME",
    )
    [published] = harness.fake.wait_for("views.publish")
    assert published.args["user_id"] == LEARNER
    view = published.args["view"]
    assert view["type"] == "home"
    shown = json.dumps(view)
    assert concern.reference in shown
    assert "Open" in shown and "Feedback due by" in shown
    assert "Emergency Department" in shown
    # No concern text in Slack by default.
    assert "Regional teaching" not in shown


def test_app_home_of_someone_without_concerns(harness: SlackHarness) -> None:
    raise_concern(harness)
    harness.event(
        {"type": "app_home_opened", "user": "U0NOBODY", "channel": "DU0NOBODY", "tab": "home"},
        event_id="Ev0HOME2",
    )
    [published] = harness.fake.wait_for("views.publish")
    assert "LC-" not in json.dumps(published.args["view"])


# --- learner text stays inert -----------------------------------------------------------------


def test_mentions_and_links_in_learner_text_come_back_inert(harness: SlackHarness) -> None:
    concern = raise_concern(
        harness,
        organisation=NOT_LISTED,
        department=NOT_LISTED,
        **{"organisation-other": f"Trust {INJECTION}", "department-other": "Ward <!here>"},
    )
    assert concern.placement_text is not None and "<!channel>" in concern.placement_text
    harness.event(
        {"type": "app_home_opened", "user": LEARNER, "channel": DM, "tab": "home"},
        event_id="Ev0HOME3",
    )
    [published] = harness.fake.wait_for("views.publish")
    [confirmation] = to_learner(harness)
    for shown in (json.dumps(published.args["view"]), json.dumps(confirmation.args["blocks"])):
        assert "&lt;!channel&gt;" in shown
        for live in ("<!channel>", "<!here>", "<@U123>", "<https://x|y>"):
            assert live not in shown


# --- feedback -------------------------------------------------------------------------------


def _give_feedback(harness: SlackHarness, concern: Concern) -> OutboxMessage:
    with transaction(harness.engine) as session:
        locked = repositories.lock_concern(session, concern.id or 0)
        assert locked is not None
        record_feedback(
            session=session,
            concern=locked,
            by=Actor(kind="staff", channel="web"),
            text="We have restored the teaching rota.",
            now=MONDAY_MORNING,
            policy=harness.bot.policy,
        )
        pathway, level_round = locked.pathway, locked.level_round
    with transaction(harness.engine) as session:
        [row] = [
            row
            for row in repositories.outbox_of(session, concern.id or 0)
            if row.channel == "slack"
            and row.kind == "learner_feedback"
            and f":p{pathway}{f'r{level_round}' if level_round else ''}:" in row.idempotency_key
        ]
    return row


def posted_feedback(harness: SlackHarness, concern: Concern) -> dict[str, Any]:
    """Feedback given and its Slack message posted: the message as the learner's buttons
    send it back (its ts, text and blocks)."""
    row = _give_feedback(harness, concern)
    dispatch(harness)
    with transaction(harness.engine) as session:
        sent = session.get(OutboxMessage, row.id)
        assert sent is not None and sent.external_ref is not None and sent.payload is not None
    channel, _, ts = sent.external_ref.partition(":")
    assert channel == DM
    return {"ts": ts, "text": sent.body_text, "blocks": sent.payload["blocks"]}


def test_feedback_reaches_the_learner_in_slack_with_buttons(harness: SlackHarness) -> None:
    concern = raise_concern(harness)
    row = _give_feedback(harness, concern)
    assert row.recipient_address == LEARNER
    assert row.idempotency_key.endswith(":learner:slack")
    assert row.payload is not None
    shown = json.dumps(row.payload["blocks"])
    assert "We have restored the teaching rota" not in shown
    [actions] = [b for b in row.payload["blocks"] if b.get("block_id") == FEEDBACK_ACTIONS_BLOCK]
    buttons = {element["action_id"]: element for element in actions["elements"]}
    assert buttons[LEARNER_SATISFIED]["value"] == concern.reference
    assert buttons[LEARNER_REMAINS_CONCERNED]["value"] == concern.reference


def test_im_satisfied_closes_the_concern_once_and_updates_the_message(
    harness: SlackHarness,
) -> None:
    concern = raise_concern(harness)
    message = posted_feedback(harness, concern)
    press = button(LEARNER_SATISFIED, concern.reference, message=message)
    harness.interact(press)
    harness.interact(press)  # a double click
    [updated] = harness.fake.wait_for("chat.update")
    assert updated.args["ts"] == message["ts"]
    kept = [block.get("block_id") for block in updated.args["blocks"]]
    assert FEEDBACK_ACTIONS_BLOCK not in kept
    assert "satisfied" in json.dumps(updated.args["blocks"])

    def closed() -> Concern | None:
        with transaction(harness.engine) as session:
            row = session.get(Concern, concern.id)
            return row if row is not None and row.status == "closed" else None

    eventually(closed)
    harness.settle()
    with transaction(harness.engine) as session:
        closings = [
            e for e in repositories.events_of(session, concern.id or 0) if e.kind == "closed"
        ]
    assert len(closings) == 1
    assert len(harness.fake.called("chat.update")) == 1


def test_i_remain_concerned_moves_it_up(harness: SlackHarness) -> None:
    concern = raise_concern(harness)
    message = posted_feedback(harness, concern)
    harness.interact(button(LEARNER_REMAINS_CONCERNED, concern.reference, message=message))
    harness.fake.wait_for("chat.update")

    def moved() -> Concern | None:
        with transaction(harness.engine) as session:
            row = session.get(Concern, concern.id)
            return row if row is not None and row.pathway == concern.pathway + 1 else None

    eventually(moved)
    with transaction(harness.engine) as session:
        told = [
            row
            for row in repositories.outbox_of(session, concern.id or 0)
            if row.channel == "slack" and row.kind == "learner_escalated"
        ]
    assert [row.recipient_address for row in told] == [LEARNER]


def snapshot(harness: SlackHarness, concern: Concern) -> tuple[Any, ...]:
    """The concern's row, its audit trail and its outbox, to compare before and after."""
    with transaction(harness.engine) as session:
        row = session.get(Concern, concern.id)
        assert row is not None
        return (
            row.model_dump(),
            [event.model_dump() for event in repositories.events_of(session, concern.id or 0)],
            [message.model_dump() for message in repositories.outbox_of(session, concern.id or 0)],
        )


def ephemerals_to(harness: SlackHarness, count: int) -> list[Call]:
    return harness.fake.wait_for("chat.postEphemeral", count)


def test_buttons_from_an_earlier_level_are_refused_and_change_nothing(
    harness: SlackHarness,
) -> None:
    concern = raise_concern(harness)
    first = posted_feedback(harness, concern)
    # The learner answered elsewhere (the status page): the concern moved to pathway 2, and
    # the Slack message of pathway 1's feedback still shows its buttons.
    with transaction(harness.engine) as session:
        locked = repositories.lock_concern(session, concern.id or 0)
        assert locked is not None
        assert learner_remains_concerned(
            session=session,
            concern=locked,
            channel="web",
            now=MONDAY_MORNING,
            policy=harness.policy,
        )
    before = snapshot(harness, concern)
    harness.interact(button(LEARNER_SATISFIED, concern.reference, message=first))
    [refused] = ephemerals_to(harness, 1)
    assert refused.args["user"] == LEARNER
    assert (
        "moved on since" in refused.args["text"]
        and "nothing has been changed" in refused.args["text"]
    )
    assert snapshot(harness, concern) == before

    # Pathway 2 gives feedback: the old buttons still answer nothing, not even this new feedback.
    current = posted_feedback(harness, concern)
    before = snapshot(harness, concern)
    for action in (LEARNER_REMAINS_CONCERNED, LEARNER_SATISFIED):
        harness.interact(button(action, concern.reference, message=first))
    refusals = ephemerals_to(harness, 3)
    assert all("moved on since" in call.args["text"] for call in refusals)
    harness.settle()
    assert snapshot(harness, concern) == before
    assert harness.fake.called("chat.update") == []

    # The buttons of the current feedback work.
    harness.interact(button(LEARNER_REMAINS_CONCERNED, concern.reference, message=current))
    [updated] = harness.fake.wait_for("chat.update")
    assert updated.args["ts"] == current["ts"]

    def at_the_dean() -> Concern | None:
        with transaction(harness.engine) as session:
            row = session.get(Concern, concern.id)
            return row if row is not None and row.pathway == 3 else None

    eventually(at_the_dean)


def test_buttons_from_a_closed_round_are_refused_once_it_is_reopened(
    harness: SlackHarness,
) -> None:
    concern = raise_concern(harness)
    first = posted_feedback(harness, concern)
    with transaction(harness.engine) as session:
        locked = repositories.lock_concern(session, concern.id or 0)
        assert locked is not None
        learner_satisfied(session=session, concern=locked, channel="web", now=MONDAY_MORNING)
        reopen_concern(
            session=session,
            concern=locked,
            by=Actor(kind="staff", channel="web"),
            reason="The rota slipped again",
            now=MONDAY_MORNING,
            policy=harness.policy,
        )
    posted_feedback(harness, concern)  # the reopened round's feedback
    before = snapshot(harness, concern)
    harness.interact(button(LEARNER_REMAINS_CONCERNED, concern.reference, message=first))
    [refused] = ephemerals_to(harness, 1)
    assert "moved on since" in refused.args["text"]
    harness.settle()
    assert snapshot(harness, concern) == before
    assert harness.fake.called("chat.update") == []


def test_someone_elses_click_is_refused_and_changes_nothing(harness: SlackHarness) -> None:
    concern = raise_concern(harness)
    _give_feedback(harness, concern)
    harness.interact(button(LEARNER_SATISFIED, concern.reference, user="U0OUTSIDER"))
    [refused] = harness.fake.wait_for("chat.postEphemeral")
    assert refused.args["user"] == "U0OUTSIDER"
    with transaction(harness.engine) as session:
        row = session.get(Concern, concern.id)
        assert row is not None and row.status == "open"
        assert (
            session.exec(
                select(func.count()).select_from(Event).where(Event.kind == "closed")
            ).one()
            == 0
        )
    assert harness.fake.called("chat.update") == []


ATTACKER = "U0ATTACKER"


def test_typing_someone_elses_email_hands_their_concerns_to_nobody(harness: SlackHarness) -> None:
    """The learner record is found by the typed email; the Slack account is kept with it only
    when Slack says the address is that account's, and never replaces the one already kept."""
    victims = raise_concern(harness)
    harness.fake.answers["users.info"] = lambda args: {
        "ok": True,
        "user": {
            "id": args.get("user"),
            "team_id": TEAM_ID,
            "is_email_confirmed": True,
            "profile": {
                "real_name": "Mallory",
                "email": "mallory@example.nhs.uk"
                if args.get("user") == ATTACKER
                else "priya@example.nhs.uk",
            },
        },
    }
    answer = harness.interact(
        submission(good_answers(name="Mallory"), user=ATTACKER, view_id="V0OTHER")
    )
    assert answer.status_code == 200

    def two_concerns() -> bool:
        with transaction(harness.engine) as session:
            return len(repositories.all_concerns(session)) == 2

    eventually(two_concerns)
    with transaction(harness.engine) as session:
        learner = session.get(Learner, victims.learner_id)
        assert learner is not None
        assert learner.slack_user_id == LEARNER
        assert learner.name == "Priya Testlearner"
        assert list(repositories.concerns_of_slack_user(session, ATTACKER, limit=10)) == []

    harness.event(
        {"type": "app_home_opened", "user": ATTACKER, "channel": "D" + ATTACKER, "tab": "home"},
        event_id="Ev0OTHERHOME",
    )
    published = eventually(
        lambda: (
            [
                call
                for call in harness.fake.called("views.publish")
                if call.args.get("user_id") == ATTACKER
            ]
            or None
        )
    )
    assert victims.reference not in json.dumps(published[0].args["view"])
    # Nor can that account answer for the learner.
    harness.interact(button(LEARNER_SATISFIED, victims.reference, user=ATTACKER))
    eventually(lambda: harness.fake.called("chat.postEphemeral") or None)
    with transaction(harness.engine) as session:
        concern = session.get(Concern, victims.id)
        assert concern is not None and concern.status == "open"
