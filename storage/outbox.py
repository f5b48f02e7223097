"""The outbox's dispatcher side: claim due email under a lease, then record how each send went.

A claim is a random token and a lease (`claimed_until`) written in one short transaction, so two
dispatchers never claim the same row; every later write names the token, so a dispatcher whose
lease ran out (and whose row someone else now holds) changes nothing.

Some messages carry a secret that is needed only until it is delivered (the staff sign-in email's
single-use link): once such a message is sent, or given up, its stored body is replaced in the
same transaction, so the secret does not stay in the database. The message's kind says which.

An email to a learner about a concern they raised by email is claimed with the Message-ID of that
email, read from the mail received (not copied onto the row), so it answers it: rows queued before
this was read get it too, and nothing is kept twice.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from storage import repositories
from storage.db import reading, transaction
from storage.tables import Concern, Contact, InboundMessage, OutboxMessage

ERROR_MAX = 500
# The kinds of message whose body is wiped once sent or given up (kind -> what stays instead).
# "staff_sign_in" is queued by app/staff/sign_in.py; its link works once, within minutes.
WIPED_ONCE_SENT: dict[str, str] = {
    "staff_sign_in": "[sign-in link removed after sending]",
}


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
    # Who it is for (learner, supervisor, dean, ...): the email's subject says whose thread it is.
    recipient_role: str
    # Of the attempts, how many the relay refused outright (5xx).
    refusals: int = 0
    # Files sent with the message, as stored: ({filename, content_type, text}, ...).
    attachments: tuple[dict[str, Any], ...] = ()
    # A chat message's own content (Slack: {"text", "blocks"}); None for email.
    payload: dict[str, Any] | None = None
    # The directory contact it is for (a chat message to someone known only by email is
    # addressed when it is sent, and the match is remembered on the contact).
    recipient_contact_id: int | None = None
    # An email to the learner about a concern they raised by email, at the address that email
    # came from: that email's Message-ID as stored (unchecked: composing decides whether to use
    # it), so our email joins its thread. None for anything else.
    learner_message_id: str | None = None
    # When the row was queued: part of the email's Message-ID (notifications.threading).
    created_at: datetime | None = None


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
            rows = session.exec(statement).all()
            raised_by = _raising_emails(session, rows)
            claimed: list[ClaimedEmail] = []
            for row in rows:
                row.claim_token = secrets.token_urlsafe(16)
                row.claimed_until = now + lease
                claimed.append(_claimed(row, raised_by=raised_by))
            return claimed

    def mark_sent(self, *, message_id: int, claim_token: str, now: datetime) -> bool:
        """Record a delivery; False when the claim was lost (the lease ran out and moved on)."""
        return self._release(message_id, claim_token, wipe=True, status="sent", sent_at=now)

    def mark_posted(
        self,
        *,
        message_id: int,
        claim_token: str,
        now: datetime,
        external_ref: str,
        recipient_address: str | None = None,
    ) -> bool:
        """Record a chat message as posted and where it lives ("<channel>:<ts>" in Slack), so it
        can be updated later, and (when it was addressed only now) to whom; False when the claim
        was lost. Slack has the message either way: a row still pending is recorded as posted
        even under someone else's claim, so nobody posts it again."""
        values: dict[str, Any] = {"status": "sent", "sent_at": now, "external_ref": external_ref}
        if recipient_address is not None:
            values["recipient_address"] = recipient_address
        if self._release(message_id, claim_token, **values):
            return True
        statement = (
            update(OutboxMessage)
            .where(col(OutboxMessage.id) == message_id, col(OutboxMessage.status) == "pending")
            .values(**values, claim_token=None, claimed_until=None)
        )
        with transaction(self.engine) as session:
            session.exec(statement)
        return False

    def hold(self, *, message_id: int, claim_token: str, until: datetime) -> bool:
        """Extend this claim until `until`, just before a send or post; False when the claim was
        lost (the batch outlived its lease and another dispatcher took the row, or sent it)."""
        statement = (
            update(OutboxMessage)
            .where(*_still_held(message_id, claim_token))
            .values(claimed_until=until)
        )
        with transaction(self.engine) as session:
            return session.exec(statement).rowcount == 1

    def mark_held(
        self, *, message_id: int, claim_token: str, error: str, retry_at: datetime
    ) -> None:
        """Release the row until `retry_at` without counting an attempt: it was not tried, or
        not through any fault of its own (the channel is rate limited or paused)."""
        self._release(message_id, claim_token, last_error=error[:ERROR_MAX], send_after=retry_at)

    def mark_skipped(self, *, message_id: int, claim_token: str, reason: str) -> None:
        """Done without sending: the channel cannot reach this recipient (for example nobody in
        Slack has their email). Not a failure, and never retried; the email copy still goes."""
        self._release(message_id, claim_token, status="skipped", last_error=reason[:ERROR_MAX])

    def slack_user_of(self, contact_id: int) -> str | None:
        """The Slack user id the directory (or an earlier match) gives a contact, if any."""
        with transaction(self.engine) as session:
            contact = session.get(Contact, contact_id)
            return contact.slack_user_id if contact is not None else None

    def remember_slack_user(self, *, contact_id: int, email: str, slack_user_id: str) -> None:
        """Keep the Slack account found for a contact's email (see repositories)."""
        with transaction(self.engine) as session:
            repositories.remember_slack_user(
                session, contact_id=contact_id, email=email, slack_user_id=slack_user_id
            )

    def mark_retry(
        self,
        *,
        message_id: int,
        claim_token: str,
        error: str,
        retry_at: datetime,
        refused: bool = False,
    ) -> None:
        """Record a failed attempt (`refused`: a permanent refusal) and release the row until
        `retry_at`."""
        self._release(
            message_id,
            claim_token,
            attempts=col(OutboxMessage.attempts) + 1,
            refusals=col(OutboxMessage.refusals) + int(refused),
            last_error=error[:ERROR_MAX],
            send_after=retry_at,
        )

    def mark_failed(self, *, message_id: int, claim_token: str, error: str) -> None:
        """Give the message up: it stays in the table as 'failed', with its reason, for staff."""
        self._release(
            message_id,
            claim_token,
            wipe=True,
            attempts=col(OutboxMessage.attempts) + 1,
            status="failed",
            last_error=error[:ERROR_MAX],
        )

    def release(self, *, message_id: int, claim_token: str) -> None:
        """Let go of a claimed row untried, as it was: due to whoever dispatches next."""
        self._release(message_id, claim_token)

    def counts(self) -> dict[str, int]:
        """How many messages are pending, sent and failed (every status present, even at 0)."""
        statement = select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        found: dict[str, int] = {"pending": 0, "sent": 0, "failed": 0}
        with reading(self.engine) as session:
            for status, count in session.exec(statement).all():
                found[status] = int(count)
        return found

    def _release(
        self, message_id: int, held_token: str, /, *, wipe: bool = False, **values: Any
    ) -> bool:
        """Write the outcome and clear the claim, only if this claim still holds the row; with
        `wipe` (the row is done with), also replace the body of a kind in WIPED_ONCE_SENT (an
        email: it has no chat payload)."""
        if wipe:
            # One statement either way: a kind not listed keeps its body.
            kind = col(OutboxMessage.kind)
            values["body_text"] = case(
                WIPED_ONCE_SENT, value=kind, else_=col(OutboxMessage.body_text)
            )
            values["body_html"] = case(
                WIPED_ONCE_SENT, value=kind, else_=col(OutboxMessage.body_html)
            )
        # A dispatcher whose lease ran out (someone else holds the row now) changes nothing.
        statement = (
            update(OutboxMessage)
            .where(*_still_held(message_id, held_token))
            .values(**values, claim_token=None, claimed_until=None)
        )
        with transaction(self.engine) as session:
            return session.exec(statement).rowcount == 1


def _still_held(message_id: int, claim_token: str) -> tuple[Any, ...]:
    """The row, while this claim holds it and it is still to be sent."""
    return (
        col(OutboxMessage.id) == message_id,
        col(OutboxMessage.claim_token) == claim_token,
        col(OutboxMessage.status) == "pending",
    )


def _raising_emails(session: Session, rows: Sequence[OutboxMessage]) -> dict[int, tuple[str, str]]:
    """For the concerns that these rows' emails to learners are about and that were raised by
    email: concern id -> (Message-ID, sender's address) of the email that raised it.

    That email is the first one stored for the concern (the lowest id): every later one was
    joined to it as a reply, which needs a token from mail we sent about the concern, so after
    it was raised. A learner's reply therefore never changes which Message-ID their emails
    answer. Concerns raised on the web or in chat have none, even when the learner has since
    replied by email: their first email is not what raised the concern."""
    concern_ids = {
        row.concern_id
        for row in rows
        if row.channel == "email" and row.recipient_role == "learner" and row.concern_id
    }
    if not concern_ids:
        return {}
    emailed = session.exec(
        select(Concern.id).where(col(Concern.id).in_(concern_ids), Concern.channel == "email")
    ).all()
    if not emailed:
        return {}
    # Read from the index ix_inbound_concern_sender alone: this runs while the claim holds the
    # write lock, and on SQLite reaching a column stored after `raw` reads through the whole
    # email (up to 10 MiB for each row) while every delivery waits.
    earlier = aliased(InboundMessage)
    first_id = (
        select(func.min(earlier.id))
        .where(col(earlier.concern_id) == col(InboundMessage.concern_id))
        .scalar_subquery()
    )
    statement = select(
        InboundMessage.concern_id, InboundMessage.message_id, InboundMessage.from_address
    ).where(col(InboundMessage.concern_id).in_(emailed), col(InboundMessage.id) == first_id)
    return {
        concern_id: (message_id, sender)
        for concern_id, message_id, sender in session.exec(statement).all()
        if concern_id is not None and message_id and sender
    }


def _learner_message_id(row: OutboxMessage, raised_by: dict[int, tuple[str, str]]) -> str | None:
    """The Message-ID this row's email answers, when it goes to the learner at the very address
    the email that raised its concern came from. An address corrected since (by staff, or to
    another of the learner's accounts) never held that email, so threading on it would gain
    nothing and would hand its Message-ID (which may name the learner's host) to that address."""
    if row.channel != "email" or row.recipient_role != "learner" or row.concern_id is None:
        return None
    message_id, sender = raised_by.get(row.concern_id, (None, None))
    if sender is None or sender.strip().lower() != row.recipient_address.strip().lower():
        return None
    return message_id


def _claimed(row: OutboxMessage, *, raised_by: dict[int, tuple[str, str]]) -> ClaimedEmail:
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
        recipient_role=row.recipient_role,
        refusals=row.refusals,
        attachments=tuple(dict(stored) for stored in row.attachments or ()),
        payload=dict(row.payload) if row.payload is not None else None,
        recipient_contact_id=row.recipient_contact_id,
        learner_message_id=_learner_message_id(row, raised_by),
        created_at=row.created_at,
    )
