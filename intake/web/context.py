"""What every learner page needs, built once by the app: database, policy, secrets, templates."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import Engine

from escalation.policy import Policy
from intake.web.security import RateLimits


def derived_key(secret: str, purpose: str) -> str:
    """A key of its own for each use of the secret (sessions, status links, rate limits)."""
    return hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def derived_keys(secret: str, previous: tuple[str, ...], purpose: str) -> list[str]:
    """A use's keys under the previous secrets and then the current one (itsdangerous signs with
    the last, and accepts a signature by any)."""
    return [derived_key(old, purpose) for old in reversed(previous)] + [
        derived_key(secret, purpose)
    ]


@dataclass(frozen=True)
class WebContext:
    engine: Engine
    policy: Policy
    secret: str = field(repr=False)
    templates: Jinja2Templates
    limits: RateLimits
    clock: Callable[[], datetime]
    # Called (on the event loop) once a form submission is stored: `concerns serve` wakes its
    # intake tick, which raises it. None: nothing runs in the background, so the form raises
    # the submission itself before answering.
    on_received: Callable[[], None] | None = None
    # Called (from a worker thread) when a learner page raised a stored submission itself (a
    # status look-up that came first, or the form with nothing in the background): counted as
    # the intake tick's raising is.
    on_raised: Callable[[], None] | None = None

    # Secret keys used before `secret`: what they signed is still accepted (sessions).
    previous_secrets: tuple[str, ...] = field(default=(), repr=False)

    def raised_here(self) -> None:
        if self.on_raised is not None:
            self.on_raised()

    def keys_for(self, purpose: str) -> list[str]:
        """The keys for a use that accept what previous secrets signed: the current key last,
        which is the one itsdangerous signs with."""
        return derived_keys(self.secret, self.previous_secrets, purpose)
