"""Settings: every one is documented in .env.example with its default, and bad values are named."""

from __future__ import annotations

import re
from datetime import date, datetime, time
from pathlib import Path
from types import SimpleNamespace
from typing import cast
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr, ValidationError

from app.bootstrap import build_calendar
from app.serve import _print_banner
from app.settings import ChatSettings, Settings
from intake.mailbox import Mailbox
from notifications.senders import MaildirSender

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"


def documented() -> dict[str, str]:
    pairs = re.findall(r"^([A-Z_]+)=(.*)$", ENV_EXAMPLE.read_text(), flags=re.MULTILINE)
    return dict(pairs)


def test_env_example_lists_every_setting() -> None:
    names = {f"CONCERNS_{name.upper()}" for name in Settings.model_fields}
    names |= {name.upper() for name in ChatSettings.model_fields}
    assert set(documented()) == names


def test_env_example_shows_the_real_defaults() -> None:
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    for name, value in documented().items():
        if not name.startswith("CONCERNS_"):
            continue
        actual = getattr(defaults, name.removeprefix("CONCERNS_").lower())
        if hasattr(actual, "get_secret_value"):
            actual = actual.get_secret_value()
        if actual is None:
            assert value == "", name
        elif isinstance(actual, Path):
            assert Path(value) == actual, name
        else:
            assert str(actual) == value, name


def test_settings_are_read_from_the_environment_not_at_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONCERNS_DATABASE_URL", "postgresql://db.example/concerns")
    monkeypatch.setenv("CONCERNS_DIRECTORY_FILE", "")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.database_url == "postgresql://db.example/concerns"
    assert settings.directory_file is None, "an empty value means the default"


def test_previous_secret_keys_are_read_space_separated_and_never_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings(_env_file=None).previous_secrets() == ()  # type: ignore[call-arg]
    monkeypatch.setenv("CONCERNS_PREVIOUS_SECRET_KEYS", " newer-old-key  oldest-key ")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.previous_secrets() == ("newer-old-key", "oldest-key")
    assert "oldest-key" not in repr(settings) and "oldest-key" not in str(settings)


def test_the_relay_password_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).relay_url() is None  # type: ignore[call-arg]
    monkeypatch.setenv("CONCERNS_SMTP_RELAY_URL", "smtp://mailer:relay-pass-42@relay.example:587")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.relay_url() == "smtp://mailer:relay-pass-42@relay.example:587"
    assert "relay-pass-42" not in repr(settings) and "relay-pass-42" not in str(settings)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("working_hours", "17:00-09:00"),
        ("working_hours", "nine to five"),
        ("reminder_fraction", "1.5"),
        ("holidays", "XX-YY"),
        ("extra_closed_days", "29/12/2026"),
        ("forwarded_allow_ips", "10.0.0.5, proxy.example.nhs.uk"),
        ("forwarded_allow_ips", "10.0.0.0/33"),
    ],
)
def test_a_bad_setting_is_refused_by_name(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"CONCERNS_{name.upper()}", value)
    with pytest.raises(ValidationError, match=name):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_proxy_addresses_may_be_addresses_networks_or_anyone() -> None:
    for value in ("10.0.0.5", "10.0.0.0/24, 2001:db8::/32", "*", "127.0.0.1,::1"):
        assert Settings(_env_file=None, forwarded_allow_ips=value).forwarded_allow_ips == value  # type: ignore[call-arg]


def test_the_calendar_follows_the_settings() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, working_hours="08:00-16:00", extra_closed_days="2026-12-29, 2026-12-30"
    )
    calendar = build_calendar(settings)
    assert (calendar.day_start, calendar.day_end) == (time(8), time(16))
    assert calendar.timezone == ZoneInfo("Europe/London")
    assert not calendar.is_working_day(date(2026, 12, 28)), "Boxing Day substitute (GB-ENG)"
    assert not calendar.is_working_day(date(2026, 12, 29)), "closed by the operator"
    assert calendar.is_working_day(date(2026, 12, 31))
    assert calendar.next_working_moment(
        datetime(2026, 12, 28, 12, tzinfo=ZoneInfo("Europe/London"))
    ) == datetime(2026, 12, 31, 8, tzinfo=ZoneInfo("Europe/London"))


def test_a_rate_limit_that_is_not_one_is_named() -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None, submission_rate_limit="lots")  # type: ignore[call-arg]
    assert "submission_rate_limit" in str(raised.value)
    assert "not a rate limit" in str(raised.value)


def test_serve_warns_when_a_previous_key_is_the_development_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        secret_key="a-real-key",
        previous_secret_keys="dev-only-change-me",
        outbox_dir=tmp_path,
    )
    mailbox = cast(Mailbox, SimpleNamespace(port=8025))  # only its port is printed
    _print_banner(settings, mailbox=mailbox, http_port=8000, sender=MaildirSender(tmp_path))
    printed = capsys.readouterr().out
    assert "CONCERNS_PREVIOUS_SECRET_KEYS lists the development default" in printed
    assert "CONCERNS_SECRET_KEY is the development default" not in printed
    real = settings.model_copy(update={"previous_secret_keys": SecretStr("an-old-real-key")})
    _print_banner(real, mailbox=mailbox, http_port=8000, sender=MaildirSender(tmp_path))
    assert "development default" not in capsys.readouterr().out


def test_the_banner_gives_addresses_that_work_for_an_ipv6_host(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """'http://::1:8000/' is not a URL anyone can open: an IPv6 address goes in brackets."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, http_host="::1", smtp_host="::1", outbox_dir=tmp_path
    )
    mailbox = cast(Mailbox, SimpleNamespace(port=8025))  # only its port is printed
    _print_banner(settings, mailbox=mailbox, http_port=8000, sender=MaildirSender(tmp_path))
    printed = capsys.readouterr().out
    assert "via SMTP [::1]:8025" in printed
    assert (
        "open http://[::1]:8000/ (the form to raise a concern: http://[::1]:8000/concerns/new)"
        in printed
    )
