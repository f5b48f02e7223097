"""Web form submissions stored as the learner sent them (before the confirmation), then claimed
and raised into concerns; the row goes in the same transaction that raises its concern."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect, Engine
from sqlmodel import Session, col, select

from storage.db import DriverStatement, driver_transaction, transaction
from storage.tables import ReceivedSubmission, ReferenceCounter, SentForm

# A failing submission is tried again after 30 s, 1 min, 2 min ... and then every hour: it is
# never given up on, since the learner has been told it was received.
FIRST_RETRY_SECONDS = 30
LONGEST_RETRY_SECONDS = 3600


def _take_number(insert_for_dialect: Any) -> Any:
    """Increment the year's counter (creating it at 1) and return the number taken."""
    counters = ReferenceCounter.__table__  # type: ignore[attr-defined]
    return (
        insert_for_dialect(counters)
        .values(year=bindparam("year"), last=1)
        .on_conflict_do_update(index_elements=["year"], set_={"last": counters.c.last + 1})
        .returning(counters.c.last)
    )


_STORED_COLUMNS = (
    "reference",
    "year",
    "number",
    "channel",
    "received_at",
    "submission",
    "code_hash",
    "attempts",
)


@dataclass(frozen=True)
class Sending:
    """One form as sent (see SentForm): its key's hash, and the anonymous learner's code sealed."""

    key_hash: str
    sealed_code: bytes | None
    remembered_since: datetime  # a sending before this is forgotten: the form counts as new


@dataclass(frozen=True)
class Stored:
    """The reference a submission is stored under, or, when the same form was sent lately, the
    reference (and sealed code) it was stored under then, with nothing stored now."""

    reference: str
    sealed_code: bytes | None = None
    sent_before: bool = False


class _SentBefore(Exception):
    """Raised inside the transaction to roll it back (the number taken is given back)."""

    def __init__(self, earlier: Stored) -> None:
        super().__init__("the same form was sent lately")
        self.earlier = earlier


def _remember_sent(insert_for_dialect: Any) -> Any:
    """Remember a sending, or a forgotten one's again; returns nothing when it is remembered."""
    sent = SentForm.__table__  # type: ignore[attr-defined]
    statement = insert_for_dialect(sent).values(
        key_hash=bindparam("key_hash"),
        reference=bindparam("reference"),
        sealed_code=bindparam("sealed_code"),
        sent_at=bindparam("sent_at"),
    )
    return statement.on_conflict_do_update(
        index_elements=["key_hash"],
        set_={
            "reference": statement.excluded.reference,
            "sealed_code": statement.excluded.sealed_code,
            "sent_at": statement.excluded.sent_at,
        },
        where=sent.c.sent_at < bindparam("remembered_since", type_=sent.c.sent_at.type),
    ).returning(sent.c.key_hash)


@dataclass(frozen=True)
class _Storing:
    take_number: DriverStatement
    store: DriverStatement
    remember_sent: DriverStatement
    sent_before: DriverStatement


@lru_cache(maxsize=32)
def _storing(dialect: Dialect) -> _Storing:
    """Compiled once per engine (each has its own dialect)."""
    insert_for_dialect = pg_insert if dialect.name == "postgresql" else sqlite_insert
    return _Storing(
        take_number=DriverStatement(_take_number(insert_for_dialect), dialect),
        store=DriverStatement(
            # inline: PostgreSQL would otherwise add a RETURNING id that nobody reads
            insert(ReceivedSubmission.__table__).inline(),  # type: ignore[attr-defined]
            dialect,
            column_keys=_STORED_COLUMNS,
        ),
        remember_sent=DriverStatement(_remember_sent(insert_for_dialect), dialect),
        sent_before=DriverStatement(
            select(SentForm.reference, SentForm.sealed_code).where(
                SentForm.key_hash == bindparam("key_hash")
            ),
            dialect,
        ),
    )


def store_submission(
    engine: Engine,
    *,
    submission: str,
    channel: str,
    code_hash: str | None,
    year: int,
    reference_for: Callable[[int, int], str],
    now: datetime,
    sending: Sending | None = None,
) -> Stored:
    """Take the year's next reference and commit the submission under it. With `sending`, the
    form is remembered with it; if the same form was sent since `remembered_since`, nothing is
    stored and the earlier reference is returned (waiting, on PostgreSQL, for a sending still
    being stored elsewhere to commit)."""
    storing = _storing(engine.dialect)
    try:
        with driver_transaction(engine) as cursor:
            cursor.execute(storing.take_number.sql, storing.take_number.parameters({"year": year}))
            taken = cursor.fetchone()
            if taken is None:
                raise RuntimeError("the reference counter returned no number")
            number = int(taken[0])
            reference = reference_for(year, number)
            if sending is not None:
                _remember(cursor, storing, sending, reference=reference, now=now)
            cursor.execute(
                storing.store.sql,
                storing.store.parameters(
                    {
                        "reference": reference,
                        "year": year,
                        "number": number,
                        "channel": channel,
                        "received_at": now,
                        "submission": submission,
                        "code_hash": code_hash,
                        "attempts": 0,
                    }
                ),
            )
    except _SentBefore as sent:
        return sent.earlier
    return Stored(reference=reference)


def _remember(
    cursor: Any, storing: _Storing, sending: Sending, *, reference: str, now: datetime
) -> None:
    """Remember this sending under its reference, or raise _SentBefore with the earlier one."""
    cursor.execute(
        storing.remember_sent.sql,
        storing.remember_sent.parameters(
            {
                "key_hash": sending.key_hash,
                "reference": reference,
                "sealed_code": sending.sealed_code,
                "sent_at": now,
                "remembered_since": sending.remembered_since,
            }
        ),
    )
    if cursor.fetchone() is not None:
        return
    cursor.execute(
        storing.sent_before.sql, storing.sent_before.parameters({"key_hash": sending.key_hash})
    )
    earlier = cursor.fetchone()
    if earlier is None:
        raise RuntimeError("a form remembered as sent could not be read back")
    raise _SentBefore(
        Stored(
            reference=str(earlier[0]),
            sealed_code=bytes(earlier[1]) if earlier[1] is not None else None,
            sent_before=True,
        )
    )


def forget_sent_forms(engine: Engine, *, sent_before: datetime) -> int:
    """Forget the forms sent before a moment (their sealed codes with them): how many."""
    with transaction(engine) as session:
        result = session.execute(delete(SentForm).where(col(SentForm.sent_at) < sent_before))
        return int(getattr(result, "rowcount", 0) or 0)


def waiting_ids(session: Session, *, now: datetime, limit: int) -> list[int]:
    """Submissions still to be raised, oldest first (a failed one waits for its retry)."""
    statement = (
        select(ReceivedSubmission.id)
        .where(
            or_(
                col(ReceivedSubmission.next_attempt_at).is_(None),
                col(ReceivedSubmission.next_attempt_at) <= now,
            )
        )
        .order_by(col(ReceivedSubmission.id))
        .limit(limit)
    )
    return [int(row) for row in session.exec(statement).all() if row is not None]


def waiting_id_for(session: Session, reference: str) -> int | None:
    """The submission still to be raised under this reference, if there is one."""
    statement = select(ReceivedSubmission.id).where(ReceivedSubmission.reference == reference)
    return session.exec(statement).first()


def claim(session: Session, submission_id: int, *, wait: bool = False) -> ReceivedSubmission | None:
    """Lock one submission for raising, or None when it is raised or (unless `wait`, which waits
    for whoever has it to finish) another instance has it."""
    statement = select(ReceivedSubmission).where(ReceivedSubmission.id == submission_id)
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=not wait)
    return session.exec(statement).first()


def lock_reference_counter(session: Session, year: int) -> None:
    """Hold the year's counter row, as taking a number does: concerns raised at the same moment
    then see each other (triangulation counts them) instead of all missing one another."""
    session.execute(
        update(ReferenceCounter)
        .where(col(ReferenceCounter.year) == year)
        .values(last=ReferenceCounter.last)
    )


def record_failed_attempt(engine: Engine, *, submission_id: int, error: str, now: datetime) -> None:
    """Note a failure to raise a submission and when to try again."""
    with transaction(engine) as session:
        row = session.get(ReceivedSubmission, submission_id)
        if row is None:
            return
        row.attempts += 1
        row.last_error = error[:500]
        wait = min(LONGEST_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** min(row.attempts - 1, 16))
        row.next_attempt_at = now + timedelta(seconds=wait)


def failing(session: Session, *, limit: int) -> list[ReceivedSubmission]:
    """Submissions whose raising has failed at least once and that still wait, the oldest first."""
    statement = (
        select(ReceivedSubmission)
        .where(col(ReceivedSubmission.attempts) > 0)
        .order_by(col(ReceivedSubmission.id))
        .limit(limit)
    )
    return list(session.exec(statement).all())


def waiting_count(session: Session) -> int:
    """How many submissions are waiting to be raised (for /metrics)."""
    statement = select(func.count()).select_from(ReceivedSubmission)
    return int(session.exec(statement).one())
