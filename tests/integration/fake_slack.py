"""A local fake of the Slack Web API, and Slack's signed requests, for the Slack tests.

`FakeSlackApi` is a real HTTP server on a free loopback port, in a thread, that records every call
(method, arguments, token) and answers like Slack does; it can be told to answer 429 with a
Retry-After for a number of calls, to answer a method's next calls with an error (`fail`), or
to close every connection unanswered (`unreachable`). Point the bot's
`WebClient(base_url=fake.url)` at it.

`signed(body, secret, at)` builds the headers Slack sends, with slack_sdk's own
`SignatureVerifier`, so the app's signature check runs for real.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode

from slack_sdk.signature import SignatureVerifier

BOT_USER_ID = "UBOTCONCERNS"
TEAM_ID = "T0EXAMPLE1"


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    token: str | None


@dataclass
class FakeSlackApi:
    """Records calls; answers auth.test, chat.*, views.*, users.*, conversations.open."""

    calls: list[Call] = field(default_factory=list)
    # email -> Slack user id, for users.lookupByEmail
    users_by_email: dict[str, str] = field(default_factory=dict)
    # method -> [remaining 429 answers, Retry-After seconds]
    throttled: dict[str, list[int]] = field(default_factory=dict)
    # method -> a function of the call's arguments giving the answer (overrides the default)
    answers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = field(default_factory=dict)
    # method -> the errors its next calls answer, in order: [(HTTP status, Slack error code)]
    failing: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    # While True, every connection is closed without an answer (Slack cannot be reached).
    unreachable: bool = False
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ts: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def throttle(self, method: str, *, times: int, retry_after: int = 1) -> None:
        """Answer the next `times` calls of `method` with 429 and a Retry-After."""
        self.throttled[method] = [times, retry_after]

    def fail(self, method: str, error: str, *, times: int = 1, status: int = 200) -> None:
        """Answer the next `times` calls of `method` with {"ok": false, "error": error}."""
        self.failing.setdefault(method, []).extend([(status, error)] * times)

    def called(self, method: str) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 10.0) -> list[Call]:
        """The calls of a method once there are at least `count` (Bolt answers Slack first and
        does the work after, in its own threads)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.called(method)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(
            f"expected {count} call(s) of {method} within {timeout}s; "
            f"got {[call.method for call in self.calls]}"
        )

    def answer(
        self, method: str, args: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            throttled = self.throttled.get(method)
            if throttled and throttled[0] > 0:
                throttled[0] -= 1
                self.calls.append(Call(method, args, token))
                return (
                    429,
                    {"ok": False, "error": "ratelimited"},
                    {"Retry-After": str(throttled[1])},
                )
            failing = self.failing.get(method)
            if failing:
                status, error = failing.pop(0)
                self.calls.append(Call(method, args, token))
                return status, {"ok": False, "error": error}, {}
            self.calls.append(Call(method, args, token))
            ts = f"1700000000.{next(self._ts):06d}"
        if method in self.answers:
            return 200, self.answers[method](args), {}
        return 200, self._default(method, args, ts), {}

    def _default(self, method: str, args: dict[str, Any], ts: str) -> dict[str, Any]:
        if method == "auth.test":
            return {
                "ok": True,
                "url": "https://example.slack.com/",
                "team": "Example",
                "user": "concerns",
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "bot_id": "B0CONCERNS",
            }
        if method == "conversations.open":
            users = str(args.get("users", ""))
            return {"ok": True, "channel": {"id": "D" + users.split(",")[0]}}
        if method in ("chat.postMessage", "chat.update"):
            channel = str(args.get("channel", ""))
            if channel.startswith("U"):
                channel = "D" + channel
            return {"ok": True, "channel": channel, "ts": args.get("ts") or ts}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": ts}
        if method in ("views.open", "views.publish", "views.update", "views.push"):
            view = args.get("view")
            if isinstance(view, str):
                view = json.loads(view)
            return {"ok": True, "view": {"id": "V0VIEW", **(view or {})}}
        if method == "users.lookupByEmail":
            email = str(args.get("email", "")).lower()
            user = self.users_by_email.get(email)
            if user is None:
                return {"ok": False, "error": "users_not_found"}
            return {"ok": True, "user": {"id": user, "profile": {"email": email}}}
        if method == "users.info":
            # The email Slack has for a user, when the test gave one (confirmed, as Slack's are).
            emails = [
                email for email, user in self.users_by_email.items() if user == args.get("user")
            ]
            profile = {"email": emails[0]} if emails else {}
            return {
                "ok": True,
                "user": {
                    "id": args.get("user"),
                    "team_id": TEAM_ID,
                    "is_email_confirmed": True,
                    "profile": profile,
                },
            }
        return {"ok": True}


@contextmanager
def running_fake_slack() -> Iterator[FakeSlackApi]:
    fake = FakeSlackApi()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8")
            if fake.unreachable:
                self.close_connection = True
                return
            if "json" in (self.headers.get("Content-Type") or ""):
                args: dict[str, Any] = json.loads(raw or "{}")
            else:
                args = {key: values[-1] for key, values in parse_qs(raw).items()}
            for key in ("blocks", "view", "attachments"):
                if isinstance(args.get(key), str):
                    with suppress(ValueError):
                        args[key] = json.loads(args[key])
            authorization = self.headers.get("Authorization") or ""
            token = authorization.removeprefix("Bearer ") or args.get("token")
            method = self.path.rstrip("/").rsplit("/", 1)[-1]
            status, body, headers = fake.answer(method, args, token)
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/api/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def signed(body: str, *, secret: str, at: float | None = None) -> dict[str, str]:
    """The headers Slack sends with a request body, signed with the app's signing secret."""
    timestamp = str(int(at if at is not None else time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
    }


def form_body(payload: dict[str, Any]) -> str:
    """An interactivity request body (buttons, modals, shortcuts): payload=<json>, form-encoded."""
    return urlencode({"payload": json.dumps(payload)})


def command_body(**fields: str) -> str:
    """A slash-command request body, form-encoded as Slack sends it."""
    return urlencode(fields)
