"""Retention: closed concerns are kept for a number of years after closing (8 by default), then
removed with everything tied to them.

A removed concern takes with it its audit trail (events), who was told (concern_contacts), its
moves up the ladder (escalations), its messages (outbox), the emails received about it
(inbound_messages), and the learner's record when no other concern uses it. Chat deliveries hold
no concern and stay. What remains is one access record per concern removed: its reference, when
it closed and when it went, with no one's name and nothing anyone wrote.

Each concern goes in a transaction of its own, re-read under lock first: a concern reopened
between the plan and the removal is kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from routing.model import ConcernStatus
from storage import repositories
from storage import staff as accounts
from storage.db import transaction
from storage.tables import (
    Concern,
    ConcernContact,
    Escalation,
    Event,
    InboundMessage,
    Learner,
    OutboxMessage,
    id_of,
)

DEFAULT_YEARS = 8
# The SQLite trigger (migration 0001) that keeps events append-only against DELETE.
SQLITE_DELETE_GUARD = "events_no_delete"
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
    with _audit_trail_removable(session):
        for table in TIED_TABLES:
            session.execute(delete(table).where(col(table.concern_id) == concern_id))
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


@contextmanager
def _audit_trail_removable(session: Session) -> Iterator[None]:
    """Lift the database's append-only guard on events for this transaction only.

    The guard (migration 0001) refuses every UPDATE and DELETE of events. Retention is the one
    sanctioned removal: the trigger is switched off and back on inside the same transaction
    (DDL is transactional in PostgreSQL and SQLite), so no other transaction ever sees it off;
    in PostgreSQL the ALTER holds the table's lock until commit. On an error the rollback
    restores it.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ALTER TABLE events DISABLE TRIGGER events_append_only"))
        yield
        session.execute(text("ALTER TABLE events ENABLE TRIGGER events_append_only"))
        return
    found = session.execute(
        text("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = :name"),
        {"name": SQLITE_DELETE_GUARD},
    ).scalar_one_or_none()
    if found is None:
        yield
        return
    session.execute(text(f"DROP TRIGGER {SQLITE_DELETE_GUARD}"))
    yield
    session.execute(text(str(found)))


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
