"""Slack for contacts: Acknowledge, Record feedback and Not mine on the messages they receive.

Each listener acks at once and hands the rest to the bot's work pool (`SlackBot.later`, so no
slow work can delay another request's ack), which does what the same action does on every
channel (`escalation.actions`) on the concern locked for it. Who may act is the actions' rule: a
current contact of the concern's level. The Slack user is matched to a
directory contact by Slack user id, or else by the email of one of the concern's contacts through
`users.lookupByEmail` (and the match is remembered on the contact). Anyone else gets an ephemeral
refusal with the reason, and nothing changes.

A button press is recorded once (action, message, user) in the same transaction as its effect,
so a double click or a redelivery has one effect; a refusal is recorded under a key of its own,
so it is shown once and the same button still works once the reason for it is gone. After an
action the message the button was on, and the level's other copies, say who did what and when,
without the buttons that no longer apply.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.slack_app import SlackBot
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
from notifications.slack_contacts import (
    FEEDBACK_BLOCK,
    FEEDBACK_INPUT,
    OPEN_STAFF_PAGE,
    REASON_BLOCK,
    REASON_INPUT,
    after_action,
    feedback_modal,
    not_done_with_text,
    not_mine_modal,
)
from notifications.slack_text import (
    ACKNOWLEDGE,
    FEEDBACK_MODAL,
    NOT_MINE,
    NOT_MINE_MODAL,
    RECORD_FEEDBACK,
    escape,
)
from routing.access import CaseAction
from storage import repositories
from storage import staff as accounts
from storage.db import transaction
from storage.tables import Concern, Contact, OutboxMessage, id_of

log = logging.getLogger(__name__)

NOT_A_CONTACT = (
    "Only the people this concern was sent to, or staff with rights over it, can act on it "
    "here. If it should be yours, ask the regional quality team to add your Slack account to "
    "the directory."
)
NOT_FOUND = "That concern could not be found."
NOT_RECORDED_NOW = "That could not be recorded just now. Please try again."


@dataclass(frozen=True)
class Press:
    """What a button press or a modal submission is about, and where its message is."""

    user_id: str
    reference: str
    # Recorded once: a double click or a redelivery has one effect.
    delivery_key: str
    channel_id: str | None
    message_ts: str | None
    message_text: str
    message_blocks: Sequence[Mapping[str, Any]]


# An action on the locked concern by the matched contact (raises ActionRefused when it does not
# apply).
Perform = Callable[[Session, Concern, Actor, datetime], None]


def register(bot: SlackBot) -> None:
    """Register the contact listeners on the bot's Bolt app."""
    app = bot.app

    @app.action(ACKNOWLEDGE)
    def on_acknowledge(ack: Callable[..., None], body: dict[str, Any], client: WebClient) -> None:
        ack()

        def perform(session: Session, concern: Concern, by: Actor, now: datetime) -> None:
            acknowledge(session=session, concern=concern, by=by, now=now)

        bot.later(
            partial(
                _act,
                bot,
                client,
                _press(body, ACKNOWLEDGE),
                action=CaseAction.ACKNOWLEDGE,
                perform=perform,
                done="Acknowledged",
                still_open=(RECORD_FEEDBACK, NOT_MINE),
            )
        )

    @app.action(RECORD_FEEDBACK)
    def on_record_feedback(
        ack: Callable[..., None], body: dict[str, Any], client: WebClient
    ) -> None:
        ack()
        press = _press(body, RECORD_FEEDBACK)
        _open_modal(bot, client, body, press, CaseAction.FEEDBACK, feedback_modal)

    @app.action(NOT_MINE)
    def on_not_mine(ack: Callable[..., None], body: dict[str, Any], client: WebClient) -> None:
        ack()
        press = _press(body, NOT_MINE)
        _open_modal(bot, client, body, press, CaseAction.REDIRECT, not_mine_modal)

    @app.view(FEEDBACK_MODAL)
    def on_feedback_submitted(
        ack: Callable[..., None], body: dict[str, Any], view: dict[str, Any], client: WebClient
    ) -> None:
        value = view["state"]["values"][FEEDBACK_BLOCK][FEEDBACK_INPUT].get("value") or ""
        if not value.strip():
            ack(
                response_action="errors",
                errors={FEEDBACK_BLOCK: "Write the feedback for the learner"},
            )
            return
        ack()

        def perform(session: Session, concern: Concern, by: Actor, now: datetime) -> None:
            record_feedback(
                session=session, concern=concern, by=by, text=value, now=now, policy=bot.policy
            )

        bot.later(
            partial(
                _act,
                bot,
                client,
                _submitted(body, view, FEEDBACK_MODAL),
                action=CaseAction.FEEDBACK,
                perform=perform,
                done="Feedback recorded (the learner has been told)",
                still_open=(),
                fetch_message=True,
                # The modal has closed: if it is not recorded, the text goes back to its author.
                give_back=value,
                doing="Your feedback on",
            )
        )

    @app.view(NOT_MINE_MODAL)
    def on_not_mine_submitted(
        ack: Callable[..., None], body: dict[str, Any], view: dict[str, Any], client: WebClient
    ) -> None:
        ack()
        state = (view.get("state") or {}).get("values") or {}
        reason = str((state.get(REASON_BLOCK) or {}).get(REASON_INPUT, {}).get("value") or "")

        def perform(session: Session, concern: Concern, by: Actor, now: datetime) -> None:
            redirect(
                session=session, concern=concern, by=by, now=now, policy=bot.policy, reason=reason
            )

        bot.later(
            partial(
                _act,
                bot,
                client,
                _submitted(body, view, NOT_MINE_MODAL),
                action=CaseAction.REDIRECT,
                perform=perform,
                done="Passed on as not theirs",
                still_open=(),
                fetch_message=True,
                # Only the person who passed it on is done with it: the others' copies stand.
                tell_others=False,
                give_back=reason if reason.strip() else None,
                doing="Passing on",
            )
        )

    @app.action(OPEN_STAFF_PAGE)
    def on_open_staff_page(ack: Callable[..., None]) -> None:
        # A link button: Slack opens the page; the click is only acknowledged.
        ack()


def _open_modal(
    bot: SlackBot,
    client: WebClient,
    body: Mapping[str, Any],
    press: Press,
    action: CaseAction,
    modal: Callable[..., dict[str, Any]],
) -> None:
    """Open the modal a button asks for (feedback, or why it is not theirs), then, after the
    ack, turn it into an explanation when this person cannot do that now.

    The trigger expires 3 seconds after the click, so the modal opens first. Opening a modal
    changes nothing, so it is not deduplicated (a person may cancel and open it again); the
    submission is, and the action decides again then.
    """
    metadata = json.dumps(
        {"reference": press.reference, "channel": press.channel_id, "ts": press.message_ts}
    )
    opened = client.views_open(
        trigger_id=body["trigger_id"],
        view=modal(reference=press.reference, private_metadata=metadata),
    )
    view_id = str(opened["view"]["id"])
    title = str(opened["view"].get("title", {}).get("text") or "")

    def explain_if_refused() -> None:
        reason = _refusal(bot, client, press, action)
        if reason is not None:
            client.views_update(view_id=view_id, view=_notice_view(title, reason))

    bot.later(explain_if_refused)


def _submitted(body: Mapping[str, Any], view: Mapping[str, Any], callback_id: str) -> Press:
    """A modal's submission as a press on the message the modal was opened from."""
    metadata = json.loads(view.get("private_metadata") or "{}")
    return Press(
        user_id=str(body["user"]["id"]),
        reference=str(metadata.get("reference") or ""),
        delivery_key=f"view:{callback_id}:{view['id']}",
        channel_id=metadata.get("channel"),
        message_ts=metadata.get("ts"),
        message_text="",
        message_blocks=(),
    )


def _press(body: Mapping[str, Any], action_id: str) -> Press:
    action = body["actions"][0]
    container = body.get("container") or {}
    message = body.get("message") or {}
    user_id = str(body["user"]["id"])
    message_ts = container.get("message_ts") or message.get("ts")
    return Press(
        user_id=user_id,
        reference=str(action.get("value") or ""),
        delivery_key=f"action:{action_id}:{message_ts}:{user_id}",
        channel_id=container.get("channel_id") or (body.get("channel") or {}).get("id"),
        message_ts=message_ts,
        message_text=str(message.get("text") or ""),
        message_blocks=list(message.get("blocks") or ()),
    )


def _act(
    bot: SlackBot,
    client: WebClient,
    press: Press,
    *,
    action: CaseAction,
    perform: Perform,
    done: str,
    still_open: Sequence[str],
    fetch_message: bool = False,
    tell_others: bool = True,
    give_back: str | None = None,
    doing: str = "",
) -> None:
    """Run one action for the person who pressed, once; refuse with the reason otherwise.

    The message pressed on shows the outcome; so do the copies the level's other contacts have
    in Slack (with `tell_others`), so nobody acknowledges or answers what is already done.
    `give_back` is what the person typed (in a modal that has closed by now): when the action is
    refused or fails, it is sent back to them in a DM with the reason (`doing` names what was
    not done), so it is not lost.
    """
    now = bot.clock()
    try:
        concern_id = _concern_id(bot, press.reference)
        person = _who_pressed(bot, client, concern_id, press.user_id)
        with transaction(bot.engine) as session:
            if not repositories.first_delivery(session, key=press.delivery_key, now=now):
                log.info("slack: %s was handled before", press.delivery_key)
                return
            concern = repositories.lock_concern(session, concern_id)
            if concern is None:
                raise ActionRefused(NOT_FOUND)
            by, who = _actor(session, concern, person, action, now=now)
            perform(session, concern, by, now)
            level_since = concern.level_reached_at
    except ActionRefused as refusal:
        # Nothing changed. The refusal is shown once per press, under a key of its own: the
        # press itself stays unrecorded, so the same button works once the reason is gone
        # (for example the person has since been added to the directory).
        if bot.first_delivery(f"{press.delivery_key}:refused"):
            _tell_not_done(client, press, str(refusal), give_back=give_back, doing=doing)
        return
    except Exception as error:
        # Rolled back, press not recorded: pressing again tries again. The type only is logged.
        log.error("slack: %s failed (%s)", press.delivery_key, type(error).__name__)
        _tell_not_done(client, press, NOT_RECORDED_NOW, give_back=give_back, doing=doing)
        return
    outcome = f"*{done}* by {escape(who)}, {when(now, bot.policy.calendar.timezone)}."
    _update_message(
        bot.engine, client, press, outcome=outcome, still_open=still_open, fetch=fetch_message
    )
    if tell_others:
        pressed = f"{press.channel_id}:{press.message_ts}" if press.message_ts else ""
        for external_ref, blocks, text in _level_copies(
            bot.engine, concern_id, since=level_since, besides=pressed
        ):
            channel, _, ts = external_ref.partition(":")
            try:
                client.chat_update(
                    channel=channel,
                    ts=ts,
                    text=text or outcome,
                    blocks=after_action(blocks, outcome=outcome, still_open=still_open),
                )
            except SlackApiError as error:
                log.warning(
                    "slack: could not update another copy (%s)", error.response.get("error")
                )


def _actor(
    session: Session, concern: Concern, person: ChatPerson, action: CaseAction, *, now: datetime
) -> tuple[Actor, str]:
    """Who the person acts as on the locked concern, and the name the messages show: the rule
    every chat shares (`casework.chat_actor`)."""
    return casework.chat_actor(
        session, concern, action, person, channel="slack", now=now, not_a_contact=NOT_A_CONTACT
    )


def _level_copies(
    engine: Engine, concern_id: int, *, since: datetime, besides: str
) -> list[tuple[str, list[dict[str, Any]], str]]:
    """Where the Slack messages asking the current level's contacts to act were posted, with
    what they show: (external_ref, blocks, text), the one pressed on left out."""
    with transaction(engine) as session:
        rows = repositories.sent_to_level(
            session, concern_id, channel="slack", kinds=CONTACT_STEPS, since=since
        )
        return [
            (
                str(row.external_ref),
                list((row.payload or {}).get("blocks") or ()),
                str((row.payload or {}).get("text") or ""),
            )
            for row in rows
            if row.external_ref != besides and (row.payload or {}).get("blocks")
        ]


def _concern_id(bot: SlackBot, reference: str) -> int:
    with transaction(bot.engine) as session:
        concern = repositories.concern_by_reference(session, reference) if reference else None
        if concern is None:
            raise ActionRefused(NOT_FOUND)
        return id_of(concern)


def _who_pressed(bot: SlackBot, client: WebClient, concern_id: int, user_id: str) -> ChatPerson:
    """The directory contact this Slack user is, with the directory's email for them (the
    directory, or Slack's own email match, set that); else their Slack account's confirmed
    email. Who they act as is decided on the locked concern (`casework.chat_actor`)."""
    matched = _matched_contact(bot, client, concern_id, user_id)
    return matched or ChatPerson(None, _slack_account(bot, client, user_id))


def _matched_contact(
    bot: SlackBot, client: WebClient, concern_id: int, user_id: str
) -> ChatPerson | None:
    """The directory contact this Slack user is, preferring one who acts on the concern now."""
    with transaction(bot.engine) as session:
        concern = session.get(Concern, concern_id)
        if concern is None:
            return None
        by_slack_id = session.exec(
            select(Contact)
            .where(Contact.slack_user_id == user_id, Contact.active)
            .order_by(col(Contact.id))
        ).all()
        for contact in by_slack_id:
            if is_current_contact(session, concern, contact.id):
                return ChatPerson.of(contact)
        # The concern's current contacts not yet known in Slack, to be matched by their email.
        unmatched = [
            (id_of(contact), contact.email)
            for assignment, contact in repositories.assignments_of(
                session, concern_id, pathway=concern.pathway
            )
            if contact.email and not contact.slack_user_id and contact.active
            if is_current_contact(session, concern, contact.id)
        ]
        fallback = ChatPerson.of(by_slack_id[0]) if by_slack_id else None
    for contact_id, email in dict(unmatched).items():
        if _slack_user_for(client, email) != user_id:
            continue
        with transaction(bot.engine) as session:
            # Remembered: their next messages come to Slack too, and no lookup is needed.
            repositories.remember_slack_user(
                session, contact_id=contact_id, email=email, slack_user_id=user_id
            )
        return ChatPerson(contact_id, accounts.normalise_email(email))
    return fallback


def _slack_user_for(client: WebClient, email: str) -> str | None:
    try:
        answer = client.users_lookupByEmail(email=email)
    except SlackApiError as error:
        if error.response.get("error") != "users_not_found":
            log.warning("slack: users.lookupByEmail failed (%s)", error.response.get("error"))
        return None
    user = answer.get("user") or {}
    return str(user.get("id")) if user.get("id") else None


def _slack_account(bot: SlackBot, client: WebClient, user_id: str) -> str | None:
    """The Slack user's email (normalised) when it can stand for a member of staff: a full
    member of the bot's own workspace whose email Slack has confirmed; else None. Slack confirms
    an email before a member uses it, as the directory's `users.lookupByEmail` match already
    relies on."""
    email = bot.vouched_email(client, user_id, guests=False)
    return accounts.normalise_email(email) if email else None


def _refusal(bot: SlackBot, client: WebClient, press: Press, action: CaseAction) -> str | None:
    """Why this person cannot give feedback on the concern, or pass it on, now; None when they
    can. A courtesy before they write: the action decides again when the modal is submitted."""
    try:
        concern_id = _concern_id(bot, press.reference)
    except ActionRefused as refusal:
        return str(refusal)
    person = _who_pressed(bot, client, concern_id, press.user_id)
    # Looked at, never saved: working out someone's rights (which can make their staff account,
    # as signing in does) is left to the action itself.
    with Session(bot.engine) as session:
        concern = session.get(Concern, concern_id)
        if concern is None:
            return NOT_FOUND
        if concern.status != "open":
            return f"{concern.reference} is closed: it can no longer be acted on here"
        try:
            by, _ = _actor(session, concern, person, action, now=bot.clock())
        except ActionRefused as refusal:
            return str(refusal)
        if by.kind == "contact" and not is_current_contact(session, concern, by.contact_id):
            return (
                f"{concern.reference} is now with pathway {concern.pathway}: only its contacts "
                "there, or staff with rights over it, can act on it"
            )
        if concern.feedback_at is not None:
            return (
                f"Feedback on {concern.reference} was already recorded at pathway {concern.pathway}"
            )
    return None


def _notice_view(title: str, reason: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": title or "Not available"},
        "close": {"type": "plain_text", "text": "Close"},
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": escape(reason)}}],
    }


def _posted(engine: Engine, external_ref: str) -> tuple[list[dict[str, Any]], str]:
    """The blocks and text of a message the outbox posted, found by where it was posted."""
    with transaction(engine) as session:
        row = session.exec(
            select(OutboxMessage).where(OutboxMessage.external_ref == external_ref)
        ).first()
        if row is None or not row.payload:
            return [], ""
        return list(row.payload.get("blocks") or ()), str(row.payload.get("text") or "")


def _tell_not_done(
    client: WebClient, press: Press, reason: str, *, give_back: str | None, doing: str
) -> None:
    """Say why nothing was done: an ephemeral note under the button, or, when the person typed
    something (in a modal, closed by now), a DM with the reason and their text."""
    if give_back is None:
        _ephemeral(client, press, reason)
        return
    message = not_done_with_text(
        doing=doing, reference=press.reference, reason=reason, text=give_back
    )
    try:
        # To the user id: Slack posts it in the app's DM with them, which is kept, unlike an
        # ephemeral note, so the text can still be copied later.
        client.chat_postMessage(channel=press.user_id, text=message.text, unfurl_links=False)
    except SlackApiError as error:
        log.warning("slack: could not give their text back (%s)", error.response.get("error"))
    except Exception as error:
        log.warning("slack: could not give their text back (%s)", type(error).__name__)


def _ephemeral(client: WebClient, press: Press, text: str) -> None:
    if press.channel_id is None:
        return
    try:
        client.chat_postEphemeral(channel=press.channel_id, user=press.user_id, text=escape(text))
    except SlackApiError as error:
        log.warning("slack: could not show a refusal (%s)", error.response.get("error"))


def _update_message(
    engine: Engine,
    client: WebClient,
    press: Press,
    *,
    outcome: str,
    still_open: Sequence[str],
    fetch: bool,
) -> None:
    """Show the outcome on the message the button was on (best effort: the action is done)."""
    if press.channel_id is None or press.message_ts is None:
        return
    blocks: Sequence[Mapping[str, Any]] = press.message_blocks
    text = press.message_text
    if fetch:
        # A modal's submission does not carry the message: the outbox kept what was posted.
        blocks, text = _posted(engine, f"{press.channel_id}:{press.message_ts}")
    try:
        client.chat_update(
            channel=press.channel_id,
            ts=press.message_ts,
            text=text or outcome,
            blocks=after_action(blocks, outcome=outcome, still_open=still_open)
            if blocks
            else [{"type": "section", "text": {"type": "mrkdwn", "text": outcome}}],
        )
    except SlackApiError as error:
        log.warning("slack: could not update the message (%s)", error.response.get("error"))
