"""`concerns demo`: three realistic concerns on a scratch database, with time walked forward.

Everything goes through the real use cases (`submit_concern`, `sweep`) and the example
directory; only the clock is simulated, jumping to each moment the sweep has something to do.
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlmodel import col, select

from app import bootstrap
from app.settings import Settings
from escalation.digest import DigestKind, run_digest
from escalation.sweep import sweep
from intake.service import submit_concern
from intake.submission import Channel, parse_submission
from storage import repositories
from storage.db import transaction
from storage.tables import Concern, id_of

LONDON = ZoneInfo("Europe/London")
START = datetime(2026, 11, 23, 9, 40, tzinfo=LONDON)  # a Monday morning

DEMO_CONCERNS: list[dict[str, object]] = [
    {
        "learner": {
            "name": "Sam Example",
            "email": "sam.example@example.nhs.uk",
            "group": "foundation",
            "programme": "Foundation Programme FY1",
        },
        "summary": "Teaching cancelled and assessments not signed off",
        "description": "Our protected teaching has been cancelled most weeks since August and my "
        "supervised learning events cannot get signed off before my review.",
        "frequency": "occasionally",
        "harm": "learners_affected",
        "raised_before": "no",
        "confidentiality": "named",
    },
    {
        "learner": {
            "name": "Alex Example",
            "email": "alex.example@example.ac.uk",
            "group": "nursing",
            "programme": "BSc Adult Nursing",
        },
        "summary": "Left unsupervised on night shifts",
        "description": "Students are regularly left unsupervised with no senior cover at night; "
        "last week a patient's deterioration was missed.",
        "frequency": "often",
        "harm": "patient_at_risk",
        "raised_before": "no",
        "confidentiality": "confidential",
    },
    {
        # Anonymous: no name or email, but the group says which school to tell.
        "learner": {"group": "specialty", "programme": "Core Surgical Training CT1"},
        "summary": "My supervisor belittles trainees in front of patients",
        "description": "Undermining comments on most shifts. I cannot raise it locally because "
        "it is my supervisor.",
        "frequency": "often",
        "harm": "learners_affected",
        "raised_before": "no",
        "about_pathway1_contact": True,
        "confidentiality": "anonymous",
    },
]


def _fill(template: dict[str, object], organisation: str, department: str) -> dict[str, object]:
    filled = dict(template)
    filled["placement"] = {"organisation": organisation, "department": department}
    return filled


def run_demo(settings: Settings) -> int:
    with tempfile.TemporaryDirectory(prefix="concerns-demo-") as scratch:
        demo_settings = settings.model_copy(
            update={"database_url": f"sqlite:///{Path(scratch) / 'demo.db'}"}
        )
        product = bootstrap.build(demo_settings)
        bootstrap.prepare_database(product, now=START)
        timezone = product.policy.calendar.timezone
        organisation, department = _first_department(product)
        print("Learner concerns: a guided run on a scratch database with the example directory.")
        print(f"Placement used: {department}, {organisation}\n")

        for raw in DEMO_CONCERNS:
            new = parse_submission(_fill(raw, organisation, department))
            now = START + timedelta(minutes=10 * DEMO_CONCERNS.index(raw))
            submitted = submit_concern(
                engine=product.engine,
                concern=new,
                channel=Channel.CLI,
                now=now,
                policy=product.policy,
            )
            _print_raised(product, submitted.reference, now, timezone)
            if submitted.code:
                print(f"    anonymous: the learner is shown the code {submitted.code} once")
            print()

        print("Walking time forward: the sweep runs at each moment something falls due.\n")
        end = START + timedelta(days=120)
        last = START
        while (moment := _next_due(product)) is not None and moment <= end:
            last = moment
            report = sweep(engine=product.engine, now=moment, policy=product.policy)
            for step in report.applied:
                move = f" -> pathway {step.to_pathway}" if step.to_pathway else ""
                print(
                    f"{moment.astimezone(timezone):%a %d %b %Y %H:%M}  {step.reference}  "
                    f"{step.kind.replace('_', ' ')} (pathway {step.pathway}{move})"
                )
                print(f"    told: {_told(product, step.reference, since=moment)}")
        print("\nWhere the concerns sit now (the dean's view):")
        with transaction(product.engine) as session:
            for concern in repositories.all_concerns(session):
                overdue = "  OVERDUE AT DEAN LEVEL" if concern.overdue_at_dean_at else ""
                print(
                    f"  {concern.reference}  pathway {concern.pathway}  {concern.risk_level} "
                    f"risk  {concern.summary}{overdue}"
                )
        _print_weekly_digest(product, after=last, timezone=timezone)
        print(
            "\nTry it yourself: concerns submit --file CONCERN.json, concerns sweep, "
            "concerns show REF, concerns digest weekly --now ISO"
        )
    return 0


def _print_weekly_digest(
    product: bootstrap.Product, *, after: datetime, timezone: ZoneInfo
) -> None:
    """The dean's weekly digest as sent the Monday after the last step (text part)."""
    local = after.astimezone(timezone)
    monday = (local + timedelta(days=7 - local.weekday())).replace(
        hour=8, minute=0, second=0, microsecond=0
    )
    outcomes = run_digest(
        engine=product.engine,
        kind=DigestKind.WEEKLY,
        region_key=None,
        now=monday,
        policy=product.policy,
        send=False,
    )
    for outcome in outcomes:
        if outcome.rendered is None:
            continue
        print(f"\nThe dean's weekly digest for {outcome.region}, {monday:%A %d %B %Y}:\n")
        print(outcome.rendered.text)


def _first_department(product: bootstrap.Product) -> tuple[str, str]:
    from storage.tables import Department, Organisation

    with transaction(product.engine) as session:
        row = session.exec(
            select(Organisation, Department)
            .join(Department, col(Department.organisation_id) == Organisation.id)
            .where(Organisation.active, Department.active)
            .order_by(col(Organisation.id), col(Department.id))
        ).first()
    if row is None:
        raise SystemExit("concerns demo: the directory has no departments")
    return row[0].name, row[1].name


def _next_due(product: bootstrap.Product) -> datetime | None:
    with transaction(product.engine) as session:
        return session.exec(
            select(Concern.next_due_at)
            .where(Concern.status == "open", col(Concern.next_due_at).is_not(None))
            .order_by(col(Concern.next_due_at))
        ).first()


def _told(product: bootstrap.Product, reference: str, *, since: datetime | None = None) -> str:
    """Who the outbox holds messages for (by role, never by name), optionally since a moment."""
    with transaction(product.engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None
        told = [
            f"{m.kind.replace('_', ' ')} -> {m.recipient_role.replace('_', ' ')}"
            for m in repositories.outbox_of(session, id_of(concern))
            if since is None or m.created_at >= since
        ]
    return "; ".join(told) or "nobody"


def _print_raised(
    product: bootstrap.Product, reference: str, now: datetime, timezone: ZoneInfo
) -> None:
    with transaction(product.engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None
        routed = [e for e in repositories.events_of(session, id_of(concern)) if e.kind == "routed"]
        start_reasons = routed[0].detail.get("reasons", []) if routed else []
        print(
            f"{now.astimezone(timezone):%a %d %b %Y %H:%M}  {reference} raised "
            f"({concern.confidentiality}): {concern.summary}"
        )
        print(
            f"    triage: likelihood {concern.likelihood} x impact {concern.impact} = "
            f"{concern.rating} -> {concern.risk_level} risk"
        )
        for reason in concern.risk_reasons:
            print(f"      - {reason}")
        print(
            f"    starts on pathway {concern.pathway}; acknowledge by "
            f"{concern.ack_due_at.astimezone(timezone):%a %d %b %H:%M}, feedback by "
            f"{concern.feedback_due_at.astimezone(timezone):%a %d %b %H:%M}"
        )
        for reason in start_reasons:
            print(f"      - {reason}")
    print(f"    told: {_told(product, reference)}")
