"""The Slack dispatcher: posts the outbox's Slack messages, once each, honouring rate limits.

It works as the email dispatcher does (claims under a lease, every outcome recorded against its
own claim, failures retried with backoff and never dropped), and adds what Slack needs:
- the message's Block Kit payload is posted with `chat.postMessage` to the contact's user id (a
  DM from the app), and where it landed ("<channel>:<ts>") is kept so it can be updated later;
- a 429 answer's Retry-After is honoured: that row waits exactly as long as Slack asked, and the
  rest of the batch is held back with it rather than hammering a rate-limited API;
- the `WebClient` must not retry by itself (see `dispatch_client`): a retry inside the client is
  invisible to the outbox, and a send that timed out after Slack took it would be posted twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from notifications.outbox import (
    PERMANENT_FAILURE_ATTEMPTS,
    DispatchReport,
    lease_for,
    retry_delay,
)

log = logging.getLogger(__name__)

# Without a usable Retry-After, wait this long after a 429.
DEFAULT_RETRY_AFTER = timedelta(seconds=60)
LONGEST_RETRY_AFTER = timedelta(hours=1)
# Slack's own errors that say "try again later", not "this message is wrong".
TEMPORARY_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


class ClaimedChatMessage(Protocol):
    """A Slack message as claimed from the outbox."""

    @property
    def id(self) -> int: ...
    @property
    def claim_token(self) -> str: ...
    @property
    def recipient_address(self) -> str: ...
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

    def mark_posted(
        self, *, message_id: int, claim_token: str, now: datetime, external_ref: str
    ) -> bool:
        """Record a posted message and where it lives; False when the claim was lost."""
        ...

    def mark_retry(
        self, *, message_id: int, claim_token: str, error: str, retry_at: datetime
    ) -> None:
        """Record a failed attempt and release the row until retry_at."""
        ...

    def mark_failed(self, *, message_id: int, claim_token: str, error: str) -> None:
        """Give the message up, keeping it with its reason."""
        ...


def dispatch_client(*, token: str, api_url: str, timeout: int = 30) -> WebClient:
    """A WebClient for the dispatcher: no retries of its own, the outbox decides when to retry."""
    return WebClient(token=token, base_url=api_url, timeout=timeout, retry_handlers=[])


def dispatch_due_slack(
    *, store: ChatOutboxStore, client: WebClient, now: datetime, limit: int = 20
) -> DispatchReport:
    """Post up to `limit` due Slack messages once each, recording every outcome."""
    report = DispatchReport()
    claimed = list(store.claim_due(now=now, limit=limit, lease=lease_for(limit), channel="slack"))
    for position, message in enumerate(claimed):
        wait = _post_one(message, store=store, client=client, now=now, report=report)
        if wait is not None:
            # Slack is rate limiting us: the rest of the batch waits as long, untried.
            for held in claimed[position + 1 :]:
                _retry_at(
                    held,
                    store=store,
                    report=report,
                    error="held back: Slack asked us to wait (rate limited)",
                    retry_at=now + wait,
                )
            break
    return report


def _post_one(
    message: ClaimedChatMessage,
    *,
    store: ChatOutboxStore,
    client: WebClient,
    now: datetime,
    report: DispatchReport,
) -> timedelta | None:
    """Post one message; the wait Slack asked for when it answered 429, else None."""
    attempts = message.attempts + 1
    payload = message.payload or {}
    blocks = payload.get("blocks")
    text = str(payload.get("text") or message.body_text)
    if not message.recipient_address or (blocks is not None and not isinstance(blocks, list)):
        # Deterministic: the stored row will be as unusable next time.
        _give_up(message, store=store, report=report, error="not sent: no recipient or bad blocks")
        return None
    try:
        answer = client.chat_postMessage(
            channel=message.recipient_address, text=text, blocks=blocks, unfurl_links=False
        )
    except SlackApiError as error:
        status = error.response.status_code
        code = str(error.response.get("error") or f"HTTP {status}")
        if status == 429:
            wait = retry_after(error.response.headers)
            _retry_at(
                message,
                store=store,
                report=report,
                error=f"rate limited: retry after {int(wait.total_seconds())} s",
                retry_at=now + wait,
            )
            return wait
        reason = f"Slack answered {code}"
        if status >= 500 or code in TEMPORARY_ERRORS or attempts < PERMANENT_FAILURE_ATTEMPTS:
            _retry(message, store=store, report=report, error=reason, attempts=attempts, now=now)
        else:
            _give_up(message, store=store, report=report, error=f"refused: {code}")
        return None
    except Exception as error:
        # The network, a timeout, or a bug: the row waits and is retried, never lost. Only the
        # error's type is kept: its text could quote the request.
        log.warning("outbox %s: Slack post failed (%s)", message.id, type(error).__name__)
        reason = f"{type(error).__name__} while posting to Slack"
        _retry(message, store=store, report=report, error=reason, attempts=attempts, now=now)
        return None
    external_ref = f"{answer.get('channel')}:{answer.get('ts')}"
    if store.mark_posted(
        message_id=message.id, claim_token=message.claim_token, now=now, external_ref=external_ref
    ):
        report.sent += 1
    else:
        report.errors.append(f"outbox {message.id}: posted, but the claim had expired")
        log.warning("outbox %s: posted after its claim expired", message.id)
    return None


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


def _retry(
    message: ClaimedChatMessage,
    *,
    store: ChatOutboxStore,
    report: DispatchReport,
    error: str,
    attempts: int,
    now: datetime,
) -> None:
    _retry_at(
        message, store=store, report=report, error=error, retry_at=now + retry_delay(attempts)
    )


def _retry_at(
    message: ClaimedChatMessage,
    *,
    store: ChatOutboxStore,
    report: DispatchReport,
    error: str,
    retry_at: datetime,
) -> None:
    store.mark_retry(
        message_id=message.id, claim_token=message.claim_token, error=error, retry_at=retry_at
    )
    report.retried += 1
    report.errors.append(f"outbox {message.id}: retry at {retry_at.isoformat()}: {error}")
    log.warning("outbox %s: Slack post to retry at %s: %s", message.id, retry_at, error)


def _give_up(
    message: ClaimedChatMessage, *, store: ChatOutboxStore, report: DispatchReport, error: str
) -> None:
    store.mark_failed(message_id=message.id, claim_token=message.claim_token, error=error)
    report.failed += 1
    report.errors.append(f"outbox {message.id}: failed: {error}")
    log.error("outbox %s: given up: %s", message.id, error)
