"""Slack for learners: raising a concern (slash command, shortcut, DM), following it up.

Thin adapters over the services every channel uses: the modal's answers are checked by the web
form's rules and raised with `submit_concern`, which queues the learner's confirmation in the
outbox like every other message; a reply in the thread of that message, once posted, is
`add_learner_information`; the feedback buttons are `learner_satisfied` and
`learner_remains_concerned`, for the current feedback only. The screens themselves are built in
`bot.slack_learner_views`.

What the learner sent is never silently lost: a form that could not be saved comes back with
every answer kept (or, failing that, their words come back in a direct message), and a thread
reply that could not be saved or was refused is answered in its thread.

Every listener acknowledges Slack first and hands what touches the database to the bot's work
pool (`SlackBot.later`), so a slow database cannot hold up the next request's acknowledgement.
Where Slack needs the answer in the acknowledgement, it is found without the database: a modal's
errors by the form's own rules, and the choices of a select that loads as you type from the
directory as last read (`DirectoryCache`, read again in the background once a minute old).
Opening a form must happen within 3 seconds of the click, so it is done in place, from that same
cache. A retried event (same event id, `X-Slack-Retry-Num`) and a double click (same action,
message and user) are recorded once and have one effect.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlmodel import Session

from bot import slack_learner_views as views
from bot.slack_app import SlackBot
from escalation.actions import (
    ActionRefused,
    add_learner_information,
    learner_remains_concerned,
    learner_satisfied,
    require_current_feedback,
)
from escalation.notify import place_of
from intake.follow_up import learner_status
from intake.mail_intake import REPLY_TEXT_MAX
from intake.service import learner_words, submit_concern
from intake.submission import Channel, NewConcern
from notifications.messages import when
from notifications.slack_learners import FEEDBACK_ACTIONS_BLOCK, OPEN_STATUS_PAGE
from notifications.slack_text import (
    CONCERN_MODAL,
    LEARNER_REMAINS_CONCERNED,
    LEARNER_SATISFIED,
    OPEN_CONCERN_MODAL,
    escape,
)
from storage import repositories
from storage.db import transaction
from storage.tables import Concern, Learner, id_of

log = logging.getLogger(__name__)

SLASH_COMMAND = views.SLASH_COMMAND
SHORTCUT = "raise_concern"
SLACK = Channel.SLACK.value
# How old the directory's places may be before they are read again (in the background).
DIRECTORY_FRESH_SECONDS = 60.0


def register(bot: SlackBot) -> None:
    """Register the learner listeners on the bot's Bolt app."""
    learners = _Learners(bot)
    app = bot.app
    app.command(SLASH_COMMAND)(learners.on_command)
    app.shortcut(SHORTCUT)(learners.on_shortcut)
    app.action(OPEN_CONCERN_MODAL)(learners.on_open_button)
    app.options(views.ANSWER)(learners.on_options)
    app.view_submission(CONCERN_MODAL)(learners.on_submission)
    app.event("message")(learners.on_message)
    app.event("app_home_opened")(learners.on_home_opened)
    app.action(LEARNER_SATISFIED)(learners.on_feedback_answer)
    app.action(LEARNER_REMAINS_CONCERNED)(learners.on_feedback_answer)
    # A link button still reaches the app when clicked; it only needs acknowledging.
    app.action(OPEN_STATUS_PAGE)(lambda ack: ack())


class DirectoryCache:
    """The directory's places as last read, for answers Slack needs within 3 seconds.

    Once they are older than `fresh_seconds`, the next use still gets them at once and they are
    read again in the background (`refresh_in`), one reading at a time. Only the first use, before
    anything was read, waits for the database. A reading that fails keeps what was there.
    """

    def __init__(
        self,
        load: Callable[[], list[views.Place]],
        *,
        refresh_in: Callable[[Callable[[], None]], None],
        fresh_seconds: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._refresh_in = refresh_in
        self._fresh_seconds = fresh_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._places: list[views.Place] | None = None
        self._read_at = 0.0
        self._reading = False

    def places(self) -> Sequence[views.Place]:
        with self._lock:
            places, read_at = self._places, self._read_at
            fresh_seconds = (
                DIRECTORY_FRESH_SECONDS if self._fresh_seconds is None else self._fresh_seconds
            )
            stale = places is not None and self._monotonic() - read_at >= fresh_seconds
            if stale and not self._reading:
                self._reading = True
            else:
                stale = False
        if places is None:
            return self.refresh()
        if stale:
            try:
                self._refresh_in(self._refresh_quietly)
            except Exception as error:
                with self._lock:
                    self._reading = False
                log.warning(
                    "slack: the directory could not be read again (%s)", type(error).__name__
                )
        return places

    def refresh(self) -> list[views.Place]:
        """Read the directory now (and keep it)."""
        try:
            places = self._load()
        except Exception:
            with self._lock:
                self._reading = False
            raise
        with self._lock:
            self._places, self._read_at, self._reading = places, self._monotonic(), False
        return places

    def _refresh_quietly(self) -> None:
        try:
            self.refresh()
        except Exception as error:
            log.warning("slack: the directory could not be read again (%s)", type(error).__name__)


class _Learners:
    def __init__(self, bot: SlackBot) -> None:
        self.bot = bot
        self.directory = DirectoryCache(self._read_places, refresh_in=bot.later)

    # --- opening the form -------------------------------------------------------------------

    def on_command(
        self, ack: Callable[..., None], body: Mapping[str, Any], client: WebClient
    ) -> None:
        ack()
        self._open_modal(client, trigger_id=body["trigger_id"], user_id=body["user_id"])

    def on_shortcut(
        self, ack: Callable[..., None], body: Mapping[str, Any], client: WebClient
    ) -> None:
        ack()
        self._open_modal(client, trigger_id=body["trigger_id"], user_id=body["user"]["id"])

    def on_open_button(
        self, ack: Callable[..., None], body: Mapping[str, Any], client: WebClient
    ) -> None:
        """Opens the form, prefilled with the direct message the button answered.

        Not deduplicated: opening a form changes nothing, and a learner who closed it must be
        able to open it again.
        """
        ack()
        user_id = body["user"]["id"]
        written = str(body["actions"][0].get("value") or "")
        channel = (body.get("channel") or {}).get("id")
        values: dict[str, str] = {}
        if channel and written != "home":
            values = self._their_message(client, channel=channel, ts=written, user_id=user_id)
        self._open_modal(client, trigger_id=body["trigger_id"], user_id=user_id, values=values)

    def _their_message(
        self, client: WebClient, *, channel: str, ts: str, user_id: str
    ) -> dict[str, str]:
        """The learner's own direct message (read back, so its text never rides on a button)."""
        try:
            history = client.conversations_history(
                channel=channel, latest=ts, oldest=ts, inclusive=True, limit=1
            )
        except SlackApiError:
            log.warning("could not read the learner's message back to prefill the form")
            return {}
        messages = history.get("messages") or []
        if not messages or messages[0].get("user") != user_id:
            return {}
        return views.prefill(str(messages[0].get("text") or ""))

    def _open_modal(
        self,
        client: WebClient,
        *,
        trigger_id: str,
        user_id: str,
        values: Mapping[str, str] | None = None,
    ) -> None:
        answers = {**self._contact_details(client, user_id), **(values or {})}
        client.views_open(
            trigger_id=trigger_id,
            view=views.concern_modal(
                self._places(), values=answers, public_url=self.bot.policy.public_url
            ),
        )

    def _slack_identity(
        self, client: WebClient, user_id: str, typed_email: str | None
    ) -> str | None:
        """The Slack user id to keep with the learner, or None when it must not be.

        The learner record is found by the email typed in the form; binding a Slack account to
        it would let whoever typed someone else's address read and act on that person's
        concerns in Slack. So the Slack id is kept only when the typed email is the one Slack
        vouches for (`SlackBot.vouched_email`: confirmed, of this workspace, a guest's too), or
        none was typed (the record is then new, and only theirs). A profile's email alone is
        not enough: someone of another organisation's workspace shows whatever that
        organisation set.
        """
        if not typed_email:
            return user_id
        slack_email = self.bot.vouched_email(client, user_id, guests=True)
        if slack_email and slack_email == typed_email.strip().lower():
            return user_id
        log.info("a Slack concern's email is not one Slack vouches for: Slack id not kept")
        return None

    def _contact_details(self, client: WebClient, user_id: str) -> dict[str, str]:
        """Name and email from the learner's Slack profile, as the form's starting answers."""
        try:
            profile = (client.users_info(user=user_id).get("user") or {}).get("profile") or {}
        except SlackApiError:
            log.warning("could not read the learner's Slack profile")
            return {}
        name = profile.get("real_name") or profile.get("display_name") or ""
        details = {"name": str(name), "email": str(profile.get("email") or "")}
        return {key: value for key, value in details.items() if value}

    def _places(self) -> Sequence[views.Place]:
        return self.directory.places()

    def _read_places(self) -> list[views.Place]:
        with transaction(self.bot.engine) as session:
            return [
                views.Place(
                    key=organisation.key,
                    name=organisation.name,
                    departments=tuple(
                        (department.key, department.name)
                        for department in sorted(departments, key=lambda d: d.name.lower())
                    ),
                )
                for organisation, _sites, departments in sorted(
                    repositories.active_places(session), key=lambda place: place[0].name.lower()
                )
            ]

    def on_options(self, ack: Callable[..., None], body: Mapping[str, Any]) -> None:
        """Choices for an external select (a directory too big for Slack's static lists),
        answered in the acknowledgement from the directory as last read."""
        query = str(body.get("value") or "")
        if body.get("block_id") == "department":
            ack(**views.department_option_groups(self._places(), query or " "))
        else:
            ack(**views.organisation_options(self._places(), query or " "))

    # --- sending the form -------------------------------------------------------------------

    def on_submission(
        self,
        ack: Callable[..., None],
        body: Mapping[str, Any],
        view: Mapping[str, Any],
        client: WebClient,
    ) -> None:
        public_url = self.bot.policy.public_url
        answers = views.answers_from_state(view.get("state") or {})
        outcome = views.check(answers, public_url=public_url)
        if outcome.concern is None:
            # Checked without the database, so the errors are back within Slack's 3 seconds.
            ack(response_action="errors", errors=outcome.errors)
            return
        ack(response_action="update", view=views.sending_view())
        self.bot.later(
            partial(
                self._submit,
                client,
                user_id=str(body["user"]["id"]),
                view=view,
                answers=answers,
                checked=outcome.concern,
            )
        )

    def _submit(
        self,
        client: WebClient,
        *,
        user_id: str,
        view: Mapping[str, Any],
        answers: Mapping[str, str],
        checked: NewConcern,
    ) -> None:
        try:
            if not self.bot.first_delivery(f"view:{view['id']}:{view.get('hash', '')}"):
                return
            slack_user_id = self._slack_identity(client, user_id, checked.learner.email)
            concern = replace(
                checked, learner=replace(checked.learner, slack_user_id=slack_user_id)
            )
            submitted = submit_concern(
                engine=self.bot.engine,
                concern=concern,
                channel=Channel.SLACK,
                now=self.bot.clock(),
                policy=self.bot.policy,
            )
        except Exception:
            log.exception("a concern sent from Slack could not be saved")
            self._offer_again(client, view=view, answers=answers, user_id=user_id)
            return
        if self.bot.on_raised is not None:
            self.bot.on_raised()
        # The confirmation, whose thread takes the learner's replies, comes through the outbox.
        client.views_update(
            view_id=view["id"],
            view=views.received_view(submitted.reference, in_slack=slack_user_id is not None),
        )

    def _offer_again(
        self,
        client: WebClient,
        *,
        view: Mapping[str, Any],
        answers: Mapping[str, str],
        user_id: str,
    ) -> None:
        """After a concern could not be saved: the form again, every answer kept, saying so; or,
        when even that cannot be shown, the learner's own words in a direct message, so nothing
        they wrote is lost. Sent straight away, not through the outbox: the database is what
        failed, and these are the learner's own words back to them alone."""
        try:
            form = views.form_again(view, notice=views.NOT_SAVED) or views.concern_modal(
                self._places(),
                values=answers,
                public_url=self.bot.policy.public_url,
                notice=views.NOT_SAVED,
            )
            client.views_update(view_id=view["id"], view=form)
            return
        except Exception:
            log.exception("the form could not be shown again after a failed save")
        try:
            client.chat_postMessage(channel=user_id, text=views.not_saved_message(answers))
        except Exception:
            log.exception("the learner's own words could not be sent back to them either")

    # --- direct messages --------------------------------------------------------------------

    def on_message(
        self, body: Mapping[str, Any], event: Mapping[str, Any], client: WebClient
    ) -> None:
        # Bolt has acknowledged the event already.
        self.bot.later(partial(self._message, body, event, client))

    def _message(
        self, body: Mapping[str, Any], event: Mapping[str, Any], client: WebClient
    ) -> None:
        """A learner's direct message: a reply in a concern's thread is added to it; anything
        else is answered with a button that opens the form with what they wrote."""
        user_id = event.get("user")
        if (
            event.get("channel_type") != "im"
            or event.get("bot_id")
            or event.get("subtype")
            or not user_id
        ):
            return
        key = f"event:{body['event_id']}"
        channel, ts = str(event["channel"]), str(event["ts"])
        thread_ts = event.get("thread_ts")
        if thread_ts and thread_ts != ts:
            text = str(event.get("text") or "")
            try:
                added = self._add_to_concern(
                    key, channel=channel, thread_ts=str(thread_ts), user_id=str(user_id), text=text
                )
            except ActionRefused as refused:
                reply = views.refused_reply(str(refused))
            except Exception:
                # Slack had its answer before this ran and will not send the reply again: the
                # learner is told, in the thread, to send it again.
                log.exception("a learner's reply in a concern's Slack thread could not be saved")
                reply = views.not_added_reply(views.unslack(text))
            else:
                if added is None:
                    return  # a repeat delivery
                # "" (not a concern of theirs): answered below as any other message.
                reply = views.added_reply(added) if added else ""
            if reply:
                client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=reply)
                return
        elif not self.bot.first_delivery(key):
            return
        text, blocks = views.dm_reply(ts)
        client.chat_postMessage(channel=channel, text=text, blocks=blocks)

    def _add_to_concern(
        self, key: str, *, channel: str, thread_ts: str, user_id: str, text: str
    ) -> str | None:
        """The reference the reply was added to; "" when the thread is no concern of theirs;
        None when this delivery was handled before. The delivery is recorded in the same
        transaction as the information: a reply that could not be saved (or was refused) is
        not recorded as handled, so sending it again works."""
        now = self.bot.clock()
        with transaction(self.bot.engine) as session:
            if not repositories.first_delivery(session, key=key, now=now):
                return None
            found = repositories.concern_by_slack_thread(
                session, channel=channel, thread_ts=thread_ts, slack_user_id=user_id
            )
            if found is None or not _is_learner_of(session, found, user_id):
                return ""
            concern = repositories.lock_concern(session, id_of(found))
            plain = views.unslack(text)
            if concern is None or not plain.strip():
                return ""
            add_learner_information(
                session=session,
                concern=concern,
                # Kept to the length an email reply is kept to (Slack allows 40,000).
                text=learner_words(session, concern, plain[:REPLY_TEXT_MAX]),
                channel=SLACK,
                inbound_id=None,
                now=now,
                policy=self.bot.policy,
            )
            return concern.reference

    # --- App Home ---------------------------------------------------------------------------

    def on_home_opened(
        self, body: Mapping[str, Any], event: Mapping[str, Any], client: WebClient
    ) -> None:
        # Bolt has acknowledged the event already.
        self.bot.later(partial(self._home_opened, body, event, client))

    def _home_opened(
        self, body: Mapping[str, Any], event: Mapping[str, Any], client: WebClient
    ) -> None:
        if event.get("tab") != "home" or not event.get("user"):
            return
        if not self.bot.first_delivery(f"event:{body['event_id']}"):
            return
        user_id = str(event["user"])
        now = self.bot.clock()
        with transaction(self.bot.engine) as session:
            entries = [
                self._home_entry(session, concern, now=now)
                for concern in repositories.concerns_of_slack_user(
                    session, user_id, limit=views.HOME_MAX_CONCERNS + 1
                )
            ]
        client.views_publish(user_id=user_id, view=views.home_view(entries))

    def _home_entry(self, session: Session, concern: Concern, *, now: datetime) -> views.HomeEntry:
        policy = self.bot.policy
        status = learner_status(session, concern, policy)
        return views.HomeEntry(
            reference=concern.reference,
            place=place_of(session, concern),
            status_words=status.status_words,
            where_now=status.where_now,
            next_step=status.next_step,
            summary=concern.summary if self.bot.share_summary else None,
            status_url=policy.status_url(concern.reference, now, link_version=concern.link_version),
        )

    # --- answering feedback -----------------------------------------------------------------

    def on_feedback_answer(
        self,
        ack: Callable[..., None],
        body: Mapping[str, Any],
        action: Mapping[str, Any],
        client: WebClient,
    ) -> None:
        ack()
        self.bot.later(partial(self._feedback_answered, body, action, client))

    def _feedback_answered(
        self, body: Mapping[str, Any], action: Mapping[str, Any], client: WebClient
    ) -> None:
        user_id = body["user"]["id"]
        message = body.get("message") or {}
        message_ts = str(message.get("ts") or (body.get("container") or {}).get("message_ts"))
        channel = str((body.get("channel") or {}).get("id") or "")
        satisfied = action["action_id"] == LEARNER_SATISFIED
        now = self.bot.clock()
        try:
            moved = self._answer_feedback(
                reference=str(action.get("value") or ""),
                satisfied=satisfied,
                user_id=user_id,
                posted_at=f"{channel}:{message_ts}",
                key=f"action:{action['action_id']}:{message_ts}:{user_id}",
                now=now,
            )
        except ActionRefused as refused:
            client.chat_postEphemeral(channel=channel, user=user_id, text=escape(str(refused)))
            return
        if moved is None:
            return  # a double click
        stamp = when(now, self.bot.policy.calendar.timezone)
        if satisfied:
            said = f"You told us you are satisfied with the feedback ({stamp}). It is now closed."
        elif moved:
            said = (
                f"You told us you remain concerned ({stamp}). Your concern has moved to the "
                "next level, and we will tell you when they have it."
            )
        else:
            said = (
                f"You told us you remain concerned ({stamp}). Your concern is already at the "
                "highest level: the dean's team has been asked to look at it again and to give "
                "you further feedback."
            )
        blocks = [
            block
            for block in message.get("blocks") or []
            if block.get("block_id") != FEEDBACK_ACTIONS_BLOCK
        ]
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": said}]})
        client.chat_update(
            channel=channel, ts=message_ts, text=str(message.get("text") or said), blocks=blocks
        )

    def _answer_feedback(
        self,
        *,
        reference: str,
        satisfied: bool,
        user_id: str,
        posted_at: str,
        key: str,
        now: datetime,
    ) -> bool | None:
        """The learner's answer to feedback, from the buttons of the message at `posted_at`:
        whether the concern moved up; None when this press was handled before. A refused
        answer raises `ActionRefused` and records nothing (not even the press), so it changes
        nothing and pressing again is answered again."""
        with transaction(self.bot.engine) as session:
            if not repositories.first_delivery(session, key=key, now=now):
                return None
            found = repositories.concern_by_reference(session, reference)
            if found is None or not _is_learner_of(session, found, user_id):
                raise ActionRefused(
                    "Only the learner who raised this concern can answer its feedback."
                )
            concern = repositories.lock_concern(session, id_of(found))
            assert concern is not None
            require_current_feedback(
                session, concern, channel=SLACK, external_ref=posted_at, recipient=user_id
            )
            if satisfied:
                learner_satisfied(session=session, concern=concern, channel=SLACK, now=now)
                return False
            return learner_remains_concerned(
                session=session, concern=concern, channel=SLACK, now=now, policy=self.bot.policy
            )


def _is_learner_of(session: Session, concern: Concern, slack_user_id: str) -> bool:
    """True when the Slack user is the learner who raised the concern (never for anonymous)."""
    learner = session.get(Learner, concern.learner_id) if concern.learner_id else None
    return learner is not None and learner.slack_user_id == slack_user_id
