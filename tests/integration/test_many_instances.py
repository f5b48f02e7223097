"""Several instances on one database, and instances stopped for a while: every step and every
message exactly once, nothing routine sent at a weekend, and the clocks each action stops.

The racing sweepers are separate OS processes (`tests/integration/sweep_worker.py`) on a real
PostgreSQL server, one of them killed with SIGKILL in the middle of its sweep. Mail goes through
the product's SMTP relay sender to an aiosmtpd receiver in this process, which counts deliveries
by the outbox id carried in our Message-ID (a token that also names the recipient).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import IO, Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import Table, insert, select, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, col

from escalation.actions import Actor, acknowledge, record_feedback
from escalation.sweep import SweepReport, sweep
from intake.service import reference_for, submit_concern
from intake.submission import Channel, parse_submission
from notifications.senders import SmtpRelaySender
from routing.model import LearnerGroup, Pathway
from routing.recipients import recipient_roles
from storage import migrate, repositories
from storage.db import create_db_engine, transaction
from storage.tables import Concern, OutboxMessage
from tests.integration.helpers import (
    LONDON,
    MONDAY_MORNING,
    concern_input,
    load_example_directory,
    policy,
)
from tests.integration.sweep_worker import (
    run_instance,
    settings_for,
    threading_for,
)
from tests.integration.test_dispatch import free_port

REPOSITORY = Path(__file__).resolve().parents[2]
THREADING = threading_for(settings_for("sqlite://", None))

# Generous bounds for waits on other processes: they only decide how long a broken run takes to
# fail, never whether a working one passes.
WORKER_TIMEOUT_SECONDS = 120.0
POLL_SECONDS = 0.02

# The concerns of the first test: 1,000 copies of these four, all raised on MONDAY_MORNING.
EMERGENCY = {"organisation": "vale-general", "department": "emergency"}
MATERNITY = {"organisation": "vale-general", "department": "maternity"}
SURGERY = {"organisation": "vale-general", "department": "general-surgery"}
GENERAL_PRACTICE = {"organisation": "riverside-surgery", "department": "general-practice"}
OLDER_PEOPLE = {"organisation": "vale-general", "department": "care-of-older-people"}
PHARMACY = {"organisation": "riverside-surgery", "department": "practice-pharmacy"}
NURSE = {
    "name": "Sam Teststudent",
    "email": "sam.teststudent@vale.example.ac.uk",
    "group": "nursing",
    "programme": "adult nursing",
}
SURGICAL_TRAINEE = {
    "name": "Alex Testtrainee",
    "email": "alex.testtrainee@example.nhs.uk",
    "group": "specialty",
    "programme": "core surgical training",
}
TEMPLATES: tuple[dict[str, Any], ...] = (
    # Named foundation doctor, pathway 1 -> the foundation school.
    concern_input(EMERGENCY),
    # Confidential nursing student, pathway 1 -> the university.
    concern_input(MATERNITY, learner=NURSE, confidentiality="confidential"),
    # About the supervisor: starts at pathway 2 (the school of surgery) -> the dean.
    concern_input(SURGERY, learner=SURGICAL_TRAINEE, about_pathway1_contact=True),
    # Anonymous medical student: no identity, so no email to the learner.
    concern_input(
        GENERAL_PRACTICE,
        learner={"group": "undergraduate_medical"},
        confidentiality="anonymous",
    ),
)
CONCERNS_DUE_AT_ONCE = 1_000
# Copies get numbers from here on; the product numbered the templates 1, 2, 3, ...
FIRST_COPY_NUMBER = 100_001
KILL_AFTER_ESCALATIONS = 150

ESCALATION_MESSAGES = {"escalated_in", "escalated_out", "learner_escalated"}


# --- the SMTP receiver --------------------------------------------------------------------------


@dataclass
class Receiver:
    """An aiosmtpd handler that records the Message-ID and recipients of every message it takes."""

    deliveries: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        headers = BytesHeaderParser().parsebytes(envelope.original_content or b"")
        self.deliveries.append((str(headers["Message-ID"]), tuple(envelope.rcpt_tos)))
        return "250 2.0.0 OK: queued"

    def delivered_outbox_ids(self, start: int = 0) -> Counter[int]:
        """How often each outbox row arrived (from delivery `start` on); tokens are checked
        against the recipient, so a Message-ID sent to the wrong person counts for nothing."""
        arrived: Counter[int] = Counter()
        for message_id, recipients in self.deliveries[start:]:
            assert len(recipients) == 1, f"one recipient per message, got {recipients}"
            found = THREADING.verified_outbox_ids(sender=recipients[0], places=[message_id])
            assert len(found) == 1, f"{message_id} to {recipients[0]} names no outbox row of ours"
            arrived[found[0]] += 1
        return arrived


@dataclass(frozen=True)
class Relay:
    receiver: Receiver
    url: str


@pytest.fixture
def relay() -> Iterator[Relay]:
    receiver = Receiver()
    port = free_port()
    controller = Controller(receiver, hostname="127.0.0.1", port=port, server_hostname="relay.test")
    controller.start()
    try:
        yield Relay(receiver=receiver, url=f"smtp://127.0.0.1:{port}")
    finally:
        controller.stop()


# --- sweeper processes --------------------------------------------------------------------------


class Worker:
    """`python -m tests.integration.sweep_worker` in a process of its own, its stdout read as it
    comes so the test knows which stage it has reached."""

    def __init__(self, *, database_url: str, now: datetime, relay_url: str, log: Path) -> None:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("CONCERNS_")}
        self.log = log
        self.lines: list[dict[str, Any]] = []
        with log.open("wb") as stderr:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.integration.sweep_worker",
                    "--database-url",
                    database_url,
                    "--now",
                    now.isoformat(),
                    "--relay-url",
                    relay_url,
                ],
                cwd=REPOSITORY,
                env=environment,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        assert self.process.stdout is not None
        self.reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self.reader.start()

    def _read(self, stdout: IO[bytes]) -> None:
        with stdout:
            for line in stdout:
                self.lines.append(json.loads(line))

    def reached(self, stage: str) -> bool:
        return any(line["stage"] == stage for line in list(self.lines))

    def stage(self, stage: str) -> dict[str, Any]:
        return next(line for line in self.lines if line["stage"] == stage)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(WORKER_TIMEOUT_SECONDS)
        self.reader.join(WORKER_TIMEOUT_SECONDS)

    def finish(self) -> None:
        """Wait for a clean exit; fail with the worker's own error output otherwise."""
        try:
            status = self.process.wait(WORKER_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"a sweeper ran longer than {WORKER_TIMEOUT_SECONDS} s; see {self.log}")
        self.reader.join(WORKER_TIMEOUT_SECONDS)
        errors = self.log.read_text(errors="replace")
        assert status == 0, f"a sweeper exited with {status}: {self.lines}\n{errors}"


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WORKER_TIMEOUT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {WORKER_TIMEOUT_SECONDS} s for {what}")
        time.sleep(POLL_SECONDS)


# --- concerns -------------------------------------------------------------------------------------


def raise_concern(engine: Engine, raw: dict[str, Any], *, now: datetime) -> Concern:
    reference = submit_concern(
        engine=engine,
        concern=parse_submission(raw),
        channel=Channel.CLI,
        now=now,
        policy=policy(),
    ).reference
    return concern_of(engine, reference)


def concern_of(engine: Engine, reference: str) -> Concern:
    with transaction(engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None
        return concern


def copy_concerns(engine: Engine, templates: list[Concern], *, total: int) -> None:
    """Fill the table up to `total` concerns with copies of the templates, round robin: the row
    as the product wrote it (deadlines, markers, triage) with its contacts and its audit trail,
    under new numbers. Much faster than raising each one, and the due state is the product's."""
    tables = SQLModel.metadata.tables
    concerns, contacts, events = tables["concerns"], tables["concern_contacts"], tables["events"]
    template_ids = [concern.id for concern in templates]
    with engine.begin() as connection:
        originals = {
            row["id"]: dict(row)
            for row in connection.execute(
                select(concerns).where(concerns.c.id.in_(template_ids))
            ).mappings()
        }
        copies = []
        for index in range(total - len(templates)):
            number = FIRST_COPY_NUMBER + index
            row = {**originals[template_ids[index % len(templates)]], "number": number}
            row["reference"] = reference_for(row["year"], number)
            del row["id"]
            copies.append(row)
        connection.execute(insert(concerns), copies)
        new_ids = connection.execute(
            select(concerns.c.id, concerns.c.number).where(concerns.c.number >= FIRST_COPY_NUMBER)
        ).all()
        template_of = {
            concern_id: template_ids[(number - FIRST_COPY_NUMBER) % len(templates)]
            for concern_id, number in new_ids
        }
        for table in (contacts, events):
            _copy_children(connection, table, template_of)
        # The counter moves past the copies, as if the product had numbered them.
        connection.execute(
            text("UPDATE reference_counters SET last = :last"),
            {"last": FIRST_COPY_NUMBER + len(copies)},
        )


def _copy_children(connection: Any, table: Table, template_of: dict[int, int]) -> None:
    by_template: dict[int, list[dict[str, Any]]] = {}
    for row in connection.execute(
        select(table).where(table.c.concern_id.in_(set(template_of.values())))
    ).mappings():
        child = dict(row)
        del child["id"]
        by_template.setdefault(child["concern_id"], []).append(child)
    rows = [
        {**child, "concern_id": concern_id}
        for concern_id, template_id in template_of.items()
        for child in by_template[template_id]
    ]
    connection.execute(insert(table), rows)


def expected_escalation_messages(concern: Concern) -> Counter[tuple[str, str]]:
    """What one escalation of this concern tells, by (kind, recipient role), from routing's
    tables: the new level's primary and copy contacts, the previous level's primary contact,
    and the learner unless anonymous."""
    group = LearnerGroup(concern.learner_group) if concern.learner_group else None
    before = recipient_roles(
        pathway=Pathway(concern.pathway),
        group=group,
        prefer_speak_up_guardian=concern.prefers_speak_up_guardian,
    )
    after = recipient_roles(pathway=Pathway(concern.pathway + 1), group=group)
    told: Counter[tuple[str, str]] = Counter()
    for role in {after.primary, *after.copy}:
        told["escalated_in", role.value] += 1
    told["escalated_out", before.primary.value] += 1
    if concern.confidentiality != "anonymous":
        told["learner_escalated", "learner"] += 1
    return told


def all_rows(engine: Engine, statement: Any) -> list[Any]:
    with transaction(engine) as session:
        return list(session.execute(statement).all())


# --- 1. three sweepers, one killed ----------------------------------------------------------------


@pytest.mark.postgres
def test_three_sweepers_one_killed_mid_sweep_escalate_and_send_everything_exactly_once(
    postgres_url: str, relay: Relay, tmp_path: Path
) -> None:
    engine = create_db_engine(postgres_url)
    try:
        migrate.upgrade(engine)
        load_example_directory(engine)
        templates = [raise_concern(engine, raw, now=MONDAY_MORNING) for raw in TEMPLATES]
        assert [t.pathway for t in templates] == [1, 1, 2, 1]
        assert {t.risk_level for t in templates} == {"medium"}
        copy_concerns(engine, templates, total=CONCERNS_DUE_AT_ONCE)

        stored = all_rows(engine, select(Concern))
        due = templates[0].feedback_due_at
        assert {c.feedback_due_at for (c,) in stored} == {due}, "they fall due at the same moment"
        with transaction(engine) as session:
            due_ids = repositories.due_concern_ids(session, now=due, limit=2 * len(stored))
        assert len(due_ids) == CONCERNS_DUE_AT_ONCE
        before = {c.id: c for (c,) in stored}

        workers = [
            Worker(
                database_url=postgres_url,
                now=due,
                relay_url=relay.url,
                log=tmp_path / f"sweeper-{n}.log",
            )
            for n in range(3)
        ]
        try:
            wait_until(
                lambda: all(w.reached("sweeping") for w in workers), "all three to start sweeping"
            )
            wait_until(
                lambda: _escalations(engine) >= KILL_AFTER_ESCALATIONS,
                f"{KILL_AFTER_ESCALATIONS} escalations",
            )
            victim, survivors = workers[0], workers[1:]
            victim.kill()
            assert not victim.reached("swept"), "the victim had finished its sweep: kill it sooner"
            for survivor in survivors:
                survivor.finish()
        finally:
            for worker in workers:
                if worker.process.poll() is None:
                    worker.process.kill()
                    worker.process.wait()
        one_more = Worker(
            database_url=postgres_url,
            now=due,
            relay_url=relay.url,
            log=tmp_path / "sweeper-restarted.log",
        )
        one_more.finish()

        # Every concern escalated exactly once, one level up.
        moves = all_rows(
            engine,
            text("SELECT concern_id, from_pathway, to_pathway FROM escalations"),
        )
        assert sorted(concern_id for concern_id, _, _ in moves) == sorted(before)
        assert all(
            (start, end) == (before[cid].pathway, before[cid].pathway + 1)
            for cid, start, end in moves
        )
        after = {c.id: c for (c,) in all_rows(engine, select(Concern))}
        assert all(after[cid].pathway == before[cid].pathway + 1 for cid in before)

        escalated_events = all_rows(
            engine,
            text("SELECT concern_id, count(*) FROM events WHERE kind = 'escalated' GROUP BY 1"),
        )
        assert sorted(escalated_events) == [(cid, 1) for cid in sorted(before)]

        # What the processes report: escalations only, none twice. The killed one's share is
        # what is left, and it had committed some before it died: it was killed mid-sweep.
        reports = [survivor.stage("swept") for survivor in survivors]
        reports.append(one_more.stage("swept"))
        assert [report["failed"] for report in reports] == [[], [], []]
        applied = [tuple(step) for report in reports for step in report["applied"]]
        assert {kind for _, kind in applied} == {"escalate"}
        assert len(applied) == len({reference for reference, _ in applied})
        assert 0 < CONCERNS_DUE_AT_ONCE - len(applied) < CONCERNS_DUE_AT_ONCE, (
            "the killed sweeper had escalated nothing"
        )

        # Every expected message exists exactly once.
        outbox = [row for (row,) in all_rows(engine, select(OutboxMessage))]
        keys = Counter(message.idempotency_key for message in outbox)
        assert [key for key, count in keys.items() if count > 1] == []
        told: dict[int, Counter[tuple[str, str]]] = {cid: Counter() for cid in before}
        for message in outbox:
            if message.kind in ESCALATION_MESSAGES:
                assert message.concern_id is not None
                told[message.concern_id][message.kind, message.recipient_role] += 1
        wrong = {
            before[cid].reference: (told[cid], expected_escalation_messages(before[cid]))
            for cid in before
            if told[cid] != expected_escalation_messages(before[cid])
        }
        assert wrong == {}, f"told (found, expected): {list(wrong.items())[:3]}"

        # ...and every outbox row reached the relay exactly once.
        arrived = relay.receiver.delivered_outbox_ids()
        assert arrived == Counter({message.id: 1 for message in outbox})
        assert {message.status for message in outbox} == {"sent"}
        sent_by_workers = sum(w.stage("dispatched")["sent"] for w in [*survivors, one_more])
        assert sent_by_workers == len(outbox)
    finally:
        engine.dispose()


def _escalations(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM escalations")).scalar_one())


# --- 2. stopped across deadlines and a weekend ---------------------------------------------------

FRIDAY_BEFORE = datetime(2026, 11, 27, 9, 0, tzinfo=LONDON)
FRIDAY = datetime(2026, 12, 4, 9, 0, tzinfo=LONDON)
SATURDAY = datetime(2026, 12, 5, 10, 0, tzinfo=LONDON)
SUNDAY = datetime(2026, 12, 6, 15, 0, tzinfo=LONDON)
MONDAY_OPENING = datetime(2026, 12, 7, 9, 0, tzinfo=LONDON)

RISK_INPUT = {
    "high": {"frequency": "often", "harm": "patient_at_risk"},
    "medium": {"frequency": "occasionally", "harm": "learners_affected"},
    "low": {
        "frequency": "once",
        "harm": "minor",
        "summary": "The library closes early",
        "description": "The library closes at 4pm, so I cannot use the computers after a shift.",
    },
}
PLACEMENT_OF_RISK = {"high": EMERGENCY, "medium": OLDER_PEOPLE, "low": PHARMACY}
# The one step each due item takes on Saturday, by the Friday the concern was raised on (09:00)
# and its risk level; windows in working days: high 1/5, medium 2/10, low 3/15, reminders at half.
CATCH_UP = {
    # The day before: high's acknowledgement deadline (Fri 17:00) passed, which supersedes its
    # reminder (13:00); medium's reminder (Fri 17:00) is due; low's reminder is Mon 13:00.
    FRIDAY: {"high": ["ack_missed"], "medium": ["ack_reminder"], "low": []},
    # A week before: high's feedback deadline (Thu 17:00) passed, which supersedes every reminder
    # of the level; medium's acknowledgement deadline and feedback reminder both passed (its
    # acknowledgement reminder did not survive the deadline); low's acknowledgement deadline
    # passed, its feedback reminder is Tue 8 Dec.
    FRIDAY_BEFORE: {
        "high": ["escalate"],
        "medium": ["ack_missed", "feedback_reminder"],
        "low": ["ack_missed"],
    },
}
MESSAGES_OF_STEP = {
    "ack_reminder": {"ack_reminder"},
    "ack_missed": {"ack_missed", "ack_missed_secondary"},
    "feedback_reminder": {"feedback_reminder"},
    "escalate": ESCALATION_MESSAGES,
}
STEP_MESSAGES = set().union(*MESSAGES_OF_STEP.values())


@pytest.mark.parametrize("raised", [FRIDAY, FRIDAY_BEFORE], ids=["day-before", "week-before"])
def test_stopped_over_deadlines_and_a_weekend_one_step_each_and_nothing_routine_sent_at_weekend(
    engine: Engine, relay: Relay, raised: datetime
) -> None:
    load_example_directory(engine)
    settings = settings_for("sqlite://", relay.url)
    rules = policy()

    def instance(now: datetime, *, do_sweep: bool = True) -> SweepReport | None:
        return run_instance(
            engine=engine,
            policy=rules,
            sender=SmtpRelaySender.from_url(relay.url),
            threading=threading_for(settings),
            now=now,
            do_sweep=do_sweep,
        ).swept

    concerns = {
        risk: raise_concern(engine, concern_input(PLACEMENT_OF_RISK[risk], **answers), now=raised)
        for risk, answers in RISK_INPUT.items()
    }
    assert {risk: c.risk_level for risk, c in concerns.items()} == {r: r for r in RISK_INPUT}
    # The instances were running when the concerns came in: what that queued goes at once.
    instance(raised)
    assert _pending(engine) == []
    after_friday = len(relay.receiver.deliveries)

    # Everything stopped until Saturday: one step per due item, none of what a deadline skipped.
    saturday = instance(SATURDAY)
    assert saturday is not None and saturday.failed == []
    reference_risk = {c.reference: risk for risk, c in concerns.items()}
    applied: dict[str, list[str]] = {risk: [] for risk in RISK_INPUT}
    for step in saturday.applied:
        applied[reference_risk[step.reference]].append(step.kind)
    assert applied == CATCH_UP[raised]
    for risk, concern in concerns.items():
        with transaction(engine) as session:
            outbox = repositories.outbox_of(session, concern.id or 0)
        queued_by_steps = {m.kind for m in outbox if m.kind in STEP_MESSAGES}
        expected = set().union(set(), *(MESSAGES_OF_STEP[s] for s in CATCH_UP[raised][risk]))
        assert queued_by_steps == expected, risk
    assert instance(SATURDAY) == SweepReport(now=SATURDAY), "a second sweep finds it done"

    # Neither Saturday's nor Sunday's dispatch sent anything: what the steps queued (for the
    # learner too: a deadline passing is nobody's action to answer) waits for Monday 09:00.
    assert instance(SUNDAY) == SweepReport(now=SUNDAY), "nothing more is due on Sunday"
    assert relay.receiver.deliveries[after_friday:] == []
    pending = _pending(engine)
    assert pending, "the steps queued messages"
    assert {m.send_after.astimezone(LONDON) for m in pending} == {MONDAY_OPENING}

    # Monday 09:00: each waiting message goes, once; nothing more is due yet.
    monday = len(relay.receiver.deliveries)
    assert instance(MONDAY_OPENING) == SweepReport(now=MONDAY_OPENING)
    assert relay.receiver.delivered_outbox_ids(monday) == Counter({m.id: 1 for m in pending})
    assert _pending(engine) == []
    everything = [m for (m,) in all_rows(engine, select(OutboxMessage))]
    assert relay.receiver.delivered_outbox_ids() == Counter({m.id: 1 for m in everything})


def _pending(engine: Engine) -> list[OutboxMessage]:
    pending = select(OutboxMessage).where(col(OutboxMessage.status) == "pending")
    return [m for (m,) in all_rows(engine, pending)]


# --- 3. the clocks each action stops -------------------------------------------------------------


def test_acknowledging_stops_the_ack_clock_only_and_feedback_stops_the_feedback_clock(
    engine: Engine,
) -> None:
    load_example_directory(engine)
    rules = policy()
    # Three medium concerns raised together (in different departments, so none is a hotspot):
    # the same deadlines for all three.
    untouched, acknowledged, answered = (
        raise_concern(engine, concern_input(place), now=MONDAY_MORNING)
        for place in (EMERGENCY, OLDER_PEOPLE, PHARMACY)
    )
    names = {
        untouched.reference: "untouched",
        acknowledged.reference: "acknowledged",
        answered.reference: "answered",
    }
    assert len({(c.risk_level, c.feedback_due_at) for c in (untouched, acknowledged)}) == 1
    an_hour_later = MONDAY_MORNING.replace(hour=11)
    with transaction(engine) as session:
        concern = repositories.lock_concern(session, acknowledged.id or 0)
        assert concern is not None
        acknowledge(
            session=session, concern=concern, by=_primary(session, concern), now=an_hour_later
        )
    with transaction(engine) as session:
        concern = repositories.lock_concern(session, answered.id or 0)
        assert concern is not None
        record_feedback(
            session=session,
            concern=concern,
            by=_primary(session, concern),
            text="Teaching is now protected in the rota from next week.",
            now=an_hour_later,
            policy=rules,
        )
    close_after = concern_of(engine, answered.reference).close_after
    assert close_after is not None and close_after > untouched.feedback_due_at

    def steps_at(now: datetime) -> dict[str, list[str]]:
        report = sweep(engine=engine, now=now, policy=rules)
        assert report.failed == []
        found: dict[str, list[str]] = {name: [] for name in names.values()}
        for step in report.applied:
            found[names[step.reference]].append(step.kind)
        return found

    assert steps_at(untouched.ack_reminder_at) == {
        "untouched": ["ack_reminder"],
        "acknowledged": [],
        "answered": [],
    }
    assert steps_at(untouched.ack_due_at) == {
        "untouched": ["ack_missed"],
        "acknowledged": [],
        "answered": [],
    }
    assert steps_at(untouched.feedback_reminder_at) == {
        "untouched": ["feedback_reminder"],
        "acknowledged": ["feedback_reminder"],
        "answered": [],
    }
    assert steps_at(untouched.feedback_due_at) == {
        "untouched": ["escalate"],
        "acknowledged": ["escalate"],
        "answered": [],
    }
    assert steps_at(close_after) == {
        "untouched": [],
        "acknowledged": [],
        "answered": ["close_after_silence"],
    }

    kinds = {
        name: Counter(m.kind for m in _outbox_of(engine, reference))
        for reference, name in names.items()
    }
    assert kinds["acknowledged"]["ack_reminder"] == kinds["acknowledged"]["ack_missed"] == 0
    assert kinds["acknowledged"]["feedback_reminder"] == 1
    assert kinds["untouched"]["ack_reminder"] == kinds["untouched"]["ack_missed"] == 1
    assert not set(kinds["answered"]) & STEP_MESSAGES
    final = {name: concern_of(engine, reference) for reference, name in names.items()}
    assert (final["untouched"].pathway, final["acknowledged"].pathway) == (2, 2)
    assert (final["answered"].pathway, final["answered"].status) == (1, "closed")


def _primary(session: Any, concern: Concern) -> Actor:
    """The concern's primary contact at its current level, acting on the web."""
    for assignment, contact in repositories.assignments_of(
        session, concern.id or 0, pathway=concern.pathway
    ):
        if assignment.part == "primary":
            return Actor(kind="contact", channel="web", contact_id=contact.id)
    raise AssertionError(f"{concern.reference} has no primary contact")


def _outbox_of(engine: Engine, reference: str) -> list[OutboxMessage]:
    with transaction(engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None
        return list(repositories.outbox_of(session, concern.id or 0))
