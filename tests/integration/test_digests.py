"""Digests on a real database: what each holds, sent exactly once per (kind, region, period) even
by racing instances, and the monthly CSV arriving as an attachment through a real SMTP relay."""

from __future__ import annotations

import asyncio
import email
import logging
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from app.bootstrap import build
from app.metrics import Metrics
from app.serve import _ticks
from app.settings import Settings
from escalation.actions import Actor, acknowledge, close_concern
from escalation.digest import (
    DigestStatus,
    UnknownRegion,
    daily_digest_data,
    due_period,
    monthly_report_data,
    run_digest,
    send_due_digests,
    weekly_digest_data,
)
from escalation.sweep import sweep
from intake.mailbox import Mailbox
from intake.service import submit_concern
from intake.submission import Channel, parse_submission
from notifications.digests import DigestKind, Hotspot, Period
from notifications.outbox import dispatch_due
from notifications.senders import MaildirSender, SmtpRelaySender
from notifications.threading import MailThreading
from storage import inbox, repositories
from storage.db import create_db_engine, transaction
from storage.outbox import SqlOutboxStore
from storage.tables import Concern, Contact, DigestRun, OutboxMessage, Region
from tests.integration.helpers import LONDON, concern_input, load_example_directory, policy
from tests.integration.staff_world import keep_aside

DAILY, WEEKLY, MONTHLY = DigestKind.DAILY, DigestKind.WEEKLY, DigestKind.MONTHLY
EMERGENCY = {"organisation": "vale-general", "department": "emergency"}
SURGERY = {"organisation": "vale-general", "department": "general-surgery"}
MATERNITY = {"organisation": "vale-general", "department": "maternity"}
PRACTICE = {"organisation": "riverside-surgery", "department": "general-practice"}
PHARMACY = {"organisation": "riverside-surgery", "department": "practice-pharmacy"}
LEARNER_NAME = "Priya Testlearner"
LEARNER_EMAIL = "priya.testlearner@example.nhs.uk"
SECRET_WORDS = "The registrar said something only the dean should ever read"
STAFF = Actor(kind="staff", channel="web")
# The week of Monday 16 November 2026 07:00 to Monday 23 November 2026 07:00 (London).
WEEK_END = datetime(2026, 11, 23, 7, 30, tzinfo=LONDON)


def at(day: int, hour: int = 10, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=LONDON)


@pytest.fixture
def db(engine: Engine) -> Engine:
    load_example_directory(engine)
    return engine


def raise_concern(engine: Engine, when: datetime, place: dict[str, str], **changes: Any) -> str:
    raw = concern_input(place, description=f"{SECRET_WORDS}. It keeps happening.", **changes)
    return submit_concern(
        engine=engine,
        concern=parse_submission(raw),
        channel=Channel.CLI,
        now=when,
        policy=policy(),
    ).reference


def raise_high(engine: Engine, when: datetime, place: dict[str, str], **changes: Any) -> str:
    return raise_concern(
        engine,
        when,
        place,
        summary="Nobody senior on the ward at night",
        frequency="continuing",
        harm="patient_harmed",
        **changes,
    )


def concern(engine: Engine, reference: str) -> Concern:
    with transaction(engine) as session:
        found = repositories.concern_by_reference(session, reference)
        assert found is not None
        return found


def change(engine: Engine, reference: str, **values: Any) -> None:
    """Staff-edited fields (standards tags) written as staff would leave them."""
    with transaction(engine) as session:
        session.execute(update(Concern).where(col(Concern.reference) == reference).values(**values))


def act(engine: Engine, reference: str, action: Any, when: datetime, **kw: Any) -> None:
    with transaction(engine) as session:
        row = repositories.lock_concern(session, concern(engine, reference).id or 0)
        assert row is not None
        action(session=session, concern=row, by=STAFF, now=when, **kw)


def sweep_until(engine: Engine, when: datetime, done: Any) -> None:
    """Sweep at a moment until the condition holds (each sweep takes one step per concern)."""
    for _ in range(5):
        if done():
            return
        sweep(engine=engine, now=when, policy=policy())
    assert done()


def region(engine: Engine) -> Region:
    with transaction(engine) as session:
        found = session.exec(select(Region)).one()
        return found


def digest_rows(engine: Engine) -> list[OutboxMessage]:
    with transaction(engine) as session:
        return list(
            session.exec(
                select(OutboxMessage)
                .where(col(OutboxMessage.kind).startswith("digest_"))
                .order_by(col(OutboxMessage.id))
            ).all()
        )


def runs(engine: Engine) -> list[DigestRun]:
    with transaction(engine) as session:
        return list(session.exec(select(DigestRun).order_by(col(DigestRun.id))).all())


@dataclass
class Week:
    dean_overdue: str
    escalated: str
    high_new: str
    low_emergency: str
    medium_practice: str
    closed: str
    after_the_week: str


def a_week_of_concerns(engine: Engine) -> Week:
    """A region's week, told in time order: escalations, new concerns, acknowledgements."""
    # Raised the week before: one straight to the dean, one at pathway 1.
    dean_overdue = raise_high(engine, at(9), MATERNITY, raised_before="pathway1_and_2")
    escalated = raise_high(engine, at(9), SURGERY)
    # Their feedback deadlines pass on Monday 16 November at 10:00, inside the week.
    sweep_until(
        engine,
        at(16),
        lambda: (
            concern(engine, dean_overdue).overdue_at_dean_at is not None
            and concern(engine, escalated).pathway == 2
        ),
    )
    high_new = raise_high(engine, at(17), EMERGENCY)
    low_emergency = raise_concern(
        engine,
        at(19),
        EMERGENCY,
        summary="The rota is confusing",
        frequency="once",
        harm="minor",
    )
    medium_practice = raise_concern(engine, at(18), PRACTICE)
    act(engine, medium_practice, acknowledge, at(19))
    closed = raise_concern(engine, at(19), PHARMACY)
    act(engine, closed, close_concern, at(20), reason="Resolved at the practice", policy=policy())
    # Raised after the week ended, before the digest was built: not in it.
    after_the_week = raise_high(engine, at(23, 7), MATERNITY)
    standards = {
        dean_overdue: ["1.1", "2.5"],
        escalated: ["1.1", "1.2"],
        high_new: ["1.1"],
        low_emergency: ["3.2", "3.4"],
        medium_practice: ["5.1"],
        closed: ["6.1"],
        after_the_week: ["4.1"],
    }
    for reference, tags in standards.items():
        change(engine, reference, standards=tags)
    return Week(
        dean_overdue, escalated, high_new, low_emergency, medium_practice, closed, after_the_week
    )


def references(lines: Any) -> list[str]:
    return [line.reference for line in lines]


# --- the weekly escalation digest -------------------------------------------------------------


def test_the_weekly_digest_holds_every_section_from_the_database(db: Engine) -> None:
    week = a_week_of_concerns(db)
    period = due_period(WEEKLY, WEEK_END, policy().calendar)
    assert period is not None
    north_vale = region(db)
    with transaction(db) as session:
        digest = weekly_digest_data(session, north_vale, period, policy())

    assert references(digest.overdue_at_dean) == [week.dean_overdue]
    (moved,) = digest.escalated
    assert (moved.concern.reference, moved.from_pathway, moved.to_pathway) == (
        week.escalated,
        1,
        2,
    )
    assert moved.at == at(16) and moved.why == "no feedback to the learner by the deadline"

    by_pathway = {group.pathway: group for group in digest.overdue_by_pathway}
    assert sorted(by_pathway) == [1, 2, 3]
    # Pathway 1: the new high-risk concern was never acknowledged; the practice's was.
    assert [(i.concern.reference, i.what) for i in by_pathway[1].items] == [
        (week.high_new, "acknowledgement")
    ]
    # Pathway 2: the escalated concern's new level has not acknowledged it either.
    assert [(i.concern.reference, i.what) for i in by_pathway[2].items] == [
        (week.escalated, "acknowledgement")
    ]
    assert [(i.concern.reference, i.what) for i in by_pathway[3].items] == [
        (week.dean_overdue, "acknowledgement and feedback")
    ]
    assert (by_pathway[3].acknowledgement, by_pathway[3].feedback) == (1, 1)

    assert references(digest.open_high_and_medium) == [
        week.dean_overdue,
        week.escalated,
        week.high_new,
        week.medium_practice,
    ]
    interventions = {line.reference: line.interventions for line in digest.open_high_and_medium}
    assert interventions[week.high_new] == ("Urgent risk review", "Programme review")
    assert interventions[week.medium_practice] == ("Programme review", "Learner/educator review")

    # Emergency had two concerns in the 90 days; every other department one.
    assert digest.hotspots == (
        Hotspot("Vale General Hospitals NHS Trust", "Emergency Department", 2),
    )
    # Open concerns by domain: 1.1+1.2 count once in domain 1; closed and later ones not at all.
    assert [(t.domain, t.open_concerns) for t in digest.themes] == [
        ("1", 3),
        ("2", 1),
        ("3", 1),
        ("4", 0),
        ("5", 1),
        ("6", 0),
    ]
    assert digest.themes[0].title == "Learning environment and culture"

    open_in_week = [
        concern(db, r)
        for r in (
            week.dean_overdue,
            week.escalated,
            week.high_new,
            week.low_emergency,
            week.medium_practice,
        )
    ]
    assert digest.heat_map.counts == dict(Counter((c.likelihood, c.impact) for c in open_in_week))
    assert digest.heat_map.total == 5
    assert digest.heat_map.counts[(5, 5)] == 3
    cell = digest.heat_map.rows[0].cells[4]
    assert (cell.likelihood, cell.impact, cell.count, cell.rating.value) == (5, 5, 3, "R")


def test_the_weekly_digest_is_queued_to_the_dean_and_quality_team_once(db: Engine) -> None:
    a_week_of_concerns(db)

    (first,) = run_digest(
        engine=db, kind=WEEKLY, region_key="north-vale", now=WEEK_END, policy=policy(), send=True
    )
    assert first.status is DigestStatus.QUEUED
    assert first.messages == 2 and sorted(first.recipients) == ["dean", "quality_team"]
    rows = digest_rows(db)
    assert sorted((row.recipient_role, row.recipient_address) for row in rows) == [
        ("dean", "morgan.example@example.nhs.uk"),
        ("quality_team", "quality.northvale@example.nhs.uk"),
    ]
    for row in rows:
        assert row.kind == "digest_weekly" and row.channel == "email"
        assert row.concern_id is None and row.reference is None
        assert row.idempotency_key == (
            f"digest:weekly:north-vale:2026-11-16:contact:{row.recipient_contact_id}"
        )
        # Monday 23 November is a working day: at 07:00, before working hours.
        assert row.send_after == datetime(2026, 11, 23, 7, tzinfo=LONDON)
        assert row.subject.startswith("Weekly escalation digest, North Vale")

    # Again, later the same week, and through the scheduler's tick: nothing more.
    for later in (WEEK_END, WEEK_END + timedelta(days=3)):
        (again,) = run_digest(
            engine=db, kind=WEEKLY, region_key=None, now=later, policy=policy(), send=True
        )
        assert again.status is DigestStatus.ALREADY_SENT and again.messages == 0
    send_due_digests(engine=db, now=WEEK_END + timedelta(hours=1), policy=policy())
    assert len([r for r in digest_rows(db) if r.kind == "digest_weekly"]) == 2
    weekly_runs = [run for run in runs(db) if run.kind == "weekly"]
    assert [(r.period_start, r.messages) for r in weekly_runs] == [
        (datetime(2026, 11, 16, 7, tzinfo=LONDON), 2)
    ]


def test_the_weekly_digest_counts_the_mail_kept_aside_for_the_regions_staff(db: Engine) -> None:
    a_week_of_concerns(db)
    with transaction(db) as session:
        session.add(Region(key="south-fen", name="South Fen", escalation_mailbox="sf@example.org"))
    in_week = WEEK_END - timedelta(days=2)
    for subject, region_key in (
        ("Subject-NV", "north-vale"),
        ("Subject-none", None),
        ("Subject-SF", "south-fen"),
    ):
        keep_aside(db, subject=subject, body="x", region_key=region_key, received_at=in_week)
    dealt = keep_aside(db, subject="dealt", body="x", region_key="north-vale", received_at=in_week)
    with transaction(db) as session:
        assert inbox.mark_dealt_with(session, dealt, by="dean@example.nhs.uk", now=in_week)
    keep_aside(db, subject="after the week", body="x", region_key="north-vale")

    run_digest(
        engine=db, kind=WEEKLY, region_key="north-vale", now=WEEK_END, policy=policy(), send=True
    )
    for row in digest_rows(db):
        # North Vale's own and the one of no known region: not South Fen's, not the one dealt
        # with, not the one that came after the week; and nothing of what any of them says.
        assert "MAIL KEPT ASIDE FOR STAFF (2)" in row.body_text
        assert "2 emails were not attached to any concern" in row.body_text
        assert f"{policy().public_url.rstrip('/')}/staff/kept-aside" in row.body_text
        assert row.body_html is not None and "Mail kept aside for staff (2)" in row.body_html
        assert "Subject-" not in row.body_text and "Subject-" not in row.body_html


def test_a_weekly_digest_without_mail_kept_aside_does_not_mention_it(db: Engine) -> None:
    a_week_of_concerns(db)
    run_digest(
        engine=db, kind=WEEKLY, region_key="north-vale", now=WEEK_END, policy=policy(), send=True
    )
    for row in digest_rows(db):
        assert "KEPT ASIDE" not in row.body_text


def test_digests_carry_no_learner_identity_and_no_description(db: Engine) -> None:
    a_week_of_concerns(db)
    for kind, now in ((WEEKLY, WEEK_END), (DAILY, WEEK_END), (MONTHLY, at(1, 8, month=12))):
        run_digest(engine=db, kind=kind, region_key=None, now=now, policy=policy(), send=True)

    rows = digest_rows(db)
    assert {row.kind for row in rows} == {"digest_weekly", "digest_daily", "digest_monthly"}
    for row in rows:
        parts = [row.subject, row.body_text, row.body_html or ""]
        parts += [attachment["text"] for attachment in row.attachments]
        for part in parts:
            assert LEARNER_NAME not in part and LEARNER_EMAIL not in part
            assert SECRET_WORDS not in part


def test_a_region_without_a_dean_or_quality_team_is_recorded_with_no_messages(
    db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    a_week_of_concerns(db)
    with transaction(db) as session:
        session.execute(
            update(Contact)
            .where(col(Contact.role).in_(["dean", "quality_team"]))
            .values(active=False)
        )

    with caplog.at_level(logging.WARNING, logger="escalation.digest"):
        (outcome,) = run_digest(
            engine=db, kind=WEEKLY, region_key=None, now=WEEK_END, policy=policy(), send=True
        )

    assert outcome.status is DigestStatus.NO_RECIPIENTS
    assert digest_rows(db) == []
    assert [(run.kind, run.messages) for run in runs(db)] == [("weekly", 0)]
    assert "north-vale" in caplog.text and "no active dean or quality-team contact" in caplog.text


def test_an_unknown_region_is_refused(db: Engine) -> None:
    with pytest.raises(UnknownRegion):
        run_digest(
            engine=db, kind=WEEKLY, region_key="nowhere", now=WEEK_END, policy=policy(), send=True
        )
    assert runs(db) == []


# --- the daily high-risk digest ---------------------------------------------------------------


def test_the_daily_digest_has_the_periods_new_high_risk_concerns_and_overdue_at_dean(
    db: Engine,
) -> None:
    week = a_week_of_concerns(db)
    # Friday 20 November: a high-risk concern on Saturday belongs to Monday's digest.
    saturday = raise_high(db, at(21, 15), EMERGENCY)
    monday = due_period(DAILY, WEEK_END, policy().calendar)
    wednesday = due_period(DAILY, at(18, 8), policy().calendar)
    assert monday == Period(at(20, 7), at(23, 7))
    assert wednesday == Period(at(17, 7), at(18, 7))

    north_vale = region(db)
    with transaction(db) as session:
        on_monday = daily_digest_data(session, north_vale, monday, policy())
        on_wednesday = daily_digest_data(session, north_vale, wednesday, policy())

    assert references(on_monday.new_high_risk) == [saturday]
    assert references(on_wednesday.new_high_risk) == [week.high_new]
    # Overdue at dean level heads every daily digest while the concern is open.
    assert references(on_monday.overdue_at_dean) == [week.dean_overdue]
    assert references(on_wednesday.overdue_at_dean) == [week.dean_overdue]


def test_a_daily_digest_with_nothing_in_it_sends_nothing_and_is_recorded_once(
    db: Engine,
) -> None:
    raise_concern(db, at(17), PRACTICE)  # medium: not for the daily digest

    (outcome,) = run_digest(
        engine=db, kind=DAILY, region_key=None, now=at(18, 7), policy=policy(), send=True
    )

    assert outcome.status is DigestStatus.EMPTY and outcome.messages == 0
    assert digest_rows(db) == []
    assert [(run.kind, run.messages) for run in runs(db)] == [("daily", 0)]
    # A high-risk concern raised after 07:00 is for tomorrow's digest, not a second run of today's.
    raise_high(db, at(18, 9), EMERGENCY)
    (again,) = run_digest(
        engine=db, kind=DAILY, region_key=None, now=at(18, 10), policy=policy(), send=True
    )
    assert again.status is DigestStatus.ALREADY_SENT
    (tomorrow,) = run_digest(
        engine=db, kind=DAILY, region_key=None, now=at(19, 7), policy=policy(), send=True
    )
    assert tomorrow.status is DigestStatus.QUEUED and tomorrow.messages == 2


def test_no_daily_digest_runs_at_a_weekend(db: Engine) -> None:
    raise_high(db, at(20), EMERGENCY)

    assert (
        run_digest(
            engine=db, kind=DAILY, region_key=None, now=at(21, 8), policy=policy(), send=True
        )
        == []
    )
    report = send_due_digests(engine=db, now=at(21, 8), policy=policy())

    assert {outcome.kind for outcome in report.outcomes} == {WEEKLY, MONTHLY}
    assert "daily" not in {run.kind for run in runs(db)}


# --- the scheduler's tick ---------------------------------------------------------------------


def test_after_downtime_only_the_latest_period_of_each_kind_is_sent(db: Engine) -> None:
    raise_high(db, at(16), EMERGENCY)
    # Down from Monday morning to Wednesday afternoon: Monday's and Tuesday's daily digests are
    # not sent in a burst; Wednesday's is, with the week's and the month's.
    wednesday = at(25, 15)
    report = send_due_digests(engine=db, now=wednesday, policy=policy())

    assert report.failed == []
    assert sorted((run.kind, run.period_start) for run in runs(db)) == [
        ("daily", at(24, 7)),
        ("monthly", at(1, 7, month=10)),
        ("weekly", at(16, 7)),
    ]
    again = send_due_digests(engine=db, now=wednesday + timedelta(minutes=1), policy=policy())
    assert again.outcomes == [] and again.messages == 0
    assert len(runs(db)) == 3


def test_two_instances_at_once_send_each_digest_once(db: Engine) -> None:
    a_week_of_concerns(db)
    url = db.url.render_as_string(hide_password=False)
    instances = [create_db_engine(url) for _ in range(3)]
    start = threading.Barrier(len(instances))
    statuses: list[DigestStatus] = []
    errors: list[BaseException] = []

    def instance(engine: Engine) -> None:
        try:
            start.wait(timeout=30)
            report = send_due_digests(engine=engine, now=WEEK_END, policy=policy())
            errors.extend(RuntimeError(failure) for failure in report.failed)
            statuses.extend(outcome.status for outcome in report.outcomes)
            for kind in DigestKind:
                outcomes = run_digest(
                    engine=engine,
                    kind=kind,
                    region_key="north-vale",
                    now=WEEK_END,
                    policy=policy(),
                    send=True,
                )
                statuses.extend(outcome.status for outcome in outcomes)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=instance, args=(engine,)) for engine in instances]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for engine in instances:
        engine.dispose()

    assert errors == []
    # Daily, weekly and monthly are each queued by exactly one instance.
    assert Counter(statuses)[DigestStatus.QUEUED] == 3
    assert sorted(run.kind for run in runs(db)) == ["daily", "monthly", "weekly"]
    keys = [row.idempotency_key for row in digest_rows(db)]
    assert len(keys) == 6 and len(set(keys)) == 6


# --- the monthly report and its CSV attachment ------------------------------------------------


def test_the_monthly_report_lists_the_actions_taken_on_each_high_risk_concern(db: Engine) -> None:
    week = a_week_of_concerns(db)
    act(db, week.high_new, acknowledge, at(17, 11))
    act(db, week.high_new, close_concern, at(27), reason="Rota fixed", policy=policy())
    period = due_period(MONTHLY, at(1, 8, month=12), policy().calendar)
    assert period == Period(at(1, 7), at(1, 7, month=12))
    north_vale = region(db)
    with transaction(db) as session:
        report = monthly_report_data(session, north_vale, period, policy())

    by_reference = {item.concern.reference: item for item in report.concerns}
    # Every high-risk concern raised in November, whatever its state now; nothing else.
    assert sorted(by_reference) == sorted(
        [week.dean_overdue, week.escalated, week.high_new, week.after_the_week]
    )
    high_new = by_reference[week.high_new]
    assert (high_new.organisation, high_new.department) == (
        "Vale General Hospitals NHS Trust",
        "Emergency Department",
    )
    assert high_new.concern.status == "closed"
    actions = [action.what for action in high_new.actions]
    assert "dean and quality team alerted (pathway 1)" in actions
    assert actions.index("acknowledged (pathway 1)") < actions.index("closed (pathway 1)")
    escalated = [action.what for action in by_reference[week.escalated].actions]
    assert "escalated from pathway 1 to pathway 2" in escalated
    assert "overdue at dean level, quality team told (pathway 3)" in [
        action.what for action in by_reference[week.dean_overdue].actions
    ]
    # No one's words: the close reason is not repeated.
    assert not any("Rota fixed" in action for action in actions)


@dataclass
class Recorder:
    """An aiosmtpd handler that keeps every message it accepts."""

    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        parsed = email.message_from_bytes(
            envelope.original_content or b"", policy=email.policy.default
        )
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 2.0.0 OK: queued"


@contextmanager
def relay(handler: Recorder) -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def test_the_monthly_csv_arrives_as_an_attachment_of_the_dispatched_email(db: Engine) -> None:
    week = a_week_of_concerns(db)
    # 1 December 2026 is a Tuesday: sent at 07:00 that morning.
    now = at(1, 7, month=12)
    (outcome,) = run_digest(
        engine=db, kind=MONTHLY, region_key=None, now=now, policy=policy(), send=True
    )
    assert outcome.status is DigestStatus.QUEUED
    threading_ = MailThreading(secret=b"digest-test", mailbox="escalating-concerns@example.nhs.uk")
    recorder = Recorder()

    with relay(recorder) as port:
        # Everything due goes, the concerns' own messages first (they were queued earlier).
        for _ in range(10):
            report = dispatch_due(
                store=SqlOutboxStore(db),
                sender=SmtpRelaySender.from_url(f"smtp://127.0.0.1:{port}"),
                threading=threading_,
                from_address="escalating-concerns@example.nhs.uk",
                now=now + timedelta(minutes=1),
            )
            assert report.failed == report.retried == 0 and report.errors == []
            if report.sent == 0:
                break

    assert {row.status for row in digest_rows(db)} == {"sent"}
    digests = [m for m in recorder.messages if m["Subject"].startswith("Monthly highlight")]
    assert sorted(m["To"] for m in digests) == [
        "morgan.example@example.nhs.uk",
        "quality.northvale@example.nhs.uk",
    ]
    for message in digests:
        assert message.get_content_type() == "multipart/mixed"
        assert message.get_body(preferencelist=("html",)) is not None
        assert message.get_body(preferencelist=("plain",)) is not None
        (csv_part,) = list(message.iter_attachments())
        assert csv_part.get_content_type() == "text/csv"
        assert csv_part.get_filename() == "high-risk-concerns-north-vale-2026-11.csv"
        lines = csv_part.get_content().replace("\r\n", "\n").splitlines()
        assert lines[0].startswith("reference,created,organisation,department,pathway")
        assert len(lines) == 1 + 4
        assert any(line.startswith(f"{week.high_new},") for line in lines)


def test_a_monthly_report_due_on_a_sunday_waits_for_monday_07_00(db: Engine) -> None:
    raise_high(db, at(20, month=10), EMERGENCY)
    # 1 November 2026 is a Sunday.
    run_digest(engine=db, kind=MONTHLY, region_key=None, now=at(1, 9), policy=policy(), send=True)

    rows = digest_rows(db)
    assert len(rows) == 2
    assert {row.send_after for row in rows} == {at(2, 7)}
    # The dispatcher on Monday at 06:00 (with no relay to reach) does not even try them.
    dispatch_due(
        store=SqlOutboxStore(db),
        sender=SmtpRelaySender.from_url("smtp://127.0.0.1:9"),
        threading=MailThreading(secret=b"x", mailbox="escalating-concerns@example.nhs.uk"),
        from_address="escalating-concerns@example.nhs.uk",
        now=at(2, 6),
    )
    assert [(row.status, row.attempts) for row in digest_rows(db)] == [("pending", 0)] * 2


# --- the service's tick -----------------------------------------------------------------------


def test_the_services_digest_tick_queues_what_is_due_and_wakes_the_dispatcher(
    db: Engine, tmp_path: Path
) -> None:
    settings = Settings(_env_file=None, outbox_dir=tmp_path / "outbox")  # type: ignore[call-arg]
    product = build(settings, engine=db)
    metrics = Metrics()

    async def one_digest_tick() -> datetime:
        mailbox = Mailbox(address=settings.mailbox_address, store=lambda batch: None)
        ticks = {
            tick.name: tick
            for tick in _ticks(
                product, sender=MaildirSender(tmp_path / "outbox"), metrics=metrics, mailbox=mailbox
            )
        }
        await ticks["digest"].run()
        await asyncio.sleep(0)  # the dispatcher's wake-up starts
        await ticks["dispatch"].wait_idle()
        return datetime.now(UTC)

    after = asyncio.run(one_digest_tick())

    # Whatever today is, this week's digest and last month's report are due.
    assert {"weekly", "monthly"} <= {run.kind for run in runs(db)}
    rows = digest_rows(db)
    assert len([row for row in rows if row.kind == "digest_weekly"]) == 2
    assert len([row for row in rows if row.kind == "digest_monthly"]) == 2
    for row in rows:
        # Sent by the dispatcher the tick woke, unless its day was a holiday and it waits.
        assert row.status == ("sent" if row.send_after <= after else "pending"), row.kind
    # The monthly report's CSV is in the written mail, when it was due to go.
    written = [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for path in (tmp_path / "outbox" / "new").glob("*")
    ]
    reports = [m for m in written if str(m["Subject"]).startswith("Monthly highlight report")]
    assert len(reports) == sum(1 for r in rows if r.kind == "digest_monthly" and r.status == "sent")
    for report in reports:
        assert isinstance(report, EmailMessage)
        (part,) = list(report.iter_attachments())
        assert part.get_content_type() == "text/csv"
    sample = metrics.registry.get_sample_value
    assert sample("concerns_digests_total", {"kind": "weekly", "outcome": "queued"}) == 1
    assert sample("concerns_digest_messages_queued_total", {"kind": "weekly"}) == 2
