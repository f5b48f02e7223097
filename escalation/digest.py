"""Digests and reports for deans and quality teams: when each is due, what it holds, and queuing
it exactly once per (kind, region, period) however many instances reach the scheduled moment.

Schedule (the calendar's zone, Europe/London): the daily high-risk digest at 07:00 on working
days, covering the time since the previous working day's 07:00 (a Monday digest covers the
weekend); the weekly escalation digest on Mondays at 07:00, covering the 7 days before; the
monthly highlight report on the 1st at 07:00, covering the previous calendar month.

Exactly once: the `digest_runs` row (unique per kind, region and period start) is inserted with
ON CONFLICT DO NOTHING in the same transaction as the outbox rows. Whoever inserts it queues the
messages; everyone else finds it there and does nothing. After downtime each tick looks only at
the latest due period of each kind, so a restart catches up once and never sends a burst.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from escalation.notify import place_of
from escalation.policy import Policy
from notifications.digests import (
    ActionTaken,
    ConcernLine,
    DailyDigest,
    Digest,
    DigestKind,
    EscalatedLine,
    HeatMap,
    Hotspot,
    MonthlyReport,
    OverdueLine,
    PathwayOverdue,
    Period,
    RenderedDigest,
    ReportedConcern,
    ThemeCount,
    WeeklyDigest,
    render_digest,
)
from routing.calendar import WorkingCalendar
from routing.model import ConcernStatus, Pathway, RiskLevel, Role
from routing.standards import DOMAINS, STANDARDS
from storage import inbox, repositories
from storage.db import transaction
from storage.tables import (
    Concern,
    Contact,
    Department,
    DigestRun,
    Escalation,
    Event,
    Organisation,
    OutboxMessage,
    Region,
    id_of,
)

log = logging.getLogger(__name__)

# Digests go at 07:00, before working hours (09:00): they are what deans read first in the day.
SCHEDULED_AT = time(7)
# Holidays that cover a whole year would leave no working day to find: stop looking instead.
MAX_DAYS_BACK = 366
HOTSPOT_MIN_CONCERNS = 2
_DAY = timedelta(days=1)
RECIPIENT_ROLES = (Role.DEAN, Role.QUALITY_TEAM)
RISK_ORDER: Mapping[str, int] = MappingProxyType(
    {RiskLevel.HIGH.value: 0, RiskLevel.MEDIUM.value: 1, RiskLevel.LOW.value: 2}
)

# The audit trail's steps that are actions on a concern, as the monthly report words them. What
# the learner or a contact wrote stays out: only what happened, when and at which level.
ACTION_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "contacts_told": "contacts told",
        "high_risk_alert": "dean and quality team alerted",
        "rated_high_over_override": "dean and quality team told triage now rates it high",
        "contact_replaced": "a contact who left was replaced",
        "acknowledged": "acknowledged",
        "contact_replied": "a contact replied",
        "ack_reminder": "acknowledgement reminder sent",
        "ack_missed": "acknowledgement deadline missed, secondary contact told",
        "feedback_reminder": "feedback reminder sent",
        "feedback_given": "feedback given to the learner",
        "learner_remains_concerned": "the learner remained concerned",
        "escalated": "escalated",
        "overdue_at_dean": "overdue at dean level, quality team told",
        "triage_overridden": "risk rating changed by staff",
        "standards_edited": "standards edited by staff",
        "redirected": "redirected to another contact",
        "closed": "closed",
        "reopened": "reopened",
    }
)


class UnknownRegion(LookupError):
    """No region has the key asked for; `known` lists the active regions' keys."""

    def __init__(self, key: str, known: Sequence[str] = ()) -> None:
        super().__init__(key)
        self.key = key
        self.known = tuple(known)


# --- when each digest is due ------------------------------------------------------------------


def at_seven(day: date, calendar: WorkingCalendar) -> datetime:
    """07:00 local time on a day, as an aware UTC moment (07:00 is never in a clock change)."""
    return datetime.combine(day, SCHEDULED_AT, tzinfo=calendar.timezone).astimezone(UTC)


def due_period(kind: DigestKind, now: datetime, calendar: WorkingCalendar) -> Period | None:
    """The latest period of a kind whose scheduled moment is at or before `now`.

    None for the daily digest when that moment falls on a day that is not a working day.
    """
    local_today = now.astimezone(calendar.timezone).date()
    last = local_today if at_seven(local_today, calendar) <= now else local_today - _DAY
    if kind is DigestKind.DAILY:
        if not calendar.is_working_day(last):
            return None
        return Period(
            at_seven(_working_day_before(last, calendar), calendar), at_seven(last, calendar)
        )
    if kind is DigestKind.WEEKLY:
        monday = last - timedelta(days=last.weekday())
        return Period(at_seven(monday - timedelta(days=7), calendar), at_seven(monday, calendar))
    first = last.replace(day=1)
    previous_first = (first - _DAY).replace(day=1)
    return Period(at_seven(previous_first, calendar), at_seven(first, calendar))


def send_after_for(period: Period, calendar: WorkingCalendar) -> datetime:
    """The scheduled moment; when its day is not a working day, 07:00 on the next working day."""
    day = period.end.astimezone(calendar.timezone).date()
    if calendar.is_working_day(day):
        return period.end
    return at_seven(_working_day_after(day, calendar), calendar)


def _working_day_before(day: date, calendar: WorkingCalendar) -> date:
    for back in range(1, MAX_DAYS_BACK + 1):
        candidate = day - timedelta(days=back)
        if calendar.is_working_day(candidate):
            return candidate
    raise ValueError(f"no working day within {MAX_DAYS_BACK} days: check the holidays")


def _working_day_after(day: date, calendar: WorkingCalendar) -> date:
    for ahead in range(1, MAX_DAYS_BACK + 1):
        candidate = day + timedelta(days=ahead)
        if calendar.is_working_day(candidate):
            return candidate
    raise ValueError(f"no working day within {MAX_DAYS_BACK} days: check the holidays")


# --- what each digest holds -------------------------------------------------------------------
# State is read as it is now; deadlines and creation times are judged at the period's end, so a
# digest built at its scheduled moment and one previewed later for the same period agree on what
# was due and what was new.


def _high_risk_raised(session: Session, region: Region, period: Period) -> Sequence[Concern]:
    """The region's high-risk concerns raised in the period, oldest first."""
    return session.exec(
        select(Concern)
        .where(
            Concern.region_id == id_of(region),
            Concern.risk_level == RiskLevel.HIGH.value,
            col(Concern.created_at) >= period.start,
            col(Concern.created_at) < period.end,
        )
        .order_by(col(Concern.created_at), col(Concern.id))
    ).all()


def daily_digest_data(
    session: Session, region: Region, period: Period, policy: Policy
) -> DailyDigest:
    """New high-risk concerns raised in the period, and every open concern overdue at dean level."""
    new_high_risk = _high_risk_raised(session, region, period)
    overdue = session.exec(
        select(Concern)
        .where(
            Concern.region_id == id_of(region),
            Concern.status == ConcernStatus.OPEN.value,
            col(Concern.overdue_at_dean_at).is_not(None),
            col(Concern.overdue_at_dean_at) < period.end,
        )
        .order_by(col(Concern.overdue_at_dean_at), col(Concern.id))
    ).all()
    return DailyDigest(
        region_key=region.key,
        region=region.name,
        period=period,
        timezone=policy.calendar.timezone,
        new_high_risk=tuple(_line(session, concern, policy) for concern in new_high_risk),
        overdue_at_dean=tuple(_line(session, concern, policy) for concern in overdue),
    )


def weekly_digest_data(
    session: Session, region: Region, period: Period, policy: Policy
) -> WeeklyDigest:
    """The dean's weekly escalation digest for a region."""
    open_concerns = session.exec(
        select(Concern)
        .where(
            Concern.region_id == id_of(region),
            Concern.status == ConcernStatus.OPEN.value,
            col(Concern.created_at) < period.end,
        )
        .order_by(col(Concern.created_at), col(Concern.id))
    ).all()
    lines = {id_of(concern): _line(session, concern, policy) for concern in open_concerns}
    overdue_at_dean = sorted(
        (c for c in open_concerns if c.overdue_at_dean_at and c.overdue_at_dean_at < period.end),
        key=lambda c: (c.overdue_at_dean_at, c.id),
    )
    high_and_medium = sorted(
        (c for c in open_concerns if c.risk_level in (RiskLevel.HIGH, RiskLevel.MEDIUM)),
        key=lambda c: (RISK_ORDER.get(c.risk_level, 9), c.created_at, c.id),
    )
    return WeeklyDigest(
        region_key=region.key,
        region=region.name,
        period=period,
        timezone=policy.calendar.timezone,
        hotspot_window_days=policy.hotspot_window_days,
        overdue_at_dean=tuple(lines[id_of(c)] for c in overdue_at_dean),
        escalated=_escalated(session, region, period, policy),
        overdue_by_pathway=_overdue_by_pathway(open_concerns, lines, as_of=period.end),
        open_high_and_medium=tuple(lines[id_of(c)] for c in high_and_medium),
        hotspots=_hotspots(session, region, period, policy),
        themes=theme_counts(concern.standards for concern in open_concerns),
        heat_map=HeatMap(counts=dict(Counter((c.likelihood, c.impact) for c in open_concerns))),
        kept_aside=inbox.kept_aside_count(session, region_id=id_of(region), before=period.end),
        kept_aside_url=policy.kept_aside_url(),
    )


def monthly_report_data(
    session: Session, region: Region, period: Period, policy: Policy
) -> MonthlyReport:
    """High-risk concerns raised in the month and the actions taken on each by the month's end."""
    concerns = _high_risk_raised(session, region, period)
    ids = [id_of(concern) for concern in concerns]
    events = session.exec(
        select(Event)
        .where(
            col(Event.concern_id).in_(ids),
            col(Event.kind).in_(tuple(ACTION_LABELS)),
            col(Event.at) < period.end,
        )
        .order_by(col(Event.at), col(Event.id))
    ).all()
    actions: dict[int, list[ActionTaken]] = {concern_id: [] for concern_id in ids}
    for event in events:
        actions[event.concern_id].append(ActionTaken(at=event.at, what=_action(event)))
    return MonthlyReport(
        region_key=region.key,
        region=region.name,
        period=period,
        timezone=policy.calendar.timezone,
        concerns=tuple(
            ReportedConcern(
                concern=_line(session, concern, policy),
                organisation=_organisation_name(session, concern),
                department=_department_name(session, concern),
                standards=tuple(concern.standards),
                actions=tuple(actions[id_of(concern)]),
            )
            for concern in concerns
        ),
    )


DATA: Mapping[DigestKind, Callable[[Session, Region, Period, Policy], Digest]] = MappingProxyType(
    {
        DigestKind.DAILY: daily_digest_data,
        DigestKind.WEEKLY: weekly_digest_data,
        DigestKind.MONTHLY: monthly_report_data,
    }
)


def _line(session: Session, concern: Concern, policy: Policy) -> ConcernLine:
    return ConcernLine(
        reference=concern.reference,
        place=place_of(session, concern),
        summary=concern.summary,
        pathway=concern.pathway,
        status=concern.status,
        risk_level=concern.risk_level,
        rating=concern.rating,
        likelihood=concern.likelihood,
        impact=concern.impact,
        created_at=concern.created_at,
        ack_due_at=concern.ack_due_at,
        feedback_due_at=concern.feedback_due_at,
        staff_url=policy.staff_url(concern.reference),
        interventions=tuple(concern.interventions),
        overdue_at_dean_at=concern.overdue_at_dean_at,
    )


def _escalated(
    session: Session, region: Region, period: Period, policy: Policy
) -> tuple[EscalatedLine, ...]:
    moves = session.exec(
        select(Escalation, Concern)
        .join(Concern, col(Concern.id) == Escalation.concern_id)
        .where(
            Concern.region_id == id_of(region),
            col(Escalation.at) >= period.start,
            col(Escalation.at) < period.end,
        )
        .order_by(col(Escalation.at), col(Escalation.id))
    ).all()
    # Who moved it (the audit trail's actor) says why, without quoting anyone's written reason.
    actors = {
        (concern_id, to_pathway): actor
        for concern_id, to_pathway, actor in session.exec(
            select(Event.concern_id, Event.to_pathway, Event.actor).where(
                Event.kind == "escalated",
                col(Event.concern_id).in_([move.concern_id for move, _ in moves]),
            )
        ).all()
    }
    return tuple(
        EscalatedLine(
            concern=_line(session, concern, policy),
            from_pathway=move.from_pathway,
            to_pathway=move.to_pathway,
            at=move.at,
            why=_why_escalated(actors.get((move.concern_id, move.to_pathway))),
        )
        for move, concern in moves
    )


def _why_escalated(actor: str | None) -> str:
    if actor == "system":
        return "no feedback to the learner by the deadline"
    if actor == "learner":
        return "the learner remained concerned after feedback"
    if actor:
        return "escalated by hand (the reason is in the case)"
    return "see the case"


def _overdue_by_pathway(
    open_concerns: Sequence[Concern], lines: Mapping[int, ConcernLine], *, as_of: datetime
) -> tuple[PathwayOverdue, ...]:
    """Per pathway, open concerns whose current level's acknowledgement or feedback deadline
    passed before `as_of` without it being given."""
    items: dict[int, list[OverdueLine]] = {int(pathway): [] for pathway in Pathway}
    for concern in open_concerns:
        acknowledgement = concern.acknowledged_at is None and concern.ack_due_at < as_of
        feedback = concern.feedback_at is None and concern.feedback_due_at < as_of
        if acknowledgement or feedback:
            items.setdefault(concern.pathway, []).append(
                OverdueLine(
                    concern=lines[id_of(concern)],
                    acknowledgement=acknowledgement,
                    feedback=feedback,
                )
            )
    return tuple(
        PathwayOverdue(pathway=pathway, items=tuple(found))
        for pathway, found in sorted(items.items())
    )


def _hotspots(
    session: Session, region: Region, period: Period, policy: Policy
) -> tuple[Hotspot, ...]:
    """Departments with HOTSPOT_MIN_CONCERNS or more concerns raised in the hotspot window."""
    since = period.end - timedelta(days=policy.hotspot_window_days)
    counted = func.count()
    rows = session.exec(
        select(Concern.department_id, counted)
        .where(
            Concern.region_id == id_of(region),
            col(Concern.department_id).is_not(None),
            col(Concern.created_at) >= since,
            col(Concern.created_at) < period.end,
        )
        .group_by(col(Concern.department_id))
        .having(counted >= HOTSPOT_MIN_CONCERNS)
    ).all()
    hotspots = []
    for department_id, count in rows:
        department = session.get(Department, department_id)
        if department is None:
            continue
        organisation = session.get(Organisation, department.organisation_id)
        hotspots.append(
            Hotspot(
                organisation=organisation.name if organisation else "",
                department=department.name,
                concerns=int(count),
            )
        )
    return tuple(sorted(hotspots, key=lambda h: (-h.concerns, h.organisation, h.department)))


def theme_counts(tags: Iterable[Sequence[str]]) -> tuple[ThemeCount, ...]:
    """Concerns per Quality Framework domain, from each concern's standards: a concern counts
    once in each domain it touches; tags that are not standards are ignored."""
    counts: Counter[str] = Counter()
    for standards in tags:
        counts.update({code.split(".")[0] for code in standards if code in STANDARDS})
    return tuple(
        ThemeCount(domain=domain, title=title, open_concerns=counts[domain])
        for domain, title in DOMAINS.items()
    )


def _action(event: Event) -> str:
    label = ACTION_LABELS[event.kind]
    if event.kind == "escalated" and event.from_pathway and event.to_pathway:
        return f"{label} from pathway {event.from_pathway} to pathway {event.to_pathway}"
    return f"{label} (pathway {event.pathway})" if event.pathway else label


def _organisation_name(session: Session, concern: Concern) -> str:
    if concern.organisation_id is not None:
        organisation = session.get(Organisation, concern.organisation_id)
        if organisation is not None:
            return organisation.name
    return f"as given: {concern.placement_text}" if concern.placement_text else ""


def _department_name(session: Session, concern: Concern) -> str:
    if concern.department_id is not None:
        department = session.get(Department, concern.department_id)
        if department is not None:
            return department.name
    return ""


# --- running a digest -------------------------------------------------------------------------


class DigestStatus(StrEnum):
    PREVIEW = "preview"  # built, nothing recorded or queued
    QUEUED = "queued"  # run recorded, messages queued
    EMPTY = "empty"  # run recorded; a daily digest with nothing in it is not sent
    NO_RECIPIENTS = "no_recipients"  # run recorded; the region has no dean or quality team
    ALREADY_SENT = "already_sent"  # another run (or instance) recorded this period first


@dataclass(frozen=True)
class DigestOutcome:
    kind: DigestKind
    region_key: str
    region: str
    period: Period
    status: DigestStatus
    messages: int = 0
    recipients: tuple[str, ...] = ()  # the roles of the contacts it was queued to
    rendered: RenderedDigest | None = None


@dataclass
class DigestReport:
    now: datetime
    outcomes: list[DigestOutcome] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def messages(self) -> int:
        return sum(outcome.messages for outcome in self.outcomes)


def run_digest(
    *,
    engine: Engine,
    kind: DigestKind,
    region_key: str | None,
    now: datetime,
    policy: Policy,
    send: bool,
) -> list[DigestOutcome]:
    """Build the latest due digest of a kind for one region (or every active region).

    With `send`, queue it to each region's dean and quality team exactly once per period;
    without, only build and render it. Empty when no digest of the kind is due (a daily digest
    on a day that is not a working day). Raises UnknownRegion for a key no region has.
    """
    period = due_period(kind, now, policy.calendar)
    if period is None:
        return []
    with transaction(engine) as session:
        if region_key is None:
            region_ids = [id_of(region) for region in _active_regions(session)]
        else:
            region = session.exec(select(Region).where(Region.key == region_key.strip())).first()
            if region is None:
                raise UnknownRegion(
                    region_key, known=[known.key for known in _active_regions(session)]
                )
            region_ids = [id_of(region)]
    return [
        _run_for_region(
            engine, kind=kind, region_id=region_id, period=period, now=now, policy=policy, send=send
        )
        for region_id in region_ids
    ]


def send_due_digests(*, engine: Engine, now: datetime, policy: Policy) -> DigestReport:
    """Queue every digest due at `now` that no instance has recorded yet (the scheduler's tick)."""
    report = DigestReport(now=now)
    due = {
        kind: period
        for kind in DigestKind
        if (period := due_period(kind, now, policy.calendar)) is not None
    }
    # One short read finds what is left: on most ticks every due period is recorded already.
    with transaction(engine) as session:
        regions = [(id_of(region), region.key) for region in _active_regions(session)]
        recorded = set(
            session.exec(
                select(DigestRun.kind, DigestRun.region_id, DigestRun.period_start).where(
                    col(DigestRun.period_start).in_([period.start for period in due.values()])
                )
            ).all()
        )
    for kind, period in due.items():
        for region_id, region_key in regions:
            if (kind.value, region_id, period.start) in recorded:
                continue
            try:
                outcome = _run_for_region(
                    engine,
                    kind=kind,
                    region_id=region_id,
                    period=period,
                    now=now,
                    policy=policy,
                    send=True,
                )
            except Exception as error:
                # Retried on the next tick. The type only: a database error can quote a row.
                log.error(
                    "digest: the %s digest for %s failed: %s",
                    kind.value,
                    region_key,
                    type(error).__name__,
                )
                report.failed.append(f"{kind.value}:{region_key}")
            else:
                report.outcomes.append(outcome)
    return report


def _active_regions(session: Session) -> Sequence[Region]:
    return session.exec(select(Region).where(Region.active).order_by(col(Region.key))).all()


def _run_for_region(
    engine: Engine,
    *,
    kind: DigestKind,
    region_id: int,
    period: Period,
    now: datetime,
    policy: Policy,
    send: bool,
) -> DigestOutcome:
    with transaction(engine) as session:
        region = session.get(Region, region_id)
        if region is None:
            raise UnknownRegion(str(region_id))

        def outcome(status: DigestStatus, **more: Any) -> DigestOutcome:
            return DigestOutcome(
                kind=kind,
                region_key=region.key,
                region=region.name,
                period=period,
                status=status,
                **more,
            )

        # Recorded first: a second instance waits on this row (PostgreSQL) or on the write lock
        # (SQLite), then finds it and builds nothing.
        if send and not _record_run(session, kind=kind, region=region, period=period, now=now):
            return outcome(DigestStatus.ALREADY_SENT)
        digest = DATA[kind](session, region, period, policy)
        if not send:
            return outcome(DigestStatus.PREVIEW, rendered=render_digest(digest))
        if isinstance(digest, DailyDigest) and not digest.has_content:
            return outcome(DigestStatus.EMPTY)
        recipients = _recipients(session, region)
        if not recipients:
            log.warning(
                "digest: region %s has no active dean or quality-team contact with an email "
                "address; the %s digest from %s is recorded as sent to nobody",
                region.key,
                kind.value,
                _local_date(period.start, policy),
            )
            return outcome(DigestStatus.NO_RECIPIENTS)
        rendered = render_digest(digest)
        queued = [
            role.value
            for contact, role in recipients
            if _queue(session, kind=kind, region=region, period=period, contact=contact,
                      role=role, rendered=rendered, now=now, policy=policy)
        ]  # fmt: skip
        _set_messages(session, kind=kind, region=region, period=period, messages=len(queued))
        return outcome(
            DigestStatus.QUEUED,
            messages=len(queued),
            recipients=tuple(queued),
            rendered=rendered,
        )


def _record_run(
    session: Session, *, kind: DigestKind, region: Region, period: Period, now: datetime
) -> bool:
    """Insert the run unless one exists for (kind, region, period start); True when inserted."""
    return repositories.insert_once(
        session,
        DigestRun,
        {
            "kind": kind.value,
            "region_id": id_of(region),
            "period_start": period.start,
            "period_end": period.end,
            "created_at": now,
            "messages": 0,
        },
        unique=["kind", "region_id", "period_start"],
    )


def _set_messages(
    session: Session, *, kind: DigestKind, region: Region, period: Period, messages: int
) -> None:
    session.execute(
        update(DigestRun)
        .where(
            col(DigestRun.kind) == kind.value,
            col(DigestRun.region_id) == id_of(region),
            col(DigestRun.period_start) == period.start,
        )
        .values(messages=messages)
    )


def _recipients(session: Session, region: Region) -> list[tuple[Contact, Role]]:
    """The region's active dean and quality-team contacts with an address, each once."""
    found: list[tuple[Contact, Role]] = []
    seen: set[int] = set()
    for role in RECIPIENT_ROLES:
        for contact in repositories.contacts_with_role(
            session, role=role.value, region_id=id_of(region)
        ):
            if contact.email and id_of(contact) not in seen:
                seen.add(id_of(contact))
                found.append((contact, role))
    return found


def _queue(
    session: Session,
    *,
    kind: DigestKind,
    region: Region,
    period: Period,
    contact: Contact,
    role: Role,
    rendered: RenderedDigest,
    now: datetime,
    policy: Policy,
) -> bool:
    if contact.email is None:
        return False
    return repositories.queue_message(
        session,
        OutboxMessage(
            idempotency_key=(
                f"digest:{kind.value}:{region.key}:{_local_date(period.start, policy)}"
                f":contact:{id_of(contact)}"
            ),
            concern_id=None,
            reference=None,
            channel="email",
            kind=kind.outbox_kind,
            recipient_role=role.value,
            recipient_contact_id=id_of(contact),
            recipient_address=contact.email,
            subject=rendered.subject,
            body_text=rendered.text,
            body_html=rendered.html,
            created_at=now,
            send_after=send_after_for(period, policy.calendar),
            attachments=[attachment.as_stored() for attachment in rendered.attachments],
        ),
    )


def _local_date(moment: datetime, policy: Policy) -> str:
    return moment.astimezone(policy.calendar.timezone).date().isoformat()
