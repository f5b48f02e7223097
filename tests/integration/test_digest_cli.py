"""`concerns digest`, black-box: files a person can open, or queued once with --send."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.integration.helpers import concern_input
from tests.integration.test_cli import Cli

EMERGENCY = {"organisation": "vale-general", "department": "emergency"}


class DigestCli(Cli):
    """The `concerns` command of test_cli, with the reference of what it raised and the rows."""

    def reference(self, raw: dict[str, Any], now: str) -> str:
        return str(json.loads(self.submit(raw, now).stdout)["reference"])

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.database) as connection:
            return connection.execute(query).fetchall()


@pytest.fixture
def cli(tmp_path: Path) -> DigestCli:
    return DigestCli(tmp_path)


def high_risk(summary: str = "Nobody senior on the ward at night") -> dict[str, Any]:
    return concern_input(
        EMERGENCY,
        summary=summary,
        description="What happened on the night shift, which no digest repeats.",
        frequency="continuing",
        harm="patient_harmed",
    )


def test_without_send_the_weekly_digest_is_written_as_files_and_nothing_is_queued(
    cli: DigestCli,
) -> None:
    reference = cli.reference(high_risk("<b>Unsafe</b> & unsupervised"), "2026-11-17T10:00:00")
    cli.reference(high_risk(), "2026-11-18T10:00:00")

    result = cli.run("digest", "weekly", "--now", "2026-11-23T08:00:00")

    folder = cli.tmp_path / "var" / "digests"
    html = folder / "weekly-north-vale-2026-11-16.html"
    text = folder / "weekly-north-vale-2026-11-16.txt"
    assert result.stdout.splitlines()[1:] == [
        "  var/digests/weekly-north-vale-2026-11-16.html",
        "  var/digests/weekly-north-vale-2026-11-16.txt",
    ]
    assert "not sent" in result.stdout
    page = html.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<caption" in page and 'scope="row"' in page
    assert "&lt;b&gt;Unsafe&lt;/b&gt; &amp; unsupervised" in page and "<b>Unsafe" not in page
    assert reference in page
    assert "HEAT MAP OF OPEN CONCERNS (2)" in text.read_text(encoding="utf-8")
    assert "Emergency Department: 2 concerns" in text.read_text(encoding="utf-8")
    assert "night shift" not in page
    # A preview records no run and queues nothing.
    assert cli.rows("SELECT count(*) FROM digest_runs") == [(0,)]
    assert cli.rows("SELECT count(*) FROM outbox WHERE kind LIKE 'digest_%'") == [(0,)]


def test_the_monthly_report_is_written_with_its_csv_into_the_folder_given(cli: DigestCli) -> None:
    reference = cli.reference(high_risk(), "2026-11-17T10:00:00")

    result = cli.run("digest", "monthly", "--now", "2026-12-01T08:00:00", "--out", "reports")

    stem = cli.tmp_path / "reports" / "monthly-north-vale-2026-11-01"
    for suffix in (".html", ".txt", ".csv"):
        assert f"reports/monthly-north-vale-2026-11-01{suffix}" in result.stdout
    rows = list(csv.reader(io.StringIO(stem.with_suffix(".csv").read_text(encoding="utf-8"))))
    assert rows[0][:3] == ["reference", "created", "organisation"]
    assert [row[0] for row in rows[1:]] == [reference]
    assert rows[1][2:4] == ["Vale General Hospitals NHS Trust", "Emergency Department"]


def test_send_queues_each_digest_once_and_says_so(cli: DigestCli) -> None:
    cli.reference(high_risk(), "2026-11-23T11:00:00")

    first = cli.run("digest", "daily", "--send", "--now", "2026-11-24T07:05:00")
    again = cli.run(
        "digest", "daily", "--send", "--now", "2026-11-24T15:00:00", "--region", "north-vale"
    )

    assert "queued 2 message(s), to dean, quality_team" in first.stdout
    assert "was already sent: nothing queued" in again.stdout
    assert cli.rows(
        "SELECT recipient_role, send_after FROM outbox WHERE kind = 'digest_daily' "
        "ORDER BY recipient_role"
    ) == [("dean", "2026-11-24 07:00:00.000000"), ("quality_team", "2026-11-24 07:00:00.000000")]
    assert cli.rows("SELECT kind, messages FROM digest_runs") == [("daily", 2)]
    assert not (cli.tmp_path / "var" / "digests").exists()


def test_a_daily_digest_with_nothing_in_it_is_not_queued(cli: DigestCli) -> None:
    result = cli.run("digest", "daily", "--send", "--now", "2026-11-24T08:00:00")

    assert "has nothing in it: nothing queued" in result.stdout
    assert cli.rows("SELECT count(*) FROM outbox WHERE kind LIKE 'digest_%'") == [(0,)]


def test_no_daily_digest_on_a_weekend(cli: DigestCli) -> None:
    result = cli.run("digest", "daily", "--send", "--now", "2026-11-21T09:00:00")

    assert "No daily high-risk digest is due" in result.stdout
    assert cli.rows("SELECT count(*) FROM digest_runs") == [(0,)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["digest", "weekly", "--region", "south-vale"], "--region: no region 'south-vale'"),
        (["digest", "weekly", "--now", "next tuesday"], "--now:"),
        (["digest", "fortnightly"], "invalid choice: 'fortnightly'"),
    ],
)
def test_bad_input_is_named_and_exits_2(cli: DigestCli, args: list[str], message: str) -> None:
    result = cli.run(*args, expect=2)

    assert message in result.stderr
