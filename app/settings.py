"""Every setting the product reads, from the environment or `.env` (never at import time)."""

from __future__ import annotations

import ipaddress
from datetime import date, time
from fractions import Fraction
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import limits
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Defaults are the embedded set-up a newcomer gets from `make run`."""

    model_config = SettingsConfigDict(
        env_prefix="CONCERNS_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
    )

    database_url: str = "sqlite:///./var/concerns.db"
    directory_file: Path | None = Field(
        default=None,
        description="Directory YAML loaded when the database has none "
        "(default: the shipped example region).",
    )
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # Reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed, as addresses or
    # networks separated by commas ("*": any, only when nothing but the proxy can reach the
    # port). Behind a proxy not listed, every learner seems to come from the proxy's address and
    # shares its rate limits.
    forwarded_allow_ips: str = "127.0.0.1,::1"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    mailbox_address: str = "escalating-concerns@localhost"
    smtp_max_message_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    smtp_max_recipients: int = Field(default=20, ge=1, le=1000)
    smtp_max_connections: int = Field(default=100, ge=1, le=10_000)
    # Of them, from one client address (an IPv6 client's /64).
    smtp_max_connections_per_client: int = Field(default=50, ge=1, le=10_000)
    smtp_timeout_seconds: int = Field(default=60, ge=1, le=3600)
    # Automatic answers to one sender address in any 24 hours, of each kind: acknowledgements
    # of new concerns, and answers to replies that could not be acted on (stops mail loops).
    acks_per_sender_per_day: int = Field(default=10, ge=1, le=1000)
    # New concerns raised from one sender address in any 24 hours; the mail past it is kept
    # aside for the dean and quality team, and tells nobody (a flood in one sender's name).
    email_concerns_per_sender_per_day: int = Field(default=20, ge=1, le=1000)
    # May hold the relay's user and password (smtp://user:password@host): kept out of any
    # printout of the settings, as the other secrets are.
    smtp_relay_url: SecretStr | None = None
    outbox_dir: Path = Path("./var/outbox")
    public_url: str = "http://127.0.0.1:8000"
    # The npm package nhsuk-frontend's dist/nhsuk folder; unset: ./node_modules of the project.
    frontend_dir: Path | None = None
    secret_key: SecretStr = SecretStr("dev-only-change-me")
    # Keys used before the current one, separated by spaces: what was signed with them (learners'
    # status links, reply tokens in sent mail, sign-in links, sessions) is still accepted while
    # they are listed. Nothing new is signed with them.
    previous_secret_keys: SecretStr = SecretStr("")
    timezone: str = "Europe/London"
    holidays: str = "GB-ENG"
    working_hours: str = "09:00-17:00"
    # Extra closure days (ISO dates, comma-separated) on top of the bank holidays.
    extra_closed_days: str = ""
    reminder_fraction: float = 0.5
    silence_close_days: int = Field(default=10, ge=1, le=250)
    hotspot_window_days: int = Field(default=90, ge=1, le=3650)
    # The scheduler only ticks: every tick reads what is due from the database.
    sweep_interval_seconds: int = Field(default=60, ge=1, le=86_400)
    dispatch_interval_seconds: int = Field(default=10, ge=1, le=3600)
    # Per client address, in the `limits` notation ("10/10 minutes"). Many learners can share one
    # address behind an NHS organisation's proxy: raise these there rather than switch them off.
    submission_rate_limit: str = "10/10 minutes"
    status_lookup_rate_limit: str = "10/15 minutes"
    # Staff sign-in: requests for an email link, per address and per client address.
    sign_in_rate_limit: str = "5/15 minutes"
    # A staff session ends after this many minutes without use, and after this many hours anyway.
    staff_session_idle_minutes: int = Field(default=60, ge=5, le=24 * 60)
    staff_session_hours: int = Field(default=10, ge=1, le=24 * 7)
    # Closed concerns older than this are removed by `concerns retention`.
    retention_years: int = Field(default=8, ge=1, le=100)
    # OpenID Connect sign-in for staff (for example Microsoft Entra ID): the issuer's discovery
    # document, and this service's client registration there. Unset: email links only.
    oidc_metadata_url: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    # The button's words on the sign-in page.
    oidc_provider_name: str = "your organisation's account"

    @field_validator("submission_rate_limit", "status_lookup_rate_limit", "sign_in_rate_limit")
    @classmethod
    def _rate_limit_shape(cls, value: str) -> str:
        try:
            limits.parse(value)
        except ValueError:
            raise ValueError(
                f"'{value}' is not a rate limit such as 10/10 minutes or 30/hour"
            ) from None
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxy_addresses(cls, value: str) -> str:
        for entry in (part.strip() for part in value.split(",")):
            if entry == "*":
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"'{entry}' is not an IP address or network such as 10.0.0.5 or 10.0.0.0/24"
                ) from None
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone_known(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"'{value}' is not a time zone name such as Europe/London") from None
        return value

    @field_validator("working_hours")
    @classmethod
    def _working_hours_shape(cls, value: str) -> str:
        start, end = parse_working_hours(value)
        if start >= end:
            raise ValueError("the start must be before the end, e.g. 09:00-17:00")
        return value

    @field_validator("holidays")
    @classmethod
    def _holidays_known(cls, value: str) -> str:
        country, _, subdivision = value.partition("-")
        try:
            holidays.country_holidays(country, subdiv=subdivision or None)
        except NotImplementedError:
            raise ValueError(
                f"'{value}' is not a country (and subdivision) the holidays package knows; "
                "use for example GB-ENG, GB-WLS, GB-SCT or GB-NIR"
            ) from None
        return value

    @field_validator("extra_closed_days")
    @classmethod
    def _closed_days(cls, value: str) -> str:
        parse_closed_days(value)
        return value

    @field_validator("reminder_fraction")
    @classmethod
    def _fraction(cls, value: float) -> float:
        if not 0 < reminder_fraction(value) < 1:
            raise ValueError(
                "must be between 0 and 1 (0.5 reminds when half the window has passed)"
            )
        return value

    def relay_url(self) -> str | None:
        """CONCERNS_SMTP_RELAY_URL, or None when outbound mail goes to the maildir."""
        return self.smtp_relay_url.get_secret_value() if self.smtp_relay_url else None

    def previous_secrets(self) -> tuple[str, ...]:
        """The previous secret keys, newest first as listed."""
        return tuple(self.previous_secret_keys.get_secret_value().split())


class ChatSettings(BaseSettings):
    """Chat settings keep the names the Slack and Teams documentation use (no CONCERNS_ prefix)."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", env_ignore_empty=True, extra="ignore"
    )

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    # Where the Slack Web API is (tests point it at a local fake); the real one by default.
    slack_api_url: str = "https://slack.com/api/"
    # Chat messages carry no text of the concern by default; true adds its one-line summary.
    slack_share_summary: bool = False
    # The bot's Entra ID app registration (Azure Bot resource): its client id, client secret and
    # tenant. Incoming activities are checked against them; outgoing calls use them.
    teams_app_id: str | None = None
    teams_app_password: SecretStr | None = None
    teams_tenant_id: str | None = None
    # Teams cards carry no text of the concern by default; true adds its one-line summary.
    teams_share_summary: bool = False

    @property
    def slack_configured(self) -> bool:
        """Slack is on when the bot token is set with the signing secret (HTTP mode at
        /slack/events), the app token (Socket Mode), or both."""
        return self.slack_bot_token is not None and (
            self.slack_signing_secret is not None or self.slack_app_token is not None
        )

    @property
    def teams_configured(self) -> bool:
        """Teams is on when the bot's app id, its secret and its tenant are all set."""
        return (
            self.teams_app_id is not None
            and self.teams_app_password is not None
            and self.teams_tenant_id is not None
        )


def reminder_fraction(value: float) -> Fraction:
    """The setting as an exact fraction: 0.5 -> 1/2, 0.333 -> 333/1000."""
    return Fraction(str(value)).limit_denominator(1000)


def parse_closed_days(value: str) -> frozenset[date]:
    """'2026-12-29, 2026-12-30' -> the two dates."""
    days = set()
    for part in value.split(","):
        if part.strip():
            try:
                days.add(date.fromisoformat(part.strip()))
            except ValueError:
                raise ValueError(f"'{part.strip()}' is not a date like 2026-12-29") from None
    return frozenset(days)


def parse_working_hours(value: str) -> tuple[time, time]:
    """'09:00-17:00' -> (09:00, 17:00)."""
    try:
        start, end = (time.fromisoformat(part.strip()) for part in value.split("-"))
    except ValueError as error:
        raise ValueError("use HH:MM-HH:MM, e.g. 09:00-17:00") from error
    return start, end
