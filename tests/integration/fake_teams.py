"""A local mock of the Bot Framework service URL Teams gives a bot, and Teams' activities.

`FakeTeamsService` is a real HTTP server on a free loopback port, in a thread. Activities posted
to /api/messages carry its URL as their `serviceUrl`, so the SDK's connector client sends every
reply, proactive message and card update there; it records each call and answers like the
Bot Framework connector does (an id for each activity; a member's details for
`GET .../members/{id}`). It can answer 429 with a Retry-After, or fail, for a number of posts.

`TeamsUser` and the builders below make the activities Teams sends: a personal-chat message, an
`adaptiveCard/action` invoke (an Action.Execute press), the app being installed.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BOT_ID = "28:concerns-bot"
TENANT_ID = "72f988bf-0000-4000-8000-000000000001"

_ACTIVITIES = re.compile(
    r"^/v3/conversations/(?P<conversation>[^/]+)/activities(?:/(?P<id>[^/]+))?$"
)
_MEMBER = re.compile(r"^/v3/conversations/(?P<conversation>[^/]+)/members/(?P<member>[^/]+)$")


@dataclass(frozen=True)
class TeamsUser:
    """A person in Teams: their Teams id in the bot's chats, their Entra object id and email."""

    teams_id: str
    aad_object_id: str
    name: str
    email: str

    @property
    def conversation_id(self) -> str:
        """Their one-to-one chat with the bot."""
        return f"a:personal-{self.aad_object_id}"

    def account(self) -> dict[str, str]:
        return {"id": self.teams_id, "name": self.name, "aadObjectId": self.aad_object_id}


@dataclass
class Call:
    method: str  # GET | POST | PUT
    path: str
    conversation: str
    activity_id: str | None
    body: dict[str, Any]
    authorization: str | None


@dataclass
class FakeTeamsService:
    calls: list[Call] = field(default_factory=list)
    # Teams id -> the member record GET .../members/{id} answers with (email, UPN, object id).
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    # [remaining answers, status, Retry-After seconds] for the next posts of activities.
    failing: list[int] = field(default_factory=list)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def add_member(self, user: TeamsUser) -> None:
        self.members[user.teams_id] = {
            "id": user.teams_id,
            "name": user.name,
            "aadObjectId": user.aad_object_id,
            "email": user.email,
            "userPrincipalName": user.email,
            "tenantId": TENANT_ID,
        }

    def fail_posts(self, *, times: int, status: int = 429, retry_after: int = 1) -> None:
        """Answer the next `times` posts of an activity with `status` (and a Retry-After)."""
        self.failing = [times, status, retry_after]

    def sent(self, conversation: str | None = None) -> list[dict[str, Any]]:
        """The activities posted (new messages and replies), optionally in one conversation."""
        with self._lock:
            return [
                call.body
                for call in self.calls
                if call.method == "POST"
                and "/activities" in call.path
                and (conversation is None or call.conversation == conversation)
            ]

    def updates(self) -> list[Call]:
        """Cards updated in place (PUT of an activity)."""
        with self._lock:
            return [call for call in self.calls if call.method == "PUT"]

    def wait_for_sent(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.sent()
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"expected {count} activities within {timeout}s; got {self.sent()}")

    def answer(
        self, method: str, path: str, body: dict[str, Any], authorization: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        activities = _ACTIVITIES.match(path)
        member = _MEMBER.match(path)
        with self._lock:
            if activities is not None:
                self.calls.append(
                    Call(
                        method,
                        path,
                        activities["conversation"],
                        activities["id"],
                        body,
                        authorization,
                    )
                )
                if method == "POST" and self.failing and self.failing[0] > 0:
                    self.failing[0] -= 1
                    _, status, retry_after = self.failing
                    return (
                        status,
                        {"error": {"code": "Throttled"}},
                        {"Retry-After": str(retry_after)},
                    )
                if method == "PUT":
                    return 200, {"id": activities["id"]}, {}
                return 201, {"id": f"activity-{next(self._ids)}"}, {}
            if member is not None and method == "GET":
                self.calls.append(
                    Call(method, path, member["conversation"], None, {}, authorization)
                )
                record = self.members.get(member["member"])
                if record is None:
                    return 404, {"error": {"code": "MemberNotFoundInConversation"}}, {}
                return 200, record, {}
        return 404, {"error": {"code": "NotFound"}}, {}


@contextmanager
def running_fake_teams() -> Iterator[FakeTeamsService]:
    fake = FakeTeamsService()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8") if length else ""
            body: dict[str, Any] = json.loads(raw) if raw else {}
            path = self.path.split("?", 1)[0]
            status, answer, headers = fake.answer(
                method, path, body, self.headers.get("Authorization")
            )
            data = json.dumps(answer).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


_activity_ids = itertools.count(1)


def _base(user: TeamsUser, service_url: str, activity_id: str | None) -> dict[str, Any]:
    return {
        "id": activity_id or f"1700000000{next(_activity_ids):06d}",
        "channelId": "msteams",
        "serviceUrl": service_url,
        "timestamp": "2026-11-23T10:00:00.000Z",
        "from": user.account(),
        "recipient": {"id": BOT_ID, "name": "Learner concerns"},
        "conversation": {
            "id": user.conversation_id,
            "conversationType": "personal",
            "tenantId": TENANT_ID,
        },
        "channelData": {"tenant": {"id": TENANT_ID}},
    }


def message(
    user: TeamsUser, text: str, *, service_url: str, activity_id: str | None = None
) -> dict[str, Any]:
    """A message the person writes to the bot in their personal chat."""
    return {**_base(user, service_url, activity_id), "type": "message", "text": text}


def card_action(
    user: TeamsUser,
    verb: str,
    data: dict[str, Any],
    *,
    service_url: str,
    reply_to_id: str | None = None,
    activity_id: str | None = None,
) -> dict[str, Any]:
    """An Action.Execute press on one of the bot's cards (inputs are merged into `data`)."""
    activity = {
        **_base(user, service_url, activity_id),
        "type": "invoke",
        "name": "adaptiveCard/action",
        "value": {"action": {"type": "Action.Execute", "verb": verb, "data": data}},
    }
    if reply_to_id:
        activity["replyToId"] = reply_to_id
    return activity


def installed(user: TeamsUser, *, service_url: str) -> dict[str, Any]:
    """The app being added to a person's Teams (by them, or by their administrator)."""
    return {
        **_base(user, service_url, None),
        "type": "installationUpdate",
        "action": "add",
    }
