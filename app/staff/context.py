"""What every staff page and API call needs, built once by the app."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import Engine

from escalation.policy import Policy
from intake.web.context import derived_keys
from intake.web.security import RateLimits


@dataclass(frozen=True)
class OidcProvider:
    """An OpenID Connect provider staff may sign in with (for example Microsoft Entra ID)."""

    metadata_url: str
    client_id: str
    client_secret: str
    name: str


@dataclass(frozen=True)
class StaffContext:
    engine: Engine
    policy: Policy
    secret: str = field(repr=False)
    templates: Jinja2Templates
    limits: RateLimits
    clock: Callable[[], datetime]
    session_idle: timedelta
    session_lifetime: timedelta
    sign_in_lifetime: timedelta
    oidc: OidcProvider | None
    # Cookies carry `Secure` when the service is reached over HTTPS.
    secure_cookies: bool
    # Told when a sign-in link could not be made or queued (the member saw the usual page).
    on_sign_in_failed: Callable[[], None] | None = None
    # Secret keys used before `secret`: sign-in links they signed still work.
    previous_secrets: tuple[str, ...] = field(default=(), repr=False)

    def sign_in_failed(self) -> None:
        if self.on_sign_in_failed is not None:
            self.on_sign_in_failed()

    def keys_for(self, purpose: str) -> list[str]:
        """The keys for a use that accept what previous secrets signed: the current key last,
        which is the one itsdangerous signs with."""
        return derived_keys(self.secret, self.previous_secrets, purpose)
