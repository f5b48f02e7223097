"""The mailbox's table: emails stored as received (before the 250), then claimed for processing."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult, Dialect, Engine
from sqlalchemy.orm import defer
from sqlmodel import Session, col, func, select

from storage.db import DriverStatement, driver_transaction, transaction
from storage.tables import InboundMessage

# A message-id header longer than this is not a message id: it still dedupes by content.
MESSAGE_ID_MAX = 998
# Mail kept aside for staff, and mail someone on the staff side has dealt with since.
KEPT_ASIDE = "quarantined"
DEALT_WITH = "dealt_with"
# The states of mail that was acted on or is with staff.
ACTED_ON = ("processed", KEPT_ASIDE, DEALT_WITH)


@dataclass(frozen=True)
class Received:
    """One accepted delivery: the envelope and the message's bytes, exactly as the client sent."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message_id: str | None = None
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", hashlib.sha256(self.raw).hexdigest())

    @property
    def dedupe_key(self) -> str:
        """The same Message-ID from the same sender is one message; without one, the same bytes."""
        message_id = (self.message_id or "").strip()
        if message_id and len(message_id) <= MESSAGE_ID_MAX:
            basis = f"id\0{self.mail_from.strip().lower()}\0{message_id}"
        else:
            basis = f"raw\0{self.mail_from.strip().lower()}\0{self.sha256}"
        return hashlib.sha256(basis.encode("utf-8", "surrogateescape")).hexdigest()


def _indexable(message_id: str | None) -> bool:
    """Whether a Message-ID is stored for finding copies: its index's entries have a size limit
    in bytes (PostgreSQL's btree: 2,704), and a hostile one can be 998 characters of 3 bytes."""
    if not message_id:
        return False
    return len(message_id.encode("utf-8", "surrogateescape")) <= MESSAGE_ID_MAX


def store_received(engine: Engine, received: Sequence[Received], *, now: datetime) -> None:
    """Commit deliveries durably in one transaction; a repeated delivery is stored once.

    Returns only after the commit: the caller may then answer 250 for every one of them.
    """
    if not received:
        return
    storing = _storing(engine.dialect)
    rows = [
        storing.parameters(
            {
                "dedupe_key": item.dedupe_key,
                "received_at": now,
                "mail_from": item.mail_from,
                "rcpt_tos": list(item.rcpt_tos),
                "message_id": item.message_id if _indexable(item.message_id) else None,
                "size": len(item.raw),
                "sha256": item.sha256,
                "raw": item.raw,
                "status": "received",
                "attachments": [],
                "attempts": 0,
            }
        )
        for item in received
    ]
    # Through the driver: this sits on the path to every 250, and SQLAlchemy's work per
    # execution (and an ORM session's bookkeeping even more) cost more than the insert itself.
    with driver_transaction(engine) as cursor:
        cursor.executemany(storing.sql, rows)


_STORED_COLUMNS = (
    "dedupe_key",
    "received_at",
    "mail_from",
    "rcpt_tos",
    "message_id",
    "size",
    "sha256",
    "raw",
    "status",
    "attachments",
    "attempts",
)


@lru_cache(maxsize=32)
def _storing(dialect: Dialect) -> DriverStatement:
    """Compiled once per engine (each has its own dialect)."""
    insert = pg_insert if dialect.name == "postgresql" else sqlite_insert
    return DriverStatement(
        # inline: PostgreSQL would otherwise add a RETURNING id that nobody reads
        insert(InboundMessage.__table__)  # type: ignore[attr-defined]
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .inline(),
        dialect,
        column_keys=_STORED_COLUMNS,
    )


def pending_ids(session: Session, *, now: datetime, limit: int) -> list[int]:
    """Messages waiting to be processed, oldest first (a failed attempt waits for its retry)."""
    statement = (
        select(InboundMessage.id)
        .where(
            InboundMessage.status == "received",
            or_(
                col(InboundMessage.next_attempt_at).is_(None),
                col(InboundMessage.next_attempt_at) <= now,
            ),
        )
        .order_by(col(InboundMessage.received_at), col(InboundMessage.id))
        .limit(limit)
    )
    return [int(row) for row in session.exec(statement).all() if row is not None]


def claim_pending(session: Session, *, message_id: int) -> InboundMessage | None:
    """Lock one message for processing, or None when another instance has it or it is done."""
    statement = select(InboundMessage).where(
        InboundMessage.id == message_id, InboundMessage.status == "received"
    )
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    return session.exec(statement).first()


def earlier_copy(session: Session, row: InboundMessage, *, author: str) -> int | None:
    """The id of another copy of this email already dealt with: the same Message-ID from the same
    author that came by another route (a forwarder that rewrites the envelope sender, so storing
    kept both). None when there is none, or the email has no Message-ID.

    The first copy stored is locked while looking, so instances processing two copies at once
    take turns, and the later one sees what the first did.
    """
    if not row.message_id:
        return None
    same_email = col(InboundMessage.message_id) == row.message_id
    first = select(InboundMessage.id).where(same_email).order_by(col(InboundMessage.id)).limit(1)
    if session.get_bind().dialect.name == "postgresql":
        first = first.with_for_update()
    session.exec(first).first()
    found = session.exec(
        select(InboundMessage.id)
        .where(
            same_email,
            col(InboundMessage.id) != row.id,
            # Acted on, or kept for staff: a copy ignored (automatic, as a list's copy may be) is
            # no reason to ignore the author's own.
            col(InboundMessage.status).in_(ACTED_ON),
            func.lower(col(InboundMessage.from_address)) == author.lower(),
        )
        .order_by(col(InboundMessage.id))
        .limit(1)
    ).first()
    return None if found is None else int(found)


def record_failed_attempt(
    engine: Engine, *, message_id: int, error: str, now: datetime, give_up_after: int
) -> None:
    """Note a processing failure; retry later, and after too many hand the message to staff."""
    with transaction(engine) as session:
        row = session.get(InboundMessage, message_id)
        if row is None or row.status != "received":
            return
        row.attempts += 1
        row.last_error = error[:500]
        if row.attempts >= give_up_after:
            row.status = KEPT_ASIDE
            row.outcome = "processing kept failing: kept for staff"
            row.processed_at = now
        else:
            row.next_attempt_at = now + timedelta(seconds=30 * 2 ** (row.attempts - 1))


def kept_aside(
    session: Session, *, limit: int, region_ids: Collection[int] | None = None
) -> list[InboundMessage]:
    """Mail kept aside for staff, the newest first: of these regions and of none known (or, with
    `region_ids` None, of every region)."""
    statement = _listed(KEPT_ASIDE, region_ids).order_by(
        col(InboundMessage.received_at).desc(), col(InboundMessage.id).desc()
    )
    return list(session.exec(statement.limit(limit)).all())


def _listed(status: str, region_ids: Collection[int] | None) -> Any:
    """Messages in this status, of these regions and of none known (`region_ids` None: of every
    region). Without the raw messages, which a list never needs (up to 10 MiB each): reading
    `raw` on a row loads it."""
    statement = (
        select(InboundMessage)
        .options(defer(InboundMessage.raw))  # type: ignore[arg-type]
        .where(InboundMessage.status == status)
    )
    if region_ids is not None:
        statement = statement.where(
            or_(
                col(InboundMessage.region_id).is_(None),
                col(InboundMessage.region_id).in_(sorted(region_ids)),
            )
        )
    return statement


def kept_aside_count(session: Session, *, region_id: int, before: datetime) -> int:
    """How much mail received before a moment is still kept aside for a region's staff (its own,
    and mail of no known region)."""
    statement = (
        select(func.count())
        .select_from(InboundMessage)
        .where(
            InboundMessage.status == KEPT_ASIDE,
            col(InboundMessage.received_at) < before,
            or_(
                col(InboundMessage.region_id).is_(None), col(InboundMessage.region_id) == region_id
            ),
        )
    )
    return int(session.exec(statement).one())


def kept_aside_message(
    session: Session,
    message_id: int,
    *,
    region_ids: Collection[int] | None = None,
    dealt_with_too: bool = False,
) -> InboundMessage | None:
    """One message kept aside for staff (and, with `dealt_with_too`, one since dealt with), or
    None when there is no such message (of these regions, or of none known)."""
    statuses = (KEPT_ASIDE, DEALT_WITH) if dealt_with_too else (KEPT_ASIDE,)
    row = session.get(InboundMessage, message_id)
    if row is None or row.status not in statuses:
        return None
    if region_ids is not None and row.region_id is not None and row.region_id not in region_ids:
        return None
    return row


def mark_dealt_with(
    session: Session,
    message_id: int,
    *,
    by: str,
    now: datetime,
    region_ids: Collection[int] | None = None,
) -> bool:
    """Take a message off the kept-aside list once someone has dealt with it, noting who and when;
    False when it is not (or no longer) kept aside. The message itself is kept."""
    row = kept_aside_message(session, message_id, region_ids=region_ids)
    if row is None:
        return False
    return _move(
        session,
        message_id,
        KEPT_ASIDE,
        DEALT_WITH,
        dealt_with_by=by,
        dealt_with_at=now,
        outcome=_noted(f"dealt with by {by} at {now.isoformat()}"),
    )


def put_back(
    session: Session,
    message_id: int,
    *,
    by: str,
    now: datetime,
    region_ids: Collection[int] | None = None,
) -> bool:
    """Put a message marked as dealt with back on the kept-aside list (marked by mistake, or not
    dealt with after all), noting who and when; False when it is not (or no longer) dealt with."""
    row = kept_aside_message(session, message_id, region_ids=region_ids, dealt_with_too=True)
    if row is None or row.status != DEALT_WITH:
        return False
    return _move(
        session,
        message_id,
        DEALT_WITH,
        KEPT_ASIDE,
        dealt_with_by=None,
        dealt_with_at=None,
        outcome=_noted(f"put back by {by} at {now.isoformat()}"),
    )


def _noted(note: str) -> Any:
    """The stored outcome with this note added, in the database's own update: a press that
    read the message a moment ago never writes over the notes of presses since."""
    return func.coalesce(InboundMessage.outcome, "kept for staff") + f"; {note}"


def _move(session: Session, message_id: int, old: str, new: str, **values: Any) -> bool:
    """Change a message's status only if it still has `old`: of two people pressing at once, only
    the first changes it (the second finds the status already changed)."""
    moved = cast(
        "CursorResult[Any]",
        session.execute(
            update(InboundMessage)
            .where(col(InboundMessage.id) == message_id, col(InboundMessage.status) == old)
            .values(status=new, **values)
        ),
    )
    return moved.rowcount == 1


def dealt_with(
    session: Session, *, limit: int, region_ids: Collection[int] | None = None
) -> list[InboundMessage]:
    """Mail kept aside and since dealt with, the most recently marked first (rows marked before
    the time had a column of its own come last), of these regions and of none known."""
    statement = _listed(DEALT_WITH, region_ids).order_by(
        col(InboundMessage.dealt_with_at).is_(None),
        col(InboundMessage.dealt_with_at).desc(),
        col(InboundMessage.id).desc(),
    )
    return list(session.exec(statement.limit(limit)).all())


def inbound_counts(session: Session) -> dict[str, int]:
    """How many stored messages are in each status (for /metrics)."""
    from sqlalchemy import func

    statement = select(InboundMessage.status, func.count()).group_by(InboundMessage.status)
    return {status: int(count) for status, count in session.exec(statement).all()}
