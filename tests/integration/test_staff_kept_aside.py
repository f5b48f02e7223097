"""Kept aside for staff: mail the mailbox would not attach, and submissions not yet raised.

Deans and quality teams read kept-aside mail (sender, subject, text, attachment names); admins see
that it is there but not who sent what; anyone else is answered 404. Learner text and a failed
submission's stored error never reach the page unescaped, or at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from app.staff.kept_aside import (
    ALREADY_DEALT_WITH_NOTICE,
    ALREADY_PUT_BACK_NOTICE,
    DEALT_WITH_NOTICE,
    PUT_BACK_NOTICE,
    _error_type,
    _history,
    _why,
)
from storage import inbox, migrate, submissions
from storage.db import transaction
from storage.inbox import DEALT_WITH, KEPT_ASIDE
from storage.tables import AccessRecord, InboundMessage, Region, id_of
from tests.integration.helpers import MONDAY_MORNING, load_example_directory
from tests.integration.staff_world import (
    KEPT_ASIDE_WHY,
    StaffWorld,
    fail_to_raise,
    keep_aside,
    staff_world,
)

NV, SF = "north-vale", "south-fen"
SHOWN_WHY = "Looks like a reply, but its token does not match the sender"
PAYLOAD = "<script>alert('kept')</script>"


@pytest.fixture
def world(sqlite_engine: Engine) -> Iterator[StaffWorld]:
    yield from staff_world(sqlite_engine)


def test_a_dean_reads_kept_aside_mail_and_sees_failing_submissions(world: StaffWorld) -> None:
    kept = keep_aside(world.engine, subject=f"Re: your concern {PAYLOAD}", body=f"Hello {PAYLOAD}")
    answered = keep_aside(world.engine, subject="An ordinary concern", body="x", status="processed")
    reference = fail_to_raise(world.engine)

    for who in ("dean", "quality"):
        browser = world.browser(who)
        home = browser.get("/staff")
        assert 'href="/staff/kept-aside"' in home.text

        page = browser.get("/staff/kept-aside")
        assert page.status_code == 200
        assert "someone.else@example.org" in page.text
        assert SHOWN_WHY in page.text
        assert f'href="/staff/kept-aside/mail/{kept}"' in page.text
        assert "An ordinary concern" not in page.text  # only what was kept aside
        assert PAYLOAD not in page.text
        assert "&lt;script&gt;" in page.text
        assert reference in page.text
        assert "IntegrityError" in page.text
        assert "Night rota" not in page.text
        assert "Due now" not in page.text  # its next attempt is a year away

        message = browser.get(f"/staff/kept-aside/mail/{kept}")
        assert message.status_code == 200
        assert "<title>Mail kept aside" in message.text
        assert "&lt;script&gt;" not in message.text.split("</title>")[0]  # not in history
        assert PAYLOAD not in message.text
        assert "Hello &lt;script&gt;" in message.text
        assert "rota.pdf (application/pdf" in message.text
        assert browser.get(f"/staff/kept-aside/mail/{answered}").status_code == 404
        assert browser.get("/staff/kept-aside/mail/999999").status_code == 404


def test_an_admin_sees_that_mail_is_kept_aside_but_not_who_sent_it(world: StaffWorld) -> None:
    kept = keep_aside(world.engine, subject="Private subject line", body="Private words")
    reference = fail_to_raise(world.engine)
    browser = world.browser("admin")

    page = browser.get("/staff/kept-aside")
    assert page.status_code == 200
    assert SHOWN_WHY in page.text
    assert reference in page.text
    assert "someone.else@example.org" not in page.text
    assert "Private subject line" not in page.text
    assert browser.get(f"/staff/kept-aside/mail/{kept}").status_code == 404


@pytest.mark.parametrize("who", ["supervisor", "school_lead"])
def test_contacts_and_school_leads_are_told_the_pages_do_not_exist(
    world: StaffWorld, who: str
) -> None:
    kept = keep_aside(world.engine, subject="Private subject line", body="Private words")
    browser = world.browser(who)
    assert 'href="/staff/kept-aside"' not in browser.get("/staff").text
    assert browser.get("/staff/kept-aside").status_code == 404
    assert browser.get(f"/staff/kept-aside/mail/{kept}").status_code == 404


def test_mail_of_a_known_region_is_read_by_that_regions_staff_only(world: StaffWorld) -> None:
    ours = keep_aside(world.engine, subject="About a North Vale concern", body="x", region_key=NV)
    unknown = keep_aside(world.engine, subject="About nobody knows what", body="y")
    theirs = keep_aside(world.engine, subject="About a South Fen concern", body="z", region_key=SF)

    dean = world.browser("dean")  # North Vale
    page = dean.get("/staff/kept-aside").text
    assert "About a North Vale concern" in page and "About nobody knows what" in page
    assert "About a South Fen concern" not in page
    assert dean.get(f"/staff/kept-aside/mail/{theirs}").status_code == 404
    token = dean.csrf(f"/staff/kept-aside/mail/{ours}")
    refused = dean.post(f"/staff/kept-aside/mail/{theirs}/dealt-with", data={"csrf_token": token})
    assert refused.status_code == 404
    assert status_and_outcome(world, theirs)[0] == "quarantined"

    other = world.browser("other_dean")  # South Fen
    page = other.get("/staff/kept-aside").text
    assert "About a South Fen concern" in page and "About nobody knows what" in page
    assert "About a North Vale concern" not in page
    assert other.get(f"/staff/kept-aside/mail/{ours}").status_code == 404
    assert other.get(f"/staff/kept-aside/mail/{unknown}").status_code == 200

    # The admin sees that all three are there, and nothing of what they say.
    assert not [kind for kind, _ in access_kinds(world) if kind == "kept_aside_put_back"]
    admin_page = world.browser("admin").get("/staff/kept-aside").text
    assert admin_page.count("Looks like a reply, but its token does not match") == 3


@pytest.mark.parametrize("message", ["abc", "-1", "1.0", "99999999999999999999999", "١"])
def test_an_address_that_names_no_message_is_a_page_that_does_not_exist(
    world: StaffWorld, message: str
) -> None:
    browser = world.browser("dean")
    page = browser.get(f"/staff/kept-aside/mail/{message}")
    assert page.status_code == 404
    assert "text/html" in page.headers["content-type"]
    token = browser.csrf("/staff/kept-aside")
    marked = browser.post(
        f"/staff/kept-aside/mail/{message}/dealt-with", data={"csrf_token": token}
    )
    assert marked.status_code == 404


def test_nothing_kept_aside_says_so(world: StaffWorld) -> None:
    page = world.browser("dean").get("/staff/kept-aside")
    assert page.status_code == 200
    assert 'id="no-kept-aside-mail"' in page.text
    assert 'id="no-failing-submissions"' in page.text


def test_signed_out_is_sent_to_sign_in(world: StaffWorld) -> None:
    answer = world.browser().get("/staff/kept-aside", follow_redirects=False)
    assert answer.status_code == 303
    assert "/staff/sign-in" in answer.headers["location"]


def status_and_outcome(world: StaffWorld, message_id: int) -> tuple[str, str | None]:
    with transaction(world.engine) as session:
        row = session.get(InboundMessage, message_id)
        assert row is not None
        return row.status, row.outcome


def test_a_dean_marks_mail_dealt_with_and_it_leaves_the_list(world: StaffWorld) -> None:
    kept = keep_aside(world.engine, subject="Re: nights", body="Still no registrar at night")
    browser = world.browser("dean")
    token = browser.csrf(f"/staff/kept-aside/mail/{kept}")

    answer = browser.post(
        f"/staff/kept-aside/mail/{kept}/dealt-with",
        data={"csrf_token": token},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/staff/kept-aside"
    page = browser.get("/staff/kept-aside")
    assert DEALT_WITH_NOTICE in page.text
    assert "Re: nights" not in browser.cookie_header()  # learner text stays out of the cookie
    kept_list, done_list = sections(page.text)
    assert f"/staff/kept-aside/mail/{kept}" not in kept_list
    assert 'id="no-kept-aside-mail"' in kept_list
    assert f"/staff/kept-aside/mail/{kept}" in done_list
    assert world.emails["dean"] in done_list
    assert "Monday 23 November 2026 at 11:00" in done_list  # when, in the region's time

    shown = browser.get(f"/staff/kept-aside/mail/{kept}")
    assert shown.status_code == 200
    assert "Mail dealt with" in shown.text
    assert f'action="/staff/kept-aside/mail/{kept}/put-back"' in shown.text
    assert "/dealt-with" not in shown.text
    assert SHOWN_WHY in shown.text
    assert "; dealt with by" not in shown.text  # the reason alone, not the stored notes

    status, outcome = status_and_outcome(world, kept)
    assert status == DEALT_WITH
    assert outcome is not None
    assert outcome.startswith(KEPT_ASIDE_WHY)
    assert f"dealt with by {world.emails['dean']} at " in outcome
    assert marked_by(world, kept) == (world.emails["dean"], world.clock())

    # A second press (another tab, another dean) finds nothing left to mark, and is told so.
    again = browser.post(f"/staff/kept-aside/mail/{kept}/dealt-with", data={"csrf_token": token})
    assert again.status_code == 303
    assert ALREADY_DEALT_WITH_NOTICE in browser.get("/staff/kept-aside").text
    assert status_and_outcome(world, kept) == (status, outcome)
    assert marked_by(world, kept) == (world.emails["dean"], world.clock())


def sections(page: str) -> tuple[str, str]:
    """The kept-aside page's mail list, and its list of mail dealt with."""
    start, done, failing = (
        page.index(f'id="{name}-heading"') for name in ("mail", "dealt-with", "failing")
    )
    return page[start:done], page[done:failing]


def marked_by(world: StaffWorld, message_id: int) -> tuple[str | None, datetime | None]:
    with transaction(world.engine) as session:
        row = session.get(InboundMessage, message_id)
        assert row is not None
        return row.dealt_with_by, row.dealt_with_at


def mark(world: StaffWorld, who: str, message_id: int) -> None:
    browser = world.browser(who)
    token = browser.csrf(f"/staff/kept-aside/mail/{message_id}")
    marked = browser.post(
        f"/staff/kept-aside/mail/{message_id}/dealt-with", data={"csrf_token": token}
    )
    assert marked.status_code == 303


def test_mail_marked_by_mistake_is_put_back_on_the_list(world: StaffWorld) -> None:
    kept = keep_aside(world.engine, subject="Re: nights", body="Still no registrar at night")
    mark(world, "dean", kept)
    world.clock.now += timedelta(hours=2)

    quality = world.browser("quality")
    token = quality.csrf(f"/staff/kept-aside/mail/{kept}")
    answer = quality.post(f"/staff/kept-aside/mail/{kept}/put-back", data={"csrf_token": token})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/staff/kept-aside"

    page = quality.get("/staff/kept-aside")
    assert PUT_BACK_NOTICE in page.text
    kept_list, done_list = sections(page.text)
    assert f"/staff/kept-aside/mail/{kept}" in kept_list
    assert 'id="no-dealt-with-mail"' in done_list
    shown = quality.get(f"/staff/kept-aside/mail/{kept}")
    assert f'action="/staff/kept-aside/mail/{kept}/dealt-with"' in shown.text
    assert "/put-back" not in shown.text
    history = shown.text.split('id="kept-aside-history"')[1].split("</ul>")[0]
    assert history.index(
        f"Marked as dealt with by {world.emails['dean']}, Monday 23 November 2026 at 11:00"
    ) < history.index(
        f"Put back on the list by {world.emails['quality']}, Monday 23 November 2026 at 13:00"
    )

    status, outcome = status_and_outcome(world, kept)
    assert status == KEPT_ASIDE
    assert outcome is not None
    assert f"dealt with by {world.emails['dean']}" in outcome
    assert f"put back by {world.emails['quality']} at " in outcome
    assert marked_by(world, kept) == (None, None)

    # A second press finds nothing left to put back, is told so, and changes nothing.
    again = quality.post(f"/staff/kept-aside/mail/{kept}/put-back", data={"csrf_token": token})
    assert again.status_code == 303
    assert ALREADY_PUT_BACK_NOTICE in quality.get("/staff/kept-aside").text
    assert status_and_outcome(world, kept) == (status, outcome)
    kinds = [entry for entry in access_kinds(world) if entry[0].startswith("kept_aside")]
    assert ("kept_aside_put_back", kept) in kinds
    assert len([kind for kind, _ in kinds if kind == "kept_aside_put_back"]) == 1


def test_putting_back_without_the_form_token_or_the_right_changes_nothing(
    world: StaffWorld,
) -> None:
    kept = keep_aside(world.engine, subject="Re: nights", body="x", region_key=NV)
    mark(world, "dean", kept)
    before = status_and_outcome(world, kept)

    dean = world.browser("dean")
    dean.get(f"/staff/kept-aside/mail/{kept}")
    forged = dean.post(f"/staff/kept-aside/mail/{kept}/put-back", data={"csrf_token": "x"})
    assert forged.status_code == 403

    for who in ("admin", "other_dean", "supervisor", "school_lead"):
        browser = world.browser(who)
        token = browser.csrf("/staff")
        refused = browser.post(
            f"/staff/kept-aside/mail/{kept}/put-back", data={"csrf_token": token}
        )
        assert refused.status_code == 404, who
        assert browser.get(f"/staff/kept-aside/mail/{kept}").status_code == 404, who

    assert not [kind for kind, _ in access_kinds(world) if kind == "kept_aside_put_back"]
    admin_page = world.browser("admin").get("/staff/kept-aside").text
    assert 'id="dealt-with-heading"' not in admin_page  # only those who deal with mail
    other_dean = world.browser("other_dean").get("/staff/kept-aside").text
    assert f"/staff/kept-aside/mail/{kept}" not in other_dean  # another region's mail
    assert status_and_outcome(world, kept) == before


def test_marking_without_the_form_token_or_the_right_changes_nothing(world: StaffWorld) -> None:
    kept = keep_aside(world.engine, subject="Re: nights", body="Still no registrar at night")
    before = status_and_outcome(world, kept)

    dean = world.browser("dean")
    dean.get(f"/staff/kept-aside/mail/{kept}")
    forged = dean.post(f"/staff/kept-aside/mail/{kept}/dealt-with", data={"csrf_token": "x"})
    assert forged.status_code == 403

    admin = world.browser("admin")
    token = admin.csrf("/staff/kept-aside")
    refused = admin.post(f"/staff/kept-aside/mail/{kept}/dealt-with", data={"csrf_token": token})
    assert refused.status_code == 404

    assert status_and_outcome(world, kept) == before


def access_kinds(world: StaffWorld) -> list[tuple[str, object]]:
    with transaction(world.engine) as session:
        rows = session.exec(select(AccessRecord).order_by(col(AccessRecord.id))).all()
        return [(row.kind, (row.detail or {}).get("message_id")) for row in rows]


def test_reading_and_marking_kept_aside_mail_are_in_the_access_audit(world: StaffWorld) -> None:
    kept = keep_aside(world.engine, subject="Re: nights", body="Still no registrar at night")
    browser = world.browser("quality")
    token = browser.csrf(f"/staff/kept-aside/mail/{kept}")
    browser.post(f"/staff/kept-aside/mail/{kept}/dealt-with", data={"csrf_token": token})
    kinds = [entry for entry in access_kinds(world) if entry[0].startswith("kept_aside")]
    assert kinds == [("kept_aside_read", kept), ("kept_aside_dealt_with", kept)]


def test_mail_kept_before_its_headers_were_noted_shows_them_from_the_message(
    world: StaffWorld,
) -> None:
    kept = keep_aside(
        world.engine,
        subject="Rota problems",
        body="Nobody answers",
        why="processing kept failing: kept for staff",
        headers_noted=False,
    )
    browser = world.browser("dean")
    page = browser.get("/staff/kept-aside")
    assert "Processing kept failing" in page.text
    assert "(no subject)" in page.text
    message = browser.get(f"/staff/kept-aside/mail/{kept}")
    assert "Rota problems" in message.text
    assert "someone.else@example.org" in message.text


def test_a_submission_whose_retry_is_overdue_says_it_is_due_now(world: StaffWorld) -> None:
    reference = fail_to_raise(world.engine)
    with transaction(world.engine) as session:
        (row,) = submissions.failing(session, limit=10)
        row.next_attempt_at = MONDAY_MORNING - timedelta(hours=1)
        session.add(row)
    page = world.browser("admin").get("/staff/kept-aside")
    assert reference in page.text
    assert "Due now" in page.text


def test_marking_reaches_only_mail_still_kept_aside(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two people pressing at once: both read the message as kept aside, and only the first
    press changes it (the second's update finds the status already changed)."""
    kept = keep_aside(engine, subject="Re: nights", body="Still no registrar")
    with transaction(engine) as session:
        stale = inbox.kept_aside_message(session, kept)
        assert stale is not None
        session.expunge(stale)
    # Each press reads the message as it was before either marked it.
    monkeypatch.setattr(inbox, "kept_aside_message", lambda session, message_id, **scope: stale)
    presses = []
    for by in ("dean@example.nhs.uk", "quality@example.nhs.uk"):
        with transaction(engine) as session:
            presses.append(inbox.mark_dealt_with(session, kept, by=by, now=MONDAY_MORNING))
    assert presses == [True, False]
    with transaction(engine) as session:
        row = session.get(InboundMessage, kept)
        assert row is not None
        assert row.status == DEALT_WITH
        assert row.outcome is not None
        assert "dealt with by dean@example.nhs.uk" in row.outcome
        assert "quality@" not in row.outcome


def test_putting_back_reaches_only_mail_still_dealt_with(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two people putting the same message back at once: only the first press changes it."""
    kept = keep_aside(engine, subject="Re: nights", body="Still no registrar")
    with transaction(engine) as session:
        assert inbox.mark_dealt_with(session, kept, by="dean@example.nhs.uk", now=MONDAY_MORNING)
    with transaction(engine) as session:
        stale = inbox.kept_aside_message(session, kept, dealt_with_too=True)
        assert stale is not None
        session.expunge(stale)
    monkeypatch.setattr(inbox, "kept_aside_message", lambda session, message_id, **scope: stale)
    presses = []
    for by in ("dean@example.nhs.uk", "quality@example.nhs.uk"):
        with transaction(engine) as session:
            presses.append(inbox.put_back(session, kept, by=by, now=MONDAY_MORNING))
    assert presses == [True, False]
    with transaction(engine) as session:
        row = session.get(InboundMessage, kept)
        assert row is not None
        assert (row.status, row.dealt_with_by, row.dealt_with_at) == (KEPT_ASIDE, None, None)
        assert row.outcome is not None
        assert "put back by dean@example.nhs.uk" in row.outcome
        assert "quality@" not in row.outcome


def test_mail_dealt_with_is_listed_latest_marked_first_within_the_regions(engine: Engine) -> None:
    load_example_directory(engine)
    with transaction(engine) as session:
        (north_vale,) = session.exec(select(Region).where(Region.key == NV)).all()
        region_id = id_of(north_vale)
    ours = keep_aside(engine, subject="North Vale", body="x", region_key=NV)
    unknown = keep_aside(engine, subject="Nobody knows", body="y")
    older = keep_aside(engine, subject="Marked before the columns", body="z")
    with transaction(engine) as session:
        for message, minutes in ((unknown, 1), (ours, 2), (older, 3)):
            moment = MONDAY_MORNING + timedelta(minutes=minutes)
            assert inbox.mark_dealt_with(session, message, by="dean@example.nhs.uk", now=moment)
        row = session.get(InboundMessage, older)
        assert row is not None
        row.dealt_with_by, row.dealt_with_at = None, None  # as a row marked before 0010
        session.add(row)
    with transaction(engine) as session:
        listed = [id_of(row) for row in inbox.dealt_with(session, limit=10)]
        assert listed == [ours, unknown, older]
        assert inbox.kept_aside(session, limit=10) == []
        mine = inbox.dealt_with(session, limit=10, region_ids={region_id})
        assert [id_of(row) for row in mine] == [ours, unknown, older]
        elsewhere = inbox.dealt_with(session, limit=10, region_ids={region_id + 1})
        assert [id_of(row) for row in elsewhere] == [unknown, older]
        assert inbox.kept_aside_message(session, ours, dealt_with_too=True) is not None
        assert inbox.kept_aside_message(session, ours) is None
        assert (
            inbox.kept_aside_message(session, ours, region_ids={region_id + 1}, dealt_with_too=True)
            is None
        )


def test_mail_marked_before_the_columns_gets_who_and_when_from_its_note(engine: Engine) -> None:
    first, second, unreadable = (
        keep_aside(engine, subject=f"Re: {n}", body="x") for n in ("one", "two", "three")
    )
    with transaction(engine) as session:
        assert inbox.mark_dealt_with(session, first, by="dean@example.nhs.uk", now=MONDAY_MORNING)
        assert inbox.put_back(session, first, by="quality@example.nhs.uk", now=MONDAY_MORNING)
        later = MONDAY_MORNING + timedelta(hours=3)
        assert inbox.mark_dealt_with(session, first, by="quality@example.nhs.uk", now=later)
        assert inbox.mark_dealt_with(session, second, by="dean@example.nhs.uk", now=MONDAY_MORNING)
        assert inbox.mark_dealt_with(session, unreadable, by="dean@x", now=MONDAY_MORNING)
        row = session.get(InboundMessage, unreadable)
        assert row is not None
        row.outcome = "kept for staff; dealt with by dean@x at some point"
        session.add(row)
    config = migrate.alembic_config(engine)
    command.downgrade(config, "0009")
    command.upgrade(config, "head")
    with transaction(engine) as session:
        found = {
            id_of(row): (row.dealt_with_by, row.dealt_with_at)
            for row in session.exec(select(InboundMessage)).all()
        }
    assert found[first] == ("quality@example.nhs.uk", later)  # the marking in force
    assert found[second] == ("dean@example.nhs.uk", MONDAY_MORNING)
    assert found[unreadable] == (None, None)


def test_history_reads_the_notes_of_marking_and_putting_back() -> None:
    zone = ZoneInfo("Europe/London")
    outcome = (
        f"{KEPT_ASIDE_WHY}; dealt with by a@example.nhs.uk at 2026-11-23T10:00:00+00:00"
        "; put back by b@example.nhs.uk at not-a-time"
        "; dealt with by c@example.nhs.uk at 2026-11-23T10:00:00"
    )
    assert _history(outcome, zone) == [
        "Marked as dealt with by a@example.nhs.uk, Monday 23 November 2026 at 10:00",
        "Put back on the list by b@example.nhs.uk, at a time not recorded",
        "Marked as dealt with by c@example.nhs.uk, at a time not recorded",
    ]
    assert _history(KEPT_ASIDE_WHY, zone) == []
    assert _history(None, zone) == []


@pytest.mark.parametrize(
    ("outcome", "shown"),
    [
        (KEPT_ASIDE_WHY, SHOWN_WHY),
        (f"{KEPT_ASIDE_WHY}; dealt with by a@example.nhs.uk at 2026-11-23T10:00:00", SHOWN_WHY),
        (f"{KEPT_ASIDE_WHY}; dealt with by a@x at 1; put back by b@x at 2", SHOWN_WHY),
        (None, "Not recorded"),
    ],
)
def test_why_shows_the_mailboxs_reason_only(outcome: str | None, shown: str) -> None:
    assert _why(outcome) == shown


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("IntegrityError", "IntegrityError"),
        ("sqlalchemy.exc.OperationalError", "sqlalchemy.exc.OperationalError"),
        # Noted before only the type was stored: the repr, which can quote the learner.
        ("IntegrityError('Night rota has no registrar')", "IntegrityError"),
        (
            "1 validation error for NewConcern\nsummary\n  String should have at most 3 "
            "characters [type=string_too_long, input_value='Night rota has no registrar']",
            "unknown",
        ),
        ("ValueError: Night rota has no registrar", "unknown"),
        ("", "unknown"),
        (None, "unknown"),
    ],
)
def test_only_an_errors_type_is_ever_shown(stored: str | None, shown: str) -> None:
    assert _error_type(stored) == shown


def test_the_region_filter_keeps_other_regions_mail_out(engine: Engine) -> None:
    load_example_directory(engine)
    with transaction(engine) as session:
        (north_vale,) = session.exec(select(Region).where(Region.key == NV)).all()
        region_id = id_of(north_vale)
    ours = keep_aside(engine, subject="North Vale", body="x", region_key=NV)
    unknown = keep_aside(engine, subject="Nobody knows", body="y")
    with transaction(engine) as session:
        assert [id_of(row) for row in inbox.kept_aside(session, limit=10)] == [unknown, ours]
        mine = inbox.kept_aside(session, limit=10, region_ids={region_id})
        assert [id_of(row) for row in mine] == [unknown, ours]
        elsewhere = inbox.kept_aside(session, limit=10, region_ids={region_id + 1})
        assert [id_of(row) for row in elsewhere] == [unknown]
        assert inbox.kept_aside_message(session, ours, region_ids={region_id + 1}) is None
        assert inbox.kept_aside_message(session, ours, region_ids={region_id}) is not None
        assert inbox.kept_aside_message(session, unknown, region_ids=set()) is not None


def test_mail_naming_a_concern_links_to_it_and_says_its_sender_was_answered(
    world: StaffWorld,
) -> None:
    reference = world.concerns["at_dean"]
    kept = keep_aside(
        world.engine,
        subject=f"About {reference}",
        body="It happened again.",
        why=f"names {reference} but is not a reply to our email about it: kept for staff; "
        "the sender was told how to add to a concern",
        region_key=NV,
    )
    page = world.browser("dean").get(f"/staff/kept-aside/mail/{kept}").text
    assert f'/staff/concerns/{reference}">{reference}</a>' in page
    assert "its sender was told how to add to a concern" in page
    other = keep_aside(world.engine, subject="x", body="y", region_key=NV)
    plain = world.browser("dean").get(f"/staff/kept-aside/mail/{other}").text
    assert 'id="named-concern"' not in plain and "was not answered" in plain
