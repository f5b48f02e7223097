"""Malformed mail through the whole intake: every message ends processed, ignored or quarantined.

The parser's own fuzz tests live in tests/unit; this one proves the service around it (storage,
threading, triage, routing) never fails on what a broken or hostile client sends.
"""

from __future__ import annotations

from datetime import timedelta
from itertools import count

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import select

from intake.mail_intake import process_pending
from storage.db import transaction
from storage.inbox import Received, store_received
from storage.tables import InboundMessage
from tests.integration.helpers import MONDAY_MORNING, load_example_directory, policy
from tests.integration.test_mail_intake import MAILBOX, THREADING

HEADER_NAMES = st.sampled_from(
    [
        b"From",
        b"To",
        b"Subject",
        b"Content-Type",
        b"Content-Transfer-Encoding",
        b"In-Reply-To",
        b"References",
        b"Message-ID",
        b"Auto-Submitted",
        b"X\x00Odd",
    ]
)
HEADER_VALUES = st.one_of(
    st.binary(max_size=120),
    st.sampled_from(
        [
            b"multipart/mixed; boundary=b",
            b'multipart/alternative; boundary="b"',
            b"text/plain; charset=x-unknown-charset",
            b"text/html; charset=utf-8",
            b"base64",
            b"quoted-printable",
            b"<lc1xaaaaaaaaaaaaaaaaaaaa@localhost>",
            b"=?utf-8?b?invalid base64?=",
            b'"a@b.example, c@d.example" <x@y.example>',
        ]
    ),
)
BODY_PARTS = st.lists(
    st.one_of(
        st.binary(max_size=200),
        st.sampled_from([b"--b\r\n", b"--b--\r\n", b"\r\n", b"=\r\n", b"<script>x</script>"]),
    ),
    max_size=20,
)


@st.composite
def raw_messages(draw: st.DrawFn) -> bytes:
    headers = draw(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=8))
    head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return head + b"\r\n" + b"".join(draw(BODY_PARTS))


def test_malformed_mail_never_breaks_intake(sqlite_engine: Engine) -> None:
    load_example_directory(sqlite_engine)
    numbers = count()

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(raw=raw_messages(), sender=st.sampled_from(["", "a@b.example", "x"]))
    def check(raw: bytes, sender: str) -> None:
        now = MONDAY_MORNING + timedelta(seconds=next(numbers))
        store_received(
            sqlite_engine, [Received(mail_from=sender, rcpt_tos=(MAILBOX,), raw=raw)], now=now
        )
        report = process_pending(
            engine=sqlite_engine, policy=policy(), threading=THREADING, now=now
        )
        assert report.failed == 0

    check()
    with transaction(sqlite_engine) as session:
        statuses = {row.status for row in session.exec(select(InboundMessage))}
    assert statuses <= {"processed", "ignored", "quarantined"}
