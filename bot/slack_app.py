"""The Slack app: Bolt in HTTP mode at /slack/events (or Socket Mode), wired to our services.

Slack is optional: with no bot token and signing secret there is no Slack app, and
/slack/events answers 404. The listeners live beside this module, one file per audience:
`slack_learners` (raising and following a concern) and `slack_contacts` (acknowledge, feedback,
not mine). Each is a thin adapter over the same services every channel uses.

Slack needs its answer (the `ack()`) within 3 seconds. Bolt runs each listener on its listener
pool and answers Slack as soon as the listener calls `ack()` (process_before_response=False), so
an ack can only be late when every thread of that pool is busy. Our listeners therefore ack at
once and hand slow work (the database, further Slack calls) to the bot's own work pool with
`SlackBot.later`: a listener thread is free again within milliseconds, and however slow or
stuck the work is, it cannot hold up the next request's ack. The listener pool is sized well
above the work pool for listeners that still work in place. Request signatures are always
verified here; without a signing secret (Socket Mode alone) no HTTP request is served.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from escalation.policy import Policy
from storage import repositories
from storage.db import transaction

log = logging.getLogger(__name__)

# Accounts whose profile email says nothing about who they are: gone, bots and apps, and people
# of another organisation's workspace (Slack Connect), whose email that organisation sets.
NOT_PEOPLE_HERE = ("deleted", "is_bot", "is_app_user", "is_stranger")
# Guests (single- and multi-channel): a learner on placement may be one; staff may not.
GUESTS = ("is_restricted", "is_ultra_restricted")

# auth.test's answers that the bot token itself is wrong: only these stop the service starting.
TOKEN_REFUSED = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
)
# How long start-up waits for Slack's answer before starting without it.
STARTUP_CHECK_TIMEOUT_SECONDS = 10
# Threads that run Bolt's listeners (each acks Slack), and threads for the work after the ack.
LISTENER_THREADS = 16
WORK_THREADS = 8


class SlackTokenRefused(Exception):
    """Slack answered that the bot token is not valid (the code says how)."""

    def __init__(self, code: str) -> None:
        super().__init__(f"Slack refused the bot token ({code})")
        self.code = code


def check_token(*, bot_token: str, api_url: str) -> bool:
    """Ask Slack whether the bot token is valid (auth.test): True when it is.

    Raises SlackTokenRefused only on Slack's own answer that the token is wrong. When Slack cannot
    be reached (refused, timed out, a 5xx, rate limited) the answer is False and a warning is
    logged: the service starts anyway, and Slack's requests are served once Slack is back (Bolt
    checks the token again with the first request that needs it).
    """
    client = WebClient(
        token=bot_token,
        base_url=api_url,
        timeout=STARTUP_CHECK_TIMEOUT_SECONDS,
        retry_handlers=[],
    )
    try:
        client.auth_test()
    except SlackApiError as error:
        code = str(error.response.get("error") or f"HTTP {error.response.status_code}")
        if code in TOKEN_REFUSED:
            raise SlackTokenRefused(code) from None
        log.warning("Slack did not confirm the bot token at start-up (%s); starting anyway", code)
        return False
    except Exception as error:
        # Only the type: the text of a connection error can hold the request.
        log.warning(
            "Slack could not be reached at start-up (%s); starting anyway: Slack's requests are "
            "served, and Slack messages sent, once it answers",
            type(error).__name__,
        )
        return False
    return True


@dataclass
class SlackBot:
    """The Bolt app with what its listeners need: the database, the policy and a clock."""

    app: App
    client: WebClient
    engine: Engine
    policy: Policy
    share_summary: bool = False
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # Whether Slack's requests come over HTTP (/slack/events): only with a signing secret to
    # verify them by. False in Socket Mode alone, and /slack/events then answers 404.
    serves_http: bool = True
    # Called (from a worker thread) once a learner's concern from Slack is saved: the service
    # counts it for /metrics, as it counts the other channels'.
    on_raised: Callable[[], None] | None = None
    _home_team: str | None = field(default=None, init=False)
    # Where work after an ack runs (see `later`), apart from the threads that ack.
    work: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(
            max_workers=WORK_THREADS, thread_name_prefix="slack-work"
        )
    )

    def home_team(self) -> str | None:
        """The workspace the bot is installed in (auth.test, asked once); None while Slack
        cannot say."""
        if self._home_team is None:
            try:
                self._home_team = str(self.client.auth_test().get("team_id") or "") or None
            except Exception as error:
                log.warning("slack: auth.test failed (%s)", type(error).__name__)
        return self._home_team

    def vouched_email(self, client: WebClient, user_id: str, *, guests: bool) -> str | None:
        """The Slack user's email (lower case) when it can stand for who they are: an account of
        the bot's own workspace whose email Slack has confirmed (a guest's only with `guests`);
        else None. Not someone of another organisation's workspace (Slack Connect), whose
        profile that organisation sets, nor a bot."""
        try:
            user = client.users_info(user=user_id).get("user") or {}
        except SlackApiError as error:
            log.warning("slack: users.info failed (%s)", error.response.get("error"))
            return None
        email = str((user.get("profile") or {}).get("email") or "").strip()
        home = self.home_team()
        refused = NOT_PEOPLE_HERE if guests else NOT_PEOPLE_HERE + GUESTS
        if (
            not email
            or user.get("is_email_confirmed") is not True
            or any(user.get(flag) for flag in refused)
            or home is None
            or user.get("team_id") != home
        ):
            return None
        return email.lower()

    def later(self, work: Callable[[], None]) -> None:
        """Run a listener's slow work after its ack, on the bot's work pool, so the listener's
        thread is free for the next request's ack at once. A failure is logged (by type only:
        its text could quote what someone wrote)."""

        def run() -> None:
            try:
                work()
            except Exception as error:
                log.error("slack: work after an ack failed (%s)", type(error).__name__)

        try:
            self.work.submit(run)
        except RuntimeError:
            # The pool is closing (the service is stopping): the work is done here instead, so
            # what Slack was told is in hand is not dropped.
            run()

    def close(self) -> None:
        """Let the work in hand finish, and stop the work pool (work handed on after this runs
        where it is handed on)."""
        self.work.shutdown(wait=True)

    def first_delivery(self, key: str) -> bool:
        """Record a delivery (an event id, a button press); False when it was handled before."""
        with transaction(self.engine) as session:
            return repositories.first_delivery(session, key=key, now=self.clock())

    async def handle(self, request: Request) -> Response:
        """One HTTP request from Slack: verified, acknowledged, answered (off the event loop)."""
        body = await request.body()
        bolt_request = to_bolt_request(request, body)
        answer = await run_in_threadpool(self.app.dispatch, bolt_request)
        return to_starlette_response(answer)


def build_slack_bot(
    *,
    bot_token: str,
    signing_secret: str | None,
    api_url: str,
    engine: Engine,
    policy: Policy,
    share_summary: bool = False,
    clock: Callable[[], datetime] | None = None,
) -> SlackBot:
    """The Slack app with every listener registered.

    The token is checked first (`check_token`): a token Slack refuses raises SlackTokenRefused;
    an unreachable Slack does not stop the app being built. Bolt's own start-up check is off,
    as it would fail on an unreachable Slack too; it asks auth.test with the first request.
    """
    # Imported here: they import this module for SlackBot.
    from bot import slack_contacts, slack_learners

    check_token(bot_token=bot_token, api_url=api_url)
    client = WebClient(token=bot_token, base_url=api_url)
    app = App(
        client=client,
        # Without a signing secret (Socket Mode alone) HTTP requests are refused before Bolt
        # (`serves_http`); Bolt still checks any that reach it against a secret nobody knows,
        # never against an empty one.
        signing_secret=signing_secret or secrets.token_hex(32),
        process_before_response=False,
        logger=logging.getLogger("slack_bolt"),
        token_verification_enabled=False,
        listener_executor=ThreadPoolExecutor(
            max_workers=LISTENER_THREADS, thread_name_prefix="slack-listener"
        ),
    )
    bot = SlackBot(
        app=app,
        client=client,
        engine=engine,
        policy=policy,
        share_summary=share_summary,
        clock=clock or (lambda: datetime.now(UTC)),
        serves_http=bool(signing_secret),
    )
    slack_learners.register(bot)
    slack_contacts.register(bot)
    return bot
