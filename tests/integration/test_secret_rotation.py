"""A changed secret key (`CONCERNS_SECRET_KEY`, the old one listed in
`CONCERNS_PREVIOUS_SECRET_KEYS`): what the old key signed keeps working while it is listed, and
stops once it is left out (as after a leak): a learner's form and session, their emailed status
link, and a reply to mail sent before the change. Staff sign-in links:
tests/integration/test_staff_sign_in.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from app.bootstrap import build
from app.metrics import Metrics
from app.serve import _ticks
from app.settings import ChatSettings, Settings
from intake.mail_intake import process_pending
from intake.mailbox import Mailbox
from notifications.senders import MaildirSender
from notifications.threading import MailThreading
from storage import repositories
from storage.db import transaction
from storage.inbox import Received, store_received
from storage.tables import Concern, InboundMessage, OutboxMessage
from tests.integration.helpers import MONDAY_MORNING, load_example_directory, policy
from tests.integration.test_web_form import answers, confirmed, drawn_form
from tests.integration.webclient import make_app, web_client

BEFORE = {"secret_key": "the-key-before"}
ROTATED = {"secret_key": "the-key-now", "previous_secret_keys": "an-older-key the-key-before"}
REVOKED = {"secret_key": "the-key-now"}
MAILBOX = "escalating-concerns@example.nhs.uk"
LEARNER = "jane.smith@student.example.ac.uk"


@pytest.fixture
def engine(sqlite_engine: Engine) -> Engine:
    load_example_directory(sqlite_engine)
    return sqlite_engine


def concern_count(engine: Engine) -> int:
    with transaction(engine) as session:
        return int(session.exec(select(func.count()).select_from(Concern)).one())


def test_a_form_drawn_before_the_key_changed_can_still_be_sent(engine: Engine) -> None:
    with web_client(make_app(engine, clock=lambda: MONDAY_MORNING, **BEFORE)) as before:
        form = {**drawn_form(before), **answers()}
        cookies = httpx.Cookies(before._client.cookies)
    with web_client(make_app(engine, clock=lambda: MONDAY_MORNING, **REVOKED)) as revoked:
        revoked._client.cookies.update(cookies)
        assert revoked.post("/concerns/new", data=form).status_code == 403
    assert concern_count(engine) == 0
    with web_client(make_app(engine, clock=lambda: MONDAY_MORNING, **ROTATED)) as rotated:
        rotated._client.cookies.update(cookies)
        confirmed(rotated, rotated.post("/concerns/new", data=form))
        resigned = httpx.Cookies(rotated._client.cookies)
    assert concern_count(engine) == 1
    # The session came back signed with the current key: it needs no previous key any more.
    with web_client(make_app(engine, clock=lambda: MONDAY_MORNING, **REVOKED)) as now:
        now._client.cookies.update(resigned)
        assert drawn_form(now)["csrf_token"] == form["csrf_token"]


def test_a_session_only_read_under_a_previous_key_is_signed_afresh(engine: Engine) -> None:
    """A browser that only reads pages after the change (its session unchanged) needs the
    previous key no longer than its next page."""
    with web_client(make_app(engine, clock=lambda: MONDAY_MORNING, **BEFORE)) as before:
        token = drawn_form(before)["csrf_token"]
        cookies = httpx.Cookies(before._client.cookies)
    with web_client(make_app(engine, clock=lambda: MONDAY_MORNING, **ROTATED)) as rotated:
        rotated._client.cookies.update(cookies)
        read = rotated.get("/concerns/new")
        assert "set-cookie" in read.headers
        resigned = httpx.Cookies(rotated._client.cookies)
        # Signed with the current key now: the next page has nothing to write back.
        assert "set-cookie" not in rotated.get("/concerns/new").headers
    with web_client(make_app(engine, clock=lambda: MONDAY_MORNING, **REVOKED)) as now:
        now._client.cookies.update(resigned)
        assert drawn_form(now)["csrf_token"] == token


def test_a_status_link_emailed_before_the_key_changed_still_opens(engine: Engine) -> None:
    with web_client(make_app(engine, clock=lambda: MONDAY_MORNING, **BEFORE)) as before:
        confirmed(before, before.post("/concerns/new", data={**drawn_form(before), **answers()}))
    with transaction(engine) as session:
        (ack,) = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == "learner_ack")
        ).all()
    link = ack.body_text.split("/concerns/status/link/")[1].split()[0]
    path = f"/concerns/status/link/{link}"
    with web_client(make_app(engine, clock=lambda: MONDAY_MORNING, **REVOKED)) as revoked:
        assert revoked.get(path).status_code == 400
    with web_client(make_app(engine, clock=lambda: MONDAY_MORNING, **ROTATED)) as rotated:
        opened = rotated.get(path)
        assert opened.status_code == 303
        assert ack.reference is not None
        assert ack.reference in rotated.get(opened.headers["location"]).text


def _email(**headers: str) -> bytes:
    message = EmailMessage()
    message["From"] = f"Supervisor <{headers.pop('sender', LEARNER)}>"
    message["To"] = MAILBOX
    message["Subject"] = headers.pop("subject", "Left alone on Ward 7 at Vale General")
    message["Message-ID"] = make_msgid(domain="example.nhs.uk")
    for name, value in headers.items():
        message[name] = value
    message.set_content(headers.get("body", "Thanks, I am looking into this today."))
    return message.as_bytes()


def _intake_tick(engine: Engine, tmp_path: Path, **settings: Any) -> None:
    """One pass of `concerns serve`'s intake tick, on these settings."""
    chosen = Settings(  # type: ignore[call-arg]
        _env_file=None, outbox_dir=tmp_path / "outbox", mailbox_address=MAILBOX, **settings
    )
    product = build(chosen, engine=engine, chat=ChatSettings(_env_file=None))  # type: ignore[call-arg]

    async def run() -> None:
        mailbox = Mailbox(address=MAILBOX, store=lambda batch: None)
        ticks = _ticks(
            product, sender=MaildirSender(tmp_path / "outbox"), metrics=Metrics(), mailbox=mailbox
        )
        await next(tick for tick in ticks if tick.name == "intake").run()

    asyncio.run(run())


def test_a_reply_to_mail_sent_before_the_key_changed_reaches_its_concern(
    engine: Engine, tmp_path: Path
) -> None:
    earlier = datetime.now(UTC) - timedelta(hours=1)
    before = MailThreading(secret=BEFORE["secret_key"].encode(), mailbox=MAILBOX)
    store_received(
        engine, [Received(mail_from=LEARNER, rcpt_tos=(MAILBOX,), raw=_email())], now=earlier
    )
    process_pending(engine=engine, policy=policy(), threading=before, now=earlier)
    with transaction(engine) as session:
        notice = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == "new_concern")
        ).first()
    assert notice is not None and notice.id is not None
    our_id = before.message_id(notice.id, notice.recipient_address)

    def reply() -> None:
        raw = _email(
            sender=notice.recipient_address,
            subject=f"Re: {notice.subject}",
            **{"In-Reply-To": our_id, "References": our_id},
        )
        store_received(
            engine,
            [Received(mail_from=notice.recipient_address, rcpt_tos=(MAILBOX,), raw=raw)],
            now=earlier,
        )

    reply()
    _intake_tick(engine, tmp_path, **REVOKED)
    reply()
    _intake_tick(engine, tmp_path, **ROTATED)
    with transaction(engine) as session:
        statuses = [
            row.status
            for row in session.exec(select(InboundMessage).order_by(col(InboundMessage.id)))
        ]
        (concern,) = repositories.all_concerns(session)
    # The new concern, then the reply kept aside without the old key, then the reply attached.
    assert statuses == ["processed", "quarantined", "processed"]
    assert concern.acknowledged_at is not None
