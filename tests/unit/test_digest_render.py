"""Rendering digests: the heat map as an accessible table, escaped learner text, a safe CSV, and
the attachment carried into the composed email."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest

from notifications.digests import (
    CSV_COLUMNS,
    RATING_COLOURS,
    ActionTaken,
    ConcernLine,
    DailyDigest,
    EscalatedLine,
    HeatMap,
    Hotspot,
    MonthlyReport,
    OverdueLine,
    PathwayOverdue,
    Period,
    ReportedConcern,
    ThemeCount,
    WeeklyDigest,
    csv_cell,
    render_digest,
)
from notifications.email import Attachment, compose, safe_filename
from notifications.threading import MailThreading
from routing.matrix import IMPACT_SCALE, LIKELIHOOD_SCALE, rate
from routing.model import Rating

LONDON = ZoneInfo("Europe/London")
WEEK = Period(datetime(2026, 11, 16, 7, tzinfo=UTC), datetime(2026, 11, 23, 7, tzinfo=UTC))
HOSTILE = "<script>alert('x')</script> & <b>bold</b>"
HOSTILE_ESCAPED = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"


def line(**changes: object) -> ConcernLine:
    base = ConcernLine(
        reference="LC-2026-000001",
        place="Emergency Department, Vale General Hospitals NHS Trust",
        summary="No senior cover on nights",
        pathway=1,
        status="open",
        risk_level="high",
        rating="R",
        likelihood=5,
        impact=5,
        created_at=datetime(2026, 11, 17, 10, tzinfo=UTC),
        ack_due_at=datetime(2026, 11, 17, 17, tzinfo=UTC),
        feedback_due_at=datetime(2026, 11, 24, 10, tzinfo=UTC),
        staff_url="http://127.0.0.1:8000/staff/concerns/LC-2026-000001",
        interventions=("Urgent risk review", "Programme review"),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def weekly(**changes: object) -> WeeklyDigest:
    base = WeeklyDigest(
        region_key="north-vale",
        region="North Vale",
        period=WEEK,
        timezone=LONDON,
        hotspot_window_days=90,
        heat_map=HeatMap({(5, 5): 2, (3, 2): 1, (1, 1): 4}),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


# --- a tiny HTML reader: tables as rows of cells ---------------------------------------------


@dataclass
class Cell:
    tag: str
    attrs: dict[str, str | None]
    text: str = ""


@dataclass
class Table:
    caption: str = ""
    rows: list[list[Cell]] = field(default_factory=list)


class Tables(HTMLParser):
    """Every table in a document, with its caption and cells (tag, attributes, text)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: list[Table] = []
        self._open: list[Table] = []
        self._cell: Cell | None = None
        self._in_caption = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._open.append(Table())
        elif tag == "caption":
            self._in_caption = True
        elif tag == "tr" and self._open:
            self._open[-1].rows.append([])
        elif tag in ("th", "td") and self._open:
            self._cell = Cell(tag, dict(attrs))
            self._open[-1].rows[-1].append(self._cell)
        elif tag == "br" and self._cell is not None:
            self._cell.text += " "

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.tables.append(self._open.pop())
        elif tag == "caption":
            self._in_caption = False
        elif tag in ("th", "td"):
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._in_caption and self._open:
            self._open[-1].caption += data
        elif self._cell is not None:
            self._cell.text += data


def heat_map_table(html: str) -> Table:
    (table,) = [t for t in Tables(html).tables if "risk matrix" in t.caption]
    return table


# --- the heat map -----------------------------------------------------------------------------


def test_the_heat_map_is_a_table_with_a_caption_and_scoped_headers_for_both_axes() -> None:
    table = heat_map_table(render_digest(weekly()).html)

    assert "likelihood" in table.caption.lower() and "impact" in table.caption.lower()
    header, *rows = table.rows
    assert [cell.tag for cell in header] == ["th"] * 6
    assert all(cell.attrs.get("scope") == "col" for cell in header)
    assert [cell.text.split()[0] for cell in header[1:]] == ["1", "2", "3", "4", "5"]
    assert [cell.text.strip() for cell in header[1:]] == [
        f"{impact} {name}" for impact, name in sorted(IMPACT_SCALE.items())
    ]
    assert len(rows) == 5
    for row, likelihood in zip(rows, (5, 4, 3, 2, 1), strict=True):
        heading, *cells = row
        assert heading.tag == "th" and heading.attrs.get("scope") == "row"
        assert heading.text.strip() == f"{likelihood} {LIKELIHOOD_SCALE[likelihood]}"
        assert [cell.tag for cell in cells] == ["td"] * 5


def test_each_heat_map_cell_says_its_count_and_rating_and_is_coloured_for_its_rating() -> None:
    counts = {(5, 5): 2, (3, 2): 1, (1, 1): 4, (4, 3): 7}
    table = heat_map_table(render_digest(weekly(heat_map=HeatMap(counts))).html)

    for row, likelihood in zip(table.rows[1:], (5, 4, 3, 2, 1), strict=True):
        for impact, cell in enumerate(row[1:], start=1):
            rating = rate(likelihood=likelihood, impact=impact)
            # Colour is never the only carrier: the rating is written in the cell.
            assert cell.text.split() == [str(counts.get((likelihood, impact), 0)), rating.value]
            background, foreground = RATING_COLOURS[rating]
            style = cell.attrs.get("style") or ""
            assert f"background-color: {background}" in style
            assert f"color: {foreground}" in style


def _luminance(colour: str) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(red) + 0.7152 * channel(green) + 0.0722 * channel(blue)


@pytest.mark.parametrize("rating", list(Rating))
def test_every_rating_colour_has_enough_contrast_for_its_text(rating: Rating) -> None:
    background, foreground = RATING_COLOURS[rating]
    lighter, darker = sorted((_luminance(background), _luminance(foreground)), reverse=True)
    assert (lighter + 0.05) / (darker + 0.05) >= 4.5  # WCAG 2.2 AA, normal text


def test_the_heat_map_in_text_has_every_cell_with_its_rating() -> None:
    text = render_digest(weekly()).text

    assert "5 almost certain  0 G      0 A      0 A/R    0 R      2 R" in text
    assert "3 possible        0 G      1 G/A    0 A      0 A/R    0 R" in text
    assert "1 rare            4 G      0 G      0 G/A    0 G/A    0 A" in text


# --- what the weekly digest says --------------------------------------------------------------


def test_the_weekly_digest_shows_every_section_with_overdue_at_dean_level_first() -> None:
    at_dean = line(
        reference="LC-2026-000009",
        pathway=3,
        overdue_at_dean_at=datetime(2026, 11, 20, 10, tzinfo=UTC),
    )
    digest = weekly(
        overdue_at_dean=(at_dean,),
        escalated=(
            EscalatedLine(
                concern=line(reference="LC-2026-000005", pathway=2),
                from_pathway=1,
                to_pathway=2,
                at=datetime(2026, 11, 18, 12, tzinfo=UTC),
                why="no feedback to the learner by the deadline",
            ),
        ),
        overdue_by_pathway=(
            PathwayOverdue(1, (OverdueLine(line(), acknowledgement=True, feedback=False),)),
            PathwayOverdue(2),
            PathwayOverdue(3, (OverdueLine(at_dean, acknowledgement=False, feedback=True),)),
        ),
        open_high_and_medium=(line(), line(reference="LC-2026-000002", risk_level="medium")),
        hotspots=(Hotspot("Vale General Hospitals NHS Trust", "Emergency Department", 3),),
        themes=(ThemeCount("1", "Learning environment and culture", 2),),
    )
    rendered = render_digest(digest)

    for part in (rendered.text, rendered.html):
        positions = [
            part.lower().index(heading)
            for heading in (
                "overdue at dean level",
                "escalated this week",
                "overdue by pathway",
                "open high and medium",
                "hotspots",
                "themes by quality framework domain",
                "heat map",
            )
        ]
        assert positions == sorted(positions)
        assert "LC-2026-000009" in part and "LC-2026-000005" in part
        assert "Urgent risk review; Programme review" in part
        assert "Emergency Department" in part and "Vale General Hospitals NHS Trust" in part
    assert "Pathway 1: 1 overdue (1 not acknowledged in time, 0 without feedback" in rendered.text
    assert "Pathway 3: 1 overdue (0 not acknowledged in time, 1 without feedback" in rendered.text
    assert "pathway 1 to 2" in rendered.html
    assert rendered.subject == (
        "Weekly escalation digest, North Vale: week to Monday 23 November 2026"
    )


def test_learner_text_is_escaped_in_the_html_and_left_as_written_in_the_text() -> None:
    hostile = line(summary=HOSTILE, place=f"(as given: {HOSTILE})")
    digests = [
        weekly(open_high_and_medium=(hostile,), overdue_at_dean=(hostile,)),
        DailyDigest("north-vale", "North Vale", WEEK, LONDON, new_high_risk=(hostile,)),
        MonthlyReport(
            "north-vale",
            "North Vale",
            WEEK,
            LONDON,
            (ReportedConcern(hostile, "Vale General", "Emergency", ("1.1",)),),
        ),
    ]
    for digest in digests:
        rendered = render_digest(digest)
        assert "<script>" not in rendered.html and "<b>bold</b>" not in rendered.html
        assert HOSTILE_ESCAPED in rendered.html
        assert HOSTILE in rendered.text


def test_every_concern_links_to_its_case() -> None:
    html = render_digest(weekly(open_high_and_medium=(line(),))).html

    assert '<a href="http://127.0.0.1:8000/staff/concerns/LC-2026-000001"' in html


def test_html_digests_use_inline_styles_and_nothing_external() -> None:
    digests = [
        weekly(),
        DailyDigest("north-vale", "North Vale", WEEK, LONDON, new_high_risk=(line(),)),
        MonthlyReport("north-vale", "North Vale", WEEK, LONDON),
    ]
    for digest in digests:
        html = render_digest(digest).html.lower()
        assert "<style" not in html and "<link" not in html and "<script" not in html
        assert "<img" not in html and "url(" not in html


# --- the daily digest -------------------------------------------------------------------------


def test_a_daily_digest_has_content_only_with_new_high_risk_or_overdue_at_dean() -> None:
    empty = DailyDigest("north-vale", "North Vale", WEEK, LONDON)
    assert not empty.has_content
    assert DailyDigest("n", "N", WEEK, LONDON, new_high_risk=(line(),)).has_content
    assert DailyDigest("n", "N", WEEK, LONDON, overdue_at_dean=(line(),)).has_content


def test_the_daily_subject_counts_what_is_in_it() -> None:
    digest = DailyDigest(
        "north-vale", "North Vale", WEEK, LONDON, new_high_risk=(line(), line()), overdue_at_dean=()
    )
    assert render_digest(digest).subject == (
        "Daily high-risk digest, North Vale: Monday 23 November 2026 "
        "(2 new high-risk, 0 overdue at dean level)"
    )


# --- the monthly report and its CSV -----------------------------------------------------------

MONTH = Period(datetime(2026, 11, 1, 7, tzinfo=UTC), datetime(2026, 12, 1, 7, tzinfo=UTC))


def monthly(*items: ReportedConcern) -> MonthlyReport:
    return MonthlyReport("north-vale", "North Vale", MONTH, LONDON, items)


def test_the_monthly_report_lists_each_concerns_actions_and_attaches_the_same_rows_as_csv() -> None:
    actions = (
        ActionTaken(datetime(2026, 11, 17, 10, 5, tzinfo=UTC), "dean and quality team alerted"),
        ActionTaken(datetime(2026, 11, 17, 11, tzinfo=UTC), "acknowledged (pathway 1)"),
    )
    report = monthly(
        ReportedConcern(line(), "Vale General", "Emergency Department", ("1.1", "2.5"), actions),
        ReportedConcern(line(reference="LC-2026-000002", status="closed"), "", "", ("3.1",)),
    )
    rendered = render_digest(report)

    assert rendered.subject == "Monthly highlight report, North Vale: November 2026"
    assert "17 Nov 2026 11:00: acknowledged (pathway 1)" in rendered.text
    assert "acknowledged (pathway 1)" in rendered.html
    (attachment,) = rendered.attachments
    assert attachment.filename == "high-risk-concerns-north-vale-2026-11.csv"
    assert attachment.content_type == "text/csv"
    rows = list(csv.reader(io.StringIO(attachment.text)))
    assert rows[0] == list(CSV_COLUMNS)
    assert rows[1] == [
        "LC-2026-000001",
        "2026-11-17T10:00+00:00",
        "Vale General",
        "Emergency Department",
        "1",
        "open",
        "R",
        "5",
        "5",
        "1.1 2.5",
        "17 Nov 2026 10:05 dean and quality team alerted; "
        "17 Nov 2026 11:00 acknowledged (pathway 1)",
    ]
    assert rows[2][0] == "LC-2026-000002" and rows[2][5] == "closed"
    assert len(rows) == 3


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_csv_cell_that_could_start_a_formula_is_made_inert(start: str) -> None:
    value = f'{start}HYPERLINK("http://evil.example","x")'
    report = monthly(ReportedConcern(line(), f"as given: {value}", value, ()))
    (attachment,) = render_digest(report).attachments
    row = list(csv.reader(io.StringIO(attachment.text)))[1]

    assert row[3] == f"'{value}"
    assert csv_cell(value) == f"'{value}"
    assert csv_cell("Ward 7") == "Ward 7"


def test_an_empty_month_still_reports_with_a_header_only_csv() -> None:
    rendered = render_digest(monthly())

    assert "No high-risk concern was raised this month." in rendered.text
    assert list(csv.reader(io.StringIO(rendered.attachments[0].text))) == [list(CSV_COLUMNS)]


# --- the attachment in the email --------------------------------------------------------------

THREADING = MailThreading(secret=b"test-secret", mailbox="escalating-concerns@example.nhs.uk")


@dataclass(frozen=True)
class Row:
    id: int = 7
    reference: str | None = None
    recipient_address: str = "morgan.example@example.nhs.uk"
    recipient_role: str = "dean"
    created_at: datetime | None = None
    subject: str = "Monthly highlight report, North Vale: November 2026"
    body_text: str = "The report.\n"
    body_html: str | None = "<p>The report.</p>\n"
    kind: str = "digest_monthly"


def composed(*attachments: Attachment) -> EmailMessage:
    message = compose(
        Row(),
        threading=THREADING,
        from_address="escalating-concerns@example.nhs.uk",
        now=datetime(2026, 12, 1, 7, tzinfo=UTC),
        attachments=attachments,
    )
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_an_attachment_travels_as_a_named_part_beside_both_bodies() -> None:
    text = 'reference,summary\r\nLC-2026-000001,"Ward 7 – £5, ""quoted"""\r\n'
    received = composed(Attachment("report.csv", "text/csv", text))

    assert received.get_content_type() == "multipart/mixed"
    body = received.get_body(preferencelist=("html", "plain"))
    assert body is not None and "The report." in str(body.get_content())
    (part,) = list(received.iter_attachments())
    assert part.get_content_type() == "text/csv"
    assert part.get_filename() == "report.csv"
    assert part.get_content_disposition() == "attachment"
    assert part.get_content().replace("\r\n", "\n") == text.replace("\r\n", "\n")


def test_without_attachments_the_email_is_unchanged() -> None:
    assert composed().get_content_type() == "multipart/alternative"


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("report.csv", "report.csv"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\report.csv", "report.csv"),
        (".hidden.csv", "hidden.csv"),
        ('bad"name\r\nX-Injected: 1.csv', "bad-name-X-Injected-1.csv"),
        ("", "attachment"),
        ("...", "attachment"),
        ("a" * 300 + ".csv", "a" * 96 + ".csv"),
    ],
)
def test_attachment_file_names_are_sanitised(given: str, sent: str) -> None:
    assert safe_filename(given) == sent
    received = composed(Attachment(given, "text/csv", "x\n"))
    (part,) = list(received.iter_attachments())
    assert part.get_filename() == sent
    assert received["X-Injected"] is None


@pytest.mark.parametrize("content_type", ["text", "text/csv; charset=x", "text/csv\r\nBcc: a@b.c"])
def test_an_attachment_with_a_content_type_that_is_not_plain_is_refused(content_type: str) -> None:
    with pytest.raises(ValueError, match="content type"):
        composed(Attachment("report.csv", content_type, "x\n"))


def test_stored_attachments_must_have_every_field_as_text() -> None:
    stored = {"filename": "r.csv", "content_type": "text/csv", "text": "x"}
    assert Attachment.from_stored(stored) == Attachment("r.csv", "text/csv", "x")
    assert Attachment.from_stored(stored).as_stored() == stored
    for broken in ({**stored, "text": None}, {"filename": "r.csv"}, {**stored, "filename": 3}):
        with pytest.raises(ValueError):
            Attachment.from_stored(broken)


def test_a_binary_type_is_sent_base64_and_comes_back_as_the_same_bytes() -> None:
    received = composed(Attachment("data.json", "application/json", '{"a": "£"}'))
    (part,) = list(received.iter_attachments())

    assert part.get_content_type() == "application/json"
    assert part.get_content() == '{"a": "£"}'.encode()
