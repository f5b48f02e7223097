"""The Teams bot under test: the real FastAPI app with the SDK's adapter at /api/messages, its
outgoing calls going to a local mock of the Bot Framework service URL.

Authentication is replaced the one way the SDK supports for tests: the bot is built with
`AgentAuthConfiguration(anonymous_allowed=True)` and no app id, so requests carry no token and
the connector client sends none. `strict=True` builds it as production does (our app id and
tenant), where a request without a valid token gets 401.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from microsoft_agents.hosting.core import AgentAuthConfiguration
from sqlalchemy.engine import Engine

from app.bootstrap import build
from app.metrics import Metrics
from app.settings import ChatSettings, Settings
from app.web import create_app
from bot.teams_app import TeamsBot, build_teams_bot, production_auth
from escalation.policy import Policy
from tests.integration.fake_teams import (
    FakeTeamsService,
    TeamsUser,
    card_action,
    installed,
    message,
    running_fake_teams,
)
from tests.integration.webclient import WebClient

APP_ID = "00000000-0000-4000-8000-00000000c0de"
TENANT = "72f988bf-0000-4000-8000-000000000001"


@dataclass
class TeamsHarness:
    fake: FakeTeamsService
    bot: TeamsBot
    web: WebClient
    engine: Engine
    # The product's policy (Teams on), for raising concerns the way the service does.
    policy: Policy

    def post(self, activity: dict[str, Any], **headers: str) -> httpx.Response:
        return self.web.post("/api/messages", json=activity, headers=headers)

    def say(self, user: TeamsUser, text: str, **kwargs: Any) -> httpx.Response:
        """The person writes to the bot in their personal chat."""
        return self.post(message(user, text, service_url=self.fake.url, **kwargs))

    def press(
        self, user: TeamsUser, verb: str, data: dict[str, Any] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """The person presses an Action.Execute button; the answer carries the new card."""
        return self.post(card_action(user, verb, data or {}, service_url=self.fake.url, **kwargs))

    def install(self, user: TeamsUser) -> httpx.Response:
        return self.post(installed(user, service_url=self.fake.url))


@contextmanager
def teams_harness(
    engine: Engine,
    *,
    clock: Callable[[], datetime],
    share_summary: bool = False,
    strict: bool = False,
) -> Iterator[TeamsHarness]:
    with running_fake_teams() as fake:
        chat = ChatSettings(
            _env_file=None,  # type: ignore[call-arg]
            teams_app_id=APP_ID,
            teams_app_password="not-a-real-secret",  # type: ignore[arg-type]
            teams_tenant_id=TENANT,
            teams_share_summary=share_summary,
        )
        product = build(Settings(_env_file=None), engine=engine, chat=chat)  # type: ignore[call-arg]
        auth = (
            production_auth(app_id=APP_ID, app_password="not-a-real-secret", tenant_id=TENANT)
            if strict
            else AgentAuthConfiguration(anonymous_allowed=True)
        )
        bot = build_teams_bot(
            auth=auth, engine=engine, policy=product.policy, clock=clock, tenant_id=TENANT
        )
        app = create_app(product, metrics=Metrics(engine=engine), clock=clock, teams=bot)
        web = WebClient(app)
        try:
            yield TeamsHarness(fake=fake, bot=bot, web=web, engine=engine, policy=product.policy)
        finally:
            web.close()
