"""The outbox's dispatcher side: claim due email under a lease, then record how each send went.

A claim is a random token and a lease (`claimed_until`) written in one short transaction, so two
dispatchers never claim the same row; every later write names the token, so a dispatcher whose
lease ran out (and whose row someone else now holds) changes nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from storage.db import transaction
from storage.tables import OutboxMessage

ERROR_MAX = 500


@dataclass(frozen=True)
class ClaimedEmail:
    """One outbox row held by this dispatcher until its lease runs out."""

    id: int
    claim_token: str
    reference: str | None
    recipient_address: str
    subject: str
    body_text: str
    body_html: str | None
    kind: str
    attempts: int
    # Files sent with the message, as stored: ({filename, content_type, text}, ...).
    attachments: tuple[dict[str, Any], ...] = ()
    # A chat message's own content (Slack: {"text", "blocks"}); None for email.
    payload: dict[str, Any] | None = None


class SqlOutboxStore:
    """The outbox table as the dispatcher uses it (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def claim_due(
        self, *, now: datetime, limit: int, lease: timedelta, channel: str = "email"
    ) -> list[ClaimedEmail]:
        """Claim up to `limit` pending messages that are due and not held by anyone else."""
        statement = (
            select(OutboxMessage)
            .where(
                OutboxMessage.status == "pending",
                OutboxMessage.channel == channel,
                col(OutboxMessage.send_after) <= now,
                or_(
                    col(OutboxMessage.claimed_until).is_(None),
                    col(OutboxMessage.claimed_until) < now,
                ),
            )
            .order_by(col(OutboxMessage.send_after), col(OutboxMessage.id))
            .limit(limit)
        )
        with transaction(self.engine) as session:
            if self.engine.dialect.name == "postgresql":
                # Rows another instance is claiming right now are skipped, not waited for.
                # SQLite needs nothing: BEGIN IMMEDIATE already holds its single write lock.
                statement = statement.with_for_update(skip_locked=True)
            claimed: list[ClaimedEmail] = []
            for row in session.exec(statement).all():
                row.claim_token = secrets.token_urlsafe(16)
                row.claimed_until = now + lease
                claimed.append(_claimed(row))
            return claimed

    def mark_sent(self, *, message_id: int, claim_token: str, now: datetime) -> bool:
        """Record a delivery; False when the claim was lost (the lease ran out and moved on)."""
        return self._release(message_id, claim_token, status="sent", sent_at=now)

    def mark_posted(
        self, *, message_id: int, claim_token: str, now: datetime, external_ref: str
    ) -> bool:
        """Record a chat message as posted and where it lives ("<channel>:<ts>" in Slack), so it
        can be updated later; False when the claim was lost."""
        return self._release(
            message_id, claim_token, status="sent", sent_at=now, external_ref=external_ref
        )

    def mark_retry(
        self, *, message_id: int, claim_token: str, error: str, retry_at: datetime
    ) -> None:
        """Record a failed attempt and release the row until `retry_at`."""
        self._release(
            message_id,
            claim_token,
            attempts=col(OutboxMessage.attempts) + 1,
            last_error=error[:ERROR_MAX],
            send_after=retry_at,
        )

    def mark_failed(self, *, message_id: int, claim_token: str, error: str) -> None:
        """Give the message up: it stays in the table as 'failed', with its reason, for staff."""
        self._release(
            message_id,
            claim_token,
            attempts=col(OutboxMessage.attempts) + 1,
            status="failed",
            last_error=error[:ERROR_MAX],
        )

    def counts(self) -> dict[str, int]:
        """How many messages are pending, sent and failed (every status present, even at 0)."""
        statement = select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        found: dict[str, int] = {"pending": 0, "sent": 0, "failed": 0}
        with transaction(self.engine) as session:
            for status, count in session.exec(statement).all():
                found[status] = int(count)
        return found

    def _release(self, message_id: int, held_token: str, /, **values: Any) -> bool:
        """Write the outcome and clear the claim, only if this claim still holds the row."""
        # A dispatcher whose lease ran out (someone else holds the row now) changes nothing.
        statement = (
            update(OutboxMessage)
            .where(
                col(OutboxMessage.id) == message_id,
                col(OutboxMessage.claim_token) == held_token,
                col(OutboxMessage.status) == "pending",
            )
            .values(**values, claim_token=None, claimed_until=None)
        )
        with transaction(self.engine) as session:
            return session.exec(statement).rowcount == 1


def _claimed(row: OutboxMessage) -> ClaimedEmail:
    if row.id is None or row.claim_token is None:
        raise RuntimeError("an outbox row was claimed without an id or a token")
    return ClaimedEmail(
        id=row.id,
        claim_token=row.claim_token,
        reference=row.reference,
        recipient_address=row.recipient_address,
        subject=row.subject,
        body_text=row.body_text,
        body_html=row.body_html,
        kind=row.kind,
        attempts=row.attempts,
        attachments=tuple(dict(stored) for stored in row.attachments or ()),
        payload=dict(row.payload) if row.payload is not None else None,
    )
