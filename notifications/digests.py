"""What the dean's and quality team's digests and reports say, and how they look (text, HTML, CSV).

The shapes here are plain frozen dataclasses: `escalation.digest` fills them from the database
and this module renders them, so neither rendering nor its tests need a database.

Digests are summaries: no learner's name or address and never the concern's full description,
only its reference, place, summary (the learner's words: escaped in HTML), risk, pathway,
deadlines and a link to the case.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from zoneinfo import ZoneInfo

from notifications.email import Attachment
from notifications.messages import when
from notifications.render import environment
from routing.matrix import IMPACT_SCALE, LIKELIHOOD_SCALE, rate
from routing.model import Rating


class DigestKind(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"

    @property
    def outbox_kind(self) -> str:
        """The outbox `kind` of this digest's messages: digest_daily, digest_weekly, ..."""
        return f"digest_{self.value}"


@dataclass(frozen=True)
class Period:
    """[start, end): aware UTC moments; `end` is the scheduled moment the digest is for."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise ValueError("a period must start before it ends")


@dataclass(frozen=True)
class ConcernLine:
    """One concern as a digest shows it: never the learner's identity or full description."""

    reference: str
    place: str
    summary: str
    pathway: int
    status: str
    risk_level: str
    rating: str
    likelihood: int
    impact: int
    created_at: datetime
    ack_due_at: datetime
    feedback_due_at: datetime
    staff_url: str
    interventions: tuple[str, ...] = ()
    overdue_at_dean_at: datetime | None = None


@dataclass(frozen=True)
class EscalatedLine:
    concern: ConcernLine
    from_pathway: int
    to_pathway: int
    at: datetime
    why: str


@dataclass(frozen=True)
class OverdueLine:
    """An open concern with a deadline of its current level passed and not met."""

    concern: ConcernLine
    acknowledgement: bool
    feedback: bool

    @property
    def what(self) -> str:
        missed = (("acknowledgement", self.acknowledgement), ("feedback", self.feedback))
        return " and ".join(name for name, late in missed if late)


@dataclass(frozen=True)
class PathwayOverdue:
    pathway: int
    items: tuple[OverdueLine, ...] = ()

    @property
    def acknowledgement(self) -> int:
        return sum(1 for item in self.items if item.acknowledgement)

    @property
    def feedback(self) -> int:
        return sum(1 for item in self.items if item.feedback)


@dataclass(frozen=True)
class Hotspot:
    """A department with several concerns raised in the hotspot window."""

    organisation: str
    department: str
    concerns: int


@dataclass(frozen=True)
class ThemeCount:
    """Open concerns touching a Quality Framework domain (a concern counts once per domain)."""

    domain: str
    title: str
    open_concerns: int


# Background and text colour of each rating in the heat map. Every pair has a contrast ratio of
# at least 4.5:1 (WCAG AA for normal text), and each cell also prints its rating, so colour is
# never the only carrier. NHS identity colours where they pass.
RATING_COLOURS: Mapping[Rating, tuple[str, str]] = MappingProxyType(
    {
        Rating.R: ("#d5281b", "#ffffff"),
        Rating.A_R: ("#ed8b00", "#212b32"),
        Rating.A: ("#ffb81c", "#212b32"),
        Rating.G_A: ("#c5d82e", "#212b32"),
        Rating.G: ("#007f3b", "#ffffff"),
    }
)


@dataclass(frozen=True)
class HeatMapCell:
    likelihood: int
    impact: int
    count: int
    rating: Rating

    @property
    def label(self) -> str:
        """What the cell says: its count and its rating, so colour never carries it alone."""
        return f"{self.count} {self.rating.value}"

    @property
    def background(self) -> str:
        return RATING_COLOURS[self.rating][0]

    @property
    def foreground(self) -> str:
        return RATING_COLOURS[self.rating][1]


@dataclass(frozen=True)
class HeatMapRow:
    likelihood: int
    label: str
    cells: tuple[HeatMapCell, ...]


@dataclass(frozen=True)
class HeatMap:
    """Open concerns on the 5x5 matrix: counts by (likelihood, impact)."""

    counts: Mapping[tuple[int, int], int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def impacts(self) -> tuple[tuple[int, str], ...]:
        """The columns, impact 1..5, with their names."""
        return tuple(sorted(IMPACT_SCALE.items()))

    @property
    def rows(self) -> tuple[HeatMapRow, ...]:
        """Likelihood 5 (top) to 1, as in the rule book's table; each row impact 1..5."""
        return tuple(
            HeatMapRow(
                likelihood=likelihood,
                label=label,
                cells=tuple(
                    HeatMapCell(
                        likelihood=likelihood,
                        impact=impact,
                        count=self.counts.get((likelihood, impact), 0),
                        rating=rate(likelihood=likelihood, impact=impact),
                    )
                    for impact in sorted(IMPACT_SCALE)
                ),
            )
            for likelihood, label in sorted(LIKELIHOOD_SCALE.items(), reverse=True)
        )


@dataclass(frozen=True)
class DailyDigest:
    """New high-risk concerns in the period, and everything still overdue at dean level."""

    region_key: str
    region: str
    period: Period
    timezone: ZoneInfo
    new_high_risk: tuple[ConcernLine, ...] = ()
    overdue_at_dean: tuple[ConcernLine, ...] = ()

    @property
    def has_content(self) -> bool:
        """Sent only when it has something to say."""
        return bool(self.new_high_risk or self.overdue_at_dean)


@dataclass(frozen=True)
class WeeklyDigest:
    """The dean's weekly escalation digest."""

    region_key: str
    region: str
    period: Period
    timezone: ZoneInfo
    hotspot_window_days: int
    overdue_at_dean: tuple[ConcernLine, ...] = ()
    escalated: tuple[EscalatedLine, ...] = ()
    overdue_by_pathway: tuple[PathwayOverdue, ...] = ()
    open_high_and_medium: tuple[ConcernLine, ...] = ()
    hotspots: tuple[Hotspot, ...] = ()
    themes: tuple[ThemeCount, ...] = ()
    heat_map: HeatMap = field(default_factory=HeatMap)
    # Mail kept aside for staff (this region's, or of no known region) at the end of the week,
    # and where staff read it; the count only: what it says stays on the staff page.
    kept_aside: int = 0
    kept_aside_url: str = ""


@dataclass(frozen=True)
class ActionTaken:
    """One step of a concern's audit trail, as a short line without anyone's words."""

    at: datetime
    what: str


@dataclass(frozen=True)
class ReportedConcern:
    concern: ConcernLine
    organisation: str
    department: str
    standards: tuple[str, ...]
    actions: tuple[ActionTaken, ...] = ()


@dataclass(frozen=True)
class MonthlyReport:
    """High-risk concerns raised in the month and the actions taken on each."""

    region_key: str
    region: str
    period: Period
    timezone: ZoneInfo
    concerns: tuple[ReportedConcern, ...] = ()


Digest = DailyDigest | WeeklyDigest | MonthlyReport


@dataclass(frozen=True)
class RenderedDigest:
    subject: str
    text: str
    html: str
    attachments: tuple[Attachment, ...] = ()


# --- rendering ------------------------------------------------------------------------------

CSV_COLUMNS = (
    "reference",
    "created",
    "organisation",
    "department",
    "pathway",
    "status",
    "rating",
    "likelihood",
    "impact",
    "standards",
    "actions taken",
)
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection): such a
# cell is prefixed with a single quote, which spreadsheets show as text. Tab and carriage return
# are on OWASP's list too.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
TEMPLATE_NAMES: Mapping[type, str] = MappingProxyType(
    {DailyDigest: "digest_daily", WeeklyDigest: "digest_weekly", MonthlyReport: "digest_monthly"}
)


def local_day(moment: datetime, timezone: ZoneInfo) -> str:
    """'Monday 23 November 2026'."""
    local = moment.astimezone(timezone)
    return f"{local:%A} {local.day} {local:%B %Y}"


def short_time(moment: datetime, timezone: ZoneInfo) -> str:
    """'23 Nov 2026 10:00', for lists of events."""
    local = moment.astimezone(timezone)
    return f"{local.day} {local:%b %Y %H:%M}"


def month_name(digest: MonthlyReport) -> str:
    """'November 2026': the calendar month the report covers."""
    return f"{digest.period.start.astimezone(digest.timezone):%B %Y}"


def subject_of(digest: Digest) -> str:
    if isinstance(digest, DailyDigest):
        return (
            f"Daily high-risk digest, {digest.region}: "
            f"{local_day(digest.period.end, digest.timezone)} "
            f"({len(digest.new_high_risk)} new high-risk, "
            f"{len(digest.overdue_at_dean)} overdue at dean level)"
        )
    if isinstance(digest, WeeklyDigest):
        return (
            f"Weekly escalation digest, {digest.region}: week to "
            f"{local_day(digest.period.end, digest.timezone)}"
        )
    return f"Monthly highlight report, {digest.region}: {month_name(digest)}"


def render_digest(digest: Digest) -> RenderedDigest:
    """Subject, text and HTML (and the monthly report's CSV); learner text escaped in HTML."""
    env = environment()
    subject = _one_line(subject_of(digest))
    context: dict[str, object] = {
        "digest": digest,
        "subject": subject,
        "when": when,
        "day": local_day,
        "short": short_time,
        "grid_line": grid_line,
    }
    attachments: tuple[Attachment, ...] = ()
    if isinstance(digest, MonthlyReport):
        context["month"] = month_name(digest)
        attachments = (
            Attachment(
                filename=csv_filename(digest),
                content_type="text/csv",
                text=report_csv(digest),
            ),
        )
    name = TEMPLATE_NAMES[type(digest)]
    return RenderedDigest(
        subject=subject,
        text=env.get_template(f"{name}.txt").render(context),
        html=env.get_template(f"{name}.html").render(context),
        attachments=attachments,
    )


def grid_line(first: str, columns: Iterable[object]) -> str:
    """One line of a plain-text grid (the heat map): fixed-width columns, no trailing spaces."""
    return (f"{first:<18}" + "".join(f"{column!s:<9}" for column in columns)).rstrip()


def csv_filename(report: MonthlyReport) -> str:
    start = report.period.start.astimezone(report.timezone)
    return f"high-risk-concerns-{report.region_key}-{start:%Y-%m}.csv"


def report_csv(report: MonthlyReport) -> str:
    """One row per high-risk concern raised in the month, safe to open in a spreadsheet."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for item in report.concerns:
        concern = item.concern
        writer.writerow(
            [
                csv_cell(value)
                for value in (
                    concern.reference,
                    concern.created_at.astimezone(report.timezone).isoformat(timespec="minutes"),
                    item.organisation,
                    item.department,
                    str(concern.pathway),
                    concern.status,
                    concern.rating,
                    str(concern.likelihood),
                    str(concern.impact),
                    " ".join(item.standards),
                    "; ".join(
                        f"{short_time(action.at, report.timezone)} {action.what}"
                        for action in item.actions
                    ),
                )
            ]
        )
    return buffer.getvalue()


def csv_cell(value: str) -> str:
    """The value, made inert for spreadsheets if it could start a formula."""
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def _one_line(text: str) -> str:
    return " ".join(text.split())
