"""Builds the product from settings: the one place that wires calendar, policy and database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
from sqlalchemy.engine import Engine

from app.settings import (
    ChatSettings,
    Settings,
    parse_closed_days,
    parse_working_hours,
    reminder_fraction,
)
from escalation.links import StatusLinks, status_link_key
from escalation.policy import Policy
from routing.calendar import WorkingCalendar
from routing.deadlines import DeadlinePolicy
from storage import directory, migrate
from storage.db import create_db_engine, serialise, transaction


@dataclass(frozen=True)
class Product:
    settings: Settings
    engine: Engine
    policy: Policy
    # Slack and Teams, named as their own documentation names them; all unset: chat is off.
    chat: ChatSettings = field(default_factory=ChatSettings)


class ClosedDays:
    """England's bank holidays (from `holidays`) plus any days the operator closes."""

    def __init__(self, spec: str, extra: frozenset[date]) -> None:
        country, _, subdivision = spec.partition("-")
        self._public = (
            holidays.country_holidays(country, subdiv=subdivision or None) if country else None
        )
        self._extra = extra

    def __contains__(self, day: object) -> bool:
        if day in self._extra:
            return True
        return self._public is not None and day in self._public


def build_calendar(settings: Settings) -> WorkingCalendar:
    start, end = parse_working_hours(settings.working_hours)
    extra = parse_closed_days(settings.extra_closed_days)
    return WorkingCalendar(
        timezone=ZoneInfo(settings.timezone),
        holidays=ClosedDays(settings.holidays, extra),
        day_start=start,
        day_end=end,
    )


def build_policy(settings: Settings, *, chat: ChatSettings | None = None) -> Policy:
    return Policy(
        slack_enabled=chat is not None and chat.slack_configured,
        chat_summary=chat is not None and chat.slack_share_summary,
        teams_enabled=chat is not None and chat.teams_configured,
        teams_summary=chat is not None and chat.teams_share_summary,
        calendar=build_calendar(settings),
        deadlines=DeadlinePolicy(
            reminder_fraction=reminder_fraction(settings.reminder_fraction),
            silence_close_days=settings.silence_close_days,
        ),
        hotspot_window_days=settings.hotspot_window_days,
        public_url=settings.public_url,
        reply_address=settings.mailbox_address,
        status_links=StatusLinks(
            status_link_key(settings.secret_key.get_secret_value()),
            settings.public_url,
            previous_keys=[status_link_key(secret) for secret in settings.previous_secrets()],
        ),
    )


def directory_file(settings: Settings) -> Path:
    return settings.directory_file or directory.example_directory_path()


def build(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    chat: ChatSettings | None = None,
) -> Product:
    """The product on these settings; tests pass their own engine or settings."""
    settings = settings or Settings()
    chat = chat or ChatSettings()
    return Product(
        settings=settings,
        engine=engine or create_db_engine(settings.database_url),
        policy=build_policy(settings, chat=chat),
        chat=chat,
    )


def prepare_database(
    product: Product, *, now: datetime | None = None
) -> directory.LoadSummary | None:
    """Migrate the schema and, when the database has no directory yet, load the configured one."""
    migrate.upgrade(product.engine)
    with transaction(product.engine) as session:
        # Instances starting together must not both load the default directory.
        serialise(session, "directory")
        if directory.has_directory(session):
            return None
        return directory.load_directory_file(
            session, directory_file(product.settings), now=now or datetime.now(UTC)
        )
