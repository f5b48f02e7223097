"""The region-wide dashboard and its CSV export, for deans, quality teams and admins.

It answers the Quality Framework's questions for the regions a person covers: where the open
concerns sit on the ladder and how risky they are, what is overdue, the 5x5 heat map, which
organisations and departments need most support (and which are hotspots), the key themes, and
how many concerns are raised month by month.

Every figure comes from a handful of grouped or column-only queries, whatever the number of
concerns: nothing is read concern by concern. The export holds no learner identity and no text
anyone wrote (no summary, description or placement words), only references, dates, levels and
directory names.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, case, false, func
from sqlalchemy import select as columns_of
from sqlmodel import Session, col, select

from escalation.digest import HOTSPOT_MIN_CONCERNS, theme_counts
from escalation.policy import Policy
from notifications.digests import ThemeCount, csv_cell
from routing.access import Principal, StaffRole, sees_dashboard
from routing.matrix import IMPACT_SCALE, LIKELIHOOD_SCALE, rate, risk_level
from routing.model import ConcernStatus, Pathway, Rating, RiskLevel
from storage import staff as accounts
from storage.tables import Concern, Department, Organisation, Region, StaffMember, id_of

PATHWAY_WORDS = {
    Pathway.CLINICAL_LEARNING_ENVIRONMENT: "Pathway 1: clinical learning environment",
    Pathway.SCHOOL_OR_EDUCATION_PROVIDER: "Pathway 2: school or education provider",
    Pathway.DEAN: "Pathway 3: postgraduate dean",
}
LEVELS = (RiskLevel.HIGH, RiskLevel.MEDIUM, RiskLevel.LOW)
TREND_MONTHS = 12
NOT_MATCHED = "Not matched to the directory"
CSV_COLUMNS = (
    "reference",
    "raised",
    "status",
    "pathway",
    "risk level",
    "rating",
    "likelihood",
    "impact",
    "patient safety",
    "hotspot",
    "organisation",
    "department",
    "standards",
    "acknowledgement overdue",
    "feedback overdue",
    "overdue at dean level",
    "closed",
)


# --- what the dashboard holds ---------------------------------------------------------------


@dataclass(frozen=True)
class PathwayRisk:
    """Open concerns at one pathway, by risk level."""

    pathway: int
    name: str
    high: int
    medium: int
    low: int

    @property
    def total(self) -> int:
        return self.high + self.medium + self.low


@dataclass(frozen=True)
class PathwayOverdue:
    """Open concerns at one pathway whose current level's deadlines passed without it."""

    pathway: int
    name: str
    acknowledgement: int  # not acknowledged by the acknowledgement deadline
    feedback: int  # no feedback by the feedback deadline
    either: int  # one or both (a concern counts once)


@dataclass(frozen=True)
class HeatCell:
    likelihood: int
    impact: int
    count: int
    rating: Rating
    level: RiskLevel

    @property
    def label(self) -> str:
        """The cell's words: its count and rating, so colour never carries it alone."""
        return f"{self.count} ({self.rating.value}, {self.level.value})"


@dataclass(frozen=True)
class HeatRow:
    likelihood: int
    label: str
    cells: tuple[HeatCell, ...]


@dataclass(frozen=True)
class PlaceCount:
    """A department (or an organisation's concerns with no department) and its concerns."""

    organisation: str
    department: str
    open_concerns: int
    open_high: int
    # Concerns raised in the hotspot window, open or closed: the digest's hotspot rule.
    recent: int
    hotspot: bool


@dataclass(frozen=True)
class OrganisationCount:
    organisation: str
    open_concerns: int
    open_high: int
    recent: int
    hotspot_departments: int


@dataclass(frozen=True)
class MonthCount:
    month: date  # the first day of the month, in the calendar's zone
    raised: int

    @property
    def label(self) -> str:
        return f"{self.month:%b %Y}"


@dataclass(frozen=True)
class Dashboard:
    now: datetime
    region_names: tuple[str, ...]
    hotspot_window_days: int
    hotspot_min_concerns: int
    by_pathway: tuple[PathwayRisk, ...]
    overdue: tuple[PathwayOverdue, ...]
    overdue_at_dean: int
    heat_map: tuple[HeatRow, ...]
    impacts: tuple[tuple[int, str], ...]
    organisations: tuple[OrganisationCount, ...]
    places: tuple[PlaceCount, ...]
    themes: tuple[ThemeCount, ...]
    trend: tuple[MonthCount, ...]

    @property
    def open_concerns(self) -> int:
        return sum(row.total for row in self.by_pathway)

    @property
    def open_high(self) -> int:
        return sum(row.high for row in self.by_pathway)

    @property
    def overdue_total(self) -> int:
        return sum(row.either for row in self.overdue)

    @property
    def hotspots(self) -> tuple[PlaceCount, ...]:
        return tuple(place for place in self.places if place.hotspot)

    @property
    def trend_peak(self) -> int:
        return max((month.raised for month in self.trend), default=0)


# --- whose regions ------------------------------------------------------------------------------


def dashboard_regions(session: Session, who: Principal) -> list[Region]:
    """The regions a person's dashboard covers: an admin's are all of them; a dean's or quality
    team's their own; anyone else's none."""
    if not sees_dashboard(who):
        return []
    statement = select(Region).order_by(col(Region.key))
    if who.role is not StaffRole.ADMIN:
        statement = statement.where(col(Region.id).in_(sorted(who.region_ids)))
    return list(session.exec(statement).all())


def _in_scope(who: Principal, region_ids: Iterable[int]) -> ColumnElement[bool]:
    """Concerns of the regions asked for, narrowed to those the person covers."""
    if not sees_dashboard(who):
        return false()
    wanted = set(region_ids)
    if who.role is not StaffRole.ADMIN:
        wanted &= who.region_ids
    if not wanted:
        return false()
    return col(Concern.region_id).in_(sorted(wanted))


# --- the data -------------------------------------------------------------------------------


def dashboard_data(
    session: Session,
    who: Principal,
    *,
    now: datetime,
    policy: Policy,
    region_ids: Iterable[int],
) -> Dashboard:
    """The dashboard of the regions given (only those the person covers count)."""
    region_ids = set(region_ids)
    scope = _in_scope(who, region_ids)
    is_open = col(Concern.status) == ConcernStatus.OPEN.value
    # Many columns, one query: SQLModel's select() types four at most.
    open_rows = session.execute(
        columns_of(
            col(Concern.pathway),
            col(Concern.risk_level),
            col(Concern.likelihood),
            col(Concern.impact),
            col(Concern.ack_due_at),
            col(Concern.acknowledged_at),
            col(Concern.feedback_due_at),
            col(Concern.feedback_at),
            col(Concern.overdue_at_dean_at),
            col(Concern.standards),
        ).where(scope, is_open)
    ).all()

    risk: Counter[tuple[int, str]] = Counter()
    heat: Counter[tuple[int, int]] = Counter()
    ack_late: Counter[int] = Counter()
    feedback_late: Counter[int] = Counter()
    either_late: Counter[int] = Counter()
    at_dean = 0
    for row in open_rows:
        pathway, level, likelihood, impact = row[0], row[1], row[2], row[3]
        risk[(pathway, level)] += 1
        heat[(likelihood, impact)] += 1
        acknowledgement = row.acknowledged_at is None and row.ack_due_at < now
        feedback = row.feedback_at is None and row.feedback_due_at < now
        ack_late[pathway] += acknowledgement
        feedback_late[pathway] += feedback
        either_late[pathway] += acknowledgement or feedback
        at_dean += row.overdue_at_dean_at is not None and row.overdue_at_dean_at <= now

    names = session.exec(
        select(Region.name).where(col(Region.id).in_(sorted(region_ids))).order_by(Region.key)
    ).all()
    places, organisations = _places(session, scope, now=now, policy=policy)
    return Dashboard(
        now=now,
        region_names=tuple(names),
        hotspot_window_days=policy.hotspot_window_days,
        hotspot_min_concerns=HOTSPOT_MIN_CONCERNS,
        by_pathway=tuple(
            PathwayRisk(
                pathway=int(pathway),
                name=PATHWAY_WORDS[pathway],
                high=risk[(pathway, RiskLevel.HIGH.value)],
                medium=risk[(pathway, RiskLevel.MEDIUM.value)],
                low=risk[(pathway, RiskLevel.LOW.value)],
            )
            for pathway in Pathway
        ),
        overdue=tuple(
            PathwayOverdue(
                pathway=int(pathway),
                name=PATHWAY_WORDS[pathway],
                acknowledgement=ack_late[pathway],
                feedback=feedback_late[pathway],
                either=either_late[pathway],
            )
            for pathway in Pathway
        ),
        overdue_at_dean=at_dean,
        heat_map=_heat_map(heat),
        impacts=tuple(sorted(IMPACT_SCALE.items())),
        organisations=organisations,
        places=places,
        themes=theme_counts(row.standards for row in open_rows),
        trend=_trend(session, scope, now=now, policy=policy),
    )


def _heat_map(counts: Counter[tuple[int, int]]) -> tuple[HeatRow, ...]:
    """Likelihood 5 (top) to 1, impact 1..5 left to right, as in the rule book's table."""
    rows = []
    for likelihood, label in sorted(LIKELIHOOD_SCALE.items(), reverse=True):
        cells = []
        for impact in sorted(IMPACT_SCALE):
            rating = rate(likelihood=likelihood, impact=impact)
            cells.append(
                HeatCell(
                    likelihood=likelihood,
                    impact=impact,
                    count=counts[(likelihood, impact)],
                    rating=rating,
                    level=risk_level(rating),
                )
            )
        rows.append(HeatRow(likelihood=likelihood, label=label, cells=tuple(cells)))
    return tuple(rows)


def _places(
    session: Session, scope: ColumnElement[bool], *, now: datetime, policy: Policy
) -> tuple[tuple[PlaceCount, ...], tuple[OrganisationCount, ...]]:
    """Open concerns per department and organisation, and concerns raised in the hotspot
    window per department (hotspot: at least HOTSPOT_MIN_CONCERNS of them)."""
    since = now - timedelta(days=policy.hotspot_window_days)
    is_open = col(Concern.status) == ConcernStatus.OPEN.value
    is_high = col(Concern.risk_level) == RiskLevel.HIGH.value
    place = (col(Concern.organisation_id), col(Concern.department_id))
    open_counts = {
        (organisation_id, department_id): (int(total), int(high or 0))
        for organisation_id, department_id, total, high in session.exec(
            select(*place, func.count(), func.sum(case((is_high, 1), else_=0)))
            .where(scope, is_open)
            .group_by(*place)
        ).all()
    }
    recent_counts = {
        (organisation_id, department_id): int(total)
        for organisation_id, department_id, total in session.exec(
            select(*place, func.count())
            .where(scope, col(Concern.created_at) >= since, col(Concern.created_at) <= now)
            .group_by(*place)
        ).all()
    }
    keys = set(open_counts) | set(recent_counts)
    organisation_names = dict(
        session.exec(
            select(Organisation.id, Organisation.name).where(
                col(Organisation.id).in_(sorted({o for o, _ in keys if o is not None}))
            )
        ).all()
    )
    department_names = dict(
        session.exec(
            select(Department.id, Department.name).where(
                col(Department.id).in_(sorted({d for _, d in keys if d is not None}))
            )
        ).all()
    )
    places = []
    for organisation_id, department_id in keys:
        total, high = open_counts.get((organisation_id, department_id), (0, 0))
        recent = recent_counts.get((organisation_id, department_id), 0)
        places.append(
            PlaceCount(
                organisation=organisation_names.get(organisation_id, NOT_MATCHED)
                if organisation_id is not None
                else NOT_MATCHED,
                department=department_names.get(department_id, "")
                if department_id is not None
                else "",
                open_concerns=total,
                open_high=high,
                recent=recent,
                # The rule counts departments: concerns with none cannot make a hotspot.
                hotspot=department_id is not None and recent >= HOTSPOT_MIN_CONCERNS,
            )
        )
    places.sort(
        key=lambda p: (not p.hotspot, -p.open_high, -p.open_concerns, p.organisation, p.department)
    )
    by_organisation: dict[str, list[PlaceCount]] = {}
    for found in places:
        by_organisation.setdefault(found.organisation, []).append(found)
    organisations = sorted(
        (
            OrganisationCount(
                organisation=name,
                open_concerns=sum(p.open_concerns for p in found),
                open_high=sum(p.open_high for p in found),
                recent=sum(p.recent for p in found),
                hotspot_departments=sum(p.hotspot for p in found),
            )
            for name, found in by_organisation.items()
        ),
        key=lambda o: (-o.open_high, -o.open_concerns, -o.hotspot_departments, o.organisation),
    )
    return tuple(places), tuple(organisations)


def _trend(
    session: Session, scope: ColumnElement[bool], *, now: datetime, policy: Policy
) -> tuple[MonthCount, ...]:
    """Concerns raised (open or closed) per calendar month, this month and the 11 before."""
    zone = policy.calendar.timezone
    this_month = now.astimezone(zone).date().replace(day=1)
    months = [this_month]
    for _ in range(TREND_MONTHS - 1):
        months.append((months[-1] - timedelta(days=1)).replace(day=1))
    months.reverse()
    start = datetime.combine(months[0], datetime.min.time(), tzinfo=zone)
    raised: Counter[date] = Counter(
        created.astimezone(zone).date().replace(day=1)
        for created in session.exec(
            select(Concern.created_at).where(
                scope, col(Concern.created_at) >= start, col(Concern.created_at) <= now
            )
        ).all()
    )
    return tuple(MonthCount(month=month, raised=raised[month]) for month in months)


# --- the export ---------------------------------------------------------------------------------


def dashboard_csv(
    session: Session,
    who: Principal,
    *,
    now: datetime,
    policy: Policy,
    region_ids: Iterable[int],
) -> str:
    """One row per concern of the regions (open and closed), oldest first; safe to open in a
    spreadsheet. No learner identity and no free text."""
    zone = policy.calendar.timezone
    rows = session.exec(
        select(Concern, Organisation.name, Department.name)
        .outerjoin(Organisation, col(Organisation.id) == Concern.organisation_id)
        .outerjoin(Department, col(Department.id) == Concern.department_id)
        .where(_in_scope(who, region_ids))
        .order_by(col(Concern.created_at), col(Concern.id))
    ).all()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for concern, organisation, department in rows:
        is_open = concern.status == ConcernStatus.OPEN.value
        writer.writerow(
            [
                csv_cell(value)
                for value in (
                    concern.reference,
                    concern.created_at.astimezone(zone).isoformat(timespec="minutes"),
                    concern.status,
                    str(concern.pathway),
                    concern.risk_level,
                    concern.rating,
                    str(concern.likelihood),
                    str(concern.impact),
                    _yes(concern.patient_safety),
                    _yes(concern.hotspot),
                    organisation or (NOT_MATCHED if concern.organisation_id is None else ""),
                    department or "",
                    " ".join(concern.standards),
                    _yes(is_open and concern.acknowledged_at is None and concern.ack_due_at < now),
                    _yes(is_open and concern.feedback_at is None and concern.feedback_due_at < now),
                    _yes(is_open and concern.overdue_at_dean_at is not None),
                    concern.closed_at.astimezone(zone).isoformat(timespec="minutes")
                    if concern.closed_at and not is_open
                    else "",
                )
            ]
        )
    return buffer.getvalue()


def export_dashboard_csv(
    session: Session,
    who: Principal,
    member: StaffMember,
    *,
    channel: str,
    now: datetime,
    policy: Policy,
    regions: Sequence[Region],
) -> str:
    """The CSV, with the export written to the access audit in the same transaction."""
    text = dashboard_csv(
        session, who, now=now, policy=policy, region_ids=[id_of(region) for region in regions]
    )
    accounts.record_access(
        session,
        kind="exported",
        staff=member,
        channel=channel,
        now=now,
        detail={
            "what": "dashboard.csv",
            "regions": [region.key for region in regions],
            "rows": max(text.count("\r\n") - 1, 0),
        },
    )
    return text


def _yes(value: bool) -> str:
    return "yes" if value else "no"
