"""A learner's email through a real `concerns serve` and back: acknowledgement, reply, triage.

smtplib talks to the service's mailbox on loopback; the service's outbound mail goes through its
relay setting to an in-process aiosmtpd receiver standing in for the organisation's mail server.
"""

from __future__ import annotations

import smtplib
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from tests.e2e.test_serve import CONCERNS, MAILBOX, free_port, free_ports, server_env

LEARNER = "sam.learner@student.example.ac.uk"


class Receiver:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


@pytest.fixture
def relay() -> Iterator[tuple[Receiver, int]]:
    receiver = Receiver()
    port = free_port()
    controller = Controller(receiver, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield receiver, port
    finally:
        controller.stop()


def wait_for(condition: Callable[[], Any], *, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def concern_row(database: Path) -> tuple[str, str, str] | None:
    with sqlite3.connect(database) as connection:
        row = connection.execute("SELECT reference, frequency, harm FROM concerns").fetchone()
    connection.close()
    return row


def test_an_email_is_acknowledged_through_the_relay_and_the_reply_lands_on_the_concern(
    tmp_path: Path, relay: tuple[Receiver, int]
) -> None:
    receiver, relay_port = relay
    database = tmp_path / "c.db"
    http_port, smtp_port = free_ports(2)
    env = server_env(tmp_path, database=database, http_port=http_port, smtp_port=smtp_port)
    env["CONCERNS_SMTP_RELAY_URL"] = f"smtp://127.0.0.1:{relay_port}"
    env["CONCERNS_SECRET_KEY"] = "e2e-secret-key-long-enough-for-tests"
    with (tmp_path / "out.txt").open("wb") as out:
        process = subprocess.Popen(
            [str(CONCERNS), "serve"], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for(
            lambda: _healthy(http_port) or process.poll() is not None,
            what="the service to start",
        )
        assert process.poll() is None, (tmp_path / "out.txt").read_text()

        concern = EmailMessage()
        concern["From"] = f"Sam Learner <{LEARNER}>"
        concern["To"] = MAILBOX
        concern["Subject"] = "No teaching on Ward 7 at Vale General"
        # Longer than a header line, as Outlook's are: it must come back unfolded and unencoded.
        concern["Message-ID"] = (
            "<LO2P265MB5140E3A1B2C3D4E5F60718293A4B5C6D7E8F@LO2P265MB5140.GBRP265.PROD.OUTLOOK.COM>"
        )
        concern.set_content("Teaching has been cancelled every week this term.\n\nThanks\nSam")
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=20) as client:
            client.send_message(concern)

        ack = wait_for(
            lambda: next((m for m in receiver.messages if m["To"] == LEARNER), None),
            what="the learner's acknowledgement at the relay",
        )
        reference, frequency, _ = wait_for(lambda: concern_row(database), what="the concern")
        assert reference in ack["Subject"]
        assert frequency == "not_answered"
        assert "How often:" in ack.get_body(("plain",)).get_content()
        assert ack["Auto-Submitted"] == "auto-generated"
        # A reply to what the learner sent: their mail client shows it in that email's thread.
        assert ack["In-Reply-To"] == concern["Message-ID"]
        assert ack["References"].split()[0] == concern["Message-ID"]

        reply = EmailMessage()
        reply["From"] = LEARNER
        reply["To"] = ack["Reply-To"]
        reply["Subject"] = f"Re: {ack['Subject']}"
        reply["Message-ID"] = make_msgid(domain="student.example.ac.uk")
        reply["In-Reply-To"] = ack["Message-ID"]
        reply["References"] = f"{ack['References']} {ack['Message-ID']}"
        reply.set_content("How often: often\nAnyone harmed: learners' training or wellbeing")
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=20) as client:
            client.send_message(reply)

        wait_for(
            lambda: (row := concern_row(database)) and row[1:] == ("often", "learners_affected"),
            what="the reply's answers on the concern",
        )
        # Our reply to the learner's reply: none. Replies are never answered automatically.
        time.sleep(1.5)
        assert [m["To"] for m in receiver.messages].count(LEARNER) == 1
    finally:
        if process.poll() is None:
            process.terminate()
        assert process.wait(30) == 0, (tmp_path / "out.txt").read_text()


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
