"""Staff sign-in, in process on SQLite: the emailed link (asked for, opened, used once, timed
out, tampered with), sign-out, session expiry, the `next` path, and OpenID Connect against a
small fake provider on loopback."""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import delete
from sqlmodel import col, func, select

from app.staff import sign_in as sign_in_pages
from app.staff.auth import STAFF_COOKIE, SignedIn, signed_in_by_cookie
from app.staff.context import StaffContext
from app.staff.sign_in import safe_next
from notifications.email import OutgoingEmail, compose
from notifications.outbox import dispatch_due
from notifications.senders import MaildirSender
from notifications.threading import MailThreading
from storage import migrate
from storage import staff as accounts
from storage.db import create_db_engine, transaction
from storage.outbox import SqlOutboxStore
from storage.tables import Contact, OutboxMessage, StaffMember, StaffSession
from tests.integration.helpers import MONDAY_MORNING
from tests.integration.staff_world import Clock, StaffWorld, build_world
from tests.integration.webclient import WebClient, make_app, web_client

LINK = re.compile(r"https?://[^/\s]+(/staff/sign-in/[A-Za-z0-9_.\-]+)")
# The moment build_world leaves its clock at.
START = MONDAY_MORNING + timedelta(hours=1)
GONE = "This sign-in link has expired or has already been used"


@dataclass
class Browsers:
    """Browsers on fresh apps over one world; each keeps its app, to ask it who is signed in."""

    world: StaffWorld
    stack: ExitStack = field(default_factory=ExitStack)

    def open(self, **settings: Any) -> tuple[WebClient, FastAPI]:
        app = make_app(self.world.engine, clock=self.world.clock, **settings)
        return self.stack.enter_context(web_client(app)), app


@pytest.fixture(scope="module")
def shared_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaffWorld]:
    """One world for the module (building it is most of a test's time); each test starts at
    the world's own moment, with no sign-in emails queued."""
    engine = create_db_engine(f"sqlite:///{tmp_path_factory.mktemp('db') / 'concerns.db'}")
    migrate.upgrade(engine)
    made = build_world(engine)
    yield made
    made.close()
    engine.dispose()


@pytest.fixture
def world(shared_world: StaffWorld) -> StaffWorld:
    shared_world.clock.now = START
    with transaction(shared_world.engine) as session:
        session.execute(delete(OutboxMessage).where(col(OutboxMessage.kind) == "staff_sign_in"))
    return shared_world


@pytest.fixture
def browsers(world: StaffWorld) -> Iterator[Browsers]:
    opened = Browsers(world)
    with opened.stack:
        yield opened


def staff_context(app: FastAPI) -> StaffContext:
    context: StaffContext = app.state.staff
    return context


def cookie_of(client: WebClient) -> str | None:
    value: str | None = client._client.cookies.get(STAFF_COOKIE)
    return value


def who_is_signed_in(app: FastAPI, client: WebClient) -> SignedIn | None:
    return signed_in_by_cookie(staff_context(app), cookie_of(client))


def sign_in_emails(world: StaffWorld) -> list[OutboxMessage]:
    with transaction(world.engine) as session:
        return list(
            session.exec(
                select(OutboxMessage)
                .where(OutboxMessage.kind == "staff_sign_in")
                .order_by(col(OutboxMessage.id))
            )
        )


def session_count(world: StaffWorld) -> int:
    with transaction(world.engine) as session:
        return int(session.exec(select(func.count()).select_from(StaffSession)).one())


def ask_for_link(client: WebClient, email: str, next_path: str = "/staff") -> httpx.Response:
    token = client.csrf(f"/staff/sign-in?{urlencode({'next': next_path})}")
    return client.post(
        "/staff/sign-in", data={"csrf_token": token, "email": email, "next": next_path}
    )


def link_path(world: StaffWorld, email: str) -> str:
    row = [m for m in sign_in_emails(world) if m.recipient_address == email][-1]
    found = LINK.search(row.body_text)
    assert found, row.body_text
    assert row.body_html is not None and found.group(1) in row.body_html
    return found.group(1)


def use_link(client: WebClient, path: str) -> httpx.Response:
    """Press the link page's button (the token is the session's, so any page's form will do:
    a used link's page has no form)."""
    return client.post(path, data={"csrf_token": client.csrf("/staff/sign-in")})


def test_a_link_signs_in_once(world: StaffWorld, browsers: Browsers) -> None:
    client, app = browsers.open()
    email = world.emails["dean"].upper()  # addresses are matched whatever their case

    asked = ask_for_link(client, email, "/staff/concerns?page=2")
    assert asked.status_code == 200
    assert "Check your email" in asked.text

    (row,) = sign_in_emails(world)
    assert (row.channel, row.recipient_role, row.status) == ("email", "staff", "pending")
    assert row.recipient_address == world.emails["dean"]
    assert row.send_after == row.created_at  # goes at once, whatever the working hours
    path = link_path(world, world.emails["dean"])
    # The dispatcher can send it, marked as automatic mail like all of ours.
    mail = compose(
        cast(OutgoingEmail, row),
        threading=MailThreading(secret=b"test", mailbox="concerns@example.nhs.uk"),
        from_address="concerns@example.nhs.uk",
        now=world.clock(),
    )
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["To"] == world.emails["dean"] and "sign-in link" in mail["Subject"]

    # Opening the link (as a mail scanner would) signs nobody in and uses nothing up.
    for _ in range(2):
        opened = client.get(path)
        assert opened.status_code == 200
        assert 'action="' + path + '"' in opened.text and ">\n  Sign in\n</button>" in opened.text
    assert cookie_of(client) is None
    # Without the form's token the button is refused, and the link is not used up.
    assert client.post(path).status_code == 403
    assert cookie_of(client) is None
    csrf_before = client.csrf(path)

    used = client.post(path, data={"csrf_token": csrf_before})
    assert used.status_code == 303
    assert used.headers["location"] == "/staff/concerns?page=2"
    set_cookie = used.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie and "path=/" in set_cookie
    signed_in = who_is_signed_in(app, client)
    assert signed_in is not None and signed_in.email == world.emails["dean"]
    # The CSRF token seen before signing in is replaced.
    assert client.csrf("/staff/sign-in") != csrf_before

    # The second use is refused, and opens no session.
    sessions = session_count(world)
    other, _ = browsers.open()
    assert other.get(path).status_code == 410
    again = use_link(other, path)
    assert again.status_code == 410 and GONE in again.text
    assert cookie_of(other) is None and session_count(world) == sessions


def test_a_link_sent_before_the_secret_key_changed_works_while_that_key_is_listed(
    world: StaffWorld, browsers: Browsers
) -> None:
    before, _ = browsers.open(secret_key="the-key-before")
    ask_for_link(before, world.emails["dean"])
    path = link_path(world, world.emails["dean"])
    # Left out of the previous keys (as after a leak), the key's links are refused, unused.
    revoked, revoked_app = browsers.open(secret_key="the-key-now")
    refused = use_link(revoked, path)
    assert refused.status_code == 410 and GONE in refused.text
    assert who_is_signed_in(revoked_app, revoked) is None
    rotated, app = browsers.open(secret_key="the-key-now", previous_secret_keys="the-key-before")
    assert use_link(rotated, path).status_code == 303
    signed_in = who_is_signed_in(app, rotated)
    assert signed_in is not None and signed_in.email == world.emails["dean"]
    # A link asked for now is signed with the current key: it needs no previous key.
    asking, _ = browsers.open(secret_key="the-key-now", previous_secret_keys="the-key-before")
    ask_for_link(asking, world.emails["supervisor"])
    fresh = link_path(world, world.emails["supervisor"])
    only_current, current_app = browsers.open(secret_key="the-key-now")
    assert use_link(only_current, fresh).status_code == 303
    assert who_is_signed_in(current_app, only_current) is not None


def test_once_sent_the_link_is_in_the_email_and_no_longer_in_the_database(
    tmp_path: Path,
) -> None:
    """On a database of its own: dispatching the shared world would send its other mail too."""
    engine = create_db_engine(f"sqlite:///{tmp_path / 'concerns.db'}")
    migrate.upgrade(engine)
    clock = Clock(START)
    email = "admin@example.nhs.uk"
    with transaction(engine) as session:
        accounts.save_staff(
            session, email=email, role="admin", scope=None, follows_directory=False, now=START
        )
    maildir = tmp_path / "outbox"
    with web_client(make_app(engine, clock=clock)) as client:
        assert ask_for_link(client, email).status_code == 200
        with transaction(engine) as session:
            (queued,) = session.exec(select(OutboxMessage))
        found = LINK.search(queued.body_text)
        assert found is not None
        path = found.group(1)

        report = dispatch_due(
            store=SqlOutboxStore(engine),
            sender=MaildirSender(maildir),
            threading=MailThreading(secret=b"test", mailbox="concerns@example.nhs.uk"),
            from_address="concerns@example.nhs.uk",
            now=clock(),
        )
        assert report.sent == 1 and report.errors == []

        (delivered,) = (maildir / "new").iterdir()
        mail = message_from_bytes(delivered.read_bytes(), policy=default)
        assert isinstance(mail, EmailMessage)
        for part in ("plain", "html"):
            body = mail.get_body(preferencelist=(part,))
            assert body is not None and path in body.get_content()

        with transaction(engine) as session:
            (sent,) = session.exec(select(OutboxMessage))
        assert sent.status == "sent" and sent.recipient_address == email
        stored = json.dumps(sent.model_dump(mode="json"))
        assert path.rsplit("/", 1)[1] not in stored and "/staff/sign-in/" not in stored
        assert sent.body_text == "[sign-in link removed after sending]"

        # The emailed link still works: only the stored copy went.
        used = use_link(client, path)
        assert used.status_code == 303 and cookie_of(client) is not None
    engine.dispose()


def test_a_link_given_up_is_wiped_too_and_other_mail_is_kept_whole(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'concerns.db'}")
    migrate.upgrade(engine)
    secret = "http://127.0.0.1:8000/staff/sign-in/not-a-real-token"
    with transaction(engine) as session:
        for kind in ("staff_sign_in", "acknowledgement"):
            session.add(
                OutboxMessage(
                    idempotency_key=f"test:{kind}",
                    channel="email",
                    kind=kind,
                    recipient_role="staff",
                    recipient_address="admin@example.nhs.uk",
                    subject="Subject",
                    body_text=f"text {secret}",
                    body_html=f"<p>{secret}</p>",
                    created_at=START,
                    send_after=START,
                )
            )
    store = SqlOutboxStore(engine)
    claimed = {m.kind: m for m in store.claim_due(now=START, limit=10, lease=timedelta(minutes=5))}
    link, other = claimed["staff_sign_in"], claimed["acknowledgement"]
    store.mark_failed(message_id=link.id, claim_token=link.claim_token, error="refused")
    assert store.mark_sent(message_id=other.id, claim_token=other.claim_token, now=START)
    with transaction(engine) as session:
        rows = {m.kind: m for m in session.exec(select(OutboxMessage))}
    assert rows["staff_sign_in"].status == "failed"
    assert secret not in (rows["staff_sign_in"].body_text + str(rows["staff_sign_in"].body_html))
    assert rows["acknowledgement"].status == "sent"
    assert rows["acknowledgement"].body_text == f"text {secret}"
    assert rows["acknowledgement"].body_html == f"<p>{secret}</p>"
    engine.dispose()


def test_a_directory_contact_gets_an_account_and_an_unknown_address_nothing(
    world: StaffWorld, browsers: Browsers
) -> None:
    client, _ = browsers.open()
    unknown = ask_for_link(client, "nobody.here@example.nhs.uk")
    known = ask_for_link(client, world.emails["supervisor"])
    # The same words either way: the page never says which addresses have accounts.
    assert unknown.status_code == known.status_code == 200
    assert unknown.text.replace("nobody.here@example.nhs.uk", "X") == known.text.replace(
        world.emails["supervisor"], "X"
    )
    assert [m.recipient_address for m in sign_in_emails(world)] == [world.emails["supervisor"]]

    # A contact in the directory with no account yet: the account is made, following the
    # directory, and the link signs them in.
    with transaction(world.engine) as session:
        contacts = session.exec(
            select(Contact).where(col(Contact.active), col(Contact.email).is_not(None))
        ).all()
        fresh = next(
            str(c.email).lower()
            for c in contacts
            if accounts.staff_by_email(session, str(c.email)) is None
        )
    ask_for_link(client, fresh)
    with transaction(world.engine) as session:
        member = accounts.staff_by_email(session, fresh)
        assert member is not None and member.follows_directory and member.scope is None
    signer, app = browsers.open()
    assert use_link(signer, link_path(world, fresh)).status_code == 303
    signed_in = who_is_signed_in(app, signer)
    assert signed_in is not None and signed_in.email == fresh


def test_the_answer_goes_before_the_address_is_looked_up(
    world: StaffWorld, browsers: Browsers
) -> None:
    """A member's address and an unknown one are answered in the same time: the page is sent
    before the address is looked up, and only then is a member's link made and queued."""
    client, app = browsers.open()
    token = client.csrf("/staff/sign-in")
    body = urlencode(
        {"csrf_token": token, "email": world.emails["supervisor"], "next": "/staff"}
    ).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/staff/sign-in",
        "raw_path": b"/staff/sign-in",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(body)).encode()),
            (b"cookie", client.cookie_header().encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    requests = [{"type": "http.request", "body": body, "more_body": False}]
    answered: list[tuple[int, int]] = []  # (status, sign-in emails queued) as the page ends
    status = 0

    async def receive() -> dict[str, Any]:
        return requests.pop(0) if requests else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif not message.get("more_body", False):
            answered.append((status, len(sign_in_emails(world))))

    async def call() -> None:
        await app(scope, receive, send)

    client.run(call())
    assert answered == [(200, 0)]
    assert [m.recipient_address for m in sign_in_emails(world)] == [world.emails["supervisor"]]


def test_a_link_that_could_not_be_queued_is_counted_and_logged_without_the_address(
    world: StaffWorld,
    browsers: Browsers,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    address = world.emails["supervisor"]

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"the database refused {args[1]!r}")

    monkeypatch.setattr(sign_in_pages, "member_for", broken)
    client, _ = browsers.open()
    with caplog.at_level(logging.ERROR):
        answer = ask_for_link(client, address)
    # The member is told what anyone is told; nothing went, and the operator can see it.
    assert answer.status_code == 200 and "Check your email" in answer.text
    assert sign_in_emails(world) == []
    assert "concerns_staff_sign_in_failures_total 1.0" in client.get("/metrics").text
    logged = [record.getMessage() for record in caplog.records]
    assert "staff sign-in: no link was queued (RuntimeError)" in logged
    assert not any(address in line for line in logged)


def test_errors_csrf_and_rate_limits(world: StaffWorld, browsers: Browsers) -> None:
    client, _ = browsers.open(sign_in_rate_limit="3/15 minutes")
    token = client.csrf("/staff/sign-in")

    # No CSRF token: refused, nothing queued (and not counted against the limit).
    refused = client.post("/staff/sign-in", data={"email": world.emails["dean"]})
    assert refused.status_code == 403
    assert sign_in_emails(world) == []

    empty = client.post("/staff/sign-in", data={"csrf_token": token, "email": " "})
    assert empty.status_code == 400
    assert "Error: Sign in" in empty.text and "Enter your work email address" in empty.text
    wrong = client.post("/staff/sign-in", data={"csrf_token": token, "email": "not an email"})
    assert wrong.status_code == 400
    assert "correct format" in wrong.text and 'value="not an email"' in wrong.text
    assert 'href="#email"' in wrong.text

    # Every asking counts, a mistaken one too: the third is allowed, the fourth is not.
    assert ask_for_link(client, world.emails["dean"]).status_code == 200
    limited = ask_for_link(client, world.emails["dean"])
    assert limited.status_code == 429 and "Retry-After" in limited.headers
    assert len(sign_in_emails(world)) == 1


def test_each_email_address_is_rate_limited_too(world: StaffWorld, browsers: Browsers) -> None:
    client, app = browsers.open(sign_in_rate_limit="3/15 minutes")
    email = world.emails["quality"]
    # Three askings for this address from elsewhere fill its window.
    for _ in range(3):
        staff_context(app).limits.hit("sign_ins", "email:" + accounts.digest(email))
    assert ask_for_link(client, email.upper()).status_code == 429
    assert sign_in_emails(world) == []
    assert ask_for_link(client, world.emails["dean"]).status_code == 200


def test_an_old_or_tampered_link_is_refused(world: StaffWorld, browsers: Browsers) -> None:
    client, _ = browsers.open()
    sessions = session_count(world)
    ask_for_link(client, world.emails["admin"])
    path = link_path(world, world.emails["admin"])

    token = path.rsplit("/", 1)[1]
    changed = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    for bad in (f"/staff/sign-in/{changed}", "/staff/sign-in/not-a-token"):
        assert client.get(bad).status_code == 410
        assert use_link(client, bad).status_code == 410

    world.clock.now += timedelta(minutes=15, seconds=1)
    opened = client.get(path)
    assert opened.status_code == 410 and GONE in opened.text
    assert 'href="/staff/sign-in"' in opened.text
    assert client.post(path, data={"csrf_token": client.csrf("/staff/sign-in")}).status_code == 410
    assert cookie_of(client) is None and session_count(world) == sessions


@pytest.mark.parametrize(
    "asked",
    [
        "https://evil.example/staff",
        "//evil.example/staff",
        "/\\evil.example",
        "/staff\\..\\x",
        "/elsewhere",
        "javascript:alert(1)",
    ],
)
def test_next_never_leaves_the_staff_side(asked: str) -> None:
    assert safe_next(asked) == "/staff"
    assert safe_next("/staff/concerns/LC-2026-000001?tab=history") == (
        "/staff/concerns/LC-2026-000001?tab=history"
    )


def test_a_link_asked_for_with_an_offsite_next_goes_home(
    world: StaffWorld, browsers: Browsers
) -> None:
    client, _ = browsers.open()
    page = client.get("/staff/sign-in?next=//evil.example/staff")
    assert 'name="next" value="/staff"' in page.text
    ask_for_link(client, world.emails["quality"], "https://evil.example/")
    used = use_link(client, link_path(world, world.emails["quality"]))
    assert used.status_code == 303 and used.headers["location"] == "/staff"


def test_sign_out_and_session_expiry(world: StaffWorld, browsers: Browsers) -> None:
    client, app = browsers.open(staff_session_idle_minutes=30, staff_session_hours=1)
    ask_for_link(client, world.emails["school_lead"])
    use_link(client, link_path(world, world.emails["school_lead"]))
    assert who_is_signed_in(app, client) is not None
    value = cookie_of(client)
    assert value is not None

    # Sign-out needs the form's token; then the session ends and the cookie goes.
    assert client.post("/staff/sign-out").status_code == 403
    assert who_is_signed_in(app, client) is not None
    out = client.post("/staff/sign-out", data={"csrf_token": client.csrf("/staff/sign-in")})
    assert out.status_code == 303 and out.headers["location"] == "/staff/sign-in"
    assert cookie_of(client) is None
    assert "You have signed out" in client.get("/staff/sign-in").text
    assert signed_in_by_cookie(staff_context(app), value) is None

    # Idle: 30 minutes without use ends a session.
    ask_for_link(client, world.emails["school_lead"])
    use_link(client, link_path(world, world.emails["school_lead"]))
    world.clock.now += timedelta(minutes=29)
    assert who_is_signed_in(app, client) is not None
    world.clock.now += timedelta(minutes=30)
    assert who_is_signed_in(app, client) is None

    # Absolute: used every 25 minutes, it still ends an hour after signing in.
    ask_for_link(client, world.emails["school_lead"])
    use_link(client, link_path(world, world.emails["school_lead"]))
    for _ in range(2):
        world.clock.now += timedelta(minutes=25)
        assert who_is_signed_in(app, client) is not None
    world.clock.now += timedelta(minutes=11)
    assert who_is_signed_in(app, client) is None


def test_an_account_switched_off_gets_no_link(world: StaffWorld, browsers: Browsers) -> None:
    with transaction(world.engine) as session:
        member = session.get(StaffMember, world.staff_ids["other_dean"])
        assert member is not None
        member.active = False
        session.add(member)
    try:
        client, _ = browsers.open()
        assert "Check your email" in ask_for_link(client, world.emails["other_dean"]).text
        assert sign_in_emails(world) == []
    finally:
        with transaction(world.engine) as session:
            member = session.get(StaffMember, world.staff_ids["other_dean"])
            assert member is not None
            member.active = True
            session.add(member)


# --- OpenID Connect ---------------------------------------------------------------------------


@dataclass
class FakeProvider:
    """An OpenID provider on loopback: /authorize sends the browser straight back with a code;
    /token answers with an RS256 ID token for `email`."""

    client_id: str
    client_secret: str
    email: str = ""
    claims: dict[str, Any] = field(default_factory=dict)  # more claims in the ID token
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, auto_kid=True))
    codes: dict[str, str] = field(default_factory=dict)  # code -> nonce
    base: str = ""

    def handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if parts.path == "/.well-known/openid-configuration":
                    self.answer(200, provider.metadata())
                elif parts.path == "/jwks":
                    self.answer(200, {"keys": [provider.key.as_dict(private=False)]})
                elif parts.path == "/authorize":
                    assert query["client_id"] == provider.client_id
                    assert query["response_type"] == "code"
                    code = secrets.token_urlsafe(16)
                    provider.codes[code] = query["nonce"]
                    back = (
                        query["redirect_uri"]
                        + "?"
                        + urlencode({"code": code, "state": query["state"]})
                    )
                    self.answer(302, None, {"Location": back})
                else:
                    self.answer(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                nonce = provider.codes.pop(form.get("code", ""), None)
                if self.path != "/token" or nonce is None:
                    self.answer(400, {"error": "invalid_grant"})
                    return
                now = int(time.time())
                claims = {
                    "iss": provider.base,
                    "sub": "user-1",
                    "aud": provider.client_id,
                    "iat": now,
                    "exp": now + 300,
                    "nonce": nonce,
                    "email": provider.email,
                    **provider.claims,
                }
                id_token = jwt.encode(
                    {"alg": "RS256", "kid": provider.key.kid}, claims, provider.key
                )
                self.answer(
                    200,
                    {
                        "access_token": secrets.token_urlsafe(16),
                        "token_type": "Bearer",
                        "expires_in": 300,
                        "id_token": id_token,
                    },
                )

        return Handler

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.base,
            "authorization_endpoint": f"{self.base}/authorize",
            "token_endpoint": f"{self.base}/token",
            "jwks_uri": f"{self.base}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    fake = FakeProvider(client_id="concerns-staff", client_secret=secrets.token_urlsafe(16))
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    fake.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def oidc_browser(browsers: Browsers, provider: FakeProvider) -> tuple[WebClient, FastAPI]:
    return browsers.open(
        oidc_metadata_url=f"{provider.base}/.well-known/openid-configuration",
        oidc_client_id=provider.client_id,
        oidc_client_secret=provider.client_secret,
        oidc_provider_name="Fake ID",
    )


def through_provider(client: WebClient, start: str) -> httpx.Response:
    """Start the OIDC sign-in, let the provider send the browser back, and call back."""
    to_provider = client.get(start)
    assert to_provider.status_code == 302
    back = httpx.get(to_provider.headers["location"], follow_redirects=False)
    assert back.status_code == 302
    callback = urlsplit(back.headers["location"])
    assert callback.path == "/staff/sign-in/oidc/callback"
    return client.get(f"{callback.path}?{callback.query}")


def test_oidc_signs_in_a_directory_contact(
    world: StaffWorld, browsers: Browsers, provider: FakeProvider
) -> None:
    client, app = oidc_browser(browsers, provider)
    page = client.get("/staff/sign-in?next=/staff/dashboard")
    assert "Sign in with Fake ID" in page.text
    assert 'href="/staff/sign-in/oidc?next=/staff/dashboard"' in page.text

    provider.email = world.emails["quality"].upper()
    done = through_provider(client, "/staff/sign-in/oidc?next=/staff/dashboard")
    assert done.status_code == 303 and done.headers["location"] == "/staff/dashboard"
    signed_in = who_is_signed_in(app, client)
    assert signed_in is not None and signed_in.email == world.emails["quality"]

    # A callback replayed (the state is used up) signs nobody in.
    other, _ = oidc_browser(browsers, provider)
    assert other.get("/staff/sign-in/oidc/callback?code=x&state=y").status_code == 400
    assert cookie_of(other) is None


def test_oidc_refuses_an_unknown_email(
    world: StaffWorld, browsers: Browsers, provider: FakeProvider
) -> None:
    client, _ = oidc_browser(browsers, provider)
    provider.email = "stranger@example.org"
    sessions = session_count(world)
    refused = through_provider(client, "/staff/sign-in/oidc")
    assert refused.status_code == 403 and "does not have access" in refused.text
    assert cookie_of(client) is None and session_count(world) == sessions
    with transaction(world.engine) as session:
        assert accounts.staff_by_email(session, "stranger@example.org") is None


@pytest.mark.parametrize("verified", [False, "false", "False", 0, "0", "no", None])
def test_oidc_refuses_an_email_the_provider_has_not_verified(
    world: StaffWorld, browsers: Browsers, provider: FakeProvider, verified: object
) -> None:
    """A directory contact's address, typed in at a provider that did not verify it."""
    client, _ = oidc_browser(browsers, provider)
    provider.email = world.emails["dean"]
    provider.claims = {"email_verified": verified, "preferred_username": world.emails["dean"]}
    sessions = session_count(world)
    refused = through_provider(client, "/staff/sign-in/oidc")
    assert refused.status_code == 403 and "has not verified your email address" in refused.text
    assert cookie_of(client) is None and session_count(world) == sessions


def test_oidc_with_email_verified_trusts_only_the_email_claim(
    world: StaffWorld, browsers: Browsers, provider: FakeProvider
) -> None:
    """`email_verified` vouches for `email` alone: a user-chosen `preferred_username` that looks
    like a dean's address does not stand in for it."""
    client, _ = oidc_browser(browsers, provider)
    provider.email = ""
    provider.claims = {"email_verified": True, "preferred_username": world.emails["dean"]}
    sessions = session_count(world)
    refused = through_provider(client, "/staff/sign-in/oidc")
    assert refused.status_code == 400 and "did not give us your email address" in refused.text
    assert cookie_of(client) is None and session_count(world) == sessions


def test_oidc_without_email_verified_reads_entra_ids_claims(
    world: StaffWorld, browsers: Browsers, provider: FakeProvider
) -> None:
    client, app = oidc_browser(browsers, provider)
    provider.email = ""
    provider.claims = {"preferred_username": world.emails["dean"]}
    assert through_provider(client, "/staff/sign-in/oidc").status_code == 303
    signed_in = who_is_signed_in(app, client)
    assert signed_in is not None and signed_in.email == world.emails["dean"]


def test_oidc_accepts_a_verified_email_and_one_from_a_provider_that_does_not_say(
    world: StaffWorld, browsers: Browsers, provider: FakeProvider
) -> None:
    for claims in ({"email_verified": True}, {"email_verified": "TRUE"}, {}):
        client, app = oidc_browser(browsers, provider)
        provider.email = world.emails["dean"]
        provider.claims = claims
        done = through_provider(client, "/staff/sign-in/oidc")
        assert done.status_code == 303, claims
        signed_in = who_is_signed_in(app, client)
        assert signed_in is not None and signed_in.email == world.emails["dean"]


def test_oidc_routes_are_absent_without_settings(browsers: Browsers) -> None:
    client, _ = browsers.open()
    assert "Sign in with" not in client.get("/staff/sign-in").text
    assert client.get("/staff/sign-in/oidc").status_code == 404
    assert client.get("/staff/sign-in/oidc/callback?code=x&state=y").status_code == 404
