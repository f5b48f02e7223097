"""Threading tokens: unguessable, bound to the recipient, and the only thing that joins a reply."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from notifications.threading import MOST_TOKENS_LOOKED_UP, MailThreading

THREADING = MailThreading(secret=b"k" * 32, mailbox="escalating-concerns@example.nhs.uk")
LEARNER = "jane@example.ac.uk"


def test_a_reply_with_our_message_id_from_its_recipient_is_verified() -> None:
    our_id = THREADING.message_id(41, LEARNER)
    assert THREADING.verified_outbox_ids(sender=LEARNER, places=[f"x {our_id} y"]) == [41]
    # Addresses compare without case.
    assert THREADING.verified_outbox_ids(sender="JANE@Example.ac.uk", places=[our_id]) == [41]


def test_a_message_id_names_when_its_row_was_queued_and_still_proves_a_reply() -> None:
    """Outbox ids start again from the last one kept when a database is restored: a new message
    to the same person must not carry the Message-ID of one they already have, or their mail
    client drops it as a copy. The same row sent again keeps its Message-ID."""
    queued = datetime(2026, 11, 23, 9, 0, 0, 123456, tzinfo=UTC)
    sent = THREADING.message_id(41, LEARNER, queued_at=queued)
    assert sent == THREADING.message_id(41, LEARNER, queued_at=queued)
    after_restore = THREADING.message_id(41, LEARNER, queued_at=queued + timedelta(hours=3))
    assert after_restore != sent
    assert THREADING.message_id(41, LEARNER, queued_at=queued + timedelta(microseconds=1)) != sent
    for our_id in (sent, after_restore):
        assert THREADING.verified_outbox_ids(sender=LEARNER, places=[our_id]) == [41]
        assert our_id.startswith(f"<{THREADING.token_for(41, LEARNER)}.")
    # The moment is not written as it is (it could hint at who raised a confidential concern),
    # any moment will do (a clock set before 1970 too), and one without a time zone is refused
    # rather than read in the machine's own.
    assert "2026" not in sent and str(round(queued.timestamp())) not in sent
    assert THREADING.message_id(41, LEARNER, queued_at=datetime(1969, 12, 31, tzinfo=UTC))
    with pytest.raises(TypeError):
        THREADING.message_id(41, LEARNER, queued_at=datetime(2026, 11, 23, 9, 0))


def test_an_international_domain_is_the_same_address_in_punycode_or_unicode() -> None:
    """The directory holds such domains in punycode; a reply's sender is read as Unicode."""
    for sent_to, sender in [
        ("jane@xn--bcher-kva.example", "jane@b\u00fccher.example"),
        ("jane@b\u00fccher.example", "Jane@XN--BCHER-KVA.example"),
        ("jane@bu\u0308cher.example", "jane@b\u00fccher.example"),  # decomposed ü
    ]:
        our_id = THREADING.message_id(5, sent_to)
        assert THREADING.verified_outbox_ids(sender=sender, places=[our_id]) == [5]
    # The local part is not a domain: it is compared as it is (without case).
    our_id = THREADING.message_id(5, "xn--bcher-kva@example.ac.uk")
    assert THREADING.verified_outbox_ids(sender="b\u00fccher@example.ac.uk", places=[our_id]) == []


def test_tokens_of_ascii_addresses_are_unchanged() -> None:
    """Tokens already sent must still prove their replies."""
    assert THREADING.token_for(41, LEARNER) == "lc41x57fzroeobds6hckf2h3n"


def test_the_plus_address_carries_the_same_token() -> None:
    reply_to = THREADING.reply_to(7, LEARNER)
    assert reply_to.startswith("escalating-concerns+lc7x")
    assert reply_to.endswith("@example.nhs.uk")
    assert THREADING.verified_outbox_ids(sender=LEARNER, places=[reply_to]) == [7]


def test_the_same_token_from_anyone_else_is_refused() -> None:
    our_id = THREADING.message_id(41, LEARNER)
    assert THREADING.verified_outbox_ids(sender="mallory@evil.example", places=[our_id]) == []
    assert THREADING.has_token([our_id])


def test_a_token_made_with_another_key_or_for_another_row_is_refused() -> None:
    other = MailThreading(secret=b"other", mailbox=THREADING.mailbox)
    forged = other.message_id(41, LEARNER)
    assert THREADING.verified_outbox_ids(sender=LEARNER, places=[forged]) == []
    token = THREADING.token_for(41, LEARNER)
    moved = token.replace("lc41x", "lc42x")
    assert THREADING.verified_outbox_ids(sender=LEARNER, places=[moved]) == []


def test_the_thread_root_is_stable_per_concern_and_recipient_and_is_not_a_token() -> None:
    root = THREADING.thread_root("LC-2026-000001", LEARNER)
    assert root == THREADING.thread_root("LC-2026-000001", LEARNER.upper())
    assert root != THREADING.thread_root("LC-2026-000002", LEARNER)
    assert not THREADING.has_token([root])
    assert THREADING.verified_outbox_ids(sender=LEARNER, places=[root]) == []


def test_a_genuine_token_sent_on_by_someone_else_names_its_message_but_nothing_else_does() -> None:
    sent_to = {7: "learner@example.nhs.uk", 8: "dean@example.nhs.uk"}
    forwarded = THREADING.message_id(7, "learner@example.nhs.uk")
    made_up = "<lc8xaaaaaaaaaaaaaaaaaaaa@example.nhs.uk>"
    for_another = THREADING.message_id(8, "learner@example.nhs.uk")  # not whom 8 went to
    unknown_row = THREADING.message_id(9, "learner@example.nhs.uk")
    asked: list[list[int]] = []

    def recipients_of(outbox_ids: list[int]) -> dict[int, str]:
        asked.append(outbox_ids)
        return {key: value for key, value in sent_to.items() if key in outbox_ids}

    found = THREADING.genuine_outbox_ids(
        places=[f"{forwarded} {made_up} {for_another} {unknown_row} {forwarded}"],
        recipients_of=recipients_of,
    )
    assert found == [7]
    assert asked == [[7, 8, 9]]  # one look-up of the distinct ids
    # It is never proof of the sender: the sender check still refuses it.
    assert THREADING.verified_outbox_ids(sender="mallory@evil.example", places=[forwarded]) == []


def test_a_message_full_of_tokens_gets_one_bounded_look_up() -> None:
    asked: list[list[int]] = []

    def recipients_of(outbox_ids: list[int]) -> dict[int, str]:
        asked.append(outbox_ids)
        return {}

    tokens = " ".join(f"<lc{number}x{'a' * 20}@x>" for number in range(5000))
    assert THREADING.genuine_outbox_ids(places=[tokens], recipients_of=recipients_of) == []
    assert len(asked) == 1 and len(asked[0]) == MOST_TOKENS_LOOKED_UP


def test_after_the_key_changes_replies_to_mail_sent_before_still_prove_themselves() -> None:
    """Mail sent under the previous key is answered for weeks: its tokens still count while that
    key is listed, and only then; new tokens are made with the current key."""
    before = MailThreading(secret=b"old" * 11, mailbox=THREADING.mailbox)
    sent_before = before.message_id(41, LEARNER)
    rotated = MailThreading(
        secret=b"new" * 11, mailbox=THREADING.mailbox, previous_secrets=(b"old" * 11,)
    )
    assert rotated.verified_outbox_ids(sender=LEARNER, places=[sent_before]) == [41]
    assert rotated.verified_outbox_ids(sender="mallory@evil.example", places=[sent_before]) == []
    assert rotated.genuine_outbox_ids(
        places=[sent_before], recipients_of=lambda ids: dict.fromkeys(ids, LEARNER)
    ) == [41]
    assert rotated.token_for(41, LEARNER) != before.token_for(41, LEARNER)
    assert rotated.token_for(41, LEARNER) == MailThreading(
        secret=b"new" * 11, mailbox=THREADING.mailbox
    ).token_for(41, LEARNER)
    revoked = MailThreading(secret=b"new" * 11, mailbox=THREADING.mailbox)
    assert revoked.verified_outbox_ids(sender=LEARNER, places=[sent_before]) == []
    assert (
        revoked.genuine_outbox_ids(
            places=[sent_before], recipients_of=lambda ids: dict.fromkeys(ids, LEARNER)
        )
        == []
    )
