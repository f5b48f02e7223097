"""Learners in Teams: raising a concern with an Adaptive Card form, and following it up.

Thin adapters over the services every channel uses: the form's answers are checked by the web
form's own rules (`intake.web.form_fields.read`) and raised with `submit_concern`; "Add
information" is `add_learner_information`; the feedback buttons are `learner_satisfied` and
`learner_remains_concerned`. The cards are built in `notifications.teams_learner_cards`.

A learner is known in Teams by their Entra object id, kept on their learner record only when
the email they typed is the one Teams has for them (the record is found by the typed email, so
binding an account to it otherwise would hand someone's concerns to whoever typed their
address), and never replacing one kept before. Only that learner can act on their concerns
here; anyone else is refused and nothing changes. Anonymous concerns are not taken in Teams:
Teams knows who sent the form, so the learner is pointed to the web form and nothing is stored.

Nothing typed is lost: when saving fails, the answer gives the learner's words back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from microsoft_agents.activity import Activity, ActivityTypes
from microsoft_agents.activity.teams import TeamsChannelAccount
from microsoft_agents.hosting.core import (
    ConnectorClientBase,
    TeamsConnectorClient,
    TurnContext,
)
from sqlmodel import Session

from bot.teams_app import TeamsBot, card_attachment
from escalation.actions import (
    ActionRefused,
    add_learner_information,
    learner_remains_concerned,
    learner_satisfied,
)
from escalation.notify import place_of
from intake.follow_up import learner_status
from intake.mail_intake import REPLY_TEXT_MAX
from intake.service import learner_words, submit_concern
from intake.submission import Channel
from intake.web import form_fields
from intake.web.form_fields import Directory, Outcome
from notifications import teams_learner_cards as cards
from notifications.messages import when
from notifications.teams_text import clean
from routing.model import ConcernStatus, Confidentiality
from storage import repositories
from storage.db import transaction
from storage.tables import Concern, Learner, id_of

log = logging.getLogger(__name__)

TEAMS = Channel.TEAMS.value

# The web form's questions, as the cards ask them.
QUESTIONS = cards.FormQuestions(
    groups=form_fields.GROUP_LABELS,
    frequency=form_fields.FREQUENCY_LABELS,
    harm=form_fields.HARM_LABELS,
    raised_before=form_fields.RAISED_BEFORE_LABELS,
    yes_no=form_fields.YES_NO_LABELS,
    pathway1_contact=form_fields.PATHWAY1_CONTACT_LABELS,
    confidentiality=form_fields.CONFIDENTIALITY_LABELS,
    confidentiality_hints=form_fields.CONFIDENTIALITY_HINTS,
    not_listed=form_fields.NOT_LISTED,
    description_limit=form_fields.DESCRIPTION_LIMIT,
    short_text_limit=form_fields.SHORT_TEXT_LIMIT,
)

# Messages that ask for the learner's concerns rather than raise one.
STATUS_COMMANDS = frozenset({"my concerns", "status", "my concern", "concerns"})
# Messages that only ask for the form: it opens empty rather than with these words in it.
FORM_COMMANDS = frozenset(
    {"hi", "hello", "help", "start", "concern", "raise", "raise a concern", "new concern"}
)

NOT_THEIRS = "Only the learner who raised this concern can {doing} here in Teams."
MOVED_ON = (
    "These buttons answer earlier feedback on {reference}, and your concern has moved on since, "
    "so nothing has been changed. When there is new feedback we will tell you, and you can "
    "answer it then. My concerns shows where your concern is now."
)


def register(bot: TeamsBot) -> None:
    """Register the learner handlers on the bot."""
    learners = _Learners(bot)
    bot.on_message(learners.on_message)
    bot.on_verb(cards.CONCERN_FORM)(learners.on_form_button)
    bot.on_verb(cards.RAISE_CONCERN)(learners.on_raise_concern)
    bot.on_verb(cards.MY_CONCERNS)(learners.on_my_concerns)
    bot.on_verb(cards.ADD_INFORMATION)(learners.on_add_information)
    bot.on_verb(cards.SATISFIED)(learners.on_feedback_answer)
    bot.on_verb(cards.REMAIN_CONCERNED)(learners.on_feedback_answer)


@dataclass(frozen=True)
class _Person:
    """Who wrote or pressed: their Teams id in this chat and their Entra object id."""

    teams_id: str
    aad_object_id: str
    name: str
    conversation_id: str


def _person(turn_context: TurnContext) -> _Person | None:
    activity = turn_context.activity
    sender = activity.from_property
    if sender is None or not sender.id or not sender.aad_object_id:
        return None
    return _Person(
        teams_id=sender.id,
        aad_object_id=sender.aad_object_id,
        name=sender.name or "",
        conversation_id=activity.conversation.id if activity.conversation else "",
    )


async def teams_addresses(bot: TeamsBot, turn_context: TurnContext, person: _Person) -> set[str]:
    """The email address and UPN Teams has for the person (lower case) when it vouches for them
    (`TeamsBot.vouched_addresses`: of the organisation's tenant; a guest there too); empty when
    Teams does not say. Asked through the SDK's connector client (GET
    conversations/{id}/members/{id})."""
    client = turn_context.services.get(ConnectorClientBase)  # type: ignore[type-abstract]
    if client is None or not person.conversation_id:
        return set()
    try:
        if isinstance(client, TeamsConnectorClient):
            member: Any = await client.get_conversation_member(
                person.conversation_id, person.teams_id
            )
        else:
            member = await client.conversations.get_conversation_member(
                person.conversation_id, person.teams_id
            )
        account = TeamsChannelAccount.model_validate(
            member.model_dump(by_alias=True, exclude_none=True)
        )
    except Exception:
        log.warning("could not read the learner's Teams profile", exc_info=True)
        return set()
    return set(bot.vouched_addresses(account, aad_object_id=person.aad_object_id, guests=True))


def teams_identity(person: _Person, typed_email: str | None, addresses: set[str]) -> str | None:
    """The Entra object id to keep with the learner, or None when it must not be: only when the
    typed email is one Teams vouches for as this person's (`teams_addresses`), or none was typed
    (the record is then new, and only theirs). The same rule as Slack's."""
    if not typed_email:
        return person.aad_object_id
    if typed_email.strip().lower() in addresses:
        return person.aad_object_id
    log.info("a Teams concern's email is not the user's Teams email: Teams id not kept")
    return None


def answers_from_data(data: Mapping[str, Any]) -> dict[str, str]:
    """A submitted card's inputs as the web form's fields (strings, "" when unanswered)."""
    answers: dict[str, str] = {}
    for name in form_fields.FIELDS:
        value = data.get(name)
        answers[name] = value if isinstance(value, str) else ""
    # The toggle sends "yes" or "no"; the web form's checkbox sends "yes" or nothing.
    if answers["cannot-raise-locally"] != cards.TOGGLE_ON:
        answers["cannot-raise-locally"] = ""
    return answers


class _Learners:
    def __init__(self, bot: TeamsBot) -> None:
        self.bot = bot

    # --- messages ---------------------------------------------------------------------------

    async def on_message(self, bot: TeamsBot, turn_context: TurnContext) -> None:
        """A status command shows their concerns; any other message offers the form, with
        what they wrote as its description."""
        person = _person(turn_context)
        if person is None:
            return
        conversation = turn_context.activity.conversation
        if conversation is not None and (conversation.conversation_type or "personal") != (
            "personal"
        ):
            return  # a concern is raised in the learner's own chat with the bot, not in a team
        text = (turn_context.activity.text or "").strip()
        command = " ".join(text.lower().split()).strip(" .!?")
        if command in STATUS_COMMANDS:
            shown = await self._my_concerns(person)
            await self._send(turn_context, shown, "Your concerns")
            return
        values: dict[str, str] = {}
        if text and command not in FORM_COMMANDS:
            values["description"] = text[: QUESTIONS.description_limit]
        form = await self._form(turn_context, person, values)
        await self._send(turn_context, form, "Raise a concern")

    async def _send(self, turn_context: TurnContext, card: dict[str, Any], text: str) -> None:
        await turn_context.send_activity(
            Activity(type=ActivityTypes.message, text=text, attachments=[card_attachment(card)])
        )

    async def on_form_button(
        self, bot: TeamsBot, turn_context: TurnContext, data: dict[str, Any]
    ) -> dict[str, Any]:
        person = _person(turn_context)
        if person is None:
            return cards.refused_card("We could not tell who you are in Teams.")
        return await self._form(turn_context, person, {})

    async def _form(
        self, turn_context: TurnContext, person: _Person, values: Mapping[str, str]
    ) -> dict[str, Any]:
        """The empty form, with their name and email from Teams as starting answers."""
        addresses = await teams_addresses(self.bot, turn_context, person)
        starting = {"name": person.name, "email": min(addresses) if len(addresses) == 1 else ""}
        places = await self.bot.run(self._places)
        return cards.concern_form(
            QUESTIONS,
            places,
            values={**{k: v for k, v in starting.items() if v}, **values},
            public_url=self.bot.policy.public_url,
        )

    def _places(self) -> list[cards.PlaceChoice]:
        with transaction(self.bot.engine) as session:
            return [
                cards.PlaceChoice(
                    key=organisation.key,
                    name=organisation.name,
                    departments=tuple(
                        (f"{organisation.key}/{department.key}", department.name)
                        for department in sorted(
                            departments, key=lambda d: (d.name.casefold(), d.key)
                        )
                    ),
                )
                for organisation, _sites, departments in sorted(
                    repositories.active_places(session),
                    key=lambda place: (place[0].name.casefold(), place[0].key),
                )
            ]

    # --- sending the form -------------------------------------------------------------------

    async def on_raise_concern(
        self, bot: TeamsBot, turn_context: TurnContext, data: dict[str, Any]
    ) -> dict[str, Any]:
        person = _person(turn_context)
        if person is None:
            return cards.refused_card("We could not tell who you are in Teams.")
        answers = answers_from_data(data)
        public_url = self.bot.policy.public_url
        if answers["confidentiality"] == Confidentiality.ANONYMOUS.value:
            places = await self.bot.run(self._places)
            return cards.concern_form(
                QUESTIONS,
                places,
                values=answers,
                public_url=public_url,
                errors={
                    "confidentiality": "Choose named or confidential, or use the web form to "
                    "stay anonymous"
                },
                notice=cards.anonymous_refusal(public_url),
            )
        places = await self.bot.run(self._places)
        outcome = form_fields.read(answers, _directory(places))
        if outcome.concern is None:
            return cards.concern_form(
                QUESTIONS, places, values=answers, public_url=public_url, errors=outcome.errors
            )
        addresses = await teams_addresses(self.bot, turn_context, person)
        kept = teams_identity(person, outcome.concern.learner.email, addresses)
        try:
            saved = await self.bot.run(self._submit, outcome, kept)
        except Exception:
            log.exception("a concern sent from Teams could not be saved")
            return cards.concern_form(
                QUESTIONS,
                places,
                values=answers,
                public_url=public_url,
                notice=cards.Notice(cards.NOT_SAVED),
            )
        reference, pathway, placement, patient_safety = saved
        return cards.received_card(
            reference,
            pathway=pathway,
            where_now=form_fields.PATHWAY_WORDS.get(pathway, f"pathway {pathway}"),
            placement=placement,
            in_teams=kept is not None,
            by_email=bool(outcome.concern.learner.email),
            patient_safety=patient_safety,
        )

    def _submit(self, outcome: Outcome, teams_user_id: str | None) -> tuple[str, int, str, bool]:
        assert outcome.concern is not None
        concern = replace(
            outcome.concern,
            learner=replace(outcome.concern.learner, teams_user_id=teams_user_id),
        )
        submitted = submit_concern(
            engine=self.bot.engine,
            concern=concern,
            channel=Channel.TEAMS,
            now=self.bot.clock(),
            policy=self.bot.policy,
        )
        if self.bot.on_raised is not None:
            self.bot.on_raised()
        with transaction(self.bot.engine) as session:
            row = repositories.concern_by_reference(session, submitted.reference)
            patient_safety = bool(row is not None and row.patient_safety)
        return (submitted.reference, submitted.pathway, submitted.placement, patient_safety)

    # --- My concerns ------------------------------------------------------------------------

    async def on_my_concerns(
        self, bot: TeamsBot, turn_context: TurnContext, data: dict[str, Any]
    ) -> dict[str, Any]:
        person = _person(turn_context)
        if person is None:
            return cards.refused_card("We could not tell who you are in Teams.")
        return await self._my_concerns(person)

    async def _my_concerns(self, person: _Person) -> dict[str, Any]:
        entries = await self.bot.run(self._entries, person.aad_object_id)
        return cards.my_concerns_card(entries)

    def _entries(self, aad_object_id: str) -> list[cards.ConcernEntry]:
        now = self.bot.clock()
        with transaction(self.bot.engine) as session:
            return [
                self._entry(session, concern, now=now)
                for concern in repositories.concerns_of_teams_user(
                    session, aad_object_id, limit=cards.MAX_CONCERNS_SHOWN + 1
                )
            ]

    def _entry(self, session: Session, concern: Concern, *, now: datetime) -> cards.ConcernEntry:
        policy = self.bot.policy
        status = learner_status(session, concern, policy)
        return cards.ConcernEntry(
            reference=concern.reference,
            status_words=status.status_words,
            where_now=status.where_now,
            next_step=status.next_step,
            place=place_of(session, concern),
            pathway=concern.pathway,
            level_round=concern.level_round,
            can_add_information=status.can_add_information,
            can_respond_to_feedback=status.can_respond_to_feedback,
            summary=concern.summary if policy.teams_summary else None,
            status_url=policy.status_url(concern.reference, now, link_version=concern.link_version),
        )

    # --- adding information -----------------------------------------------------------------

    async def on_add_information(
        self, bot: TeamsBot, turn_context: TurnContext, data: dict[str, Any]
    ) -> dict[str, Any]:
        reference = str(data.get("reference") or "")
        typed = data.get(cards.information_input_id(reference))
        if not isinstance(typed, str):
            typed = data.get(cards.INFORMATION)
        text = clean(typed, limit=REPLY_TEXT_MAX + 1).strip() if isinstance(typed, str) else ""
        person = _person(turn_context)
        if person is None:
            return cards.refused_card("We could not tell who you are in Teams.", typed=text)
        if not text:
            return cards.refused_card("Write what you want to add, then press Send.")
        if len(text) > REPLY_TEXT_MAX:
            return cards.refused_card(
                f"What you add must be {REPLY_TEXT_MAX:,} characters or fewer: please shorten "
                "it and send it again.",
                typed=text,
            )
        try:
            entry = await self.bot.run(self._add_information, reference, person, text)
        except ActionRefused as refused:
            return cards.refused_card(str(refused), typed=text)
        except Exception:
            log.exception("information added in Teams could not be saved")
            return cards.not_added_card(reference, text)
        return cards.done_card(
            f"Added to your concern {entry.reference}: the people handling it will see it.", entry
        )

    def _add_information(self, reference: str, person: _Person, text: str) -> cards.ConcernEntry:
        now = self.bot.clock()
        with transaction(self.bot.engine) as session:
            concern = self._their_concern(session, reference, person, doing="add information to it")
            if concern.status != ConcernStatus.OPEN.value:
                raise ActionRefused(
                    f"{concern.reference} is closed, so information can no longer be added to "
                    "it. To raise it again, send me a message."
                )
            add_learner_information(
                session=session,
                concern=concern,
                text=learner_words(session, concern, text),
                channel=TEAMS,
                inbound_id=None,
                now=now,
                policy=self.bot.policy,
            )
            return self._entry(session, concern, now=now)

    def _their_concern(
        self, session: Session, reference: str, person: _Person, *, doing: str
    ) -> Concern:
        """The concern, locked, when the person is its learner; else ActionRefused (the same
        for a reference that does not exist: a reference alone grants nothing)."""
        found = repositories.concern_by_reference(session, reference) if reference else None
        if found is None or not _is_learner_of(session, found, person.aad_object_id):
            raise ActionRefused(NOT_THEIRS.format(doing=doing))
        concern = repositories.lock_concern(session, id_of(found))
        if concern is None:
            raise ActionRefused(NOT_THEIRS.format(doing=doing))
        return concern

    # --- answering feedback -----------------------------------------------------------------

    async def on_feedback_answer(
        self, bot: TeamsBot, turn_context: TurnContext, data: dict[str, Any]
    ) -> dict[str, Any]:
        satisfied = _verb_of(turn_context) == cards.SATISFIED
        reference = str(data.get("reference") or "")
        person = _person(turn_context)
        if person is None:
            return cards.refused_card("We could not tell who you are in Teams.")
        try:
            moved, entry = await self.bot.run(
                self._answer_feedback, reference, person, data, satisfied
            )
        except ActionRefused as refused:
            return cards.refused_card(str(refused))
        except Exception:
            log.exception("a learner's answer to feedback in Teams could not be saved")
            return cards.not_answered_card(reference)
        stamp = when(self.bot.clock(), self.bot.policy.calendar.timezone)
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
        return cards.done_card(said, entry)

    def _answer_feedback(
        self, reference: str, person: _Person, data: Mapping[str, Any], satisfied: bool
    ) -> tuple[bool, cards.ConcernEntry]:
        """Whether the concern moved up, and how it is now. A refused answer raises
        `ActionRefused` and changes nothing."""
        now = self.bot.clock()
        with transaction(self.bot.engine) as session:
            concern = self._their_concern(session, reference, person, doing="answer its feedback")
            _require_same_round(concern, data)
            if satisfied:
                learner_satisfied(session=session, concern=concern, channel=TEAMS, now=now)
                moved = False
            else:
                moved = learner_remains_concerned(
                    session=session,
                    concern=concern,
                    channel=TEAMS,
                    now=now,
                    policy=self.bot.policy,
                )
            return moved, self._entry(session, concern, now=now)


def _verb_of(turn_context: TurnContext) -> str:
    value = turn_context.activity.value
    action = value.get("action") if isinstance(value, dict) else getattr(value, "action", None)
    verb = action.get("verb") if isinstance(action, dict) else getattr(action, "verb", None)
    return str(verb or "")


def _require_same_round(concern: Concern, data: Mapping[str, Any]) -> None:
    """Buttons carry the level and round of the feedback they answer: pressed after the concern
    moved on (another level, or a reopened round), they change nothing."""
    if concern.status != ConcernStatus.OPEN.value:
        return  # the answer's own refusal says it is closed
    pathway, level_round = data.get("pathway"), data.get("round")
    if (pathway is not None and pathway != concern.pathway) or (
        level_round is not None and level_round != concern.level_round
    ):
        raise ActionRefused(MOVED_ON.format(reference=concern.reference))


def _directory(places: list[cards.PlaceChoice]) -> Directory:
    """The places offered, as the web form's directory: its rules check the learner's choice
    (organisation by name, department as "<org key>/<dept key>") against them."""
    return Directory(
        tuple(
            {
                "key": place.key,
                "name": place.name,
                "departments": [
                    {"key": value.split("/", 1)[1], "name": name}
                    for value, name in place.departments
                ],
            }
            for place in places
        )
    )


def _is_learner_of(session: Session, concern: Concern, aad_object_id: str) -> bool:
    """True when the Teams user is the learner who raised the concern (never for anonymous)."""
    learner = session.get(Learner, concern.learner_id) if concern.learner_id else None
    return learner is not None and learner.teams_user_id == aad_object_id
