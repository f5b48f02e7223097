"""The Teams dispatcher: sends the outbox's Teams cards as proactive messages, once each.

It works as the Slack dispatcher does (claims under a lease, every outcome recorded against its
own claim, failures retried with backoff and never dropped), and adds what Teams needs:
- a row is addressed to a person's Entra object id; the bot can write to them only in a
  conversation it has heard them in (they installed the app or wrote to it), whose reference
  it keeps. Without one the row is done without sending ('skipped', with the reason: not
  failed, not retried; the email copy still goes);
- the card goes as an Adaptive Card attachment into that conversation, and where it landed
  ("<conversation id>:<activity id>", see `external_ref`) is kept, so the card a person presses
  can be found again;
- a 429 answer's Retry-After is honoured, counted from the moment of the 429: that row waits
  exactly as long as Teams asked, without an attempt counted, and the rest of the batch is held
  back with it;
- a 401 or 403 from the Bot Framework itself says the bot's credentials are unusable: the batch
  pauses a few minutes without charging any row, as for Slack's unusable token.

Sending is asynchronous (the Agents SDK's connector client is aiohttp): `dispatch_due_teams` is
a coroutine, run on the loop the bot's adapter serves on; the outbox's database work runs in
worker threads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from notifications.outbox import (
    PERMANENT_FAILURE_ATTEMPTS,
    SEND_LEASE,
    DispatchPause,
    DispatchReport,
    lease_for,
    retry_delay,
    running_from,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

CHANNEL = "teams"
# Without a usable Retry-After, wait this long after a 429.
DEFAULT_RETRY_AFTER = timedelta(seconds=60)
LONGEST_RETRY_AFTER = timedelta(hours=1)
# How long a batch paused by refused credentials waits before it is tried again.
AUTH_PAUSE = timedelta(minutes=5)
NO_CONVERSATION_REASON = (
    "not sent: the bot has no conversation with this person in Teams yet (they have not "
    "installed the app or written to it); the email still goes"
)
# Recording a send Teams took is retried a few times: a row left unrecorded would be sent
# again once its claim runs out.
RECORD_ATTEMPTS = 3
RECORD_BACKOFF_SECONDS = 0.2


def external_ref(conversation_id: str, activity_id: str) -> str:
    """Where a sent card lives, as the outbox records it: an Action.Execute press on it comes
    with the same conversation id and the card's activity id (its `replyToId`)."""
    return f"{conversation_id}:{activity_id}"


class TeamsRefused(Exception):
    """The Bot Framework answered a send with an HTTP error."""

    def __init__(self, status: int, headers: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"Teams answered HTTP {status}")
        self.status = status
        self.headers = dict(headers or {})


class TeamsPoster(Protocol):
    """What the dispatcher needs from the bot (built on it in `bot.teams_contacts`)."""

    def conversation_of(self, aad_object_id: str) -> dict[str, Any] | None:
        """The stored conversation reference of a Teams user, if the bot ever heard them."""
        ...

    async def post(self, reference: Mapping[str, Any], card: Mapping[str, Any]) -> str | None:
        """Send the card into the conversation; the new activity's id. Raises TeamsRefused
        for an HTTP error answer."""
        ...


class ClaimedTeamsMessage(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def claim_token(self) -> str: ...
    @property
    def recipient_address(self) -> str:
        """The person's Entra object id."""
        ...

    @property
    def payload(self) -> Mapping[str, Any] | None: ...
    @property
    def attempts(self) -> int: ...


class TeamsOutboxStore(Protocol):
    def claim_due(
        self, *, now: datetime, limit: int, lease: timedelta, channel: str = "email"
    ) -> Sequence[ClaimedTeamsMessage]: ...

    def hold(self, *, message_id: int, claim_token: str, until: datetime) -> bool: ...

    def mark_posted(
        self, *, message_id: int, claim_token: str, now: datetime, external_ref: str
    ) -> bool: ...

    def mark_retry(
        self, *, message_id: int, claim_token: str, error: str, retry_at: datetime
    ) -> None: ...

    def mark_held(
        self, *, message_id: int, claim_token: str, error: str, retry_at: datetime
    ) -> None: ...

    def mark_failed(self, *, message_id: int, claim_token: str, error: str) -> None: ...

    def mark_skipped(self, *, message_id: int, claim_token: str, reason: str) -> None: ...


async def dispatch_due_teams(
    *,
    store: TeamsOutboxStore,
    poster: TeamsPoster,
    now: datetime,
    limit: int = 20,
    clock: Callable[[], datetime] | None = None,
) -> DispatchReport:
    """Send up to `limit` due Teams cards once each, recording every outcome.

    `now` is the batch's start (what is due, the claims' lease); `clock` says the time when an
    outcome is recorded (by default `now` plus the time the batch has taken so far), so a wait
    Teams asks for is counted from when it asked.
    """
    batch = _Batch(store=store, poster=poster, clock=clock or running_from(now))
    claimed = list(
        await _db(store.claim_due, now=now, limit=limit, lease=lease_for(limit), channel=CHANNEL)
    )
    for position, message in enumerate(claimed):
        try:
            await batch.send(message)
        except DispatchPause as pause:
            rest = claimed[position + 1 :]
            for held in rest:
                await batch.hold(held, error=f"held back: {pause.reason}", until=pause.until)
            if rest:
                log.info("outbox: %s Teams message(s) held back until %s", len(rest), pause.until)
            break
    return batch.report


def retry_after(headers: Mapping[str, Any] | None) -> timedelta:
    """The wait a 429 asks for (Retry-After, in seconds), within sensible bounds."""
    for name, value in (headers or {}).items():
        if str(name).lower() != "retry-after":
            continue
        try:
            seconds = int(str(value).strip())
        except ValueError:
            return DEFAULT_RETRY_AFTER
        return min(max(timedelta(seconds=seconds), timedelta(seconds=1)), LONGEST_RETRY_AFTER)
    return DEFAULT_RETRY_AFTER


async def _db(work: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """The outbox's database work, off the event loop."""
    return await asyncio.to_thread(work, *args, **kwargs)


@dataclass
class _Batch:
    store: TeamsOutboxStore
    poster: TeamsPoster
    clock: Callable[[], datetime]
    report: DispatchReport = field(default_factory=DispatchReport)

    async def send(self, message: ClaimedTeamsMessage) -> None:
        card = (message.payload or {}).get("card")
        if not message.recipient_address or not isinstance(card, dict):
            await self.give_up(message, error="not sent: no recipient or no card")
            return
        if not await _db(
            self.store.hold,
            message_id=message.id,
            claim_token=message.claim_token,
            until=self.clock() + SEND_LEASE,
        ):
            # This batch outlived its lease and another dispatcher took the row. Held, the row
            # stays this batch's however long Teams takes to answer.
            self.report.errors.append(f"outbox {message.id}: claimed by another dispatcher")
            log.warning("outbox %s: not sent, its claim ran out before its turn", message.id)
            return
        reference = await _db(self.poster.conversation_of, message.recipient_address)
        if reference is None:
            await _db(
                self.store.mark_skipped,
                message_id=message.id,
                claim_token=message.claim_token,
                reason=NO_CONVERSATION_REASON,
            )
            self.report.skipped += 1
            log.info("outbox %s: not sent, no Teams conversation with the person", message.id)
            return
        try:
            activity_id = await self.poster.post(reference, card)
        except TeamsRefused as refusal:
            await self.refused(message, refusal)
            return
        except Exception as error:
            # The network, a timeout, the token service: the row waits and is retried, never
            # lost. Only the type is kept (an error's text can quote the request). As for Slack,
            # a timeout after Teams took the message cannot be told from one before it, so that
            # one retry may post the card twice; everything after an answer is covered.
            log.warning("outbox %s: Teams send failed (%s)", message.id, type(error).__name__)
            await self.retry(message, error=f"{type(error).__name__} while sending to Teams")
            return
        conversation = str((reference.get("conversation") or {}).get("id") or "")
        await self.record_posted(message, external_ref(conversation, activity_id or ""))

    async def refused(self, message: ClaimedTeamsMessage, refusal: TeamsRefused) -> None:
        if refusal.status == 429:
            # Counted from now, the moment Teams asked: not from when the batch began.
            until = self.clock() + retry_after(refusal.headers)
            await self.hold(
                message, error=f"rate limited by Teams until {until.isoformat()}", until=until
            )
            raise DispatchPause("Teams asked us to wait (rate limited)", until)
        if refusal.status == 401:
            until = self.clock() + AUTH_PAUSE
            log.error(
                "Teams refused the bot's credentials (HTTP 401): Teams messages are paused and "
                "tried again at %s; check TEAMS_APP_ID, TEAMS_APP_PASSWORD and TEAMS_TENANT_ID",
                until.isoformat(),
            )
            self.report.errors.append("Teams refused the bot's credentials (HTTP 401): paused")
            await self.hold(message, error="paused: Teams refused the credentials", until=until)
            raise DispatchPause("Teams refused the bot's credentials", until)
        attempts = message.attempts + 1
        if refusal.status >= 500 or attempts < PERMANENT_FAILURE_ATTEMPTS:
            await self.retry(message, error=f"Teams answered HTTP {refusal.status}")
        else:
            await self.give_up(message, error=f"refused: HTTP {refusal.status}")

    async def record_posted(self, message: ClaimedTeamsMessage, where: str) -> None:
        """Record what Teams took; a row left pending would be sent again after its lease."""
        recorded = False
        for attempt in range(1, RECORD_ATTEMPTS + 1):
            try:
                recorded = await _db(
                    self.store.mark_posted,
                    message_id=message.id,
                    claim_token=message.claim_token,
                    now=self.clock(),
                    external_ref=where,
                )
                break
            except Exception as error:
                if attempt == RECORD_ATTEMPTS:
                    log.error(
                        "outbox %s: sent to Teams, but the database did not record it (%s): "
                        "it will be sent again when its claim runs out",
                        message.id,
                        type(error).__name__,
                    )
                    raise
                await asyncio.sleep(RECORD_BACKOFF_SECONDS * attempt)
        if recorded:
            self.report.sent += 1
        else:
            self.report.errors.append(f"outbox {message.id}: sent, but the claim had expired")
            log.warning("outbox %s: sent after its claim expired", message.id)

    async def retry(self, message: ClaimedTeamsMessage, *, error: str) -> None:
        retry_at = self.clock() + retry_delay(message.attempts + 1)
        await _db(
            self.store.mark_retry,
            message_id=message.id,
            claim_token=message.claim_token,
            error=error,
            retry_at=retry_at,
        )
        self.report.retried += 1
        self.report.errors.append(f"outbox {message.id}: retry at {retry_at.isoformat()}: {error}")
        log.warning("outbox %s: Teams send to retry at %s: %s", message.id, retry_at, error)

    async def hold(self, message: ClaimedTeamsMessage, *, error: str, until: datetime) -> None:
        await _db(
            self.store.mark_held,
            message_id=message.id,
            claim_token=message.claim_token,
            error=error,
            retry_at=until,
        )
        self.report.held += 1

    async def give_up(self, message: ClaimedTeamsMessage, *, error: str) -> None:
        await _db(
            self.store.mark_failed,
            message_id=message.id,
            claim_token=message.claim_token,
            error=error,
        )
        self.report.failed += 1
        self.report.errors.append(f"outbox {message.id}: failed: {error}")
        log.error("outbox %s: given up: %s", message.id, error)
