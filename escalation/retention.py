"""Retention: closed concerns are kept for a number of years after closing (8 by default), then
removed with everything tied to them.

A removed concern takes with it its audit trail (events), who was told (concern_contacts), its
moves up the ladder (escalations), its messages (outbox), the emails received about it
(inbound_messages), and the learner's record when no other concern uses it. Chat deliveries hold
no concern and stay. What remains is one access record per concern removed: its reference, when
it closed and when it went, with no one's name and nothing anyone wrote.

Rows tied to no concern go too once they were finished with more than the same number of years
ago: email received that needed nothing more (bounces and auto-replies; mail kept aside, from
when staff marked it as dealt with), and messages we sent about no one concern (digests and
reports, which quote concerns' summaries; from when they were sent or given up). Mail still kept
aside waits for staff, however old. Each batch removed leaves an access record of how many went.

Each concern goes in a transaction of its own, re-read under lock first: a concern reopened
between the plan and the removal is kept. The events are append-only (migration 0001): the guard
lets a DELETE through only for a concern named in `removals` (migration 0007), so the concern is
named there for the removal and the row is gone again before the transaction commits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, and_, delete, insert
from sqlalchemy.engine import CursorResult, Engine
from sqlmodel import Session, col, func, select

from routing.model import ConcernStatus
from storage import repositories
from storage import staff as accounts
from storage.db import transaction
from storage.inbox import DEALT_WITH
from storage.tables import (
    Concern,
    ConcernContact,
    Escalation,
    Event,
    InboundMessage,
    Learner,
    OutboxMessage,
    Removal,
    id_of,
)

DEFAULT_YEARS = 8
# The rows tied to a concern by its id, removed before it (children first).
TIED_TABLES: tuple[
    type[ConcernContact | Escalation | Event | OutboxMessage | InboundMessage], ...
] = (
    ConcernContact,
    Escalation,
    Event,
    OutboxMessage,
    InboundMessage,
)


# Mail with no concern in these states is finished with; anything else still waits for someone.
FINISHED_MAIL = ("ignored", "processed", DEALT_WITH)
# Rows tied to no concern go in transactions of this many, so none holds the database long.
UNATTACHED_BATCH = 500


@dataclass(frozen=True)
class Expired:
    reference: str
    closed_at: datetime


def cutoff(now: datetime, years: int) -> datetime:
    """The same moment `years` years before `now` (29 February falls back to the 28th)."""
    try:
        return now.replace(year=now.year - years)
    except ValueError:
        return now.replace(year=now.year - years, day=28)


def _expired(cut: datetime) -> ColumnElement[bool]:
    return and_(
        col(Concern.status) == ConcernStatus.CLOSED.value,
        col(Concern.closed_at).is_not(None),
        col(Concern.closed_at) < cut,
    )


def plan_retention(session: Session, *, now: datetime, years: int = DEFAULT_YEARS) -> list[Expired]:
    """The closed concerns whose closing is more than `years` years before `now`, oldest first."""
    rows = session.exec(
        select(Concern.reference, Concern.closed_at)
        .where(_expired(cutoff(now, years)))
        .order_by(col(Concern.closed_at), col(Concern.id))
    ).all()
    return [Expired(reference, closed_at) for reference, closed_at in rows if closed_at]


def remove_concern(session: Session, reference: str, *, now: datetime, years: int) -> bool:
    """Remove one expired concern and its rows; False when it is gone or no longer expired."""
    found = repositories.concern_by_reference(session, reference)
    if found is None:
        return False
    concern = repositories.lock_concern(session, id_of(found))
    cut = cutoff(now, years)
    if (
        concern is None
        or concern.status != ConcernStatus.CLOSED.value
        or concern.closed_at is None
        or concern.closed_at >= cut
    ):
        return False
    concern_id, learner_id, closed_at = id_of(concern), concern.learner_id, concern.closed_at
    # Names the concern to the events guard; deleted again below, inside this transaction.
    session.execute(insert(Removal).values(concern_id=concern_id))
    for table in TIED_TABLES:
        session.execute(delete(table).where(col(table.concern_id) == concern_id))
    session.execute(delete(Removal).where(col(Removal.concern_id) == concern_id))
    session.execute(delete(Concern).where(col(Concern.id) == concern_id))
    if learner_id is not None:
        others = session.exec(
            select(func.count()).select_from(Concern).where(Concern.learner_id == learner_id)
        ).one()
        if not others:
            session.execute(delete(Learner).where(col(Learner.id) == learner_id))
    accounts.record_access(
        session,
        kind="retention_removed",
        staff=None,
        channel="cli",
        now=now,
        reference=reference,
        detail={"closed_at": closed_at.isoformat(), "years": years},
    )
    return True


def remove(
    engine: Engine, expired: list[Expired], *, now: datetime, years: int = DEFAULT_YEARS
) -> list[str]:
    """Remove each planned concern in a transaction of its own; the references removed."""
    removed = []
    for item in expired:
        with transaction(engine) as session:
            if remove_concern(session, item.reference, now=now, years=years):
                removed.append(item.reference)
    return removed


def _finished_mail(cut: datetime) -> ColumnElement[bool]:
    """Email tied to no concern, finished with (ignored, or dealt with by staff) before `cut`:
    dealt-with mail counts from its marking, so one put back by mistake is there to put back."""
    finished_at = func.coalesce(
        col(InboundMessage.dealt_with_at),
        col(InboundMessage.processed_at),
        col(InboundMessage.received_at),
    )
    return and_(
        col(InboundMessage.concern_id).is_(None),
        col(InboundMessage.status).in_(FINISHED_MAIL),
        finished_at < cut,
    )


def _finished_messages(cut: datetime) -> ColumnElement[bool]:
    """Messages we sent tied to no concern (digests, reports), sent or given up before `cut`."""
    finished_at = func.coalesce(col(OutboxMessage.sent_at), col(OutboxMessage.created_at))
    return and_(
        col(OutboxMessage.concern_id).is_(None),
        col(OutboxMessage.status).in_(("sent", "failed")),
        finished_at < cut,
    )


@dataclass(frozen=True)
class _Unattached:
    """Rows tied to no concern that retention removes once finished with, and how it says so."""

    table: type[InboundMessage | OutboxMessage]
    expired: Callable[[datetime], ColumnElement[bool]]
    record_kind: str


UNATTACHED = {
    "mail": _Unattached(InboundMessage, _finished_mail, "retention_removed_mail"),
    "messages": _Unattached(OutboxMessage, _finished_messages, "retention_removed_messages"),
}


def count_unattached(
    session: Session, what: str, *, now: datetime, years: int = DEFAULT_YEARS
) -> int:
    """How many rows of `what` ("mail" received, "messages" sent) tied to no concern were finished
    with more than `years` years ago."""
    rows = UNATTACHED[what]
    statement = select(func.count()).select_from(rows.table).where(rows.expired(cutoff(now, years)))
    return int(session.exec(statement).one())


def remove_unattached(
    engine: Engine, what: str, *, now: datetime, years: int = DEFAULT_YEARS
) -> int:
    """Remove those rows in batches, each batch with its own line in the access records (in its
    own transaction, so nothing goes unrecorded if a run stops half way); how many went."""
    rows = UNATTACHED[what]
    cut = cutoff(now, years)
    removed = 0
    while True:
        with transaction(engine) as session:
            ids = session.exec(
                select(rows.table.id).where(rows.expired(cut)).limit(UNATTACHED_BATCH)
            ).all()
            if not ids:
                break
            # Checked again in the DELETE: a row attached or put back meanwhile stays.
            gone = cast(
                "CursorResult[Any]",
                session.execute(
                    delete(rows.table).where(col(rows.table.id).in_(ids), rows.expired(cut))
                ),
            ).rowcount
            if gone:
                accounts.record_access(
                    session,
                    kind=rows.record_kind,
                    staff=None,
                    channel="cli",
                    now=now,
                    detail={"rows": gone, "finished_before": cut.isoformat(), "years": years},
                )
            removed += gone
        if len(ids) < UNATTACHED_BATCH:
            break
    return removed
