"""The sweep's cost against the number of concerns stored, and its throughput, on SQLite and
PostgreSQL.

    .venv/bin/python bench/sweep.py [--due 1000] [--stored 10000,1000000] [--rounds 3]
        [--databases sqlite,postgresql]

For each database and each number stored, a fresh database gets the example directory and a few
concerns raised through the product (`intake.service.submit_concern`), taken through their
level's earlier steps by the product's own sweeps. Their rows, with their contacts, audit trail
and messages, are then copied in bulk SQL (INSERT ... SELECT over a generated series, in one
transaction) into:

- `--rounds` cohorts of `--due` concerns, each of which owes exactly one step, the escalation to
  the next pathway, at its cohort's moment (Monday 10:00, 11:00, 12:00, ...);
- fillers up to the number stored, never due during the run: 80% closed (feedback given, the
  learner satisfied), 20% open and raised in the last working day (their first reminder is
  later than the last round).

Each round is one timed `escalation.sweep.sweep` at its cohort's moment, which must escalate
exactly `--due` concerns; the median round is printed with escalations per second, and per
database the ratio of the largest number stored to the smallest (the issue's target: at most
1.5). The bare query for due ids is timed beside it, in the same state.

PostgreSQL is a throwaway server (`tests.postgres.PostgresServer`): filled with fsync off, then
switched to fsync and synchronous commit on for the sweeps, as durable as SQLite's
`synchronous=FULL`. Not part of `make test`: it prints numbers, it does not judge them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.bootstrap import build_policy
from app.settings import Settings
from escalation.actions import Actor, learner_satisfied, record_feedback
from escalation.policy import Policy
from escalation.sweep import sweep
from intake.service import submit_concern
from intake.submission import Channel, parse_submission
from storage import migrate, repositories
from storage.db import create_db_engine, transaction
from storage.directory import example_directory_path, load_directory_file
from storage.tables import Concern
from tests.postgres import PostgresServer

LONDON = ZoneInfo("Europe/London")
# The cohorts are raised on Monday 23 November 2026, an hour apart, and fall due (medium risk:
# feedback within 10 working days) on Monday 7 December at the same hours.
RAISED = datetime(2026, 11, 23, 10, 0, tzinfo=LONDON)
# The open fillers were raised in the working day before the first round.
RECENTLY = [datetime(2026, 12, 4, hour, 30, tzinfo=LONDON) for hour in (13, 14, 15, 16)] + [
    datetime(2026, 12, 7, 9, 0, tzinfo=LONDON)
]
# The closed fillers were raised, answered and closed long before.
LONG_AGO = datetime(2026, 10, 5, 10, 0, tzinfo=LONDON)
# Copies are numbered from here, far above what the product numbered the templates.
COPY_BASE = 10_000_000
CHUNK = 100_000
# Of every 100 fillers, how many are closed; the rest are open and not due.
CLOSED_PER_HUNDRED = 80
# Columns of the summary table after the database's name.
WIDTHS = (10, 7, 8, 14, 13)

PLACES = (
    {"organisation": "vale-general", "department": "emergency"},
    {"organisation": "vale-general", "department": "maternity"},
    {"organisation": "vale-general", "department": "general-surgery"},
    {"organisation": "vale-general", "department": "care-of-older-people"},
    {"organisation": "riverside-surgery", "department": "general-practice"},
    {"organisation": "riverside-surgery", "department": "practice-pharmacy"},
)
NURSE = {
    "name": "Sam Benchstudent",
    "email": "sam.benchstudent@vale.example.ac.uk",
    "group": "nursing",
    "programme": "adult nursing",
}
DOCTOR = {
    "name": "Priya Benchlearner",
    "email": "priya.benchlearner@example.nhs.uk",
    "group": "foundation",
    "programme": "Foundation Programme FY1",
}


def concern_input(place: dict[str, str], **changes: Any) -> dict[str, Any]:
    """A medium-risk named concern (once x learners affected: 2 x 3, rated A), as the form would
    send; still medium as a hotspot (3 x 3), so every cohort has the same deadlines."""
    raw: dict[str, Any] = {
        "learner": DOCTOR,
        "placement": place,
        "summary": "Regional teaching keeps being cancelled",
        "description": "Our weekly teaching has been cancelled several times this term.",
        "frequency": "once",
        "harm": "learners_affected",
        "raised_before": "no",
        "confidentiality": "named",
    }
    raw.update(changes)
    return raw


# Each cohort: pathway 1 -> 2 (foundation school, and a university for the nursing student),
# pathway 2 -> 3 (about the supervisor), and an anonymous one (nobody to tell but contacts).
COHORT_TEMPLATES = (
    concern_input(PLACES[0]),
    concern_input(PLACES[1], learner=NURSE, confidentiality="confidential"),
    concern_input(PLACES[2], about_pathway1_contact=True),
    concern_input(
        PLACES[4], learner={"group": "undergraduate_medical"}, confidentiality="anonymous"
    ),
)


@dataclass(frozen=True)
class Round:
    sweep_seconds: float
    due_query_seconds: float
    escalations: int


@dataclass(frozen=True)
class Measured:
    database: str
    stored: int
    rounds: list[Round]
    fill_seconds: float

    @property
    def median_sweep(self) -> float:
        return statistics.median(r.sweep_seconds for r in self.rounds)

    @property
    def median_due_query(self) -> float:
        return statistics.median(r.due_query_seconds for r in self.rounds)


# --- the database ----------------------------------------------------------------------------


@contextmanager
def fresh_database(kind: str, server: PostgresServer | None, folder: Path) -> Iterator[Engine]:
    if kind == "sqlite":
        path = folder / f"sweep-{time.monotonic_ns()}.db"
        engine = create_db_engine(f"sqlite:///{path}")
    else:
        assert server is not None
        engine = create_db_engine(server.create_database(f"sweep_{time.monotonic_ns()}"))
    try:
        migrate.upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        if kind == "sqlite":
            for leftover in folder.glob("sweep-*"):
                leftover.unlink()


def durable(server: PostgresServer, on: bool) -> None:
    """fsync and synchronous commit on (for the sweeps) or off (for the bulk fill)."""
    import psycopg

    value = "on" if on else "off"
    with psycopg.connect(server.url("postgres"), autocommit=True) as connection:
        for setting in ("fsync", "full_page_writes", "synchronous_commit"):
            connection.execute(f"ALTER SYSTEM SET {setting} = {value}")
        connection.execute("SELECT pg_reload_conf()")


def tidy(engine: Engine) -> None:
    """What a database that has been running a while has: statistics, and no bulk WAL to read."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM ANALYZE"
            )
        with engine.connect() as connection:
            connection.exec_driver_sql("CHECKPOINT")
    else:
        raw = engine.raw_connection()
        try:
            raw.execute("ANALYZE")
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()


# --- templates, made by the product --------------------------------------------------------------


def make_templates(
    engine: Engine, policy: Policy, rounds: int
) -> tuple[list[list[int]], list[int]]:
    """The cohorts' templates (owing only their escalation) and the fillers' templates."""
    with transaction(engine) as session:
        load_directory_file(session, example_directory_path(), now=LONG_AGO - timedelta(days=30))
    cohorts = [
        [
            raise_concern(engine, policy, raw, now=RAISED + timedelta(hours=hour))
            for raw in COHORT_TEMPLATES
        ]
        for hour in range(rounds)
    ]
    # The level's earlier steps, applied by the product's sweep at their own moments, so that
    # the escalation is all a cohort still owes.
    reminders = [concern_of(engine, cid) for cid in cohorts[-1]]
    for moment in ("ack_reminder_at", "ack_due_at", "feedback_reminder_at"):
        report = sweep(engine=engine, now=max(getattr(c, moment) for c in reminders), policy=policy)
        assert len(report.applied) == sum(len(c) for c in cohorts) and not report.failed
    for hour, cohort in enumerate(cohorts):
        for concern_id in cohort:
            assert concern_of(engine, concern_id).next_due_at == due_moment(hour), concern_id

    open_fillers = [
        raise_concern(engine, policy, concern_input(place), now=moment)
        for moment in RECENTLY
        for place in PLACES
    ]
    last_round = due_moment(rounds - 1)
    for concern_id in open_fillers:
        next_due = concern_of(engine, concern_id).next_due_at
        assert next_due is not None and next_due > last_round, concern_id

    closed_fillers = []
    for place in PLACES:
        concern_id = raise_concern(engine, policy, concern_input(place), now=LONG_AGO)
        answered = LONG_AGO + timedelta(days=2)
        with transaction(engine) as session:
            concern = repositories.lock_concern(session, concern_id)
            assert concern is not None
            record_feedback(
                session=session,
                concern=concern,
                by=Actor(kind="staff", channel="web"),
                text="Teaching is protected in the rota from next week.",
                now=answered,
                policy=policy,
            )
            learner_satisfied(session=session, concern=concern, channel="web", now=answered)
        assert concern_of(engine, concern_id).next_due_at is None
        closed_fillers.append(concern_id)

    # Of every 100 fillers, CLOSED_PER_HUNDRED copy closed templates, the rest open ones.
    filler_templates = [
        closed_fillers[k % len(closed_fillers)]
        if k < CLOSED_PER_HUNDRED
        else open_fillers[k % len(open_fillers)]
        for k in range(100)
    ]
    # What the templates queued was sent long ago, as a running service would have done.
    with engine.begin() as connection:
        connection.execute(text("UPDATE outbox SET status = 'sent', sent_at = send_after"))
    return cohorts, filler_templates


def due_moment(hour: int) -> datetime:
    return datetime(2026, 12, 7, 10 + hour, 0, tzinfo=LONDON)


def raise_concern(engine: Engine, policy: Policy, raw: dict[str, Any], *, now: datetime) -> int:
    reference = submit_concern(
        engine=engine, concern=parse_submission(raw), channel=Channel.WEB, now=now, policy=policy
    ).reference
    with transaction(engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None and concern.id is not None
        return concern.id


def concern_of(engine: Engine, concern_id: int) -> Concern:
    with transaction(engine) as session:
        concern = session.get(Concern, concern_id)
        assert concern is not None
        return concern


# --- bulk copies in SQL ------------------------------------------------------------------------


def copy_in_bulk(
    connection: Connection,
    *,
    templates: Sequence[int],
    first: int,
    count: int,
    message_bodies: bool = True,
) -> None:
    """Copies first .. first+count-1 of the templates, round robin, numbered COPY_BASE + i: the
    concern rows with their contacts, events and outbox messages, in INSERT ... SELECTs.

    Without `message_bodies` the messages keep their rows and indexed columns but not their
    text, which the sweep never reads (a million concerns' mail would be ~7 GB per database).
    """
    tables = SQLModel.metadata.tables
    concerns = tables["concerns"]
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        series = "n(i) AS (SELECT generate_series(CAST(:first AS BIGINT), CAST(:last AS BIGINT)))"
    else:
        series = "n(i) AS (SELECT :first UNION ALL SELECT i + 1 FROM n WHERE i < :last)"
    mapping = ", ".join(f"({k}, {template})" for k, template in enumerate(templates))
    ctes = f"WITH RECURSIVE {series}, tm(k, template_id) AS (VALUES {mapping})"
    params = {
        "first": first,
        "last": first + count - 1,
        "base": COPY_BASE,
        "modulus": len(templates),
    }

    columns = [c.name for c in concerns.columns if c.name != "id"]
    values = {name: f"t.{name}" for name in columns} | {
        "number": "CAST(:base AS BIGINT) + n.i",
        "reference": "'LC-' || t.year || '-' || (CAST(:base AS BIGINT) + n.i)",
    }
    before = connection.execute(text("SELECT coalesce(max(id), 0) FROM concerns")).scalar_one()
    connection.execute(
        text(
            f"{ctes} INSERT INTO concerns ({', '.join(columns)}) "
            f"SELECT {', '.join(values[name] for name in columns)} "
            "FROM n JOIN tm ON tm.k = n.i % CAST(:modulus AS BIGINT) "
            "JOIN concerns AS t ON t.id = tm.template_id"
        ),
        params,
    )
    # The new rows, each with its template found again from its number.
    new_rows = (
        f"WITH tm(k, template_id) AS (VALUES {mapping}), "
        "m AS MATERIALIZED (SELECT nc.id AS new_id, nc.reference AS new_reference, "
        "t.id AS template_id, t.reference AS template_reference "
        # CROSS JOIN: SQLite then walks the new rows once, looking each template up.
        "FROM concerns AS nc CROSS JOIN tm CROSS JOIN concerns AS t "
        "WHERE nc.id > :before AND t.id = tm.template_id "
        "AND tm.k = (nc.number - CAST(:base AS BIGINT)) % CAST(:modulus AS BIGINT))"
    )
    outbox_changes = {
        "idempotency_key": "replace(c.idempotency_key, m.template_reference, m.new_reference)",
        "reference": "m.new_reference",
    }
    if not message_bodies:
        outbox_changes |= {"body_text": "''", "body_html": "NULL"}
    for name, changed in (("concern_contacts", {}), ("events", {}), ("outbox", outbox_changes)):
        table = tables[name]
        columns = [c.name for c in table.columns if c.name != "id"]
        values = {name: f"c.{name}" for name in columns} | {"concern_id": "m.new_id"} | changed
        connection.execute(
            text(
                f"{new_rows} INSERT INTO {table.name} ({', '.join(columns)}) "
                f"SELECT {', '.join(values[name] for name in columns)} "
                f"FROM m JOIN {table.name} AS c ON c.concern_id = m.template_id"
            ),
            {**params, "before": before},
        )


def fill(
    engine: Engine, *, cohorts: list[list[int]], filler_templates: list[int], due: int, stored: int
) -> int:
    """Copies the cohorts and the fillers up to `stored` concerns, in one transaction."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # Copies of rows that satisfy every foreign key satisfy them too: skip the per-row
            # checks (the triggers), which take half of PostgreSQL's time here.
            connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
        made = connection.execute(text("SELECT count(*) FROM concerns")).scalar_one()
        first = 0
        for cohort in cohorts:
            copy_in_bulk(connection, templates=cohort, first=first, count=due - len(cohort))
            first += due - len(cohort)
        fillers = stored - len(cohorts) * due - (made - sum(len(c) for c in cohorts))
        if fillers < 0:
            raise SystemExit(f"--stored {stored} is too few for {len(cohorts)} rounds of {due}")
        # Filler numbers continue from the cohorts', aligned so the round robin starts at 0.
        first = -(-first // len(filler_templates)) * len(filler_templates)
        for chunk in range(0, fillers, CHUNK):
            copy_in_bulk(
                connection,
                templates=filler_templates,
                first=first + chunk,
                count=min(CHUNK, fillers - chunk),
                message_bodies=False,
            )
            print(f"    {min(chunk + CHUNK, fillers):,} of {fillers:,} fillers", flush=True)
        total = connection.execute(text("SELECT count(*) FROM concerns")).scalar_one()
    assert total == stored, (total, stored)
    return int(total)


# --- measuring ---------------------------------------------------------------------------------


def measure(
    kind: str, stored: int, *, due: int, rounds: int, server: PostgresServer | None, folder: Path
) -> Measured:
    policy = build_policy(Settings(_env_file=None))  # type: ignore[call-arg]
    with fresh_database(kind, server, folder) as engine:
        if server is not None:
            durable(server, False)
        started = time.perf_counter()
        cohorts, filler_templates = make_templates(engine, policy, rounds)
        fill(engine, cohorts=cohorts, filler_templates=filler_templates, due=due, stored=stored)
        tidy(engine)
        filled = time.perf_counter() - started
        if server is not None:
            durable(server, True)
        measured = []
        for hour in range(rounds):
            now = due_moment(hour)
            with transaction(engine) as session:
                started = time.perf_counter()
                due_ids = repositories.due_concern_ids(session, now=now, limit=2 * due)
                due_query = time.perf_counter() - started
            assert len(due_ids) == due, (len(due_ids), due)
            started = time.perf_counter()
            report = sweep(engine=engine, now=now, policy=policy)
            seconds = time.perf_counter() - started
            kinds = {step.kind for step in report.applied}
            assert len(report.applied) == due and kinds == {"escalate"} and not report.failed
            measured.append(Round(seconds, due_query, len(report.applied)))
            print(
                f"  {kind} {stored:>9,} stored, round {hour + 1}: {seconds:6.2f} s, "
                f"{due / seconds:5.0f} escalations/s (due query {due_query * 1000:.1f} ms)",
                flush=True,
            )
        return Measured(kind, stored, measured, filled)


def table_row(name: str, cells: Sequence[str]) -> str:
    return f"{name:<11} " + " ".join(f"{c:>{w}}" for c, w in zip(cells, WIDTHS, strict=True))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--stored", default="10000,1000000", help="comma-separated, smallest first")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args(argv)
    sizes = sorted(int(size) for size in args.stored.split(","))
    kinds = [kind.strip() for kind in args.databases.split(",")]

    results: list[Measured] = []
    server: PostgresServer | None = None
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as scratch:
        try:
            if "postgresql" in kinds:
                server = PostgresServer()
                server.start()
            for kind in kinds:
                for stored in sizes:
                    print(
                        f"{kind}: {stored:,} stored, {args.rounds} rounds of {args.due:,} due",
                        flush=True,
                    )
                    results.append(
                        measure(
                            kind,
                            stored,
                            due=args.due,
                            rounds=args.rounds,
                            server=server if kind == "postgresql" else None,
                            folder=Path(scratch),
                        )
                    )
        finally:
            if server is not None:
                server.stop()

    print()
    print(table_row("database", ("stored", "fill s", "sweep s", "escalations/s", "due query ms")))
    for result in results:
        figures = (
            f"{result.stored:,}",
            f"{result.fill_seconds:.1f}",
            f"{result.median_sweep:.2f}",
            f"{args.due / result.median_sweep:.0f}",
            f"{result.median_due_query * 1000:.1f}",
        )
        print(table_row(result.database, figures))
    print()
    for kind in kinds:
        small, large = (
            next(r for r in results if r.database == kind and r.stored == s)
            for s in (sizes[0], sizes[-1])
        )
        print(
            f"{kind}: sweep time among {large.stored:,} / among {small.stored:,} = "
            f"{large.median_sweep / small.median_sweep:.2f} (target at most 1.5)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
