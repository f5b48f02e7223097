"""The Slack app under test: the real FastAPI app with the real Bolt app mounted at /slack/events,
its Web API calls going to a local fake Slack, and requests signed as Slack signs them."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy.engine import Engine

from app.bootstrap import build
from app.metrics import Metrics
from app.settings import ChatSettings, Settings
from app.web import create_app
from bot.slack_app import SlackBot, build_slack_bot
from escalation.policy import Policy
from tests.integration.fake_slack import (
    FakeSlackApi,
    command_body,
    form_body,
    running_fake_slack,
    signed,
)
from tests.integration.webclient import WebClient

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-test-token"


@dataclass
class SlackHarness:
    fake: FakeSlackApi
    bot: SlackBot
    web: WebClient
    engine: Engine
    # The product's policy (Slack on), for raising concerns the way the service does.
    policy: Policy

    def settle(self) -> None:
        """Wait until every listener Bolt has started, and then the work they handed on, has
        finished: one barrier task per worker can only all run once no earlier task holds a
        worker (an executor starts tasks in order)."""
        for executor in (self.bot.app.listener_runner.listener_executor, self.bot.work):
            workers = executor._max_workers  # type: ignore[attr-defined]
            barrier = threading.Barrier(workers + 1, timeout=10)
            for _ in range(workers):
                executor.submit(barrier.wait)
            barrier.wait()

    def post(
        self,
        body: str,
        *,
        content_type: str,
        at: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """POST a body to /slack/events, signed with the app's secret (or as `headers` say)."""
        sent = {"Content-Type": content_type, **signed(body, secret=SIGNING_SECRET, at=at)}
        sent.update(headers or {})
        return self.web.post("/slack/events", content=body.encode("utf-8"), headers=sent)

    def event(self, event: dict[str, Any], *, event_id: str, **headers: str) -> httpx.Response:
        """An Events API callback (a DM, app_home_opened, ...)."""
        body = json.dumps(
            {
                "token": "unused",
                "team_id": "T0EXAMPLE1",
                "api_app_id": "A0CONCERNS",
                "type": "event_callback",
                "event_id": event_id,
                "event_time": 1700000000,
                "event": event,
            }
        )
        return self.post(body, content_type="application/json", headers=headers)

    def interact(self, payload: dict[str, Any], **headers: str) -> httpx.Response:
        """A button press, a modal submission or a shortcut."""
        return self.post(
            form_body(payload), content_type="application/x-www-form-urlencoded", headers=headers
        )

    def command(self, **fields: str) -> httpx.Response:
        """A slash command."""
        return self.post(command_body(**fields), content_type="application/x-www-form-urlencoded")


@contextmanager
def slack_harness(
    engine: Engine, *, clock: Callable[[], datetime], share_summary: bool = False
) -> Iterator[SlackHarness]:
    with running_fake_slack() as fake:
        chat = ChatSettings(
            _env_file=None,  # type: ignore[call-arg]
            slack_bot_token=BOT_TOKEN,  # type: ignore[arg-type]
            slack_signing_secret=SIGNING_SECRET,  # type: ignore[arg-type]
            slack_api_url=fake.url,
            slack_share_summary=share_summary,
        )
        product = build(Settings(_env_file=None), engine=engine, chat=chat)  # type: ignore[call-arg]
        bot = build_slack_bot(
            bot_token=BOT_TOKEN,
            signing_secret=SIGNING_SECRET,
            api_url=fake.url,
            engine=engine,
            policy=product.policy,
            share_summary=share_summary,
            clock=clock,
        )
        app = create_app(product, metrics=Metrics(engine=engine), clock=clock, slack=bot)
        web = WebClient(app)
        try:
            yield SlackHarness(fake=fake, bot=bot, web=web, engine=engine, policy=product.policy)
        finally:
            web.close()
            bot.close()
