"""Contacts in Teams: Acknowledge, Record feedback and Not mine on the notification cards, the
matching of Teams users to directory contacts, and the bot's side of the Teams dispatcher.

Each press is an `Action.Execute` invoke; the handler does what the same action does on every
channel (`escalation.actions`) on the concern locked for it, and answers with the card that
replaces the pressed one. Who may act is the actions' rule: a current contact of the concern's
level. The presser is the directory contact whose Teams id is their Entra object id; failing
that, the concern's current contact whose email is the one Teams gives for them (the connector's
member lookup), and the match is remembered on the contact. The same email match runs once a day
for anyone who writes to the bot or installs it, so a contact known only by email becomes
reachable in Teams. Anyone else is told why they cannot act, and nothing changes.

The data on a card (reference, contact id) only says which concern is meant: who acts is always
decided from the authenticated activity's sender, never from the card.

A repeated delivery of the same invoke is dropped by the bot before it gets here (`teams_app`);
two presses are two actions, and the second is refused by the action itself ("already
acknowledged"). Feedback is never lost: when it is refused or saving fails, the answered card
shows the reason and gives the text back, in the form and in full.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from microsoft_agents.activity import Activity, ActivityTypes, ConversationReference
from microsoft_agents.hosting.core import ClaimsIdentity, TurnContext
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.teams_app import TeamsBot, card_attachment
from escalation import casework
from escalation.actions import (
    ActionRefused,
    Actor,
    acknowledge,
    is_current_contact,
    record_feedback,
    redirect,
)
from escalation.casework import ChatPerson
from notifications.messages import CONTACT_STEPS, when
from notifications.teams_contact_cards import (
    ACKNOWLEDGE,
    FEEDBACK_INPUT,
    NOT_MINE,
    OPEN_STAFF_PAGE,
    REASON_INPUT,
    RECORD_FEEDBACK,
    answered_card,
    labelled,
    refused_card,
)
from notifications.teams_dispatch import TeamsRefused, external_ref
from notifications.teams_text import card
from routing.access import CaseAction
from storage import repositories
from storage import staff as accounts
from storage.db import transaction
from storage.tables import Concern, Contact, OutboxMessage, id_of

log = logging.getLogger(__name__)

NOT_A_CONTACT = (
    "Only the people this concern was sent to, or staff with rights over it, can act on it "
    "here. If it should be yours, ask the regional quality team to add your Teams account (or "
    "your work email) to the directory."
)
NOT_FOUND = "That concern could not be found."
NOT_RECORDED_NOW = "That could not be recorded just now. Please try again."
NO_FEEDBACK = "Write the feedback for the learner"

# An action on the locked concern by the matched contact (raises ActionRefused when it does not
# apply).
Perform = Callable[[Session, Concern, Actor, datetime], None]


def register(bot: TeamsBot) -> None:
    """Register the contacts' card actions and the email matching on the bot."""
    bot.on_seen(_on_seen)

    @bot.on_verb(ACKNOWLEDGE)
    async def on_acknowledge(
        bot: TeamsBot, turn_context: TurnContext, data: dict[str, Any]
    ) -> dict[str, Any]:
        def perform(session: Session, concern: Concern, by: Actor, now: datetime) -> None:
            acknowledge(session=session, concern=concern, by=by, now=now)

        return await _act(
            bot,
            turn_context,
            data,
            action=CaseAction.ACKNOWLEDGE,
            perform=perform,
            done="Acknowledged",
            still_open=(RECORD_FEEDBACK, NOT_MINE),
        )

    @bot.on_verb(RECORD_FEEDBACK)
    async def on_record_feedback(
        bot: TeamsBot, turn_context: TurnContext, data: dict[str, Any]
    ) -> dict[str, Any]:
        text = data.get(FEEDBACK_INPUT)
        feedback = text if isinstance(text, str) else ""

        def perform(session: Session, concern: Concern, by: Actor, now: datetime) -> None:
            record_feedback(
                session=session,
                concern=concern,
                by=by,
                text=feedback,
                now=now,
                policy=bot.policy,
            )

        return await _act(
            bot,
            turn_context,
            data,
            action=CaseAction.FEEDBACK,
            perform=perform,
            done="Feedback recorded (the learner has been told)",
            still_open=(),
            give_back=feedback,
        )

    @bot.on_verb(NOT_MINE)
    async def on_not_mine(
        bot: TeamsBot, turn_context: TurnContext, data: dict[str, Any]
    ) -> dict[str, Any]:
        typed = data.get(REASON_INPUT)
        reason = typed if isinstance(typed, str) else ""

        def perform(session: Session, concern: Concern, by: Actor, now: datetime) -> None:
            redirect(
                session=session, concern=concern, by=by, now=now, policy=bot.policy, reason=reason
            )

        return await _act(
            bot,
            turn_context,
            data,
            action=CaseAction.REDIRECT,
            perform=perform,
            done="Passed on as not theirs",
            still_open=(),
            # Only the person who passed it on is done with it: the others' copies stand.
            tell_others=False,
        )


# --- a press ---------------------------------------------------------------------------------


async def _act(
    bot: TeamsBot,
    turn_context: TurnContext,
    data: Mapping[str, Any],
    *,
    action: CaseAction,
    perform: Perform,
    done: str,
    still_open: Sequence[str],
    tell_others: bool = True,
    give_back: str | None = None,
) -> dict[str, Any]:
    """Run one action for the person who pressed; the card that replaces the pressed one.

    On success it shows who did what and when, with only the buttons still useful; the copies
    the level's other contacts have in Teams are updated too (with `tell_others`). On a refusal
    or a failure nothing changes: the card keeps its buttons and says why, and what the person
    typed (`give_back`) is handed back.
    """
    activity = turn_context.activity
    person = activity.from_property
    aad_object_id = person.aad_object_id if person is not None else None
    reference = str(data.get("reference") or "")
    pressed = _pressed_ref(activity)
    posted = (
        await bot.run(_posted_card, bot.engine, pressed, aad_object_id)
        if pressed and aad_object_id
        else None
    )
    if posted is None:
        posted = _fallback_card(bot, reference)
    now = bot.clock()
    try:
        if not aad_object_id:
            raise ActionRefused(NOT_A_CONTACT)
        if give_back is not None and not give_back.strip():
            raise ActionRefused(NO_FEEDBACK)
        concern_id = await bot.run(_concern_id, bot.engine, reference)
        pressed_by = await _who_pressed(bot, turn_context, concern_id, aad_object_id)
        who, level_since = await bot.run(
            _perform, bot.engine, concern_id, pressed_by, action, perform, now
        )
    except ActionRefused as refusal:
        return refused_card(
            posted, reference=reference, reason=str(refusal), feedback=give_back, data=data
        )
    except Exception as error:
        # Rolled back. The type only is logged: a driver's message can quote the feedback.
        log.error("teams: a contact's %s failed (%s)", done.lower(), type(error).__name__)
        return refused_card(
            posted, reference=reference, reason=NOT_RECORDED_NOW, feedback=give_back, data=data
        )
    outcome = f"{done} by {who}, {when(now, bot.policy.calendar.timezone)}."
    if tell_others:
        await _update_level_copies(
            bot,
            concern_id,
            since=level_since,
            besides=pressed,
            outcome=outcome,
            still_open=still_open,
        )
    return answered_card(posted, reference=reference, outcome=outcome, still_open=still_open)


async def _who_pressed(
    bot: TeamsBot, turn_context: TurnContext, concern_id: int, aad_object_id: str
) -> ChatPerson:
    """The directory contact this Teams user is, with the directory's email for them; else the
    work email (or user principal name) Teams gives for a member of the bot's own tenant. Who
    they act as is decided on the locked concern (`casework.chat_actor`)."""
    matched = await _matched_contact(bot, turn_context, concern_id, aad_object_id)
    if matched is not None:
        return matched
    emails = await _member_emails(bot, turn_context)
    return ChatPerson(None, emails[0] if emails else None)


def _perform(
    engine: Engine,
    concern_id: int,
    person: ChatPerson,
    action: CaseAction,
    perform: Perform,
    now: datetime,
) -> tuple[str, datetime]:
    """The action in one transaction on the locked concern: who did it, and since when the
    concern is at its level. Who may act is the rule every chat shares (`casework.chat_actor`)."""
    with transaction(engine) as session:
        concern = repositories.lock_concern(session, concern_id)
        if concern is None:
            raise ActionRefused(NOT_FOUND)
        by, who = casework.chat_actor(
            session, concern, action, person, channel="teams", now=now, not_a_contact=NOT_A_CONTACT
        )
        perform(session, concern, by, now)
        return who, concern.level_reached_at


def _concern_id(engine: Engine, reference: str) -> int:
    with transaction(engine) as session:
        concern = repositories.concern_by_reference(session, reference) if reference else None
        if concern is None:
            raise ActionRefused(NOT_FOUND)
        return id_of(concern)


def _pressed_ref(activity: Activity) -> str | None:
    """Where the pressed card lives, as the outbox recorded it when it sent it."""
    conversation = activity.conversation.id if activity.conversation is not None else None
    if not conversation or not activity.reply_to_id:
        return None
    return external_ref(conversation, activity.reply_to_id)


def _posted_card(engine: Engine, where: str, aad_object_id: str) -> dict[str, Any] | None:
    """The card the outbox sent to this person at `where` (a contact's), if it did."""
    with transaction(engine) as session:
        row = session.exec(
            select(OutboxMessage).where(
                OutboxMessage.recipient_address == aad_object_id,
                OutboxMessage.channel == "teams",
                OutboxMessage.external_ref == where,
            )
        ).first()
        if row is None or row.recipient_role == "learner":
            return None
        found = (row.payload or {}).get("card")
        return dict(found) if isinstance(found, dict) else None


def _fallback_card(bot: TeamsBot, reference: str) -> dict[str, Any]:
    """A card for a press on a card the outbox did not send to this person."""
    body = [labelled("Reference", reference)] if reference else []
    actions = []
    if reference:
        actions.append(
            {
                "type": "Action.OpenUrl",
                "title": "Open the staff page",
                "url": bot.policy.staff_url(reference),
                "id": OPEN_STAFF_PAGE,
            }
        )
    return card(body, actions)


# --- the level's other copies ----------------------------------------------------------------


@dataclass(frozen=True)
class _Copy:
    aad_object_id: str
    external_ref: str
    card: dict[str, Any]


def _level_copies(
    engine: Engine, concern_id: int, *, since: datetime, besides: str | None
) -> list[_Copy]:
    """The Teams cards asking the current level's contacts to act that were sent, but the one
    pressed on."""
    with transaction(engine) as session:
        rows = repositories.sent_to_level(
            session, concern_id, channel="teams", kinds=CONTACT_STEPS, since=since
        )
        copies = []
        for row in rows:
            sent = (row.payload or {}).get("card")
            if row.external_ref != besides and isinstance(sent, dict):
                copies.append(_Copy(row.recipient_address, str(row.external_ref), dict(sent)))
        return copies


async def _update_level_copies(
    bot: TeamsBot,
    concern_id: int,
    *,
    since: datetime,
    besides: str | None,
    outcome: str,
    still_open: Sequence[str],
) -> None:
    """Show the outcome on the level's other cards too (best effort: the action is done)."""
    poster = CardPoster(bot)
    for copy in await bot.run(_level_copies, bot.engine, concern_id, since=since, besides=besides):
        reference = await bot.run(poster.conversation_of, copy.aad_object_id)
        conversation = str(((reference or {}).get("conversation") or {}).get("id") or "")
        prefix = f"{conversation}:"
        if reference is None or not copy.external_ref.startswith(prefix):
            continue
        activity_id = copy.external_ref[len(prefix) :]
        updated = answered_card(copy.card, reference="", outcome=outcome, still_open=still_open)
        try:
            await poster.update(reference, activity_id, updated)
        except Exception as error:
            log.warning("teams: could not update another copy (%s)", type(error).__name__)


# --- who pressed: the directory contact ------------------------------------------------------


async def _matched_contact(
    bot: TeamsBot, turn_context: TurnContext, concern_id: int, aad_object_id: str
) -> ChatPerson | None:
    """The directory contact this Teams user is, preferring one who acts on the concern now."""
    known, current, unmatched = await bot.run(_candidates, bot.engine, concern_id, aad_object_id)
    if current is not None:
        return current
    if unmatched:
        emails = await _member_emails(bot, turn_context)
        for contact_id, email in unmatched:
            if email.strip().lower() in emails:
                # Remembered: their next messages come to Teams too, and no lookup is needed.
                await bot.run(_remember, bot.engine, email, aad_object_id)
                return ChatPerson(contact_id, accounts.normalise_email(email))
    return known


def _candidates(
    engine: Engine, concern_id: int, aad_object_id: str
) -> tuple[ChatPerson | None, ChatPerson | None, list[tuple[int, str]]]:
    """(a contact with this Teams id, one of them acting on the concern now, and the concern's
    current contacts not yet known in Teams, with their emails)."""
    with transaction(engine) as session:
        concern = session.get(Concern, concern_id)
        if concern is None:
            return None, None, []
        by_teams_id = session.exec(
            select(Contact)
            .where(Contact.teams_user_id == aad_object_id, Contact.active)
            .order_by(col(Contact.id))
        ).all()
        for contact in by_teams_id:
            if is_current_contact(session, concern, contact.id):
                return ChatPerson.of(contact), ChatPerson.of(contact), []
        unmatched = [
            (id_of(contact), contact.email)
            for _, contact in repositories.assignments_of(
                session, concern_id, pathway=concern.pathway
            )
            if contact.email and not contact.teams_user_id and contact.active
            if is_current_contact(session, concern, contact.id)
        ]
        known = ChatPerson.of(by_teams_id[0]) if by_teams_id else None
        return known, None, list(dict(unmatched).items())


def _remember(engine: Engine, email: str, aad_object_id: str) -> int:
    with transaction(engine) as session:
        return repositories.remember_teams_user(session, email=email, aad_object_id=aad_object_id)


async def _member_emails(bot: TeamsBot, turn_context: TurnContext) -> list[str]:
    """The email and user principal name Teams gives for the sender (lower case, the email
    first); empty when the connector cannot say, or the person is from another tenant than the
    bot's."""
    activity = turn_context.activity
    person = activity.from_property
    conversation = activity.conversation
    client = turn_context.turn_state.get("ConnectorClient")
    get_member = getattr(client, "get_conversation_member", None)
    if person is None or not person.id or conversation is None or get_member is None:
        return []
    try:
        member = await get_member(conversation.id, person.id)
    except Exception as error:
        log.info("teams: the member lookup failed (%s)", type(error).__name__)
        return []
    # Only a member of the bot's own tenant, and not a guest there: an email from anywhere
    # else says nothing about who they are in the directory.
    return bot.vouched_addresses(member, aad_object_id=person.aad_object_id, guests=False)


async def _on_seen(bot: TeamsBot, turn_context: TurnContext) -> None:
    """Anyone who writes to the bot or installs it: a directory contact known only by email
    gets their Entra object id remembered, so cards can reach them (looked up once a day)."""
    person = turn_context.activity.from_property
    aad_object_id = person.aad_object_id if person is not None else None
    if not aad_object_id:
        return
    if await bot.run(_is_known_contact, bot.engine, aad_object_id):
        return
    day = bot.clock().date().isoformat()
    if not await bot.run(bot.first_delivery, f"teams:member-lookup:{aad_object_id}:{day}"):
        return
    for email in await _member_emails(bot, turn_context):
        if await bot.run(_remember, bot.engine, email, aad_object_id):
            log.info("teams: a directory contact was matched to their Teams account by email")


def _is_known_contact(engine: Engine, aad_object_id: str) -> bool:
    with transaction(engine) as session:
        found = session.exec(
            select(Contact.id).where(Contact.teams_user_id == aad_object_id)
        ).first()
        return found is not None


# --- sending cards (the dispatcher's side) ---------------------------------------------------


class CardPoster:
    """The Teams dispatcher's way out (`notifications.teams_dispatch.TeamsPoster`): cards sent
    into stored conversations through the bot's adapter, with the Bot Framework's HTTP errors
    raised as `TeamsRefused` (the adapter would otherwise report them to its turn-error
    handler and carry on)."""

    def __init__(self, bot: TeamsBot) -> None:
        self.bot = bot

    def conversation_of(self, aad_object_id: str) -> dict[str, Any] | None:
        with transaction(self.bot.engine) as session:
            row = repositories.teams_conversation(session, aad_object_id)
            return dict(row.reference) if row is not None else None

    async def post(self, reference: Mapping[str, Any], card: Mapping[str, Any]) -> str | None:
        activity = Activity(type=ActivityTypes.message, attachments=[card_attachment(dict(card))])

        async def send(context: TurnContext) -> str | None:
            response = await context.send_activity(activity)
            return response.id if response is not None else None

        return await self._in_conversation(reference, send)

    async def update(
        self, reference: Mapping[str, Any], activity_id: str, card: Mapping[str, Any]
    ) -> None:
        activity = Activity(
            type=ActivityTypes.message, id=activity_id, attachments=[card_attachment(dict(card))]
        )

        async def replace(context: TurnContext) -> str | None:
            await context.update_activity(activity)
            return activity_id

        await self._in_conversation(reference, replace)

    async def _in_conversation(
        self, reference: Mapping[str, Any], work: Callable[[TurnContext], Any]
    ) -> str | None:
        conversation = ConversationReference.model_validate(dict(reference))
        continuation = conversation.get_continuation_activity()
        results: list[str | None] = []
        failures: list[BaseException] = []

        async def callback(context: TurnContext) -> None:
            try:
                results.append(await work(context))
            except aiohttp.ClientResponseError as error:
                failures.append(TeamsRefused(error.status, error.headers))
            except Exception as error:
                failures.append(error)

        bot = self.bot
        if bot.anonymous:
            await bot.adapter.continue_conversation_with_claims(
                ClaimsIdentity(), continuation, callback
            )
        else:
            await bot.adapter.continue_conversation(bot.app_id, continuation, callback)
        if failures:
            raise failures[0]
        if not results:
            raise RuntimeError("the bot's adapter did not run the send")
        return results[0]
