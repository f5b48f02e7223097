"""Queries and writes the use cases need, so that SQL stays out of the service functions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import delete, func, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, SQLModel, col, select

from storage.tables import (
    ChatDelivery,
    Concern,
    ConcernContact,
    Contact,
    Department,
    Event,
    Learner,
    Organisation,
    OutboxMessage,
    ProgrammeBody,
    ReferenceCounter,
    Region,
    Site,
    TeamsConversation,
)

_Row = TypeVar("_Row")

# --- the directory, as routing needs it -------------------------------------------------------


def find_organisation(session: Session, text: str) -> Organisation | None:
    """The active organisation with this key or, failing that, the only one with this name
    (ignoring case and outer spaces). A name two organisations share matches neither: the
    concern is kept for staff to place rather than sent to a guess."""
    wanted = text.strip().lower()
    by_key = select(Organisation).where(Organisation.active, func.lower(Organisation.key) == wanted)
    by_name = select(Organisation).where(
        Organisation.active, func.lower(Organisation.name) == wanted
    )
    return session.exec(by_key).first() or _only(session.exec(by_name.limit(2)).all())


def find_department(session: Session, organisation_id: int, text: str) -> Department | None:
    """The organisation's active department with this key or, failing that, the only one with
    this name (ignoring case): two departments of one name (one at each site) match neither."""
    wanted = text.strip().lower()
    here = (Department.organisation_id == organisation_id, Department.active)
    by_key = select(Department).where(*here, func.lower(Department.key) == wanted)
    by_name = select(Department).where(*here, func.lower(Department.name) == wanted)
    return session.exec(by_key).first() or _only(session.exec(by_name.limit(2)).all())


def _only(rows: Sequence[_Row]) -> _Row | None:
    return rows[0] if len(rows) == 1 else None


def default_region(session: Session) -> Region | None:
    """The region for a concern whose placement is unknown: the first active one by key."""
    return session.exec(select(Region).where(Region.active).order_by(col(Region.key))).first()


def programme_bodies(session: Session, *, region_id: int, kind: str) -> Sequence[ProgrammeBody]:
    statement = (
        select(ProgrammeBody)
        .where(ProgrammeBody.region_id == region_id, ProgrammeBody.kind == kind)
        .where(ProgrammeBody.active)
        .order_by(col(ProgrammeBody.key))
    )
    return session.exec(statement).all()


def contacts_with_role(
    session: Session,
    *,
    role: str,
    region_id: int,
    organisation_id: int | None = None,
    department_id: int | None = None,
    body_id: int | None = None,
    organisation_wide: bool = False,
) -> Sequence[Contact]:
    """Active contacts holding a role in a scope, the lead first.

    `organisation_wide` asks for the organisation's own contacts (no department), such as the
    director of medical education standing in for a department without a clinical tutor.
    """
    statement = select(Contact).where(
        Contact.active, Contact.role == role, Contact.region_id == region_id
    )
    if organisation_id is not None:
        statement = statement.where(Contact.organisation_id == organisation_id)
    if department_id is not None:
        statement = statement.where(Contact.department_id == department_id)
    elif organisation_wide:
        statement = statement.where(col(Contact.department_id).is_(None))
    if body_id is not None:
        statement = statement.where(Contact.body_id == body_id)
    statement = statement.order_by(col(Contact.is_lead).desc(), col(Contact.id))
    return session.exec(statement).all()


# --- concerns ---------------------------------------------------------------------------------


def next_reference_number(session: Session, year: int) -> int:
    """The next number of the year; the row lock serialises concurrent submits."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(ReferenceCounter).values(year=year, last=0).on_conflict_do_nothing())
    number = session.execute(
        update(ReferenceCounter)
        .where(col(ReferenceCounter.year) == year)
        .values(last=ReferenceCounter.last + 1)
        .returning(col(ReferenceCounter.last))
    ).scalar_one()
    return int(number)


def find_learner_by_email(session: Session, email: str) -> Learner | None:
    wanted = email.strip().lower()
    return session.exec(select(Learner).where(func.lower(Learner.email) == wanted)).first()


def count_related_open_concerns(
    session: Session, *, department_id: int, since: datetime, exclude_id: int | None = None
) -> int:
    """Other open concerns about the same department raised since a moment (triangulation)."""
    statement = (
        select(func.count())
        .select_from(Concern)
        .where(
            Concern.department_id == department_id,
            Concern.status == "open",
            col(Concern.created_at) >= since,
        )
    )
    if exclude_id is not None:
        statement = statement.where(Concern.id != exclude_id)
    return int(session.exec(statement).one())


def concern_by_reference(session: Session, reference: str) -> Concern | None:
    statement = select(Concern).where(Concern.reference == reference.strip().upper())
    return session.exec(statement).first()


def all_concerns(session: Session) -> Sequence[Concern]:
    return session.exec(select(Concern).order_by(col(Concern.id))).all()


def due_concern_ids(session: Session, *, now: datetime, limit: int) -> list[int]:
    """Ids of open concerns with a step due, oldest first (uses the (status, next_due_at) index)."""
    statement = (
        select(Concern.id)
        .where(Concern.status == "open", col(Concern.next_due_at) <= now)
        .order_by(col(Concern.next_due_at), col(Concern.id))
        .limit(limit)
    )
    return [int(concern_id) for concern_id in session.exec(statement).all() if concern_id]


def claim_due_concern(session: Session, *, concern_id: int, now: datetime) -> Concern | None:
    """Lock one concern if it is still due; None when another worker holds it or it moved on.

    PostgreSQL skips a row another instance has locked; SQLite already holds the write lock
    from BEGIN IMMEDIATE, so the clause is a no-op there.
    """
    statement = (
        select(Concern)
        .where(Concern.id == concern_id, Concern.status == "open")
        .where(col(Concern.next_due_at) <= now)
        .with_for_update(skip_locked=True)
    )
    return session.exec(statement).first()


def events_of(session: Session, concern_id: int) -> Sequence[Event]:
    return session.exec(
        select(Event).where(Event.concern_id == concern_id).order_by(col(Event.at), col(Event.id))
    ).all()


def outbox_of(session: Session, concern_id: int) -> Sequence[OutboxMessage]:
    return session.exec(
        select(OutboxMessage)
        .where(OutboxMessage.concern_id == concern_id)
        .order_by(col(OutboxMessage.id))
    ).all()


def assignments_of(
    session: Session, concern_id: int, *, pathway: int | None = None
) -> Sequence[tuple[ConcernContact, Contact]]:
    statement = (
        select(ConcernContact, Contact)
        .join(Contact, col(Contact.id) == ConcernContact.contact_id)
        .where(ConcernContact.concern_id == concern_id)
        .order_by(col(ConcernContact.id))
    )
    if pathway is not None:
        statement = statement.where(ConcernContact.pathway == pathway)
    return [(assignment, contact) for assignment, contact in session.exec(statement).all()]


def sent_to_level(
    session: Session, concern_id: int, *, channel: str, kinds: Iterable[str], since: datetime
) -> Sequence[OutboxMessage]:
    """The chat messages of these kinds (those that ask their contact to act) sent about the
    concern, since it reached its level, to contacts of that level: the ones an action taken at
    the level is shown on. Not what went to the level before (told it has moved on) nor the
    dean's alert copies."""
    concern = session.get(Concern, concern_id)
    if concern is None:
        return []
    level = [
        contact.id for _, contact in assignments_of(session, concern_id, pathway=concern.pathway)
    ]
    return session.exec(
        select(OutboxMessage).where(
            OutboxMessage.concern_id == concern_id,
            OutboxMessage.channel == channel,
            col(OutboxMessage.kind).in_(list(kinds)),
            col(OutboxMessage.recipient_contact_id).in_(level),
            col(OutboxMessage.external_ref).is_not(None),
            col(OutboxMessage.created_at) >= since,
        )
    ).all()


def insert_once(
    session: Session, table: type[SQLModel], values: dict[str, Any], *, unique: list[str]
) -> bool:
    """Insert a row unless one with the same `unique` columns exists; True when it was added.

    The one way every "exactly once" record is written (outbox messages, chat deliveries,
    digest runs): a racing second writer inserts nothing, on SQLite and PostgreSQL alike.
    """
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    # RETURNING, not rowcount: through the ORM session PostgreSQL reports a rowcount of -1 here.
    added = session.execute(
        insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=unique)
        .returning(table.id)  # type: ignore[attr-defined]
    ).scalar_one_or_none()
    return added is not None


def queue_message(session: Session, message: OutboxMessage) -> bool:
    """Add a message unless one with its idempotency key exists; True when it was added."""
    values = message.model_dump(exclude={"id"})
    return insert_once(session, OutboxMessage, values, unique=["idempotency_key"])


def first_delivery(session: Session, *, key: str, now: datetime) -> bool:
    """Record a chat delivery (an event id, a button press); False when it was seen before."""
    return insert_once(session, ChatDelivery, {"key": key, "received_at": now}, unique=["key"])


def forget_deliveries(session: Session, *, received_before: datetime) -> int:
    """Forget chat deliveries recorded before a moment: how many were forgotten."""
    result = session.execute(
        delete(ChatDelivery).where(col(ChatDelivery.received_at) < received_before)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def lock_concern(session: Session, concern_id: int) -> Concern | None:
    """A concern locked for an action until the transaction ends (waits for other holders),
    as it stands once the lock is granted: a copy the session read before (found by its
    reference) is refreshed, not kept as it was before another holder changed it."""
    statement = (
        select(Concern)
        .where(Concern.id == concern_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return session.exec(statement).first()


def remember_slack_user(
    session: Session, *, contact_id: int, email: str, slack_user_id: str
) -> bool:
    """Keep the Slack account that Slack says has this contact's email, unless the contact has
    one already or their email has changed since; True when it was kept. The button-press and
    the dispatcher's lookups both remember a match this way, so the next message needs none."""
    statement = (
        update(Contact)
        .where(
            col(Contact.id) == contact_id,
            col(Contact.slack_user_id).is_(None),
            func.lower(Contact.email) == email.strip().lower(),
        )
        .values(slack_user_id=slack_user_id)
    )
    return bool(session.exec(statement).rowcount == 1)


def active_places(
    session: Session,
) -> list[tuple[Organisation, list[Site], list[Department]]]:
    """Every active organisation with its active sites and departments (for matching names)."""
    organisations = session.exec(
        select(Organisation).where(Organisation.active).order_by(col(Organisation.key))
    ).all()
    sites = session.exec(select(Site).where(Site.active)).all()
    departments = session.exec(select(Department).where(Department.active)).all()
    return [
        (
            organisation,
            [site for site in sites if site.organisation_id == organisation.id],
            [item for item in departments if item.organisation_id == organisation.id],
        )
        for organisation in organisations
    ]


def answers_sent_to(session: Session, *, address: str, since: datetime, kind: str) -> int:
    """How many automatic answers of a kind were queued to an address since a moment (loop
    protection), whatever the case of the address as each was queued."""
    statement = (
        select(func.count())
        .select_from(OutboxMessage)
        .where(
            # In any case: an acknowledgement goes to the learner's stored address, which may be
            # 'Jane.Smith@...' while the mail comes from 'jane.smith@...'. (The address part of
            # the (recipient_address, created_at) index no longer serves this count, as with
            # find_learner_by_email.)
            func.lower(OutboxMessage.recipient_address) == address.strip().lower(),
            OutboxMessage.kind == kind,
            col(OutboxMessage.created_at) >= since,
        )
    )
    return int(session.exec(statement).one())


def email_concern_regions(session: Session, *, learner_id: int, since: datetime) -> list[int]:
    """The regions of the concerns a learner raised by email since a moment, newest first: one
    per concern (a sender's limit of new concerns a day counts them)."""
    statement = (
        select(Concern.region_id)
        .where(
            Concern.learner_id == learner_id,
            Concern.channel == "email",
            col(Concern.created_at) >= since,
        )
        .order_by(col(Concern.id).desc())
    )
    return list(session.exec(statement))


def latest_learner_group(session: Session, learner_id: int) -> str | None:
    """The learner group on a learner's most recent concern that has one."""
    statement = (
        select(Concern.learner_group)
        .where(Concern.learner_id == learner_id, col(Concern.learner_group).is_not(None))
        .order_by(col(Concern.id).desc())
    )
    return session.exec(statement).first()


# --- Slack learners -------------------------------------------------------------------------

# Confirmations the bot once posted itself recorded their thread with this event; they now go
# through the outbox, and the posted row's `external_ref` names the thread. Kept so that the
# threads of confirmations sent before that still find their concern.
SLACK_CONFIRMATION_EVENT = "slack_confirmation_sent"


def posted_chat_message(
    session: Session, *, channel: str, external_ref: str, recipient: str
) -> OutboxMessage | None:
    """The outbox row posted to `recipient` that now lives at `external_ref` ("<channel>:<ts>"
    in Slack, as the dispatcher records it); the recipient's address narrows it by index."""
    statement = select(OutboxMessage).where(
        OutboxMessage.recipient_address == recipient,
        OutboxMessage.channel == channel,
        OutboxMessage.external_ref == external_ref,
    )
    return session.exec(statement).first()


def concern_by_slack_thread(
    session: Session, *, channel: str, thread_ts: str, slack_user_id: str
) -> Concern | None:
    """The concern whose Slack message to this learner started the thread (a DM and a ts): the
    confirmation, or any later message to them about it, as the outbox posted it."""
    posted = posted_chat_message(
        session, channel="slack", external_ref=f"{channel}:{thread_ts}", recipient=slack_user_id
    )
    if posted is not None and posted.recipient_role == "learner" and posted.concern_id:
        return session.get(Concern, posted.concern_id)
    statement = (
        select(Concern)
        .join(Event, col(Event.concern_id) == Concern.id)
        .where(
            Event.kind == SLACK_CONFIRMATION_EVENT,
            col(Event.detail)["ts"].as_string() == thread_ts,
            col(Event.detail)["channel"].as_string() == channel,
        )
    )
    return session.exec(statement).first()


def concerns_of_slack_user(
    session: Session, slack_user_id: str, *, limit: int
) -> Sequence[Concern]:
    """The concerns of the learner with this Slack user id, newest first."""
    statement = (
        select(Concern)
        .join(Learner, col(Learner.id) == Concern.learner_id)
        .where(Learner.slack_user_id == slack_user_id)
        .order_by(col(Concern.id).desc())
        .limit(limit)
    )
    return session.exec(statement).all()


# --- Teams ------------------------------------------------------------------------------------


def remember_teams_conversation(
    session: Session,
    *,
    aad_object_id: str,
    teams_user_id: str,
    reference: dict[str, Any],
    now: datetime,
) -> None:
    """Keep the newest conversation reference of a Teams user (one row per Entra object id)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    values = {
        "aad_object_id": aad_object_id,
        "teams_user_id": teams_user_id,
        "reference": reference,
        "updated_at": now,
    }
    statement = insert(TeamsConversation).values(**values)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["aad_object_id"],
            set_={
                "teams_user_id": statement.excluded.teams_user_id,
                "reference": statement.excluded.reference,
                "updated_at": statement.excluded.updated_at,
            },
        )
    )


def teams_conversation(session: Session, aad_object_id: str) -> TeamsConversation | None:
    """Where the bot can write to the Teams user with this Entra object id, if it ever heard
    from them."""
    statement = select(TeamsConversation).where(TeamsConversation.aad_object_id == aad_object_id)
    return session.exec(statement).first()


def remember_teams_user(session: Session, *, email: str, aad_object_id: str) -> int:
    """Keep a Teams user's Entra object id on the active contacts with their email that have no
    Teams id yet (one person may hold several roles); never replaces a different one. The number
    of contacts it was kept on."""
    address = email.strip().lower()
    if not address or not aad_object_id:
        return 0
    statement = (
        update(Contact)
        .where(
            col(Contact.teams_user_id).is_(None),
            col(Contact.active).is_(True),
            func.lower(Contact.email) == address,
        )
        .values(teams_user_id=aad_object_id)
    )
    return int(session.exec(statement).rowcount or 0)


def concerns_of_teams_user(
    session: Session, aad_object_id: str, *, limit: int
) -> Sequence[Concern]:
    """The concerns of the learner with this Teams (Entra object) id, newest first."""
    statement = (
        select(Concern)
        .join(Learner, col(Learner.id) == Concern.learner_id)
        .where(Learner.teams_user_id == aad_object_id)
        .order_by(col(Concern.id).desc())
        .limit(limit)
    )
    return session.exec(statement).all()
