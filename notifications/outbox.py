"""The email dispatcher: sends what the outbox holds, retries with backoff, never drops a message.

Each run claims a batch of due rows under a lease, sends them one by one and records each
outcome against its own claim. A temporary failure (relay down, 4xx) is retried for as long as it
takes; a permanent one (5xx) is retried a few times, in case the relay was wrong, and then the
row is kept as 'failed' with its reason for staff to see.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from notifications.email import (
    Attachment,
    OutgoingEmail,
    UnusableAddress,
    compose,
    plain_address,
)
from notifications.senders import PermanentFailure, Sender, TemporaryFailure
from notifications.threading import MailThreading

log = logging.getLogger(__name__)

FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)
# Refusals (5xx) before a message is given up, however many temporary failures came between.
PERMANENT_FAILURE_ATTEMPTS = 5
# One send may take a connection, TLS and a few commands, each allowed the relay's timeout.
LEASE_PER_MESSAGE = timedelta(seconds=30)
LEASE_MARGIN = timedelta(seconds=60)
# Each message is held again, from the real clock, just before it is sent: long enough for the
# slowest send (connect, STARTTLS, AUTH and the commands, each allowed the relay's 30 s timeout).
# A batch that outlives its lease then never sends a row another dispatcher has taken since.
SEND_LEASE = timedelta(minutes=10)


class ClaimedOutgoingEmail(OutgoingEmail, Protocol):
    """An outgoing email as claimed from the store: its claim, how often it was tried, and the
    files sent with it as stored ({filename, content_type, text} each)."""

    @property
    def claim_token(self) -> str: ...
    @property
    def attempts(self) -> int: ...
    @property
    def refusals(self) -> int: ...
    @property
    def attachments(self) -> Sequence[Mapping[str, Any]]: ...
    @property
    def learner_message_id(self) -> str | None:
        """The Message-ID of the learner's email that raised the concern, for an email to the
        learner at the address it came from; None for anything else."""
        ...


class OutboxStore(Protocol):
    def claim_due(
        self, *, now: datetime, limit: int, lease: timedelta, channel: str = "email"
    ) -> Sequence[ClaimedOutgoingEmail]:
        """Claim due pending messages of a channel until now + lease."""
        ...

    def hold(self, *, message_id: int, claim_token: str, until: datetime) -> bool:
        """Extend this claim until `until`; False when the claim was lost."""
        ...

    def mark_sent(self, *, message_id: int, claim_token: str, now: datetime) -> bool:
        """Record a delivery; False when the claim was lost."""
        ...

    def mark_retry(
        self,
        *,
        message_id: int,
        claim_token: str,
        error: str,
        retry_at: datetime,
        refused: bool = False,
    ) -> None:
        """Record a failed attempt (`refused`: the relay refused it outright) and release the
        row until retry_at."""
        ...

    def mark_failed(self, *, message_id: int, claim_token: str, error: str) -> None:
        """Give the message up, keeping it with its reason."""
        ...

    def release(self, *, message_id: int, claim_token: str) -> None:
        """Let go of a claimed message untried, as it was: due to whoever dispatches next."""
        ...


@dataclass
class DispatchReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    # Chat only: rows put back untried, without counting an attempt (rate limited or paused),
    # and rows done without sending (the recipient cannot be reached on that channel).
    held: int = 0
    skipped: int = 0


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after `attempts` failed attempts: 30 s, doubling, at most an hour."""
    # The exponent is capped so a row tried thousands of times cannot overflow the arithmetic.
    delay = FIRST_RETRY * 2 ** min(max(attempts - 1, 0), 20)
    return min(delay, LONGEST_RETRY)


def lease_for(limit: int) -> timedelta:
    """A claim long enough for a whole batch to be sent before anyone else may take it."""
    return LEASE_PER_MESSAGE * limit + LEASE_MARGIN


def dispatch_due(
    *,
    store: OutboxStore,
    sender: Sender,
    threading: MailThreading,
    from_address: str,
    now: datetime,
    limit: int = 20,
    clock: Callable[[], datetime] | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> DispatchReport:
    """Send up to `limit` due emails once each, recording every outcome against its own claim.
    `clock` tells the time as the batch goes on (by default from `now`, at the real pace);
    once `stopping` says so, the rest of the batch is released unsent."""
    # Both addresses are the operator's to fix: refuse before claiming, so no row is touched
    # (and none is failed for a setting that is wrong for every row alike).
    for setting, address in (("from", from_address), ("mailbox", threading.mailbox)):
        try:
            plain_address(address)
        except UnusableAddress as error:
            raise ValueError(f"the {setting} address is not usable: {error}") from None
    report = DispatchReport()
    clock = clock or running_from(now)
    claimed = store.claim_due(now=now, limit=limit, lease=lease_for(limit))
    for index, message in enumerate(claimed):
        if stopping():
            # The service is stopping: a relay that does not answer takes its whole timeout for
            # each send, and the process would wait for all of them. The rest go with the next
            # dispatcher, at once rather than when this batch's lease runs out.
            for unsent in claimed[index:]:
                store.release(message_id=unsent.id, claim_token=unsent.claim_token)
            break
        _dispatch_one(
            message,
            store=store,
            sender=sender,
            threading=threading,
            from_address=from_address,
            now=now,
            clock=clock,
            report=report,
        )
    return report


def _dispatch_one(
    message: ClaimedOutgoingEmail,
    *,
    store: OutboxStore,
    sender: Sender,
    threading: MailThreading,
    from_address: str,
    now: datetime,
    clock: Callable[[], datetime],
    report: DispatchReport,
) -> None:
    attempts = message.attempts + 1
    try:
        email = compose(
            message,
            threading=threading,
            from_address=from_address,
            now=now,
            attachments=[Attachment.from_stored(stored) for stored in message.attachments],
            learner_message_id=message.learner_message_id,
        )
        email.as_bytes()  # anything that cannot be written out fails here, not at every retry
    except UnusableAddress as error:
        # Composing is deterministic: the stored address will be as unusable next time.
        _give_up(message, store=store, report=report, error=f"not sent: recipient {error}")
        return
    except Exception as error:
        # Also deterministic; failing this row keeps it from blocking the rows behind it. Only
        # the error's type is kept: its text could quote the message.
        log.exception("outbox %s: cannot compose", message.id)
        _give_up(
            message,
            store=store,
            report=report,
            error=f"not sent: cannot compose ({type(error).__name__})",
        )
        return
    if not store.hold(
        message_id=message.id, claim_token=message.claim_token, until=clock() + SEND_LEASE
    ):
        # The batch outlived its lease and another dispatcher has taken the row since.
        report.errors.append(f"outbox {message.id}: not sent here: another dispatcher has it")
        log.warning("outbox %s: left to the dispatcher that took it over", message.id)
        return
    try:
        sender.send(email, key=delivery_key(message))
    except TemporaryFailure as error:
        _retry(
            message, store=store, report=report, error=str(error), attempts=attempts, now=clock()
        )
    except PermanentFailure as error:
        reason = f"refused: {error}"
        if message.refusals + 1 >= PERMANENT_FAILURE_ATTEMPTS:
            _give_up(message, store=store, report=report, error=reason)
        else:
            _retry(
                message,
                store=store,
                report=report,
                error=reason,
                attempts=attempts,
                now=clock(),
                refused=True,
            )
    except Exception as error:
        # A bug in a sender must not stop the batch or lose the row; it waits and is retried.
        log.exception("outbox %s: unexpected error while sending", message.id)
        reason = f"unexpected {type(error).__name__} while sending"
        _retry(message, store=store, report=report, error=reason, attempts=attempts, now=clock())
    else:
        if store.mark_sent(message_id=message.id, claim_token=message.claim_token, now=now):
            report.sent += 1
        else:
            # The lease ran out mid-batch and another dispatcher holds the row now.
            report.errors.append(f"outbox {message.id}: sent, but the claim had expired")
            log.warning("outbox %s: sent after its claim expired", message.id)


def _retry(
    message: ClaimedOutgoingEmail,
    *,
    store: OutboxStore,
    report: DispatchReport,
    error: str,
    attempts: int,
    now: datetime,
    refused: bool = False,
) -> None:
    """Release the row until a growing delay from `now`, the moment it failed (a pass with a
    relay that times out can be long: a delay from its start would already have passed)."""
    retry_at = now + retry_delay(attempts)
    store.mark_retry(
        message_id=message.id,
        claim_token=message.claim_token,
        error=error,
        retry_at=retry_at,
        refused=refused,
    )
    report.retried += 1
    report.errors.append(
        f"outbox {message.id}: attempt {attempts} failed, retry at {retry_at.isoformat()}: {error}"
    )
    log.warning("outbox %s: attempt %s failed: %s", message.id, attempts, error)


def _give_up(
    message: ClaimedOutgoingEmail, *, store: OutboxStore, report: DispatchReport, error: str
) -> None:
    store.mark_failed(message_id=message.id, claim_token=message.claim_token, error=error)
    report.failed += 1
    report.errors.append(f"outbox {message.id}: failed: {error}")
    log.error("outbox %s: given up: %s", message.id, error)


def delivery_key(message: OutgoingEmail) -> str:
    """Names one row's delivery for the sender (the maildir writes each key once): the same when
    the row is sent again after a crash, and not the same for another database's row that has
    the same id (a fresh database writing to the same maildir)."""
    content = "\0".join((message.recipient_address, message.subject, message.body_text))
    return f"{message.id}-{hashlib.sha256(content.encode('utf-8')).hexdigest()[:16]}"


def running_from(start: datetime) -> Callable[[], datetime]:
    """A clock that starts at `start` and runs at the real pace (monotonic: no jumps), so a
    chat dispatcher measures a Retry-After from the moment it was asked, not the batch's start."""
    began = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - began)


class DispatchPause(Exception):
    """The rest of a chat dispatcher's batch must wait until `until` (rate limited, or the
    platform refused our credentials): no row is failed or charged an attempt."""

    def __init__(self, reason: str, until: datetime) -> None:
        super().__init__(reason)
        self.reason = reason
        self.until = until
