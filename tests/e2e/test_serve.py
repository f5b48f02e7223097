"""`concerns serve` as operators run it: a real process, real sockets, SIGTERM and kill -9."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import re
import signal
import smtplib
import socket
import sqlite3
import string
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine

from app.bootstrap import build
from app.metrics import Metrics
from app.settings import Settings
from app.web import create_app
from intake.received import receive_concern
from intake.submission import Channel, parse_submission
from storage import migrate
from storage.db import create_db_engine
from tests.integration.helpers import (
    concern_input,
    example_placement,
    load_example_directory,
    policy,
)
from tests.integration.test_web_form import answers

CONCERNS = Path(sys.executable).parent / "concerns"
MAILBOX = "escalating-concerns@localhost"
CRLF = b"\r\n"
START_TIMEOUT = 30.0


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports: all held open while choosing, so none is picked twice."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def on_the_wire(message: bytes) -> bytes:
    """The DATA smtplib sends for `message` (bytes), up to and including the final dot.

    smtplib sends bytes as they are (it fixes the line endings of str messages only), doubling
    a dot at the start of the message and after every LF, and ends with CRLF before the dot.
    """
    sent = re.sub(rb"(?m)^\.", b"..", message)
    return (sent if sent.endswith(CRLF) else sent + CRLF) + b"." + CRLF


def original_content(message: bytes) -> bytes:
    """What aiosmtpd's `original_content` holds for that: split on CRLF, one leading dot off."""
    lines = on_the_wire(message)[: -len(b"." + CRLF + CRLF)].split(CRLF)
    return b"".join((line[1:] if line.startswith(b".") else line) + CRLF for line in lines)


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    folder: Path
    database: Path
    http_port: int
    smtp_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def output(self) -> str:
        return (self.folder / "stdout.txt").read_text() + (self.folder / "stderr.txt").read_text()

    def smtp(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.smtp_port, local_hostname="client.test", timeout=20)

    def stop(self, *, timeout: float = 15) -> int:
        """SIGTERM, then the exit status (fails the test if it takes longer than `timeout`)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


def server_env(folder: Path, *, database: Path, http_port: int, smtp_port: int) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONCERNS_")}
    env.update(
        CONCERNS_DATABASE_URL=f"sqlite:///{database}",
        CONCERNS_HTTP_PORT=str(http_port),
        CONCERNS_SMTP_PORT=str(smtp_port),
        CONCERNS_MAILBOX_ADDRESS=MAILBOX,
        CONCERNS_OUTBOX_DIR=str(folder / "outbox"),
        CONCERNS_SWEEP_INTERVAL_SECONDS="1",
        CONCERNS_DISPATCH_INTERVAL_SECONDS="1",
    )
    return env


def start_server(
    folder: Path, *, database: Path | None = None, settings: dict[str, str] | None = None
) -> Server:
    folder.mkdir(parents=True, exist_ok=True)
    database = database or folder / "c.db"
    http_port, smtp_port = free_ports(2)
    env = server_env(folder, database=database, http_port=http_port, smtp_port=smtp_port)
    env.update(settings or {})
    # The child keeps its own copies of these descriptors; ours can close at once.
    with (folder / "stdout.txt").open("wb") as out, (folder / "stderr.txt").open("wb") as err:
        process = subprocess.Popen(
            [str(CONCERNS), "serve"],
            cwd=folder,  # away from the repository's .env
            env=env,
            stdout=out,
            stderr=err,
        )
    server = Server(process, folder, database, http_port, smtp_port)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"concerns serve exited with {process.returncode}:\n{server.output()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    process.wait()
    pytest.fail(f"concerns serve did not answer /healthz in {START_TIMEOUT}s:\n{server.output()}")


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers a test starts; any still running at the end are stopped."""
    started: list[Server] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def rows(database: Path) -> dict[str, tuple[int, bytes]]:
    """Message-ID -> (how many rows, raw) as stored."""
    with sqlite3.connect(database) as connection:
        found: dict[str, tuple[int, bytes]] = {}
        for message_id, raw in connection.execute(
            "SELECT message_id, raw FROM inbound_messages ORDER BY id"
        ):
            count = found[message_id][0] + 1 if message_id in found else 1
            found[message_id] = (count, raw)
    connection.close()
    return found


def a_message(number: int, rng: random.Random) -> tuple[str, str, bytes]:
    """(sender, Message-ID, bytes): a unique message with a random body, some lines dotted."""
    sender = f"learner{number % 7}@example.nhs.uk"
    message_id = f"<e2e-{number}-{rng.getrandbits(64):x}@example.nhs.uk>"
    lines = []
    for _ in range(rng.randint(1, 30)):
        text = "".join(rng.choices(string.ascii_letters + " .,", k=rng.randint(0, 90)))
        lines.append(("." if rng.random() < 0.1 else "") + text)
    head = (
        f"From: {sender}\r\nTo: {MAILBOX}\r\nSubject: Concern {number}\r\n"
        f"Message-ID: {message_id}\r\n\r\n"
    )
    return sender, message_id, (head + "\r\n".join(lines)).encode()


def deliver(server: Server, sender: str, message: bytes) -> bool:
    """True only if the server answered 250 to the message."""
    try:
        with server.smtp() as client:
            client.sendmail(sender, [MAILBOX], message)
        return True
    except (OSError, smtplib.SMTPException):
        return False


# --- tests --------------------------------------------------------------------------------------


def test_serve_answers_health_and_metrics_and_stores_mail(
    tmp_path: Path, servers: list[Server]
) -> None:
    server = start_server(tmp_path, settings={"CONCERNS_SMTP_MAX_CONNECTIONS_PER_CLIENT": "1"})
    servers.append(server)
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    # One connection from this address at a time, as set; another is told why.
    with server.smtp() as held, pytest.raises(smtplib.SMTPConnectError) as refused:
        assert held.noop()[0] == 250
        server.smtp()
    assert refused.value.smtp_code == 421 and b"from your address" in refused.value.smtp_error
    metrics = httpx.get(f"{server.url}/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    for name in (
        "concerns_smtp_accepted_total 0.0",
        'concerns_smtp_rejected_total{reason="too_big"} 0.0',
        'concerns_smtp_rejected_total{reason="too_many_from_client"} 1.0',
        "concerns_outbox_sent_total",
        "concerns_sweep_runs_total",
        "concerns_emails_processed_total",
        'concerns_inbound_messages{status="received"}',
        'concerns_outbox_messages{status="pending"}',
        "concerns_database_up 1.0",
    ):
        assert name in metrics.text

    sender, message_id, message = a_message(1, random.Random(1))
    with server.smtp() as client:
        assert client.sendmail(sender, [MAILBOX], message) == {}
    assert rows(server.database)[message_id] == (1, original_content(message))
    assert "concerns_smtp_accepted_total 1.0" in httpx.get(f"{server.url}/metrics").text

    # A second service on the same ports says so plainly, without a traceback.
    clash = subprocess.run(
        [str(CONCERNS), "serve"],
        cwd=tmp_path,
        env=server_env(
            tmp_path / "clash",
            database=tmp_path / "clash.db",
            http_port=server.http_port,
            smtp_port=server.smtp_port,
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert clash.returncode == 1
    assert f"cannot listen for HTTP on 127.0.0.1:{server.http_port}" in clash.stderr
    assert "CONCERNS_HTTP_PORT" in clash.stderr and "Traceback" not in clash.stderr

    assert server.stop(timeout=10) == 0
    output = server.output()
    assert f"Mailbox: send mail to {MAILBOX} via SMTP 127.0.0.1:{server.smtp_port}" in output
    assert f"Web: http://127.0.0.1:{server.http_port}/healthz" in output
    assert f"Learners: open http://127.0.0.1:{server.http_port}/ " in output
    assert "(no relay set)" in output
    compiled = re.search(r"pages ready: \d{2,} templates compiled", output)
    # Logged before uvicorn started serving (both on the log stream; the banner is on stdout).
    assert compiled and compiled.start() < output.index("Application startup complete")
    # Nothing of the learner's message, nor their address, reaches the log.
    assert sender not in output and "Concern 1" not in output


def test_sigterm_finishes_a_delivery_in_progress_and_loses_nothing(
    tmp_path: Path, servers: list[Server]
) -> None:
    server = start_server(tmp_path)
    servers.append(server)
    rng = random.Random(2)

    # One delivery is half-way through its DATA when SIGTERM arrives: it must be finished.
    sender, message_id, message = a_message(0, rng)
    in_progress = server.smtp()
    in_progress.ehlo()
    assert in_progress.mail(sender)[0] == 250
    assert in_progress.rcpt(MAILBOX)[0] == 250
    in_progress.putcmd("data")
    assert in_progress.getreply()[0] == 354
    in_progress.send(on_the_wire(message)[:40])

    # Meanwhile others keep delivering; each gets 250 (stored) or a temporary failure.
    outcomes: dict[str, tuple[bool, bytes]] = {}
    stop_sending = threading.Event()

    def keep_sending(worker: int) -> None:
        number = 1 + worker * 1000
        while not stop_sending.is_set():
            who, mid, data = a_message(number, random.Random(number))
            outcomes[mid] = (deliver(server, who, data), data)
            number += 1

    workers = [threading.Thread(target=keep_sending, args=(n,)) for n in range(4)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 20
    while sum(ok for ok, _ in list(outcomes.values())) < 5:
        assert time.monotonic() < deadline, "no deliveries before the shutdown"
        time.sleep(0.05)
    server.process.send_signal(signal.SIGTERM)
    # The mailbox has stopped listening: the delivery in progress straddles the shutdown.
    while True:
        assert time.monotonic() < deadline, "the mailbox kept listening after SIGTERM"
        try:
            socket.create_connection(("127.0.0.1", server.smtp_port), timeout=1).close()
        except ConnectionRefusedError:
            break
        time.sleep(0.05)
    in_progress.send(on_the_wire(message)[40:])
    assert in_progress.getreply()[0] == 250
    in_progress.close()
    assert server.process.wait(10) == 0
    stop_sending.set()
    for worker in workers:
        worker.join(30)

    stored = rows(server.database)
    assert stored[message_id] == (1, original_content(message))
    accepted = [mid for mid, (ok, _) in outcomes.items() if ok]
    for mid in accepted:
        assert stored[mid] == (1, original_content(outcomes[mid][1]))


def test_kill_9_during_500_deliveries_loses_no_accepted_message_and_resends_are_stored_once(
    tmp_path: Path, servers: list[Server]
) -> None:
    total, kill_after = 500, 150
    rng = random.Random(3)
    messages = [a_message(number, rng) for number in range(total)]
    database = tmp_path / "c.db"
    first = start_server(tmp_path / "first", database=database)
    servers.append(first)

    accepted: set[str] = set()
    lock = threading.Lock()

    def send_one(sender: str, message_id: str, message: bytes) -> None:
        if deliver(first, sender, message):
            with lock:
                accepted.add(message_id)
                if len(accepted) == kill_after:
                    first.process.kill()

    with ThreadPoolExecutor(max_workers=40) as pool:
        list(pool.map(lambda m: send_one(*m), messages))
    assert first.process.wait(10) == -signal.SIGKILL
    assert kill_after <= len(accepted) < total, "the server was not killed part-way"

    stored = rows(database)
    expected = {message_id: original_content(message) for _, message_id, message in messages}
    # Compared by hash, as an operator would check a suspect row against the sender's copy.
    for message_id in accepted:
        count, raw = stored[message_id]
        assert count == 1 and sha256(raw) == sha256(expected[message_id]), message_id
    # Anything else stored (committed, but killed before its 250) is whole too.
    for message_id, (count, raw) in stored.items():
        assert count == 1 and sha256(raw) == sha256(expected[message_id]), message_id

    # The sending servers retry everything not acknowledged (and a few that were): each is
    # stored once.
    second = start_server(tmp_path / "second", database=database)
    servers.append(second)
    with ThreadPoolExecutor(max_workers=40) as pool:
        results = list(pool.map(lambda m: deliver(second, m[0], m[2]), messages))
    assert all(results)
    assert second.stop(timeout=10) == 0
    assert rows(database) == {message_id: (1, raw) for message_id, raw in expected.items()}


def test_healthz_says_unavailable_without_detail_when_the_database_is_down(
    tmp_path: Path,
) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    broken = create_engine(f"sqlite:///{tmp_path / 'missing' / 'folder' / 'c.db'}")
    app = create_app(build(settings, engine=broken), metrics=Metrics(engine=broken))

    async def ask() -> tuple[httpx.Response, httpx.Response]:
        # httpx's ASGI transport: starlette's TestClient warns about httpx now.
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/healthz"), await client.get("/metrics")

    health, scrape = asyncio.run(ask())
    assert (health.status_code, health.json()) == (503, {"status": "unavailable"})
    assert scrape.status_code == 200 and "concerns_database_up 0.0" in scrape.text
    broken.dispose()


def test_healthz_and_metrics_answer_while_another_process_is_writing(tmp_path: Path) -> None:
    """A scrape or a health check only reads: it must not queue behind a writer for SQLite's
    busy timeout (30 s, past any scrape's timeout), and so report the database down."""
    database = tmp_path / "c.db"
    engine = create_db_engine(f"sqlite:///{database}")
    migrate.upgrade(engine)
    app = create_app(
        build(Settings(_env_file=None), engine=engine),  # type: ignore[call-arg]
        metrics=Metrics(engine=engine),
    )
    writer = sqlite3.connect(database, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process holds the write lock

    async def ask() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await asyncio.wait_for(
                asyncio.gather(client.get("/healthz"), client.get("/metrics")), timeout=10
            )

    try:
        health, scrape = asyncio.run(ask())
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert "concerns_database_up 1.0" in scrape.text
    assert 'concerns_outbox_messages{status="pending"} 0.0' in scrape.text
    engine.dispose()


@pytest.mark.parametrize(
    ("trusted", "separate"),
    [("127.0.0.1,::1", True), ("10.20.30.40", False)],
    ids=["the proxy is listed", "another proxy is listed"],
)
def test_learners_behind_a_listed_proxy_have_their_own_rate_limits(
    tmp_path: Path, servers: list[Server], trusted: str, separate: bool
) -> None:
    """Behind a reverse proxy, the learner's address comes from X-Forwarded-For, but only when
    the proxy is one the operator listed: anyone else could write that header."""
    server = start_server(
        tmp_path,
        settings={
            "CONCERNS_FORWARDED_ALLOW_IPS": trusted,
            "CONCERNS_STATUS_LOOKUP_RATE_LIMIT": "2/15 minutes",
        },
    )
    servers.append(server)

    def follow_a_stale_link(learner: str) -> int:
        headers = {"X-Forwarded-For": learner}
        return httpx.get(f"{server.url}/concerns/status/link/stale", headers=headers).status_code

    assert [follow_a_stale_link("203.0.113.5") for _ in range(3)] == [400, 400, 429]
    assert follow_a_stale_link("203.0.113.6") == (400 if separate else 429)
    assert server.stop(timeout=10) == 0


def test_one_port_given_for_both_http_and_smtp_is_a_clear_error(tmp_path: Path) -> None:
    """The HTTP socket listens as soon as it is bound, so the mailbox cannot take the same port
    and leave uvicorn to fail after start-up."""
    (port,) = free_ports(1)
    env = server_env(tmp_path, database=tmp_path / "c.db", http_port=port, smtp_port=port)
    result = subprocess.run(
        [str(CONCERNS), "serve"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"cannot listen for SMTP on 127.0.0.1:{port}" in result.stderr
    assert "CONCERNS_SMTP_PORT" in result.stderr


def test_form_submissions_are_raised_just_after_and_any_left_waiting_when_it_starts(
    tmp_path: Path, servers: list[Server]
) -> None:
    # A submission taken just before the service stopped (or was killed), not yet raised.
    database = tmp_path / "c.db"
    engine = create_db_engine(f"sqlite:///{database}")
    migrate.upgrade(engine)
    load_example_directory(engine)
    left = receive_concern(
        engine=engine,
        concern=parse_submission(concern_input(example_placement(engine))),
        channel=Channel.WEB,
        now=datetime.now(UTC),
        policy=policy(),
    ).reference
    engine.dispose()

    server = start_server(tmp_path, database=database)
    servers.append(server)
    with httpx.Client(base_url=server.url) as browser:
        form = browser.get("/concerns/new").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token
        answer = browser.post("/concerns/new", data={"csrf_token": token.group(1), **answers()})
        assert answer.status_code == 303
        shown = re.search(
            r'id="reference">(LC-\d{4}-\d{6})<', browser.get("/concerns/confirmation").text
        )
        assert shown
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with sqlite3.connect(database) as connection:
            raised = {row[0] for row in connection.execute("SELECT reference FROM concerns")}
            waiting = connection.execute("SELECT count(*) FROM received_submissions").fetchone()
            learner_acks = connection.execute(
                "SELECT count(*) FROM outbox WHERE kind = 'learner_ack'"
            ).fetchone()
        connection.close()
        if raised == {left, shown.group(1)} and waiting == (0,) and learner_acks == (2,):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"raised {raised}, waiting {waiting}, acknowledgements {learner_acks}")
    assert 'concerns_raised_total{channel="web"} 2.0' in httpx.get(f"{server.url}/metrics").text
    assert server.stop(timeout=10) == 0
