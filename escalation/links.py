"""Signed, expiring links to a concern's status page, for the learner's emails.

A link names the concern's reference, its link version and when it was signed; it grants a look at
the status page (and the learner's actions there) until it expires, and only while the concern's
link version is still the one it names (raised when the learner corrects their email address, so
links sent to the old address stop working). A link of version 0 names the reference alone, as
every link signed before versions did, so those keep working. The clock is the one the caller
passes in, so the sweep, the web app and the tests all agree on what "now" is. Links signed with a
previous key (after the service's secret key was changed) still open while that key is listed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer

SALT = "status-link"
PURPOSE = "status-links"
DEFAULT_MAX_AGE = timedelta(days=180)
LINK_PATH = "/concerns/status/link/"


def status_link_key(secret: str) -> str:
    """The links' own key, derived from the service secret (never the secret itself)."""
    return hmac.new(secret.encode(), PURPOSE.encode(), hashlib.sha256).hexdigest()


class _SignerAt(TimestampSigner):
    """A timestamp signer whose clock is the moment it was made for."""

    def __init__(self, *args: Any, now: datetime, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._now = int(now.timestamp())

    def get_timestamp(self) -> int:
        return self._now


class StatusLinks:
    def __init__(
        self,
        key: str,
        public_url: str,
        max_age: timedelta = DEFAULT_MAX_AGE,
        *,
        previous_keys: Sequence[str] = (),
    ) -> None:
        if not key:
            raise ValueError("status links need a key")
        # itsdangerous signs with the last key and accepts a signature by any of them.
        self._keys = [*reversed(previous_keys), key]
        self._public_url = public_url.rstrip("/")
        self.max_age = max_age

    def _serializer(self, now: datetime) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(
            self._keys, salt=SALT, signer=_SignerAt, signer_kwargs={"now": now}
        )

    def token_for(self, reference: str, now: datetime, *, version: int = 0) -> str:
        return self._serializer(now).dumps([reference, version] if version else reference)

    def url_for(self, reference: str, now: datetime, *, version: int = 0) -> str:
        return f"{self._public_url}{LINK_PATH}{self.token_for(reference, now, version=version)}"

    def link_in(self, token: str, now: datetime) -> tuple[str, int] | None:
        """The reference and link version a token names (a bare reference: version 0); None when
        it is tampered with, expired or malformed."""
        if not token or len(token) > 512:
            return None
        try:
            value = self._serializer(now).loads(token, max_age=int(self.max_age.total_seconds()))
        except (BadData, ValueError, TypeError, UnicodeError):
            return None
        if isinstance(value, str) and value:
            return value, 0
        if (
            isinstance(value, list)
            and len(value) == 2
            and isinstance(value[0], str)
            and value[0]
            and type(value[1]) is int
            and value[1] > 0
        ):
            return value[0], value[1]
        return None

    def reference_in(self, token: str, now: datetime) -> str | None:
        """The reference a token names, whatever its version; None as for `link_in`."""
        found = self.link_in(token, now)
        return found[0] if found else None
