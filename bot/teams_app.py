"""The Teams bot: the Microsoft 365 Agents SDK at /api/messages, wired to our services.

Teams is optional: without TEAMS_APP_ID, TEAMS_APP_PASSWORD and TEAMS_TENANT_ID there is no bot,
and /api/messages answers 404. The handlers live beside this module, one file per audience:
`teams_learners` (raising and following a concern) and `teams_contacts` (acknowledge, feedback,
not mine). Each is a thin adapter over the same services every channel uses.

Every incoming activity is authenticated by the SDK's own JWT validation (Bot Framework tokens
for our app id and tenant) before anything runs. Only the tests build the bot with the SDK's
anonymous configuration (`AgentAuthConfiguration(anonymous_allowed=True)`); no setting does.

Cards use `Action.Execute` (Universal Actions): Teams sends an `adaptiveCard/action` invoke and
the card we answer with replaces the one the person pressed, so "the card updates after an
action" needs no second call. Our database work runs in worker threads, off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, TypeVar

import jwt
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from microsoft_agents.activity import (
    Activity,
    ActivityTypes,
    AdaptiveCardInvokeResponse,
    Attachment,
    ConversationReference,
    InvokeResponse,
)
from microsoft_agents.authentication.msal import MsalConnectionManager
from microsoft_agents.hosting.core import (
    ActivityHandler,
    AgentAuthConfiguration,
    ClaimsIdentity,
    TurnContext,
)
from microsoft_agents.hosting.core.authorization import AuthTypes
from microsoft_agents.hosting.fastapi import CloudAdapter, jwt_authorization_decorator
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from escalation.policy import Policy
from storage import repositories
from storage.db import transaction

log = logging.getLogger(__name__)

T = TypeVar("T")

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"

# A card action's handler: the bot, the turn, the action's verb and data; the card to show now.
CardHandler = Callable[["TeamsBot", TurnContext, dict[str, Any]], Awaitable[dict[str, Any]]]
# A plain message's handler (a learner writing to the bot).
MessageHandler = Callable[["TeamsBot", TurnContext], Awaitable[None]]
# Called once per activity from a person, after their conversation is remembered (matching a
# Teams user to a directory contact happens here).
SeenHandler = Callable[["TeamsBot", TurnContext], Awaitable[None]]


def card_attachment(card: dict[str, Any]) -> Attachment:
    """An Adaptive Card as a message attachment."""
    return Attachment(content_type=ADAPTIVE_CARD, content=card)


def card_answer(card: dict[str, Any]) -> AdaptiveCardInvokeResponse:
    """The answer to an Action.Execute that replaces the pressed card with `card`."""
    return AdaptiveCardInvokeResponse(status_code=200, type=ADAPTIVE_CARD, value=card)


@dataclass
class TeamsBot:
    """The SDK's adapter and our agent, with what the handlers need."""

    adapter: CloudAdapter
    auth: AgentAuthConfiguration
    engine: Engine
    policy: Policy
    app_id: str
    # The organisation's Entra ID tenant: the only one whose members' emails count here.
    tenant_id: str | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    verbs: dict[str, CardHandler] = field(default_factory=dict)
    message_handlers: list[MessageHandler] = field(default_factory=list)
    seen_handlers: list[SeenHandler] = field(default_factory=list)
    agent: ConcernsAgent | None = None
    # Called (from a worker thread) once a learner's concern from Teams is saved: the service
    # counts it for /metrics, as it counts the other channels'.
    on_raised: Callable[[], None] | None = None

    def vouched_addresses(
        self, member: Any, *, aad_object_id: str | None, guests: bool
    ) -> list[str]:
        """The email and user principal name Teams gives for a member (lower case, the email
        first) when they can stand for who the person is: a member of the organisation's own
        tenant (`tenant_id`), the person who wrote (`aad_object_id`). A guest there counts only
        with `guests`, by the email their invitation was sent to: a guest's user principal name
        carries #EXT# and is not an address. Anyone else's (another organisation's tenant, whose
        admins set its members' emails): none."""
        if not self.tenant_id or getattr(member, "tenant_id", None) != self.tenant_id:
            return []
        if getattr(member, "aad_object_id", None) not in (None, aad_object_id):
            return []
        found = (getattr(member, "email", None), getattr(member, "user_principal_name", None))
        addresses = list(dict.fromkeys(str(value).strip().lower() for value in found if value))
        guest = getattr(member, "user_role", None) == "guest" or any(
            "#ext#" in address for address in addresses
        )
        if guest and not guests:
            return []
        return [address for address in addresses if "@" in address and "#ext#" not in address]

    # --- registration (the handler modules call these) -------------------------------------

    def on_verb(self, verb: str) -> Callable[[CardHandler], CardHandler]:
        def register(handler: CardHandler) -> CardHandler:
            self.verbs[verb] = handler
            return handler

        return register

    def on_message(self, handler: MessageHandler) -> MessageHandler:
        self.message_handlers.append(handler)
        return handler

    def on_seen(self, handler: SeenHandler) -> SeenHandler:
        self.seen_handlers.append(handler)
        return handler

    # --- helpers for handlers --------------------------------------------------------------

    async def run(self, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking work (the database, our services) in a worker thread."""
        return await asyncio.to_thread(work, *args, **kwargs)

    def first_delivery(self, key: str) -> bool:
        """Record a delivery (an activity id); False when it was handled before."""
        with transaction(self.engine) as session:
            return repositories.first_delivery(session, key=key, now=self.clock())

    @property
    def anonymous(self) -> bool:
        """True only in tests: the SDK's anonymous configuration, no tokens either way."""
        return bool(self.auth.ANONYMOUS_ALLOWED) and not self.auth.CLIENT_ID

    async def send_to(self, reference: dict[str, Any], activity: Activity) -> str | None:
        """Send an activity into a stored conversation (a proactive message); its id."""
        conversation = ConversationReference.model_validate(reference)
        continuation = conversation.get_continuation_activity()
        sent: list[str | None] = []

        async def send(context: TurnContext) -> None:
            response = await context.send_activity(activity)
            sent.append(response.id if response is not None else None)

        if self.anonymous:
            await self.adapter.continue_conversation_with_claims(
                ClaimsIdentity(), continuation, send
            )
        else:
            await self.adapter.continue_conversation(self.app_id, continuation, send)
        return sent[0] if sent else None

    # --- HTTP ------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """One POST to /api/messages: authenticated by the SDK, then processed by our agent."""
        if _unreadable_token(request.headers.get("Authorization")):
            # The SDK's validator raises KeyError (a 500) on a token without a key id; it is
            # simply not a valid token, so it gets the same 401 as any other.
            return JSONResponse({"error": "Invalid token or authentication failed."}, 401)
        return await self._authenticated(request)

    async def _process(self, request: Request) -> Response:
        assert self.agent is not None
        try:
            answer = await self.adapter.process(request, self.agent)
        except ValidationError:
            # Not an activity at all: say so, without echoing what was sent.
            return JSONResponse({"error": "not a valid activity"}, status_code=400)
        return answer if answer is not None else Response(status_code=202)

    def __post_init__(self) -> None:
        self._authenticated = jwt_authorization_decorator(self._process)
        self.agent = ConcernsAgent(self)
        self.adapter.on_turn_error = self._on_turn_error

    async def _on_turn_error(self, context: TurnContext, error: Exception) -> None:
        # The SDK's default sends the exception text to the user; ours logs the type only (a
        # driver's message can name hosts or users) and tells the person plainly.
        log.error(
            "teams: a %s activity failed (%s)",
            context.activity.type,
            type(error).__name__,
            exc_info=error,
        )
        if context.activity.type == ActivityTypes.invoke:
            await context.send_activity(
                Activity(
                    type=ActivityTypes.invoke_response,
                    value=InvokeResponse(status=int(HTTPStatus.INTERNAL_SERVER_ERROR)),
                )
            )
            return
        if context.activity.type == ActivityTypes.message:
            await context.send_activity(
                "Sorry, something went wrong on our side and that was not saved. "
                "Please try again in a few minutes."
            )


class ConcernsAgent(ActivityHandler):
    """Routes each activity: remember where the person is, drop repeats, then our handlers."""

    def __init__(self, bot: TeamsBot) -> None:
        self.bot = bot

    async def on_turn(self, turn_context: TurnContext) -> None:  # type: ignore[override]
        activity = turn_context.activity
        person = activity.from_property
        if person is not None and person.aad_object_id and person.id:
            await self.bot.run(self._remember, activity)
            for seen in self.bot.seen_handlers:
                await seen(self.bot, turn_context)
        if activity.type in (ActivityTypes.message, ActivityTypes.invoke) and activity.id:
            # Teams retries a delivery it did not hear back about, with the same id.
            key = f"teams:activity:{activity.conversation.id}:{activity.id}"
            if not await self.bot.run(self.bot.first_delivery, key):
                await self._repeated(turn_context)
                return
        await super().on_turn(turn_context)

    def _remember(self, activity: Activity) -> None:
        person = activity.from_property
        conversation = activity.conversation
        if person is None or not person.aad_object_id or not person.id:
            return
        # Only a one-to-one chat with the bot is a place to write to a person later.
        if conversation is None or (conversation.conversation_type or "personal") != "personal":
            return
        reference = activity.get_conversation_reference()
        with transaction(self.bot.engine) as session:
            repositories.remember_teams_conversation(
                session,
                aad_object_id=person.aad_object_id,
                teams_user_id=person.id,
                reference=reference.model_dump(mode="json", by_alias=True, exclude_none=True),
                now=self.bot.clock(),
            )

    async def _repeated(self, turn_context: TurnContext) -> None:
        if turn_context.activity.type == ActivityTypes.invoke:
            # The first delivery already answered with the new card; this one changes nothing.
            await turn_context.send_activity(
                Activity(
                    type=ActivityTypes.invoke_response,
                    value=InvokeResponse(
                        status=200,
                        body={
                            "statusCode": 200,
                            "type": "application/vnd.microsoft.activity.message",
                            "value": "Already done.",
                        },
                    ),
                )
            )

    async def on_message_activity(self, turn_context: TurnContext) -> None:  # type: ignore[override]
        for handler in self.bot.message_handlers:
            await handler(self.bot, turn_context)

    async def on_adaptive_card_invoke(  # type: ignore[override]
        self, turn_context: TurnContext, invoke_value: Any
    ) -> AdaptiveCardInvokeResponse:
        action = invoke_value.action
        verb = action.verb or ""
        handler = self.bot.verbs.get(verb)
        if handler is None:
            return AdaptiveCardInvokeResponse(
                status_code=400,
                type="application/vnd.microsoft.error",
                value={"code": "BadRequest", "message": "This action is not known."},
            )
        data = action.data if isinstance(action.data, dict) else {}
        card = await handler(self.bot, turn_context, data)
        return card_answer(card)


def _unreadable_token(authorization: str | None) -> bool:
    """A bearer token whose header cannot be read or names no signing key."""
    if not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    try:
        header = jwt.get_unverified_header(token.strip())
    except jwt.PyJWTError:
        return True
    return not header.get("kid")


def production_auth(*, app_id: str, app_password: str, tenant_id: str) -> AgentAuthConfiguration:
    """The bot's Entra ID app registration: what tokens are checked against and obtained with."""
    return AgentAuthConfiguration(
        auth_type=AuthTypes.client_secret,
        client_id=app_id,
        client_secret=app_password,
        tenant_id=tenant_id,
        anonymous_allowed=False,
    )


def build_teams_bot(
    *,
    auth: AgentAuthConfiguration,
    engine: Engine,
    policy: Policy,
    clock: Callable[[], datetime] | None = None,
    tenant_id: str | None = None,
) -> TeamsBot:
    """The Teams bot with every handler registered; `tenant_id` is the organisation's tenant
    (the auth configuration's, unless given)."""
    # Imported here: they import this module for TeamsBot.
    from bot import teams_contacts, teams_learners

    adapter = CloudAdapter(
        connection_manager=MsalConnectionManager(
            connections_configurations={"SERVICE_CONNECTION": auth}
        )
    )
    bot = TeamsBot(
        adapter=adapter,
        auth=auth,
        engine=engine,
        policy=policy,
        app_id=auth.CLIENT_ID or "",
        tenant_id=tenant_id or auth.TENANT_ID,
        clock=clock or (lambda: datetime.now(UTC)),
    )
    teams_learners.register(bot)
    teams_contacts.register(bot)
    return bot
