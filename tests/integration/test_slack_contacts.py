"""Contacts in Slack, end to end: the DM posted from the outbox (429s honoured, once), the
Acknowledge / Record feedback / Not mine buttons through signed requests, outsiders refused,
double clicks with one effect."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from app.bootstrap import Product, build
from app.metrics import Metrics
from app.serve import CannotServe, Tick, _slack_bot, _ticks, socket_mode_handler
from app.settings import ChatSettings, Settings
from app.web import create_app
from bot import slack_contacts
from bot.slack_app import LISTENER_THREADS, WORK_THREADS
from escalation.actions import Actor, close_concern, escalate_by_hand, override_triage
from intake.mailbox import Mailbox
from intake.service import submit_concern
from intake.submission import Channel, parse_submission
from notifications.outbox import DispatchReport, lease_for
from notifications.senders import MaildirSender
from notifications.slack_contacts import (
    ACTIONS_BLOCK,
    FEEDBACK_BLOCK,
    FEEDBACK_INPUT,
    OPEN_STAFF_PAGE,
    REASON_BLOCK,
    REASON_INPUT,
)
from notifications.slack_dispatch import AUTH_PAUSE, dispatch_client, dispatch_due_slack
from notifications.slack_text import (
    ACKNOWLEDGE,
    FEEDBACK_MODAL,
    NOT_MINE,
    NOT_MINE_MODAL,
    RECORD_FEEDBACK,
)
from storage import repositories
from storage.db import transaction
from storage.outbox import SqlOutboxStore
from storage.tables import ChatDelivery, Concern, Contact, Event, OutboxMessage, StaffMember
from tests.integration.fake_slack import TEAM_ID, Call, form_body, signed
from tests.integration.helpers import (
    MONDAY_MORNING,
    concern_input,
    load_example_directory,
)
from tests.integration.slack_harness import BOT_TOKEN, SIGNING_SECRET, SlackHarness, slack_harness
from tests.integration.webclient import WebClient

SUPERVISOR = "U0EXSUP001"  # Dr Jordan Sample, the Emergency Department's lead supervisor
SUPERVISOR_EMAIL = "jordan.sample@vale-general.example.nhs.uk"
OUTSIDER = "U0OUTSIDER"
DEAN = "U0EXDEAN01"  # Dr Morgan Example, North Vale's postgraduate dean
DEAN_EMAIL = "morgan.example@example.nhs.uk"
SCHOOL_LEAD = "U0EXHOS001"  # Dr Rowan Placeholder, head of the School of Medicine
PLACEMENT = {
    "organisation": "Vale General Hospitals NHS Trust",
    "department": "Emergency Department",
}


@pytest.fixture
def harness(sqlite_engine: Engine) -> Iterator[SlackHarness]:
    load_example_directory(sqlite_engine)
    with slack_harness(sqlite_engine, clock=lambda: MONDAY_MORNING) as running:
        yield running


def raise_concern(harness: SlackHarness) -> str:
    raw = concern_input(PLACEMENT)
    return submit_concern(
        engine=harness.engine,
        concern=parse_submission(raw),
        channel=Channel.CLI,
        now=MONDAY_MORNING,
        policy=harness.policy,
    ).reference


def dispatch(
    harness: SlackHarness,
    now: datetime = MONDAY_MORNING,
    *,
    clock: Callable[[], datetime] | None = None,
    store: SqlOutboxStore | None = None,
) -> DispatchReport:
    """One batch of the Slack dispatcher; the time stands still at `now` unless `clock` runs."""
    client = dispatch_client(token=BOT_TOKEN, api_url=harness.fake.url)
    return dispatch_due_slack(
        store=store or SqlOutboxStore(harness.engine),
        client=client,
        now=now,
        clock=clock or (lambda: now),
    )


def concern(harness: SlackHarness, reference: str) -> Concern:
    with transaction(harness.engine) as session:
        found = repositories.concern_by_reference(session, reference)
        assert found is not None
        return found


def slack_rows(harness: SlackHarness) -> list[OutboxMessage]:
    with transaction(harness.engine) as session:
        return list(
            session.exec(select(OutboxMessage).where(OutboxMessage.channel == "slack")).all()
        )


def events(harness: SlackHarness, reference: str, kind: str) -> list[Event]:
    with transaction(harness.engine) as session:
        found = repositories.concern_by_reference(session, reference)
        assert found is not None
        return [e for e in repositories.events_of(session, found.id or 0) if e.kind == kind]


def posted_to_supervisor(harness: SlackHarness) -> Call:
    """The new-concern DM to the supervisor, as the dispatcher posted it."""
    (call,) = [
        call
        for call in harness.fake.wait_for("chat.postMessage")
        if call.args.get("channel") == SUPERVISOR
    ]
    return call


def press(
    harness: SlackHarness,
    action_id: str,
    reference: str,
    *,
    user: str = SUPERVISOR,
    message_ts: str,
    blocks: list[dict[str, Any]],
    trigger: str = "1.trigger",
) -> None:
    """A click on one of the buttons of the supervisor's DM, signed as Slack signs it."""
    answer = harness.interact(
        {
            "type": "block_actions",
            "team": {"id": TEAM_ID},
            "user": {"id": user, "team_id": TEAM_ID},
            "api_app_id": "A0CONCERNS",
            "trigger_id": trigger,
            "container": {"type": "message", "message_ts": message_ts, "channel_id": DM},
            "channel": {"id": DM},
            "message": {"ts": message_ts, "text": "A concern", "blocks": blocks},
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": ACTIONS_BLOCK,
                    "value": reference,
                    "action_ts": "1700000099.000001",
                }
            ],
        }
    )
    assert answer.status_code == 200, answer.text


DM = "D" + SUPERVISOR  # the fake names a DM after the user


def settle(harness: SlackHarness) -> None:
    harness.settle()


@pytest.fixture
def posted(harness: SlackHarness) -> tuple[str, Call]:
    """A concern raised and its DM posted to the supervisor: (reference, the post)."""
    reference = raise_concern(harness)
    report = dispatch(harness)
    assert report.sent >= 1 and report.failed == 0, report.errors
    return reference, posted_to_supervisor(harness)


def supervisor_ts(harness: SlackHarness) -> str:
    """Where the supervisor's DM was posted, as the outbox recorded it ("<channel>:<ts>")."""
    (row,) = [row for row in slack_rows(harness) if row.recipient_address == SUPERVISOR]
    assert row.external_ref is not None
    channel, ts = row.external_ref.split(":")
    assert channel == DM
    return ts


def button_ids(blocks: list[dict[str, Any]]) -> list[str]:
    return [
        element["action_id"]
        for block in blocks
        if block.get("block_id") == ACTIONS_BLOCK
        for element in block["elements"]
    ]


def updates_of(harness: SlackHarness, ts: str) -> list[Call]:
    """The chat.update calls on one message."""
    return [call for call in harness.fake.called("chat.update") if call.args.get("ts") == ts]


# --- the outbox ------------------------------------------------------------------------------


def test_a_new_concern_is_posted_to_the_supervisor_once(
    harness: SlackHarness, posted: tuple[str, Call]
) -> None:
    reference, call = posted
    assert call.token == BOT_TOKEN
    assert reference in call.args["text"]
    assert button_ids(call.args["blocks"])[:3] == [ACKNOWLEDGE, RECORD_FEEDBACK, NOT_MINE]
    # No text of the concern goes to Slack by default.
    assert "teaching" not in json.dumps(call.args).lower()
    (row,) = [row for row in slack_rows(harness) if row.recipient_address == SUPERVISOR]
    assert row.status == "sent"
    assert row.idempotency_key.endswith(":slack")
    assert row.external_ref is not None and row.external_ref.startswith(f"{DM}:1700000000.")
    # Sent once: nothing is left to send.
    assert dispatch(harness, MONDAY_MORNING + timedelta(hours=1)).sent == 0
    assert len(harness.fake.called("chat.postMessage")) == len(
        [row for row in slack_rows(harness) if row.status == "sent"]
    )


def test_a_429_is_retried_after_its_retry_after_and_posted_once(harness: SlackHarness) -> None:
    reference = raise_concern(harness)
    harness.fake.throttle("chat.postMessage", times=1, retry_after=30)

    first = dispatch(harness)
    assert (first.sent, first.failed, first.retried) == (0, 0, 0)
    assert first.held == len(slack_rows(harness)) >= 1
    for row in slack_rows(harness):
        assert row.status == "pending"
        assert row.send_after == MONDAY_MORNING + timedelta(seconds=30)
        # Being told to wait is not the message's fault: no attempt is charged.
        assert row.attempts == 0
    # Not before Slack said.
    assert dispatch(harness, MONDAY_MORNING + timedelta(seconds=29)).retried == 0
    assert len(harness.fake.called("chat.postMessage")) == 1

    later = dispatch(harness, MONDAY_MORNING + timedelta(seconds=30))
    assert later.sent == len(slack_rows(harness))
    posts = [c for c in harness.fake.called("chat.postMessage") if c.args["channel"] == SUPERVISOR]
    assert len(posts) == 2, "the throttled attempt and the one that got through"
    assert all(row.status == "sent" for row in slack_rows(harness))
    assert dispatch(harness, MONDAY_MORNING + timedelta(hours=1)).sent == 0
    assert concern(harness, reference).acknowledged_at is None


def test_two_dispatchers_racing_post_each_message_once(harness: SlackHarness) -> None:
    raise_concern(harness)
    barrier = threading.Barrier(2)
    reports: list[DispatchReport] = []

    def run() -> None:
        barrier.wait()
        reports.append(dispatch(harness))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = slack_rows(harness)
    assert sum(report.sent for report in reports) == len(rows)
    assert len(harness.fake.called("chat.postMessage")) == len(rows)


def raise_concerns(harness: SlackHarness, count: int) -> list[str]:
    return [raise_concern(harness) for _ in range(count)]


def test_a_429_waits_from_when_slack_asked_and_holds_the_rest_uncharged(
    harness: SlackHarness,
) -> None:
    """Each post takes ten minutes here: the wait Slack asks for with the second post is counted
    from that moment, not from the batch's start."""
    raise_concerns(harness, 2)
    fake = harness.fake

    def first_ok_then_throttled(args: dict[str, Any]) -> dict[str, Any]:
        fake.throttle("chat.postMessage", times=1, retry_after=30)
        return {"ok": True, "channel": "D" + str(args["channel"]), "ts": "1700000000.000001"}

    fake.answers["chat.postMessage"] = first_ok_then_throttled

    def slow_clock() -> datetime:
        return MONDAY_MORNING + timedelta(minutes=10) * len(fake.called("chat.postMessage"))

    rows = len(slack_rows(harness))
    report = dispatch(harness, clock=slow_clock)
    assert (report.sent, report.held, report.retried, report.failed) == (1, rows - 1, 0, 0)
    asked_at = MONDAY_MORNING + timedelta(minutes=20)  # the second post, answered 429
    waiting = [row for row in slack_rows(harness) if row.status == "pending"]
    assert len(waiting) == rows - 1 >= 2
    for row in waiting:
        assert row.send_after == asked_at + timedelta(seconds=30)
        assert row.attempts == 0, "held back by a rate limit: not an attempt of theirs"
        assert row.last_error and "rate limited" in row.last_error


@pytest.mark.parametrize("code", ["invalid_auth", "token_revoked", "account_inactive"])
def test_a_refused_token_pauses_the_batch_without_failing_or_charging_rows(
    harness: SlackHarness, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    raise_concerns(harness, 3)
    rows = slack_rows(harness)
    harness.fake.fail("chat.postMessage", code, times=10)
    report = dispatch(harness)
    assert (report.sent, report.retried, report.failed, report.held) == (0, 0, 0, len(rows))
    assert len(harness.fake.called("chat.postMessage")) == 1, "stopped at the first refusal"
    rows = slack_rows(harness)
    assert {row.status for row in rows} == {"pending"}
    assert {row.attempts for row in rows} == {0}
    assert {row.send_after for row in rows} == {MONDAY_MORNING + AUTH_PAUSE}
    refusals = [r for r in caplog.records if "refused the bot token" in r.getMessage()]
    assert len(refusals) == 1 and code in refusals[0].getMessage()
    assert BOT_TOKEN not in caplog.text
    # Retried on a later tick, once the token is put right.
    harness.fake.failing.clear()
    assert dispatch(harness, MONDAY_MORNING + AUTH_PAUSE - timedelta(seconds=1)).sent == 0
    later = dispatch(harness, MONDAY_MORNING + AUTH_PAUSE)
    assert later.sent >= 3 and later.sent + later.skipped == len(rows)


class RecordingFailsOnce(SqlOutboxStore):
    """The database hiccups once just as a post Slack took is recorded."""

    failed = False

    def mark_posted(self, **kwargs: Any) -> bool:
        if not self.failed:
            self.failed = True
            raise OperationalError("UPDATE outbox", {}, Exception("database is locked"))
        return super().mark_posted(**kwargs)


def test_a_post_slack_took_is_recorded_even_when_the_database_hiccups(
    harness: SlackHarness,
) -> None:
    raise_concern(harness)
    store = RecordingFailsOnce(harness.engine)
    report = dispatch(harness, store=store)
    assert store.failed and report.sent == 1
    (row,) = slack_rows(harness)
    assert row.status == "sent" and row.external_ref
    # Never posted again, however long after.
    assert dispatch(harness, MONDAY_MORNING + timedelta(days=1)).sent == 0
    assert len(harness.fake.called("chat.postMessage")) == 1


class Replaying(SqlOutboxStore):
    """A dispatcher whose batch outlived its lease: it still holds the claims it took then."""

    def __init__(self, engine: Engine, claims: Sequence[Any], *, stale_check: bool) -> None:
        super().__init__(engine)
        self.claims = list(claims)
        self.stale_check = stale_check

    def claim_due(self, **_: Any) -> list[Any]:
        return self.claims

    def hold(self, *, message_id: int, claim_token: str, until: datetime) -> bool:
        # stale_check: the other dispatcher takes the row just after this check (a race).
        return (
            True
            if self.stale_check
            else super().hold(message_id=message_id, claim_token=claim_token, until=until)
        )


def test_a_row_another_dispatcher_took_is_not_posted_twice(harness: SlackHarness) -> None:
    raise_concern(harness)
    old = SqlOutboxStore(harness.engine).claim_due(
        now=MONDAY_MORNING, limit=10, lease=timedelta(seconds=1), channel="slack"
    )
    later = MONDAY_MORNING + timedelta(seconds=2)
    # The lease ran out: another dispatcher claims and posts it.
    assert dispatch(harness, later).sent == 1
    # The first dispatcher gets to the row at last: it is not its to post any more.
    report = dispatch(harness, later, store=Replaying(harness.engine, old, stale_check=False))
    assert report.sent == 0
    assert len(harness.fake.called("chat.postMessage")) == 1


def test_a_batch_that_outlives_its_lease_never_posts_what_another_dispatcher_took(
    harness: SlackHarness,
) -> None:
    """Slow answers stretch one dispatcher's batch past its lease while it posts, and another
    instance's tick claims the rows: the row being posted is held for its post, the rest are the
    other dispatcher's, and every message is posted exactly once."""
    raise_concerns(harness, 2)
    rows = len(slack_rows(harness))
    assert rows >= 3
    fake = harness.fake
    lease_ends = MONDAY_MORNING + lease_for(20)
    now = [MONDAY_MORNING]
    others: list[DispatchReport] = []

    def slow_answers(args: dict[str, Any]) -> dict[str, Any]:
        posts = len(fake.called("chat.postMessage"))
        if posts == 1:  # the first answer comes when the batch's lease has nearly run out
            now[0] = lease_ends - timedelta(seconds=1)
        elif posts == 2:  # while the second post waits for its answer, the lease runs out
            del fake.answers["chat.postMessage"]
            others.append(dispatch(harness, lease_ends + timedelta(seconds=1)))
        return {"ok": True, "channel": "D" + str(args["channel"]), "ts": f"1700000000.{posts:06d}"}

    fake.answers["chat.postMessage"] = slow_answers
    report = dispatch(harness, clock=lambda: now[0])
    (other,) = others
    assert report.sent == 2 and other.sent >= 1 and report.errors
    assert all("claimed by another dispatcher" in error for error in report.errors)
    # Each row posted once (a contact nobody in Slack has is skipped, by one of them).
    assert len(fake.called("chat.postMessage")) == report.sent + other.sent
    posted = [row for row in slack_rows(harness) if row.status == "sent"]
    assert len(posted) == report.sent + other.sent
    assert len(posted) + report.skipped + other.skipped == rows


def test_a_post_after_the_claim_was_lost_is_recorded_so_nobody_posts_it_again(
    harness: SlackHarness,
) -> None:
    raise_concern(harness)
    store = SqlOutboxStore(harness.engine)
    old = store.claim_due(now=MONDAY_MORNING, limit=10, lease=timedelta(seconds=1), channel="slack")
    later = MONDAY_MORNING + timedelta(seconds=2)
    newer = store.claim_due(now=later, limit=10, lease=timedelta(minutes=5), channel="slack")
    assert [m.id for m in newer] == [m.id for m in old]
    # The first dispatcher posts in the moment after the second one claimed the row.
    racing = dispatch(harness, later, store=Replaying(harness.engine, old, stale_check=True))
    assert racing.sent == 0 and "claim had expired" in " ".join(racing.errors)
    (row,) = slack_rows(harness)
    assert row.status == "sent" and row.external_ref, "Slack has it: recorded all the same"
    # The second dispatcher, holding the newer claim, does not post it again.
    assert (
        dispatch(harness, later, store=Replaying(harness.engine, newer, stale_check=False)).sent
        == 0
    )
    assert len(harness.fake.called("chat.postMessage")) == 1


# --- contacts known only by email --------------------------------------------------------------


def forget_supervisors_slack_account(harness: SlackHarness) -> None:
    with transaction(harness.engine) as session:
        supervisor = session.exec(select(Contact).where(Contact.email == SUPERVISOR_EMAIL)).one()
        supervisor.slack_user_id = None


def supervisors_slack_account(harness: SlackHarness) -> str | None:
    with transaction(harness.engine) as session:
        return (
            session.exec(select(Contact).where(Contact.email == SUPERVISOR_EMAIL))
            .one()
            .slack_user_id
        )


def test_a_contact_known_only_by_email_gets_the_dm_and_is_remembered(
    harness: SlackHarness,
) -> None:
    forget_supervisors_slack_account(harness)
    harness.fake.users_by_email[SUPERVISOR_EMAIL] = "U0NEWSLACK"
    raise_concern(harness)
    # Queueing stayed in the database: the row is addressed by email, nobody asked Slack yet.
    (row,) = slack_rows(harness)
    assert row.recipient_address == SUPERVISOR_EMAIL
    assert harness.fake.called("users.lookupByEmail") == []

    report = dispatch(harness)
    assert (report.sent, report.failed, report.skipped) == (1, 0, 0)
    (lookup,) = harness.fake.called("users.lookupByEmail")
    assert lookup.args["email"] == SUPERVISOR_EMAIL
    (post,) = harness.fake.called("chat.postMessage")
    assert post.args["channel"] == "U0NEWSLACK"
    (row,) = slack_rows(harness)
    assert row.status == "sent" and row.recipient_address == "U0NEWSLACK"
    assert supervisors_slack_account(harness) == "U0NEWSLACK"

    # Remembered: the next concern's DM is addressed to the account, with no lookup.
    second = raise_concern(harness)
    (row,) = [
        row
        for row in slack_rows(harness)
        if row.reference == second and row.recipient_role == "supervisor"
    ]
    assert row.recipient_address == "U0NEWSLACK"
    dispatch(harness)
    lookups = [c.args["email"] for c in harness.fake.called("users.lookupByEmail")]
    assert lookups.count(SUPERVISOR_EMAIL) == 1
    to_supervisor = [
        c for c in harness.fake.called("chat.postMessage") if c.args["channel"] == "U0NEWSLACK"
    ]
    assert len(to_supervisor) == 2


def test_a_contact_not_in_slack_is_skipped_not_failed_and_still_emailed(
    harness: SlackHarness,
) -> None:
    forget_supervisors_slack_account(harness)
    reference = raise_concern(harness)
    report = dispatch(harness)
    assert (report.sent, report.failed, report.retried, report.skipped) == (0, 0, 0, 1)
    (row,) = slack_rows(harness)
    assert row.status == "skipped" and row.attempts == 0
    assert harness.fake.called("chat.postMessage") == []
    # Not tried again, and no account was made up for them.
    assert dispatch(harness, MONDAY_MORNING + timedelta(days=1)) == DispatchReport()
    assert len(harness.fake.called("users.lookupByEmail")) == 1
    assert supervisors_slack_account(harness) is None
    with transaction(harness.engine) as session:
        emails = [
            (m.recipient_address, m.status)
            for m in repositories.outbox_of(session, concern(harness, reference).id or 0)
            if m.channel == "email" and m.kind == "new_concern"
        ]
    assert emails == [(SUPERVISOR_EMAIL, "pending")]


def test_without_the_lookup_scope_known_accounts_still_get_their_dms(
    harness: SlackHarness,
) -> None:
    raise_concern(harness)  # addressed to the supervisor's Slack id
    forget_supervisors_slack_account(harness)
    raise_concern(harness)  # addressed by email
    harness.fake.fail("users.lookupByEmail", "missing_scope", times=5)
    report = dispatch(harness)
    rows = slack_rows(harness)
    by_email = [row for row in rows if "@" in row.recipient_address]
    assert SUPERVISOR_EMAIL in [row.recipient_address for row in by_email]
    assert (report.sent, report.held) == (len(rows) - len(by_email), len(by_email))
    assert (report.failed, report.retried, report.skipped) == (0, 0, 0)
    assert len(harness.fake.called("users.lookupByEmail")) == 1, "asked once, then waits"
    for row in rows:
        assert row.status == ("pending" if row in by_email else "sent")
    for row in by_email:
        assert row.attempts == 0 and "users:read.email" in (row.last_error or "")


# --- the buttons -----------------------------------------------------------------------------


def test_the_supervisor_acknowledges_and_the_message_says_so(
    harness: SlackHarness, posted: tuple[str, Call]
) -> None:
    reference, call = posted
    ts = supervisor_ts(harness)
    press(harness, ACKNOWLEDGE, reference, message_ts=ts, blocks=call.args["blocks"])

    (update,) = harness.fake.wait_for("chat.update")
    assert concern(harness, reference).acknowledged_at == MONDAY_MORNING
    (event,) = events(harness, reference, "acknowledged")
    assert event.channel == "slack"
    assert (update.args["channel"], update.args["ts"]) == (DM, ts)
    shown = json.dumps(update.args["blocks"])
    assert "Acknowledged* by Dr Jordan Sample" in shown
    assert button_ids(update.args["blocks"])[:2] == [RECORD_FEEDBACK, NOT_MINE]
    assert ACKNOWLEDGE not in button_ids(update.args["blocks"])
    assert harness.fake.called("chat.postEphemeral") == []


def test_the_same_click_twice_has_one_effect(
    harness: SlackHarness, posted: tuple[str, Call]
) -> None:
    reference, _ = posted
    for _ in range(2):
        press(harness, ACKNOWLEDGE, reference, message_ts="1700000000.000001", blocks=[])
    settle(harness)
    assert len(events(harness, reference, "acknowledged")) == 1
    assert len(updates_of(harness, "1700000000.000001")) == 1
    # The second click is not even refused ("already acknowledged"): it is the same click.
    assert harness.fake.called("chat.postEphemeral") == []
    with transaction(harness.engine) as session:
        keys = [d.key for d in session.exec(select(ChatDelivery)).all()]
    assert keys == [f"action:{ACKNOWLEDGE}:1700000000.000001:{SUPERVISOR}"]


def test_a_second_acknowledgement_is_refused_with_a_note(
    harness: SlackHarness, posted: tuple[str, Call]
) -> None:
    reference, _ = posted
    press(harness, ACKNOWLEDGE, reference, message_ts="1700000000.000001", blocks=[])
    harness.fake.wait_for("chat.update")
    # Another message (a reminder) with the same button, pressed after the first.
    press(harness, ACKNOWLEDGE, reference, message_ts="1700000000.000007", blocks=[])
    (note,) = harness.fake.wait_for("chat.postEphemeral")
    assert note.args["user"] == SUPERVISOR
    assert "already acknowledged" in note.args["text"]
    assert len(events(harness, reference, "acknowledged")) == 1


def test_two_contacts_pressing_acknowledge_at_once_record_one_acknowledgement(
    harness: SlackHarness, posted: tuple[str, Call]
) -> None:
    reference, _ = posted
    # The level's secondary contact (the clinical tutor) is in Slack too.
    with transaction(harness.engine) as session:
        found = repositories.concern_by_reference(session, reference)
        assert found is not None
        (tutor,) = [
            contact
            for row, contact in repositories.assignments_of(session, found.id or 0, pathway=1)
            if row.part == "secondary"
        ]
        tutor.slack_user_id = "U0EXTUTOR1"
    for user in (SUPERVISOR, "U0EXTUTOR1"):
        press(harness, ACKNOWLEDGE, reference, user=user, message_ts="1.000001", blocks=[])
    (note,) = harness.fake.wait_for("chat.postEphemeral")
    settle(harness)
    assert len(events(harness, reference, "acknowledged")) == 1
    assert len(updates_of(harness, "1.000001")) == 1
    assert "already acknowledged" in note.args["text"]


def test_an_outsiders_click_is_refused_and_changes_nothing(
    harness: SlackHarness, posted: tuple[str, Call]
) -> None:
    reference, _ = posted
    before = concern(harness, reference)
    press(harness, ACKNOWLEDGE, reference, user=OUTSIDER, message_ts="1700000000.000001", blocks=[])
    (note,) = harness.fake.wait_for("chat.postEphemeral")
    assert note.args["user"] == OUTSIDER
    assert "Only the people this concern was sent to" in note.args["text"]
    # Not mine opens its modal, which at once says why they cannot; a submission anyway (a
    # forged or stale one) is refused under the button too.
    press(harness, NOT_MINE, reference, user=OUTSIDER, message_ts="1700000000.000001", blocks=[])
    (update,) = harness.fake.wait_for("views.update")
    assert "Only the people this concern was sent to" in json.dumps(update.args["view"])
    (opened,) = harness.fake.called("views.open")
    harness.interact(not_mine_submission(opened.args["view"], "", user=OUTSIDER))
    notes = harness.fake.wait_for("chat.postEphemeral", 2)
    assert {n.args["user"] for n in notes} == {OUTSIDER}
    assert all("Only the people this concern was sent to" in n.args["text"] for n in notes)
    settle(harness)
    after = concern(harness, reference)
    assert after.acknowledged_at is None and after.pathway == before.pathway
    assert events(harness, reference, "acknowledged") == []
    assert events(harness, reference, "redirected") == []
    assert harness.fake.called("chat.update") == []


def test_a_slack_user_is_matched_by_email_and_remembered(
    harness: SlackHarness, posted: tuple[str, Call]
) -> None:
    reference, _ = posted
    with transaction(harness.engine) as session:
        supervisor = session.exec(select(Contact).where(Contact.email == SUPERVISOR_EMAIL)).one()
        supervisor.slack_user_id = None
    harness.fake.users_by_email[SUPERVISOR_EMAIL] = "U0NEWSLACK"

    press(harness, ACKNOWLEDGE, reference, user="U0NEWSLACK", message_ts="1.000001", blocks=[])
    harness.fake.wait_for("chat.update")
    assert concern(harness, reference).acknowledged_at == MONDAY_MORNING
    lookups = harness.fake.called("users.lookupByEmail")
    assert SUPERVISOR_EMAIL in [call.args["email"] for call in lookups]
    with transaction(harness.engine) as session:
        supervisor = session.exec(select(Contact).where(Contact.email == SUPERVISOR_EMAIL)).one()
        assert supervisor.slack_user_id == "U0NEWSLACK"


def test_record_feedback_opens_a_modal_and_its_submission_reaches_the_learner(
    harness: SlackHarness, posted: tuple[str, Call]
) -> None:
    reference, call = posted
    ts = supervisor_ts(harness)
    press(harness, RECORD_FEEDBACK, reference, message_ts=ts, blocks=call.args["blocks"])
    (opened,) = harness.fake.wait_for("views.open")
    view = opened.args["view"]
    assert opened.args["trigger_id"] == "1.trigger"
    assert view["callback_id"] == FEEDBACK_MODAL
    settle(harness)
    assert harness.fake.called("views.update") == [], "the supervisor may give feedback"

    # An empty submission is answered in the modal, and changes nothing.
    empty = harness.interact(submission(view, "   "))
    assert empty.json()["response_action"] == "errors"

    feedback = "We have moved teaching to Thursdays <!channel>; your rota is protected."
    answer = harness.interact(submission(view, feedback))
    assert answer.status_code == 200
    (update,) = harness.fake.wait_for("chat.update")
    assert (update.args["channel"], update.args["ts"]) == (DM, ts)
    assert "Feedback recorded" in json.dumps(update.args["blocks"])
    assert button_ids(update.args["blocks"]) == ["concern_open_staff_page"]

    recorded = concern(harness, reference)
    assert recorded.feedback_at == MONDAY_MORNING
    assert recorded.acknowledged_at == MONDAY_MORNING, "feedback also acknowledges"
    (event,) = events(harness, reference, "feedback_given")
    assert event.channel == "slack" and event.detail["text"] == feedback
    with transaction(harness.engine) as session:
        to_learner = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == "learner_feedback")
        ).all()
    assert [(m.channel, m.recipient_address) for m in to_learner] == [
        ("email", "priya.testlearner@example.nhs.uk")
    ]
    assert "We have moved teaching to Thursdays" in to_learner[0].body_text

    # The same submission again (a retry) records nothing more.
    harness.interact(submission(view, feedback))
    settle(harness)
    assert len(events(harness, reference, "feedback_given")) == 1
    assert len(harness.fake.called("chat.update")) == 1


def test_an_outsider_opening_the_feedback_modal_is_told_why_they_cannot(
    harness: SlackHarness, posted: tuple[str, Call]
) -> None:
    reference, _ = posted
    press(harness, RECORD_FEEDBACK, reference, user=OUTSIDER, message_ts="1.000001", blocks=[])
    (update,) = harness.fake.wait_for("views.update")
    assert "Only the people this concern was sent to" in json.dumps(update.args["view"])


def not_mine_submission(
    view: dict[str, Any], reason: str, *, user: str = SUPERVISOR, view_id: str = "V0NOTMINE1"
) -> dict[str, Any]:
    return {
        "type": "view_submission",
        "team": {"id": TEAM_ID},
        "user": {"id": user, "team_id": TEAM_ID},
        "api_app_id": "A0CONCERNS",
        "trigger_id": "4.trigger",
        "view": {
            "id": view_id,
            "hash": "h1",
            "type": "modal",
            "callback_id": NOT_MINE_MODAL,
            "team_id": TEAM_ID,
            "private_metadata": view["private_metadata"],
            "blocks": view["blocks"],
            "state": {
                "values": {
                    REASON_BLOCK: {REASON_INPUT: {"type": "plain_text_input", "value": reason}}
                }
            },
        },
    }


def pass_on(
    harness: SlackHarness, reference: str, *, ts: str, blocks: list[dict[str, Any]], reason: str
) -> dict[str, Any]:
    """The supervisor presses Not mine, and sends its modal with `reason`: the modal opened."""
    press(harness, NOT_MINE, reference, message_ts=ts, blocks=blocks)
    (opened,) = harness.fake.wait_for("views.open")
    view: dict[str, Any] = opened.args["view"]
    assert view["callback_id"] == NOT_MINE_MODAL
    settle(harness)
    assert harness.fake.called("views.update") == [], "the supervisor may pass it on"
    answer = harness.interact(not_mine_submission(view, reason))
    assert answer.status_code == 200 and answer.text == ""
    return view


def test_not_mine_asks_why_passes_the_concern_on_and_the_message_loses_its_buttons(
    harness: SlackHarness, posted: tuple[str, Call]
) -> None:
    reference, call = posted
    ts = supervisor_ts(harness)
    reason = "Not my trainee <!here>: they moved to the Acute Medical Unit last week."
    view = pass_on(harness, reference, ts=ts, blocks=call.args["blocks"], reason=reason)
    (update,) = harness.fake.wait_for("chat.update")
    assert (update.args["channel"], update.args["ts"]) == (DM, ts)
    (event,) = events(harness, reference, "redirected")
    assert event.channel == "slack"
    assert event.detail["reason"] == " ".join(reason.split())
    assert button_ids(update.args["blocks"]) == ["concern_open_staff_page"]
    assert "Passed on" in json.dumps(update.args["blocks"])
    # Whoever it went to is told (by email, and in Slack if they have an id), with the reason.
    with transaction(harness.engine) as session:
        told = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == "redirected_in")
        ).all()
    assert told
    assert any("Acute Medical Unit" in row.body_text for row in told if row.channel == "email")
    # The same submission again (Slack retrying) passes it on no further.
    harness.interact(not_mine_submission(view, reason))
    settle(harness)
    assert len(events(harness, reference, "redirected")) == 1


def test_not_mine_without_a_reason_still_passes_it_on(
    harness: SlackHarness, posted: tuple[str, Call]
) -> None:
    reference, call = posted
    pass_on(harness, reference, ts=supervisor_ts(harness), blocks=call.args["blocks"], reason="")
    harness.fake.wait_for("chat.update")
    (event,) = events(harness, reference, "redirected")
    assert event.detail["reason"] == "The contact said it is not theirs to handle"


def test_a_not_mine_that_cannot_be_done_gives_the_reason_back(
    harness: SlackHarness, posted: tuple[str, Call]
) -> None:
    """Feedback was given while the modal was open: passing on is refused, and the reason
    they wrote comes back to them in a DM."""
    reference, _ = posted
    press(harness, NOT_MINE, reference, message_ts=supervisor_ts(harness), blocks=[])
    (opened,) = harness.fake.wait_for("views.open")
    settle(harness)
    with transaction(harness.engine) as session:
        locked = repositories.lock_concern(session, concern(harness, reference).id or 0)
        assert locked is not None
        from escalation.actions import record_feedback

        record_feedback(
            session=session,
            concern=locked,
            by=Actor(kind="staff", channel="web"),
            text="Sorted with the rota team.",
            now=MONDAY_MORNING,
            policy=harness.policy,
        )
    harness.interact(not_mine_submission(opened.args["view"], "Wrong ward <@U123>"))
    settle(harness)
    (dm,) = [
        c
        for c in harness.fake.called("chat.postMessage")
        if c.args["channel"] == SUPERVISOR and "was not recorded" in c.args["text"]
    ]
    assert dm.args["text"].startswith(f"Passing on *{reference}* was not recorded")
    assert "Wrong ward &lt;@U123&gt;" in dm.args["text"]
    assert events(harness, reference, "redirected") == []


# --- staff with rights over the concern ---------------------------------------------------


def test_the_dean_acknowledges_in_slack_with_their_staff_rights(
    harness: SlackHarness, posted: tuple[str, Call]
) -> None:
    """The dean is no contact of pathway 1, but their region's concerns are theirs to act on:
    the acknowledgement is recorded as staff, named in the audit trail, and the messages say
    who."""
    reference, call = posted
    ts = supervisor_ts(harness)
    press(harness, ACKNOWLEDGE, reference, user=DEAN, message_ts=ts, blocks=call.args["blocks"])
    (update,) = harness.fake.wait_for("chat.update")
    assert "Acknowledged* by Dr Morgan Example" in json.dumps(update.args["blocks"])
    assert concern(harness, reference).acknowledged_at == MONDAY_MORNING
    (event,) = events(harness, reference, "acknowledged")
    assert event.actor.startswith("staff ") and event.channel == "slack"
    assert harness.fake.called("chat.postEphemeral") == []


def test_staff_found_by_their_slack_email_may_pass_a_concern_on_with_a_reason(
    harness: SlackHarness, posted: tuple[str, Call]
) -> None:
    """Someone in no directory entry's Slack account, whose confirmed Slack email is the
    region's quality team, acts with the quality team's rights; staff moving a concern must
    say why, as on the staff pages."""
    reference, _ = posted
    harness.fake.users_by_email["quality.northvale@example.nhs.uk"] = "U0QUALITY1"
    press(harness, NOT_MINE, reference, user="U0QUALITY1", message_ts="1.000001", blocks=[])
    (opened,) = harness.fake.wait_for("views.open")
    settle(harness)
    assert harness.fake.called("views.update") == [], "the quality team may move it"
    view = opened.args["view"]
    harness.interact(not_mine_submission(view, "", user="U0QUALITY1", view_id="V0Q1"))
    (note,) = harness.fake.wait_for("chat.postEphemeral")
    assert "Say why" in note.args["text"]
    assert events(harness, reference, "redirected") == []
    harness.interact(
        not_mine_submission(view, "The supervisor is on leave", user="U0QUALITY1", view_id="V0Q2")
    )
    settle(harness)
    (event,) = events(harness, reference, "redirected")
    assert event.actor.startswith("staff ")
    assert event.detail["reason"] == "The supervisor is on leave"
    # Named as the directory names them, not as they named themselves in Slack.
    (update,) = harness.fake.called("chat.update")
    assert "by North Vale Quality Team" in json.dumps(update.args["blocks"])


def test_opening_a_form_to_check_someones_rights_saves_nothing(
    harness: SlackHarness, posted: tuple[str, Call]
) -> None:
    """Pressing Record feedback works out whether the person may (to say so before they
    write); only the action itself may make their staff account, as signing in does."""
    reference, _ = posted
    press(harness, RECORD_FEEDBACK, reference, user=DEAN, message_ts="1.000001", blocks=[])
    harness.fake.wait_for("views.open")
    settle(harness)
    assert harness.fake.called("views.update") == [], "the dean may give feedback"
    with transaction(harness.engine) as session:
        assert session.exec(select(StaffMember)).all() == []


def test_staff_rights_that_do_not_cover_the_concern_now_are_refused(
    harness: SlackHarness, posted: tuple[str, Call]
) -> None:
    """A head of school acts only while a concern is at pathway 2: at pathway 1 their press is
    refused, and a Slack account whose email Slack has not confirmed gets no rights at all."""
    reference, _ = posted
    press(harness, ACKNOWLEDGE, reference, user=SCHOOL_LEAD, message_ts="1.000001", blocks=[])
    (note,) = harness.fake.wait_for("chat.postEphemeral")
    assert note.args["user"] == SCHOOL_LEAD
    # Slack accounts whose email does not stand for who they are here get no staff rights:
    # an email Slack has not confirmed (or does not say it has), a guest, someone from another
    # organisation's workspace (Slack Connect), another workspace, a deactivated account.
    full_member = {"team_id": TEAM_ID, "is_email_confirmed": True}
    for n, (kind, account) in enumerate(
        [
            ("unconfirmed", {**full_member, "is_email_confirmed": False}),
            ("not said", {"team_id": TEAM_ID}),
            ("guest", {**full_member, "is_restricted": True}),
            ("single-channel guest", {**full_member, "is_ultra_restricted": True}),
            ("external", {**full_member, "is_stranger": True}),
            ("other workspace", {**full_member, "team_id": "T0ELSEWHERE"}),
            ("deactivated", {**full_member, "deleted": True}),
        ],
        start=2,
    ):
        harness.fake.answers["users.info"] = lambda args, account=account: {
            "ok": True,
            "user": {"id": args.get("user"), "profile": {"email": DEAN_EMAIL}, **account},
        }
        user = f"U0NOTSTAFF{n}"
        press(harness, ACKNOWLEDGE, reference, user=user, message_ts="1.000001", blocks=[])
        notes = harness.fake.wait_for("chat.postEphemeral", n)
        assert notes[-1].args["user"] == user, kind
        assert "Only the people this concern was sent to" in notes[-1].args["text"], kind
    settle(harness)
    assert concern(harness, reference).acknowledged_at is None
    assert events(harness, reference, "acknowledged") == []


def submission(view: dict[str, Any], text: str, *, user: str = SUPERVISOR) -> dict[str, Any]:
    return {
        "type": "view_submission",
        "team": {"id": TEAM_ID},
        "user": {"id": user, "team_id": TEAM_ID},
        "api_app_id": "A0CONCERNS",
        "trigger_id": "3.trigger",
        "view": {
            "id": "V0FEEDBACK1",
            "hash": "h1",
            "type": "modal",
            "callback_id": FEEDBACK_MODAL,
            "team_id": TEAM_ID,
            "private_metadata": view["private_metadata"],
            "blocks": view["blocks"],
            "state": {
                "values": {
                    FEEDBACK_BLOCK: {FEEDBACK_INPUT: {"type": "plain_text_input", "value": text}}
                }
            },
        },
    }


def opened_feedback_modal(harness: SlackHarness, reference: str, call: Call) -> dict[str, Any]:
    """The supervisor presses Record feedback: the modal Slack was asked to open."""
    press(harness, RECORD_FEEDBACK, reference, message_ts=supervisor_ts(harness), blocks=[])
    (opened,) = harness.fake.wait_for("views.open")
    settle(harness)
    view: dict[str, Any] = opened.args["view"]
    return view


def given_back(harness: SlackHarness, user: str) -> Call:
    """The DM that gave someone's unrecorded feedback back to them (posted to their user id),
    once Bolt's listener has sent it."""
    settle(harness)
    (dm,) = [
        call
        for call in harness.fake.called("chat.postMessage")
        if call.args["channel"] == user and "was not recorded" in call.args["text"]
    ]
    return dm


FEEDBACK = "Teaching moved to Thursdays <!channel> & your rota is protected."


def test_feedback_refused_because_the_concern_closed_is_given_back_in_a_dm(
    harness: SlackHarness, posted: tuple[str, Call]
) -> None:
    reference, call = posted
    view = opened_feedback_modal(harness, reference, call)
    # Staff close it while the supervisor is writing.
    with transaction(harness.engine) as session:
        locked = repositories.lock_concern(session, concern(harness, reference).id or 0)
        assert locked is not None
        close_concern(
            session=session,
            concern=locked,
            by=Actor(kind="staff", channel="web"),
            reason="Resolved with the department",
            now=MONDAY_MORNING,
            policy=harness.policy,
        )
    assert harness.interact(submission(view, FEEDBACK)).status_code == 200
    dm = given_back(harness, SUPERVISOR)
    assert "was not recorded" in dm.args["text"] and "is closed" in dm.args["text"]
    # Their words come back whole, escaped so they cannot ping anyone.
    assert (
        "Teaching moved to Thursdays &lt;!channel&gt; &amp; your rota is protected."
        in dm.args["text"]
    )
    settle(harness)
    assert events(harness, reference, "feedback_given") == []
    assert concern(harness, reference).feedback_at is None
    assert harness.fake.called("chat.update") == []
    assert harness.fake.called("chat.postEphemeral") == []


def test_feedback_from_someone_not_told_is_given_back_in_a_dm(
    harness: SlackHarness, posted: tuple[str, Call]
) -> None:
    reference, call = posted
    view = opened_feedback_modal(harness, reference, call)
    harness.interact(submission(view, FEEDBACK, user=OUTSIDER))
    dm = given_back(harness, OUTSIDER)
    assert "Only the people this concern was sent to" in dm.args["text"]
    assert "Teaching moved to Thursdays" in dm.args["text"]
    settle(harness)
    assert events(harness, reference, "feedback_given") == []
    assert concern(harness, reference).feedback_at is None


def test_feedback_that_fails_to_save_is_given_back_and_changes_nothing(
    harness: SlackHarness, posted: tuple[str, Call], monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, call = posted
    view = opened_feedback_modal(harness, reference, call)

    def broken(**_: Any) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(slack_contacts, "record_feedback", broken)
    harness.interact(submission(view, FEEDBACK))
    dm = given_back(harness, SUPERVISOR)
    assert "could not be recorded just now" in dm.args["text"]
    assert "Teaching moved to Thursdays" in dm.args["text"]
    assert "database" not in dm.args["text"], "no internals are shown"
    settle(harness)
    assert events(harness, reference, "feedback_given") == []
    assert concern(harness, reference).feedback_at is None
    # Not recorded as done: the same modal's submission works once saving works again.
    monkeypatch.undo()
    harness.interact(submission(view, FEEDBACK))
    harness.fake.wait_for("chat.update")
    assert concern(harness, reference).feedback_at == MONDAY_MORNING


# --- the service -----------------------------------------------------------------------------


def slack_product(harness: SlackHarness, tmp_path: Path, **chat: Any) -> Product:
    settings = Settings(_env_file=None, outbox_dir=tmp_path / "outbox")  # type: ignore[call-arg]
    return build(
        settings,
        engine=harness.engine,
        chat=ChatSettings(
            _env_file=None,  # type: ignore[call-arg]
            **{
                "slack_bot_token": BOT_TOKEN,
                "slack_signing_secret": SIGNING_SECRET,
                "slack_api_url": harness.fake.url,
                **chat,
            },
        ),
    )


def service_ticks(product: Product, tmp_path: Path, metrics: Metrics) -> dict[str, Tick]:
    mailbox = Mailbox(address=product.settings.mailbox_address, store=lambda batch: None)
    sender = MaildirSender(tmp_path / "outbox")
    return {
        tick.name: tick for tick in _ticks(product, sender=sender, metrics=metrics, mailbox=mailbox)
    }


def test_the_services_slack_tick_posts_what_the_outbox_holds(
    harness: SlackHarness, tmp_path: Path
) -> None:
    raise_concern(harness)
    # The tick runs at the real time: the rows queued for Monday morning are made due now.
    with transaction(harness.engine) as session:
        for row in session.exec(select(OutboxMessage)).all():
            row.send_after = datetime.now(UTC) - timedelta(minutes=1)
    metrics = Metrics()

    async def one_tick() -> None:
        ticks = service_ticks(slack_product(harness, tmp_path), tmp_path, metrics)
        await ticks["slack_dispatch"].run()

    asyncio.run(one_tick())
    rows = slack_rows(harness)
    assert rows and all(row.status == "sent" for row in rows)
    assert [c.args["channel"] for c in harness.fake.called("chat.postMessage")] == [
        row.recipient_address for row in rows
    ]
    assert metrics.registry.get_sample_value("concerns_slack_sent_total") == len(rows)


def test_stopping_the_service_ends_a_slack_pass_after_the_post_in_progress(
    harness: SlackHarness, tmp_path: Path
) -> None:
    """SIGTERM during a pass: each post to a Slack that does not answer takes the client's
    whole timeout (30 s), and the process could not exit until every row claimed was tried.
    The rest are released untried, for the next dispatcher at once."""
    raise_concerns(harness, 2)
    with transaction(harness.engine) as session:
        for row in session.exec(select(OutboxMessage)).all():
            row.send_after = datetime.now(UTC) - timedelta(minutes=1)
    rows = len(slack_rows(harness))
    ticks: dict[str, Tick] = {}

    def posted_while_the_service_stops(args: dict[str, Any]) -> dict[str, Any]:
        ticks["slack_dispatch"].stop()  # SIGTERM arrives while this post is in progress
        return {"ok": True, "channel": "D" + str(args["channel"]), "ts": "1700000000.000001"}

    harness.fake.answers["chat.postMessage"] = posted_while_the_service_stops

    async def one_tick() -> None:
        ticks.update(service_ticks(slack_product(harness, tmp_path), tmp_path, Metrics()))
        await ticks["slack_dispatch"].run()

    asyncio.run(one_tick())
    assert len(harness.fake.called("chat.postMessage")) == 1
    waiting = [row for row in slack_rows(harness) if row.status == "pending"]
    assert len(waiting) == rows - 1 >= 2
    assert {(row.attempts, row.claim_token) for row in waiting} == {(0, None)}


def test_without_slack_settings_there_is_no_slack_tick(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    settings = Settings(_env_file=None, outbox_dir=tmp_path / "outbox")  # type: ignore[call-arg]
    product = build(settings, engine=sqlite_engine, chat=ChatSettings(_env_file=None))  # type: ignore[call-arg]

    async def names() -> set[str]:
        return set(service_ticks(product, tmp_path, Metrics()))

    assert asyncio.run(names()) == {
        "sweep",
        "dispatch",
        "intake",
        "digest",
        "housekeeping",
        "sent_forms",
    }


def test_chat_deliveries_are_forgotten_after_30_days(harness: SlackHarness, tmp_path: Path) -> None:
    """The record of handled events and presses does not grow for ever: the hourly
    housekeeping tick forgets what is over 30 days old, long after any retry or double click."""
    now = datetime.now(UTC)
    with transaction(harness.engine) as session:
        for key, age in (("event:old", 31), ("event:recent", 29), ("action:today", 0)):
            repositories.first_delivery(session, key=key, now=now - timedelta(days=age))

    async def housekeeping() -> None:
        await service_ticks(slack_product(harness, tmp_path), tmp_path, Metrics())[
            "housekeeping"
        ].run()

    asyncio.run(housekeeping())
    with transaction(harness.engine) as session:
        kept = {row.key for row in session.exec(select(ChatDelivery)).all()}
        assert kept == {"event:recent", "action:today"}
        # A forgotten event id counts as new again (Slack never retries that late).
        assert repositories.first_delivery(session, key="event:old", now=now)


@pytest.mark.parametrize(
    "code", ["invalid_auth", "not_authed", "token_revoked", "account_inactive"]
)
def test_a_token_slack_refuses_stops_start_up_with_a_clear_message(
    harness: SlackHarness, tmp_path: Path, code: str
) -> None:
    harness.fake.fail("auth.test", code)
    with pytest.raises(CannotServe) as refused:
        _slack_bot(slack_product(harness, tmp_path))
    assert refused.value.status == 2
    message = str(refused.value)
    assert f"Slack did not accept SLACK_BOT_TOKEN ({code})" in message
    assert "unset SLACK_BOT_TOKEN" in message
    assert BOT_TOKEN not in message


def test_an_unreachable_slack_does_not_stop_start_up(
    sqlite_engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/api/"  # nothing listens there
    settings = Settings(_env_file=None, outbox_dir=tmp_path / "outbox")  # type: ignore[call-arg]
    chat = ChatSettings(
        _env_file=None,  # type: ignore[call-arg]
        slack_bot_token=BOT_TOKEN,  # type: ignore[arg-type]
        slack_signing_secret=SIGNING_SECRET,  # type: ignore[arg-type]
        slack_api_url=closed,
    )
    assert _slack_bot(build(settings, engine=sqlite_engine, chat=chat)) is not None
    assert "Slack could not be reached at start-up" in caplog.text
    assert BOT_TOKEN not in caplog.text


def test_slack_back_after_an_unreachable_start_is_served(
    harness: SlackHarness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Started while Slack dropped every connection, the app serves Slack's requests (over HTTP)
    once Slack answers again."""
    reference = raise_concern(harness)
    harness.fake.unreachable = True
    product = slack_product(harness, tmp_path)
    bot = _slack_bot(product)
    assert bot is not None and "could not be reached" in caplog.text
    harness.fake.unreachable = False
    web = WebClient(create_app(product, metrics=Metrics(), clock=lambda: MONDAY_MORNING, slack=bot))
    try:
        body = form_body(
            {
                "type": "block_actions",
                "team": {"id": TEAM_ID},
                "user": {"id": OUTSIDER, "team_id": TEAM_ID},
                "api_app_id": "A0CONCERNS",
                "trigger_id": "1.trigger",
                "container": {"type": "message", "message_ts": "1.000001", "channel_id": DM},
                "channel": {"id": DM},
                "actions": [{"type": "button", "action_id": ACKNOWLEDGE, "value": reference}],
            }
        )
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            **signed(body, secret=SIGNING_SECRET),
        }
        answer = web.post("/slack/events", content=body.encode(), headers=headers)
    finally:
        web.close()
    assert answer.status_code == 200
    (refusal,) = harness.fake.wait_for("chat.postEphemeral")
    assert refusal.args["user"] == OUTSIDER


def test_socket_mode_only_with_an_app_token(harness: SlackHarness, tmp_path: Path) -> None:
    assert socket_mode_handler(slack_product(harness, tmp_path), harness.bot) is None
    with_token = slack_product(harness, tmp_path, slack_app_token="xapp-1-test")
    handler = socket_mode_handler(with_token, harness.bot)
    assert handler is not None
    assert handler.app is harness.bot.app
    assert handler.client.app_token == "xapp-1-test"
    # Not connected: that needs Slack's servers.
    assert not handler.client.is_connected()


def test_socket_mode_alone_needs_no_signing_secret_and_serves_no_http(
    harness: SlackHarness, tmp_path: Path
) -> None:
    """With the bot and app tokens but no signing secret, Slack runs over Socket Mode only:
    /slack/events answers 404, whatever the request is signed with."""
    product = slack_product(
        harness, tmp_path, slack_signing_secret=None, slack_app_token="xapp-1-test"
    )
    assert product.chat.slack_configured and product.policy.slack_enabled
    bot = _slack_bot(product)
    assert bot is not None and not bot.serves_http
    try:
        handler = socket_mode_handler(product, bot)
        assert handler is not None and handler.app is bot.app
        web = WebClient(create_app(product, metrics=Metrics(), slack=bot))
        try:
            body = json.dumps({"token": "x", "challenge": "c-1", "type": "url_verification"})
            for secret in ("guessed-secret", SIGNING_SECRET):
                answer = web.post(
                    "/slack/events",
                    content=body,
                    headers={"Content-Type": "application/json", **signed(body, secret=secret)},
                )
                assert answer.status_code == 404
        finally:
            web.close()
        # Neither token alone turns Slack on.
        assert _slack_bot(slack_product(harness, tmp_path, slack_signing_secret=None)) is None
    finally:
        bot.close()


def test_the_other_contacts_copies_show_the_acknowledgement_too(
    harness: SlackHarness, posted: tuple[str, Call]
) -> None:
    """Everyone told at the level sees it is acknowledged, so nobody picks it up twice."""
    reference, call = posted
    # A second copy at the same level: the acknowledgement reminder, posted to the supervisor.
    reminder_at = concern(harness, reference).ack_reminder_at
    from escalation.sweep import sweep

    sweep(engine=harness.engine, now=reminder_at, policy=harness.policy)
    dispatch(harness, now=reminder_at)
    refs = [row.external_ref for row in slack_rows(harness) if row.recipient_address == SUPERVISOR]
    assert len(refs) == 2 and all(refs)
    first_ts = supervisor_ts_of(refs[0])
    press(harness, ACKNOWLEDGE, reference, message_ts=first_ts, blocks=call.args["blocks"])
    updates = harness.fake.wait_for("chat.update", count=2)
    assert sorted(update.args["ts"] for update in updates) == sorted(
        supervisor_ts_of(ref) for ref in refs
    )
    for update in updates:
        assert "Acknowledged* by Dr Jordan Sample" in json.dumps(update.args["blocks"])
        assert ACKNOWLEDGE not in button_ids(update.args["blocks"])


def test_not_mine_leaves_the_other_copies_alone(
    harness: SlackHarness, posted: tuple[str, Call]
) -> None:
    reference, call = posted
    reminder_at = concern(harness, reference).ack_reminder_at
    from escalation.sweep import sweep

    sweep(engine=harness.engine, now=reminder_at, policy=harness.policy)
    dispatch(harness, now=reminder_at)
    first = next(row for row in slack_rows(harness) if row.recipient_address == SUPERVISOR)
    ts = supervisor_ts_of(first.external_ref)
    pass_on(harness, reference, ts=ts, blocks=call.args["blocks"], reason="Not my ward")
    harness.fake.wait_for("chat.update")
    settle(harness)
    assert [update.args["ts"] for update in harness.fake.called("chat.update")] == [ts]


def supervisor_ts_of(external_ref: str | None) -> str:
    assert external_ref is not None
    return external_ref.split(":")[1]


def test_slow_work_cannot_keep_slack_waiting_for_its_answer(
    harness: SlackHarness, posted: tuple[str, Call], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slack needs each answer within 3 seconds. With the work after every ack stuck (a locked
    database, say), more presses than there are threads of any pool are all still answered at
    once, and the work is done once it can be."""
    reference, _ = posted
    stuck = threading.Event()
    real_act = slack_contacts._act

    def stuck_act(*args: Any, **kwargs: Any) -> None:
        stuck.wait(20)
        real_act(*args, **kwargs)

    monkeypatch.setattr(slack_contacts, "_act", stuck_act)
    presses = LISTENER_THREADS + WORK_THREADS + 4
    slowest = 0.0
    try:
        for n in range(presses):
            began = time.monotonic()
            press(harness, ACKNOWLEDGE, reference, message_ts=f"1.{n:06d}", blocks=[])
            slowest = max(slowest, time.monotonic() - began)
        assert slowest < 2.9, f"an answer took {slowest:.1f} s"  # Slack waits 3 s
        assert concern(harness, reference).acknowledged_at is None, "the work is still stuck"
    finally:
        stuck.set()
    settle(harness)
    assert concern(harness, reference).acknowledged_at == MONDAY_MORNING
    assert len(events(harness, reference, "acknowledged")) == 1


def test_work_handed_on_while_the_service_stops_is_done_not_dropped(
    harness: SlackHarness,
) -> None:
    """Once the work pool is closing (the service is stopping), a listener's work after its
    ack runs where it is handed on: what Slack was told is in hand still happens."""
    harness.bot.close()
    done: list[str] = []
    harness.bot.later(lambda: done.append("saved"))
    assert done == ["saved"]


def test_a_refused_button_works_once_the_directory_is_put_right(
    harness: SlackHarness, posted: tuple[str, Call]
) -> None:
    """A refusal is not the press's one effect: after the directory gains the person's Slack
    account, the same Acknowledge button on the same message acknowledges."""
    reference, call = posted
    ts = supervisor_ts(harness)
    press(harness, ACKNOWLEDGE, reference, user=OUTSIDER, message_ts=ts, blocks=call.args["blocks"])
    press(harness, ACKNOWLEDGE, reference, user=OUTSIDER, message_ts=ts, blocks=call.args["blocks"])
    settle(harness)
    assert len(harness.fake.called("chat.postEphemeral")) == 1  # a double click: one refusal
    assert concern(harness, reference).acknowledged_at is None
    with transaction(harness.engine) as session:
        supervisor = session.exec(select(Contact).where(Contact.slack_user_id == SUPERVISOR)).one()
        supervisor.slack_user_id = OUTSIDER  # the directory is corrected
    press(harness, ACKNOWLEDGE, reference, user=OUTSIDER, message_ts=ts, blocks=call.args["blocks"])
    settle(harness)
    assert concern(harness, reference).acknowledged_at == MONDAY_MORNING


# --- what an action is shown on ----------------------------------------------------------------


def locked(session: Any, reference: str) -> Concern:
    found = repositories.concern_by_reference(session, reference)
    assert found is not None
    concern_row = repositories.lock_concern(session, found.id or 0)
    assert concern_row is not None
    return concern_row


def test_sooner_deadlines_after_an_acknowledgement_ask_only_for_feedback(
    harness: SlackHarness, posted: tuple[str, Call]
) -> None:
    """Acknowledged in Slack, then rated higher by staff: the notice of the sooner deadlines
    offers Record feedback and Not mine, not an Acknowledge that could only be refused."""
    reference, call = posted
    press(
        harness,
        ACKNOWLEDGE,
        reference,
        message_ts=supervisor_ts(harness),
        blocks=call.args["blocks"],
    )
    harness.fake.wait_for("chat.update")
    assert concern(harness, reference).acknowledged_at is not None
    later = MONDAY_MORNING + timedelta(hours=1)
    with transaction(harness.engine) as session:
        override_triage(
            session=session,
            concern=locked(session, reference),
            by=Actor(kind="staff", channel="web"),
            likelihood=5,
            impact=5,
            reason="Second report of unsupervised nights",
            now=later,
            policy=harness.policy,
        )
    dispatch(harness, later)
    (notice,) = [
        row
        for row in slack_rows(harness)
        if row.kind == "deadlines_changed" and row.recipient_address == SUPERVISOR
    ]
    assert button_ids((notice.payload or {})["blocks"]) == [
        RECORD_FEEDBACK,
        NOT_MINE,
        OPEN_STAFF_PAGE,
    ]


def test_acting_at_the_next_level_leaves_the_last_levels_messages_alone(
    harness: SlackHarness, posted: tuple[str, Call]
) -> None:
    """The school acknowledges at pathway 2: its own messages show it, but the supervisor's
    message telling her the concern has moved on is not rewritten with who at the school did."""
    reference, _ = posted
    moved_at = MONDAY_MORNING + timedelta(minutes=5)
    with transaction(harness.engine) as session:
        escalate_by_hand(
            session=session,
            concern=locked(session, reference),
            by=Actor(kind="staff", channel="web"),
            reason="Not dealt with locally",
            now=moved_at,
            policy=harness.policy,
        )
        current = locked(session, reference)
        (school,) = [
            contact
            for row, contact in repositories.assignments_of(session, current.id or 0, pathway=2)
            if row.part == "primary"
        ]
        school.slack_user_id = "U0SCHOOL01"
    dispatch(harness, moved_at)
    rows = slack_rows(harness)
    (moved_on,) = [
        row for row in rows if row.kind == "escalated_out" and row.recipient_address == SUPERVISOR
    ]
    (moved_in,) = [
        row for row in rows if row.kind == "escalated_in" and row.recipient_address == "U0SCHOOL01"
    ]
    assert moved_on.external_ref and moved_in.external_ref
    channel, ts = moved_in.external_ref.split(":")
    harness.fake.calls.clear()
    answer = harness.interact(
        {
            "type": "block_actions",
            "team": {"id": TEAM_ID},
            "user": {"id": "U0SCHOOL01", "team_id": TEAM_ID},
            "api_app_id": "A0CONCERNS",
            "trigger_id": "1.trigger",
            "container": {"type": "message", "message_ts": ts, "channel_id": channel},
            "channel": {"id": channel},
            "message": {"ts": ts, "text": "A concern", "blocks": moved_in.payload["blocks"]},
            "actions": [
                {
                    "type": "button",
                    "action_id": ACKNOWLEDGE,
                    "block_id": ACTIONS_BLOCK,
                    "value": reference,
                    "action_ts": "1700000099.000001",
                }
            ],
        }
    )
    assert answer.status_code == 200
    harness.fake.wait_for("chat.update")
    harness.settle()
    assert concern(harness, reference).acknowledged_at is not None
    updated = {
        (call.args.get("channel"), call.args.get("ts"))
        for call in harness.fake.called("chat.update")
    }
    assert (channel, ts) in updated
    assert tuple(moved_on.external_ref.split(":")) not in updated
