"""Whose Teams account is kept with a learner's record: the record is found by the email typed
in the Teams form, so the account is kept with it only when Teams vouches that the email is that
account's, in the organisation's own tenant. Someone of another organisation's tenant shows
whatever email that organisation's admins set, and would then be shown the learner's concerns
(and given their buttons) under "My concerns"."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from intake.service import submit_concern
from intake.submission import Channel, parse_submission
from notifications import teams_learner_cards as cards
from storage.db import transaction
from storage.tables import Learner
from tests.integration.fake_teams import TeamsUser
from tests.integration.helpers import MONDAY_MORNING, concern_input, load_example_directory
from tests.integration.teams_harness import TeamsHarness, teams_harness
from tests.integration.test_teams_learners import answers, card_of, text_blocks

PRIYA_EMAIL = "priya.testlearner@example.nhs.uk"  # concern_input's learner
SOMEONE = TeamsUser(
    teams_id="29:1someone",
    aad_object_id="6a1e0000-0000-4000-8000-00000000ee05",
    name="Someone",
    email=PRIYA_EMAIL,
)
GUEST_UPN = "priya.testlearner_example.nhs.uk#EXT#@vale.onmicrosoft.com"


@pytest.fixture
def harness(sqlite_engine: Engine) -> Iterator[TeamsHarness]:
    load_example_directory(sqlite_engine)
    with teams_harness(sqlite_engine, clock=lambda: MONDAY_MORNING) as running:
        running.fake.add_member(SOMEONE)
        yield running


@pytest.mark.parametrize(
    ("member", "kept"),
    [
        pytest.param({}, True, id="a member of the organisation's tenant"),
        # A student on placement may be a guest: the email is the one the invitation went to.
        pytest.param(
            {"userRole": "guest", "userPrincipalName": GUEST_UPN},
            True,
            id="a guest of the organisation's tenant",
        ),
        pytest.param(
            {"tenantId": "0f0f0f0f-0000-4000-8000-000000000bad"},
            False,
            id="someone of another organisation's tenant",
        ),
        pytest.param(
            {"tenantId": "0f0f0f0f-0000-4000-8000-000000000bad", "userRole": "guest"},
            False,
            id="a guest of another organisation's tenant",
        ),
        pytest.param(
            {"email": None, "userRole": "guest", "userPrincipalName": GUEST_UPN},
            False,
            id="a guest known only by the user principal name",
        ),
        pytest.param(
            {"aadObjectId": "6a1e0000-0000-4000-8000-00000000ffff"},
            False,
            id="another Entra account",
        ),
    ],
)
def test_a_teams_account_is_kept_with_a_learner_only_where_teams_vouches_for_the_email(
    harness: TeamsHarness, member: dict[str, Any], kept: bool
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
    harness.fake.members[SOMEONE.teams_id].update(member)
    harness.say(SOMEONE, "hello")
    card_of(harness.press(SOMEONE, cards.RAISE_CONCERN, answers(name="Priya", email=PRIYA_EMAIL)))
    with transaction(harness.engine) as session:
        learner = session.exec(select(Learner).where(Learner.email == PRIYA_EMAIL)).one()
        assert learner.teams_user_id == (SOMEONE.aad_object_id if kept else None)
    listed = text_blocks(card_of(harness.press(SOMEONE, cards.MY_CONCERNS)))
    assert (on_the_web in str(listed)) is kept
