"""Test helpers for the integration tests: a loaded directory, a policy, and ready-made concerns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.bootstrap import build_policy
from app.settings import Settings
from escalation.actions import Actor, override_triage
from escalation.policy import Policy
from storage.db import transaction
from storage.directory import example_directory_path, load_directory_file
from storage.tables import Concern

LONDON = ZoneInfo("Europe/London")
MONDAY_MORNING = datetime(2026, 11, 23, 10, 0, tzinfo=LONDON)


@dataclass
class Clock:
    """A clock a test sets and moves on (`clock.now += timedelta(...)`)."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


def policy() -> Policy:
    return build_policy(Settings(_env_file=None))  # type: ignore[call-arg]


def rate_by_hand(
    session: Session, concern: Concern, *, likelihood: int, impact: int, now: datetime
) -> None:
    """A dean's override of the concern's rating, as the staff pages make it."""
    override_triage(
        session=session,
        concern=concern,
        by=Actor(kind="staff", channel="web"),
        likelihood=likelihood,
        impact=impact,
        reason="Rated by hand in a test",
        now=now,
        policy=policy(),
    )


def load_example_directory(engine: Engine) -> None:
    with transaction(engine) as session:
        load_directory_file(
            session, example_directory_path(), now=datetime(2026, 11, 1, tzinfo=UTC)
        )


def example_placement(engine: Engine) -> dict[str, str]:
    """The first organisation and department of the example directory, by name."""
    from storage.directory import describe_directory

    with transaction(engine) as session:
        organisation = describe_directory(session)["organisations"][0]
    return {
        "organisation": organisation["name"],
        "department": organisation["departments"][0]["name"],
    }


def concern_input(placement: dict[str, str], **changes: Any) -> dict[str, Any]:
    """A medium-risk named concern (occasionally x learners affected = amber), as JSON input."""
    raw: dict[str, Any] = {
        "learner": {
            "name": "Priya Testlearner",
            "email": "priya.testlearner@example.nhs.uk",
            "group": "foundation",
            "programme": "Foundation Programme FY1",
        },
        "placement": placement,
        "summary": "Regional teaching keeps being cancelled",
        "description": "Our weekly teaching has been cancelled several times this term.",
        "frequency": "occasionally",
        "harm": "learners_affected",
        "raised_before": "no",
        "about_pathway1_contact": False,
        "confidentiality": "named",
    }
    raw.update(changes)
    return raw
