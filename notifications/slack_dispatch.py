"""The Slack dispatcher: posts the outbox's Slack messages, once each, honouring rate limits.

It works as the email dispatcher does (claims under a lease, every outcome recorded against its
own claim, failures retried with backoff and never dropped), and adds what Slack needs:
- the message's Block Kit payload is posted with `chat.postMessage` to the contact's user id (a
  DM from the app), and where it landed ("<channel>:<ts>") is kept so it can be updated later;
- a contact known only by email is looked up with `users.lookupByEmail` when their message is
  sent (queueing stays a database write), the match is remembered on the contact as a button
  press remembers it, and the message goes to that account; when nobody in Slack has the email
  the row is done without sending ('skipped': not failed, not retried; the email still goes);
- a 429 answer's Retry-After is honoured, counted from the moment of the 429: that row waits
  exactly as long as Slack asked, and the rest of the batch is held back with it rather than
  hammering a rate-limited API;
- an answer that the token itself is unusable (revoked, invalid, missing a scope) pauses the
  whole batch: no row is failed or charged an attempt for a setting that is wrong for every row
  alike, one clear line is logged, and the rows are tried again a few minutes later;
- the `WebClient` must not retry by itself (see `dispatch_client`): a retry inside the client is
  invisible to the outbox, and a send that timed out after Slack took it would be posted twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

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

# Without a usable Retry-After, wait this long after a 429.
DEFAULT_RETRY_AFTER = timedelta(seconds=60)
LONGEST_RETRY_AFTER = timedelta(hours=1)
# Slack's own errors that say "try again later", not "this message is wrong".
TEMPORARY_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
# Slack's answers that the bot token (or the app's scopes) is unusable: every row would fail
# alike, so the batch pauses and nothing is charged to the rows.
AUTH_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "missing_scope",
        "not_allowed_token_type",
    }
)
# How long a batch paused by an unusable token waits before it is tried again.
AUTH_PAUSE = timedelta(minutes=5)
# users.lookupByEmail's answer when no Slack account has the email.
NOT_IN_SLACK = "users_not_found"
NOT_IN_SLACK_REASON = "not sent: no Slack account has this contact's email (email still goes)"
# Recording a post Slack took is retried a few times: a row left unrecorded would be posted
# again once its claim runs out.
RECORD_ATTEMPTS = 3
RECORD_BACKOFF_SECONDS = 0.2


class ClaimedChatMessage(Protocol):
    """A Slack message as claimed from the outbox."""

    @property
    def id(self) -> int: ...
    @property
    def claim_token(self) -> str: ...
    @property
    def recipient_address(self) -> str:
        """A Slack user id, or the email of a contact not yet known in Slack."""
        ...

    @property
    def recipient_contact_id(self) -> int | None: ...
    @property
    def body_text(self) -> str: ...
    @property
    def payload(self) -> Mapping[str, Any] | None: ...
    @property
    def attempts(self) -> int: ...


class ChatOutboxStore(Protocol):
    def claim_due(
        self, *, now: datetime, limit: int, lease: timedelta, channel: str = "email"
    ) -> Sequence[ClaimedChatMessage]:
        """Claim due pending messages of a channel until now + lease."""
        ...

    def hold(self, *, message_id: int, claim_token: str, until: datetime) -> bool:
        """Extend this claim until `until`, just before a post; False when the claim was lost."""
        ...

    def mark_posted(
        self,
        *,
        message_id: int,
        claim_token: str,
        now: datetime,
        external_ref: str,
        recipient_address: str | None = None,
    ) -> bool:
        """Record a posted message and where it lives (recorded even when the claim was lost,
        if nobody has recorded it since); False when the claim was lost."""
        ...

    def mark_retry(
        self, *, message_id: int, claim_token: str, error: str, retry_at: datetime
    ) -> None:
        """Record a failed attempt and release the row until retry_at."""
        ...

    def mark_held(
        self, *, message_id: int, claim_token: str, error: str, retry_at: datetime
    ) -> None:
        """Release the row until retry_at without counting an attempt."""
        ...

    def mark_failed(self, *, message_id: int, claim_token: str, error: str) -> None:
        """Give the message up, keeping it with its reason."""
        ...

    def mark_skipped(self, *, message_id: int, claim_token: str, reason: str) -> None:
        """Done without sending: the recipient cannot be reached in Slack."""
        ...

    def release(self, *, message_id: int, claim_token: str) -> None:
        """Let go of a claimed message untried, as it was: due to whoever dispatches next."""
        ...

    def slack_user_of(self, contact_id: int) -> str | None:
        """The Slack user id known for a contact, if any."""
        ...

    def remember_slack_user(self, *, contact_id: int, email: str, slack_user_id: str) -> None:
        """Keep the Slack account found for a contact's email."""
        ...


def dispatch_client(*, token: str, api_url: str, timeout: int = 30) -> WebClient:
    """A WebClient for the dispatcher: no retries of its own, the outbox decides when to retry."""
    return WebClient(token=token, base_url=api_url, timeout=timeout, retry_handlers=[])


def dispatch_due_slack(
    *,
    store: ChatOutboxStore,
    client: WebClient,
    now: datetime,
    limit: int = 20,
    clock: Callable[[], datetime] | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> DispatchReport:
    """Post up to `limit` due Slack messages once each, recording every outcome.

    `now` is the batch's start (what is due, the claims' lease); `clock` says the time when an
    outcome is recorded (by default `now` plus the time the batch has taken so far), so a wait
    Slack asks for is counted from when it asked. Once `stopping` says so, the rest of the
    batch is released unposted.
    """
    batch = _Batch(store=store, client=client, clock=clock or running_from(now))
    claimed = list(store.claim_due(now=now, limit=limit, lease=lease_for(limit), channel="slack"))
    for position, message in enumerate(claimed):
        if stopping():
            # The service is stopping, and a Slack that does not answer takes the client's whole
            # timeout for each post: the rest go with the next dispatcher, at once.
            for unsent in claimed[position:]:
                store.release(message_id=unsent.id, claim_token=unsent.claim_token)
            break
        try:
            batch.send(message)
        except DispatchPause as pause:
            # Slack asked us to wait, or will not take the token: the rest of the batch waits as
            # long, untried and not charged an attempt.
            rest = claimed[position + 1 :]
            for held in rest:
                batch.hold(held, error=f"held back: {pause.reason}", until=pause.until)
            if rest:
                log.info("outbox: %s Slack message(s) held back until %s", len(rest), pause.until)
            break
    return batch.report


def retry_after(headers: Mapping[str, Any] | None) -> timedelta:
    """The wait a 429 asks for (Retry-After, in seconds), within sensible bounds."""
    for name, value in (headers or {}).items():
        if name.lower() != "retry-after":
            continue
        raw = value[0] if isinstance(value, list | tuple) and value else value
        try:
            seconds = int(str(raw).strip())
        except ValueError:
            return DEFAULT_RETRY_AFTER
        return min(max(timedelta(seconds=seconds), timedelta(seconds=1)), LONGEST_RETRY_AFTER)
    return DEFAULT_RETRY_AFTER


def _by_email(address: str) -> bool:
    """Whether a Slack row is addressed to an email (a contact not yet known in Slack): Slack
    user ids never contain '@'."""
    return "@" in address


@dataclass
class _Batch:
    store: ChatOutboxStore
    client: WebClient
    clock: Callable[[], datetime]
    report: DispatchReport = field(default_factory=DispatchReport)
    # Emails looked up in this batch: the Slack user id, or None when nobody has it.
    found: dict[str, str | None] = field(default_factory=dict)
    # Why email lookups cannot be made in this batch (the app lacks users:read.email).
    lookups_off: str | None = None

    def send(self, message: ClaimedChatMessage) -> None:
        """Post one message and record the outcome; raises DispatchPause when all must wait."""
        payload = message.payload or {}
        blocks = payload.get("blocks")
        text = str(payload.get("text") or message.body_text)
        if not message.recipient_address or (blocks is not None and not isinstance(blocks, list)):
            # Deterministic: the stored row will be as unusable next time.
            self.give_up(message, error="not sent: no recipient or bad blocks")
            return
        if not self.store.hold(
            message_id=message.id, claim_token=message.claim_token, until=self.clock() + SEND_LEASE
        ):
            # This batch outlived its lease and another dispatcher took the row (or posted it).
            # Held, the row stays this batch's however long Slack takes to answer the lookup
            # and the post.
            self.report.errors.append(f"outbox {message.id}: claimed by another dispatcher")
            log.warning("outbox %s: not posted, its claim ran out before its turn", message.id)
            return
        channel = message.recipient_address
        if _by_email(message.recipient_address):
            found = self.slack_user(message)
            if found is None:
                return
            channel = found
        try:
            answer = self.client.chat_postMessage(
                channel=channel, text=text, blocks=blocks, unfurl_links=False
            )
        except SlackApiError as error:
            self.refused(message, error)
            return
        except Exception as error:
            # The network, a timeout, or a bug: the row waits and is retried, never lost. Only
            # the error's type is kept: its text could quote the request.
            #
            # The remaining duplicate window: a timeout (or a connection lost) after Slack
            # accepted the post looks the same as one before it, and chat.postMessage has no
            # idempotency key, so the retry can post the message a second time. The client
            # makes no retries of its own, so that happens at most once per ambiguous failure.
            # Everything after an 'ok' is covered: the post is recorded (retried if the
            # database hiccups, and even under a lost claim), and a row is checked to still be
            # ours just before it is posted.
            log.warning("outbox %s: Slack post failed (%s)", message.id, type(error).__name__)
            reason = f"{type(error).__name__} while posting to Slack"
            self.retry(message, error=reason)
            return
        addressed_now = channel if channel != message.recipient_address else None
        self.record_posted(message, answer, recipient=addressed_now)

    def slack_user(self, message: ClaimedChatMessage) -> str | None:
        """The Slack user a message addressed by email goes to; None when the row has been
        dealt with here (skipped: nobody in Slack has the email; held; retried)."""
        email = message.recipient_address
        contact_id = message.recipient_contact_id
        if contact_id is not None:
            known = self.store.slack_user_of(contact_id)
            if known:
                return known
        key = email.strip().lower()
        if key not in self.found:
            if self.lookups_off is not None:
                self.hold(message, error=self.lookups_off, until=self.clock() + AUTH_PAUSE)
                return None
            try:
                answer = self.client.users_lookupByEmail(email=email)
            except SlackApiError as error:
                code = _code(error)
                if code == NOT_IN_SLACK:
                    self.found[key] = None
                elif code == "missing_scope" and error.response.status_code != 429:
                    # Only lookups need users:read.email: messages to people already known in
                    # Slack still go; the others wait for the scope.
                    self.lookups_off = (
                        "Slack refused users.lookupByEmail (missing_scope): add the "
                        "users:read.email scope to the Slack app and reinstall it"
                    )
                    log.error("%s; contacts known only by email wait for it", self.lookups_off)
                    self.hold(message, error=self.lookups_off, until=self.clock() + AUTH_PAUSE)
                    return None
                else:
                    self.refused(message, error)
                    return None
            except Exception as error:
                log.warning("outbox %s: Slack lookup failed (%s)", message.id, type(error).__name__)
                self.retry(message, error=f"{type(error).__name__} while looking up in Slack")
                return None
            else:
                user = answer.get("user") or {}
                self.found[key] = str(user["id"]) if user.get("id") else None
        user_id = self.found[key]
        if user_id is None:
            self.store.mark_skipped(
                message_id=message.id, claim_token=message.claim_token, reason=NOT_IN_SLACK_REASON
            )
            self.report.skipped += 1
            log.info("outbox %s: not posted, the contact is not in Slack", message.id)
            return None
        if contact_id is not None:
            # Remembered as a button press remembers it: the next message needs no lookup.
            self.store.remember_slack_user(
                contact_id=contact_id, email=email, slack_user_id=user_id
            )
        return user_id

    def refused(self, message: ClaimedChatMessage, error: SlackApiError) -> None:
        """Slack answered with an error: wait, pause, retry or give up, as the answer says."""
        status = error.response.status_code
        code = _code(error)
        if status == 429:
            # Counted from now, the moment Slack asked: not from when the batch began.
            until = self.clock() + retry_after(error.response.headers)
            self.hold(
                message, error=f"rate limited by Slack until {until.isoformat()}", until=until
            )
            raise DispatchPause("Slack asked us to wait (rate limited)", until)
        if code in AUTH_ERRORS:
            until = self.clock() + AUTH_PAUSE
            # One line for the whole batch, with Slack's code only (never the token).
            log.error(
                "Slack refused the bot token (%s): Slack messages are paused and tried again "
                "at %s; check SLACK_BOT_TOKEN and the app's scopes",
                code,
                until.isoformat(),
            )
            self.report.errors.append(f"Slack refused the bot token ({code}): paused")
            self.hold(message, error=f"paused: Slack refused the bot token ({code})", until=until)
            raise DispatchPause(f"Slack refused the bot token ({code})", until)
        attempts = message.attempts + 1
        if status >= 500 or code in TEMPORARY_ERRORS or attempts < PERMANENT_FAILURE_ATTEMPTS:
            self.retry(message, error=f"Slack answered {code}")
        else:
            self.give_up(message, error=f"refused: {code}")

    def record_posted(
        self, message: ClaimedChatMessage, answer: SlackResponse, *, recipient: str | None
    ) -> None:
        """Record what Slack took; a row left pending would be posted again after its lease."""
        external_ref = f"{answer.get('channel')}:{answer.get('ts')}"
        recorded = False
        for attempt in range(1, RECORD_ATTEMPTS + 1):
            try:
                recorded = self.store.mark_posted(
                    message_id=message.id,
                    claim_token=message.claim_token,
                    now=self.clock(),
                    external_ref=external_ref,
                    recipient_address=recipient,
                )
                break
            except Exception as error:
                if attempt == RECORD_ATTEMPTS:
                    log.error(
                        "outbox %s: posted to Slack, but the database did not record it (%s): "
                        "it will be posted again when its claim runs out",
                        message.id,
                        type(error).__name__,
                    )
                    raise
                time.sleep(RECORD_BACKOFF_SECONDS * attempt)
        if recorded:
            self.report.sent += 1
        else:
            self.report.errors.append(f"outbox {message.id}: posted, but the claim had expired")
            log.warning("outbox %s: posted after its claim expired", message.id)

    def retry(self, message: ClaimedChatMessage, *, error: str) -> None:
        """A failed attempt: counted, and tried again after the backoff."""
        retry_at = self.clock() + retry_delay(message.attempts + 1)
        self.store.mark_retry(
            message_id=message.id, claim_token=message.claim_token, error=error, retry_at=retry_at
        )
        self.report.retried += 1
        self.report.errors.append(f"outbox {message.id}: retry at {retry_at.isoformat()}: {error}")
        log.warning("outbox %s: Slack post to retry at %s: %s", message.id, retry_at, error)

    def hold(self, message: ClaimedChatMessage, *, error: str, until: datetime) -> None:
        """Put a row back until `until` without counting an attempt (not its fault)."""
        self.store.mark_held(
            message_id=message.id, claim_token=message.claim_token, error=error, retry_at=until
        )
        self.report.held += 1

    def give_up(self, message: ClaimedChatMessage, *, error: str) -> None:
        self.store.mark_failed(message_id=message.id, claim_token=message.claim_token, error=error)
        self.report.failed += 1
        self.report.errors.append(f"outbox {message.id}: failed: {error}")
        log.error("outbox %s: given up: %s", message.id, error)


def _code(error: SlackApiError) -> str:
    return str(error.response.get("error") or f"HTTP {error.response.status_code}")
