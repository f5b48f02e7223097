"""Signed status links: they name the reference, expire, and refuse anything tampered with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from escalation.links import StatusLinks, status_link_key

NOW = datetime(2031, 3, 4, 10, 0, tzinfo=UTC)
LINKS = StatusLinks(status_link_key("a secret"), "https://concerns.example.nhs.uk/")


def test_a_link_names_its_reference_until_it_expires() -> None:
    token = LINKS.token_for("LC-2031-000042", NOW)
    assert LINKS.reference_in(token, NOW) == "LC-2031-000042"
    assert LINKS.reference_in(token, NOW + timedelta(days=179)) == "LC-2031-000042"
    assert LINKS.reference_in(token, NOW + timedelta(days=181)) is None


def test_a_link_signed_in_the_future_is_refused() -> None:
    token = LINKS.token_for("LC-2031-000042", NOW + timedelta(days=1))
    assert LINKS.reference_in(token, NOW) is None


def test_the_url_points_at_the_status_link_route() -> None:
    url = LINKS.url_for("LC-2031-000042", NOW)
    prefix = "https://concerns.example.nhs.uk/concerns/status/link/"
    assert url.startswith(prefix)
    assert LINKS.reference_in(url.removeprefix(prefix), NOW) == "LC-2031-000042"


def test_tampered_malformed_or_foreign_tokens_are_refused() -> None:
    token = LINKS.token_for("LC-2031-000042", NOW)
    # Change the payload (the last base64 character of a signature can carry ignored bits).
    flipped = ("A" if token[0] != "A" else "B") + token[1:]
    other_reference = LINKS.token_for("LC-2031-000043", NOW).split(".")[0]
    spliced = ".".join([other_reference, *token.split(".")[1:]])
    other = StatusLinks(status_link_key("another secret"), "https://x.example")
    for bad in (
        flipped,
        spliced,
        "",
        "nonsense",
        "a.b.c",
        "%%%",
        "x" * 2000,
        other.token_for("LC-1", NOW),
    ):
        assert LINKS.reference_in(bad, NOW) is None


def test_the_key_is_derived_per_purpose() -> None:
    assert status_link_key("s") != "s"
    assert status_link_key("s") == status_link_key("s")
    assert status_link_key("s") != status_link_key("t")


def test_after_the_key_changes_links_already_sent_open_while_the_old_key_is_listed() -> None:
    sent_before = LINKS.token_for("LC-2031-000042", NOW)
    rotated = StatusLinks(
        status_link_key("a new secret"),
        "https://concerns.example.nhs.uk/",
        previous_keys=[status_link_key("a secret")],
    )
    assert rotated.reference_in(sent_before, NOW) == "LC-2031-000042"
    # New links are signed with the new key only.
    signed_now = rotated.token_for("LC-2031-000042", NOW)
    assert signed_now != sent_before
    assert LINKS.reference_in(signed_now, NOW) is None
    only_new = StatusLinks(status_link_key("a new secret"), "https://concerns.example.nhs.uk/")
    assert only_new.reference_in(signed_now, NOW) == "LC-2031-000042"
    assert only_new.reference_in(sent_before, NOW) is None
    # Still expiring as before.
    assert rotated.reference_in(sent_before, NOW + timedelta(days=181)) is None


def test_a_link_names_its_version_and_a_bare_reference_is_version_0() -> None:
    bare = LINKS.token_for("LC-2031-000042", NOW)
    assert LINKS.link_in(bare, NOW) == ("LC-2031-000042", 0)
    # Version 0 is signed as every link was before versions: the reference alone.
    assert LINKS.token_for("LC-2031-000042", NOW, version=0) == bare
    renewed = LINKS.token_for("LC-2031-000042", NOW, version=3)
    assert renewed != bare
    assert LINKS.link_in(renewed, NOW) == ("LC-2031-000042", 3)
    assert LINKS.reference_in(renewed, NOW) == "LC-2031-000042"
    assert LINKS.link_in(renewed, NOW + timedelta(days=181)) is None
