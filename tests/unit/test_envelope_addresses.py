"""The mailbox reads MAIL FROM and RCPT TO addresses exactly as aiosmtpd 1.4.6 itself does."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from aiosmtpd.smtp import SMTP
from hypothesis import given, settings
from hypothesis import strategies as st

from intake.mailbox import MailboxSMTP

_PIECES = st.sampled_from(
    [
        "<",
        ">",
        "@",
        ".",
        '"',
        "\\",
        " ",
        "(",
        ")",
        ",",
        ";",
        ":",
        "[",
        "]",
        "jane",
        "Jane.Smith",
        "x" * 70,
        "nhs.net",
        "example.ac.uk",
        "é",
        " SIZE=2048",
        " BODY=8BITMIME",
        "\t",
    ]
)


def outcome(method: Any, arg: str, limit: int) -> object:
    try:
        return method(SimpleNamespace(local_part_limit=limit), arg)
    except Exception as error:  # the same failure either way is the same answer
        return type(error)


@settings(derandomize=True, max_examples=1500, deadline=None)
@given(pieces=st.lists(_PIECES, max_size=10), limit=st.sampled_from([0, 64]))
def test_an_address_is_read_as_aiosmtpd_reads_it(pieces: list[str], limit: int) -> None:
    arg = "".join(pieces)
    for _ in range(2):  # the second reading is the remembered one
        assert outcome(MailboxSMTP._getaddr, arg, limit) == outcome(SMTP._getaddr, arg, limit)


def test_the_usual_addresses() -> None:
    for arg, expected in [
        ("<learner@example.ac.uk>", ("learner@example.ac.uk", "")),
        ("<learner@example.ac.uk> SIZE=2048", ("learner@example.ac.uk", "SIZE=2048")),
        ("<>", ("<>", "")),
        ("", ("", "")),
        ("<" + "x" * 65 + "@nhs.net>", (None, None)),
    ]:
        assert outcome(MailboxSMTP._getaddr, arg, 64) == expected
        assert outcome(SMTP._getaddr, arg, 64) == expected
