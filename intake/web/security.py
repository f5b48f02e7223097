"""Protections every learner page shares: CSRF, rate limits, security headers, a body limit.

Nothing here records who a learner is: rate limits key on a keyed hash of the client address
held in memory for the window only, and the access log names the route, never the address, the
user agent or the query string (status links carry a signed token).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from limits import RateLimitItem, parse
from starlette.datastructures import FormData, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("concerns.web")

CSRF_FIELD = "csrf_token"
CSRF_SESSION_KEY = "csrf"
# A form is a few KiB; the longest description (20,000 characters of up to 4 bytes each) and
# every other field fit well inside this.
MAX_BODY_BYTES = 256 * 1024

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    ]
)


# --- CSRF: a per-session token in every form, checked on every POST ---------------------------


class CsrfRefused(HTTPException):
    def __init__(self) -> None:
        super().__init__(status_code=403, detail="csrf")


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use (the session cookie carries it)."""
    token = request.session.get(CSRF_SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session[CSRF_SESSION_KEY] = token
    return token


async def posted_form(request: Request) -> FormData:
    """The form a request posts, after reading its whole body whatever its type: the body limit
    counts a body as it arrives, and one that is not a form would otherwise go unread (refused
    for its missing token, never found over the limit)."""
    await request.body()
    return await request.form()


def sent_from_our_page(request: Request, public_url: str | None = None) -> bool:
    """Whether the browser says a request comes from one of our own pages: `Sec-Fetch-Site`,
    or where a browser does not send it, an `Origin` that is this site's. A form refused for
    its token but sent from our own page is a learner whose session ended (a phone that closed
    the browser, cookies cleared): they may be shown what they wrote again; a page elsewhere
    must never make ours show words it chose. Behind a reverse proxy the address a request
    reached may not be the site's (the proxy's own Host, or http where X-Forwarded-Proto is
    not believed): `public_url` (CONCERNS_PUBLIC_URL) is then the site."""
    fetched_from = request.headers.get("sec-fetch-site")
    if fetched_from is not None:
        return fetched_from == "same-origin"
    origin = request.headers.get("origin")
    if origin is None:
        return False
    return origin == f"{request.url.scheme}://{request.url.netloc}" or (
        public_url is not None and origin == _origin_of(public_url)
    )


def _origin_of(url: str) -> str | None:
    """A URL's origin as a browser writes it in `Origin` (no default port, lower case)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in ("http", "https") or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[scheme]
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


def require_csrf(request: Request, submitted: object) -> None:
    """Refuse (403) a form whose token is missing or not this session's."""
    expected = request.session.get(CSRF_SESSION_KEY)
    if (
        not isinstance(expected, str)
        or not isinstance(submitted, str)
        or not hmac.compare_digest(expected.encode(), submitted.encode())
    ):
        raise CsrfRefused()


# --- rate limits ----------------------------------------------------------------------------


class RateLimited(HTTPException):
    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(
            status_code=429,
            detail="rate-limited",
            headers={"Retry-After": str(retry_after_seconds)},
        )
        self.retry_after_seconds = retry_after_seconds

    @property
    def wait(self) -> str:
        """How long to wait, in whole minutes, as a person reads it: "1 minute", "3 minutes"."""
        minutes = max(1, (self.retry_after_seconds + 59) // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"


@dataclass(frozen=True)
class RateLimitRules:
    """How often one client may do each thing (strings in the `limits` notation)."""

    submissions: str = "10/10 minutes"
    status_lookups: str = "10/15 minutes"
    # Per reference, whoever asks: a distributed guesser is slowed as much as a single one.
    lookups_per_reference: str = "10/15 minutes"
    learner_actions: str = "30/10 minutes"
    # Staff sign-in links asked for: per client address, and per email address.
    sign_ins: str = "5/15 minutes"


class MovingWindows:
    """For each key, the moments of its attempts still inside its window, in this process's memory.

    The `limits` library's own in-memory store starts a timer thread on almost every hit to expire
    old entries, which cost the form more than the count itself; here a key's old attempts are
    dropped when it is next hit, and keys gone quiet are swept out every `sweep_seconds`.
    """

    def __init__(
        self, *, monotonic: Callable[[], float] = time.monotonic, sweep_seconds: float = 60.0
    ) -> None:
        self._monotonic = monotonic
        self._sweep_seconds = sweep_seconds
        self._lock = threading.Lock()
        # key -> (window in seconds, moments of the attempts inside it, oldest first)
        self._attempts: dict[tuple[str, ...], tuple[float, deque[float]]] = {}
        self._next_sweep = monotonic() + sweep_seconds

    def hit(self, key: tuple[str, ...], *, allowed: int, window: float) -> float | None:
        """Count one attempt, or refuse it when `allowed` already fall inside the window:
        then return the seconds until the oldest of them leaves it."""
        if allowed <= 0:  # a rule of "0/..." switches the thing off: always refused
            return window
        with self._lock:
            now = self._monotonic()
            if now >= self._next_sweep:
                self._sweep(now)
            _, attempts = self._attempts.setdefault(key, (window, deque()))
            while attempts and attempts[0] <= now - window:
                attempts.popleft()
            if len(attempts) >= allowed:
                return attempts[0] + window - now
            attempts.append(now)
            return None

    def keys(self) -> int:
        """How many keys are held (tests: quiet ones must not pile up)."""
        return len(self._attempts)

    def reset(self) -> None:
        with self._lock:
            self._attempts.clear()

    def _sweep(self, now: float) -> None:
        self._attempts = {
            key: (window, attempts)
            for key, (window, attempts) in self._attempts.items()
            if attempts and attempts[-1] > now - window
        }
        self._next_sweep = now + self._sweep_seconds


class RateLimits:
    """Moving-window limits held in this process's memory.

    With several instances each keeps its own window, so the effective limit is per instance;
    the follow-up codes are long enough (see intake.service) that this still leaves guessing
    hopeless.
    """

    def __init__(
        self, key: str, rules: RateLimitRules | None = None, *, windows: MovingWindows | None = None
    ) -> None:
        self._key = key.encode()
        self._windows = windows or MovingWindows()
        rules = rules or RateLimitRules()
        self._items: dict[str, RateLimitItem] = {
            "submissions": parse(rules.submissions),
            "status_lookups": parse(rules.status_lookups),
            "lookups_per_reference": parse(rules.lookups_per_reference),
            "learner_actions": parse(rules.learner_actions),
            "sign_ins": parse(rules.sign_ins),
        }

    def client(self, request: Request) -> str:
        """A keyed hash of the client's address: never stored, never logged."""
        host = request.client.host if request.client else "unknown"
        return hmac.new(self._key, host.encode(), hashlib.sha256).hexdigest()[:32]

    def hit(self, what: str, *identifiers: str) -> None:
        """Count one attempt; raise RateLimited when the window is full."""
        item = self._items[what]
        wait = self._windows.hit(
            (what, *identifiers), allowed=item.amount, window=float(item.get_expiry())
        )
        if wait is not None:
            raise RateLimited(max(1, int(wait) + 1))

    def reset(self) -> None:
        """Forget every window (tests, and an operator's restart does the same)."""
        self._windows.reset()


# --- middleware -----------------------------------------------------------------------------


# A year; the organisation's other hosts are not ours to bind, so no includeSubDomains.
STRICT_TRANSPORT_SECURITY = "max-age=31536000"


class SecurityHeaders:
    """CSP and friends on every response; no-store on every learner page after the start page,
    and on every staff page and API answer. Served at an https public address (`https`), the
    browser is also told to use only https here from then on (HSTS), so a learner on a café's
    network who types the address is not sent over plain http first."""

    def __init__(self, app: ASGIApp, *, https: bool = False) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
                headers.setdefault(
                    "Permissions-Policy",
                    "camera=(), microphone=(), geolocation=(), interest-cohort=()",
                )
                if self.https:
                    headers.setdefault("Strict-Transport-Security", STRICT_TRANSPORT_SECURITY)
                if path.startswith(("/concerns", "/staff", "/api/v1")):
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """413 for a request body over the limit, whether or not it declares its length."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int = MAX_BODY_BYTES,
        larger: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.default_max_bytes = max_bytes
        # Paths allowed more (Slack posts a whole modal's view back with each submission).
        self.larger = dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.larger.get(scope.get("path", ""), self.default_max_bytes)
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _plain(send, 400, b"Bad Request")
                    return
                if declared > max_bytes:
                    await _plain(send, 413, b"The form was too large to send.")
                    return
        received = 0
        answering = Answering(send)
        # Found too large before any answer began: the 413 is the answer, whatever the app
        # made of the failed read (FastAPI answers it with its own 400 for a JSON body).
        refused = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    refused = refused or not answering.started
                    raise _TooLarge()
            return message

        async def send_unless_refused(message: Message) -> None:
            if not refused:
                await answering(message)

        with contextlib.suppress(_TooLarge):
            await self.app(scope, counting_receive, send_unless_refused)
        if refused:
            await _plain(send, 413, b"The form was too large to send.")


class Answering:
    """`send`, noting whether the answer has begun: after that no other answer can be given."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


class _TooLarge(Exception):
    pass


async def _plain(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class AccessLog:
    """One line per request: method, route, status and time; no address, agent or query."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        answered: float | None = None

        async def recording_send(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                # The answer is complete: work left to a background task is not its time.
                answered = time.perf_counter()

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            # The route's template (/concerns/status/link/{token}), never the path itself.
            name = getattr(route, "path", None) or "(no route)"
            log.info(
                "%s %s %d %.0fms",
                scope["method"],
                name,
                status,
                ((answered if answered is not None else time.perf_counter()) - started) * 1000,
            )
