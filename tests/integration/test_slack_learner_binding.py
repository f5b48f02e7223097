"""Whose Slack account is kept with a learner's record: the learner record is found by the email
typed in the Slack form, so the account is kept with it only when Slack vouches that the email is
that account's. A profile's email alone is not enough: someone of another organisation's
workspace (Slack Connect) shows whatever that organisation set, and would then be shown the
learner's concerns in App Home, with signed links to their status pages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from intake.service import submit_concern
from intake.submission import Channel, parse_submission
from storage.db import transaction
from storage.tables import Learner
from tests.integration.fake_slack import TEAM_ID
from tests.integration.helpers import MONDAY_MORNING, concern_input, load_example_directory
from tests.integration.slack_harness import SlackHarness, slack_harness
from tests.integration.test_slack_learners import good_answers, saved, submission

SOMEONE = "U0SOMEONE"
PRIYA_EMAIL = "priya.testlearner@example.nhs.uk"  # concern_input's learner
MEMBER = {"team_id": TEAM_ID, "is_email_confirmed": True}


@pytest.fixture
def harness(sqlite_engine: Engine) -> Iterator[SlackHarness]:
    load_example_directory(sqlite_engine)
    with slack_harness(sqlite_engine, clock=lambda: MONDAY_MORNING) as running:
        yield running


@pytest.mark.parametrize(
    ("account", "kept"),
    [
        pytest.param(MEMBER, True, id="a member of this workspace"),
        # A student on placement may be a guest: Slack confirmed the address invited.
        pytest.param(MEMBER | {"is_restricted": True}, True, id="a guest of this workspace"),
        pytest.param(
            {"team_id": "T0OTHERORG", "is_stranger": True, "is_email_confirmed": True},
            False,
            id="someone of another organisation's workspace",
        ),
        pytest.param(MEMBER | {"is_email_confirmed": False}, False, id="an unconfirmed email"),
        pytest.param(MEMBER | {"is_bot": True}, False, id="a bot"),
        pytest.param({"is_email_confirmed": True}, False, id="no workspace given"),
    ],
)
def test_a_slack_account_is_kept_with_a_learner_only_where_slack_vouches_for_the_email(
    harness: SlackHarness, account: dict[str, Any], kept: bool
) -> None:
    placement = {
        "organisation": "Vale General Hospitals NHS Trust",
        "department": "Emergency Department",
    }
    on_the_web = submit_concern(
        engine=harness.engine,
        concern=parse_submission(concern_input(placement, confidentiality="confidential")),
        channel=Channel.WEB,
        now=MONDAY_MORNING,
        policy=harness.policy,
    ).reference
    harness.fake.answers["users.info"] = lambda args: {
        "ok": True,
        "user": {
            "id": args.get("user"),
            "profile": {"email": PRIYA_EMAIL, "real_name": "Priya"},
            **account,
        },
    }
    answer = harness.interact(
        submission(good_answers(email=PRIYA_EMAIL, name="Priya"), user=SOMEONE)
    )
    assert answer.status_code == 200
    saved(harness)
    harness.settle()
    with transaction(harness.engine) as session:
        learner = session.exec(select(Learner).where(Learner.email == PRIYA_EMAIL)).one()
        assert learner.slack_user_id == (SOMEONE if kept else None)
    harness.event(
        {"type": "app_home_opened", "user": SOMEONE, "channel": "DU0SOMEONE", "tab": "home"},
        event_id="Ev0HOMESOMEONE",
    )
    [published] = harness.fake.wait_for("views.publish")
    assert (on_the_web in json.dumps(published.args["view"])) is kept
