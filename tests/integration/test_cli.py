"""The `concerns` command, black-box: a real process, a scratch database, the example directory."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.helpers import concern_input

CONCERNS = str(Path(sys.executable).with_name("concerns"))


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.database = tmp_path / "concerns.db"
        self.env = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("CONCERNS_", "SLACK_", "TEAMS_"))
            },
            "CONCERNS_DATABASE_URL": f"sqlite:///{self.database}",
        }

    def run(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [CONCERNS, *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.tmp_path,
            timeout=120,
        )
        assert result.returncode == expect, (
            f"{args}: {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def submit(
        self, raw: dict[str, Any], now: str, expect: int = 0
    ) -> subprocess.CompletedProcess[str]:
        path = self.tmp_path / "concern.json"
        path.write_text(json.dumps(raw))
        return self.run("submit", "--file", str(path), "--now", now, "--json", expect=expect)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def placement(cli: Cli) -> dict[str, str]:
    organisation = cli.json("directory", "show")["organisations"][0]
    return {
        "organisation": organisation["name"],
        "department": organisation["departments"][0]["name"],
    }


def test_output_read_only_in_part_ends_quietly(cli: Cli) -> None:
    """`concerns directory show | head -1`: the reader stops early (here, before the first
    line); no traceback follows, only a failure status."""
    cli.run("db", "upgrade")
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        writer = subprocess.run(
            [CONCERNS, "directory", "show", "--json"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=cli.env,
            cwd=cli.tmp_path,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert writer.returncode == 1
    assert writer.stderr == ""


def test_directory_show_has_the_contract_shape_on_a_fresh_database(cli: Cli) -> None:
    shown = cli.json("directory", "show")
    assert len(shown["organisations"]) >= 2
    for organisation in shown["organisations"]:
        assert organisation["name"]
        assert all(department["name"] for department in organisation["departments"])


def test_a_medium_concern_moves_1_2_3_then_is_overdue_at_dean_level_each_move_once(
    cli: Cli,
) -> None:
    submitted = json.loads(
        cli.submit(concern_input(placement(cli)), now="2026-11-23T10:00:00+00:00").stdout
    )
    reference = submitted["reference"]
    assert reference.startswith("LC-2026-") and submitted["code"] is None

    shown = cli.json("show", reference)
    assert shown["pathway"] == 1 and shown["risk"]["level"] == "medium"
    for key in ("likelihood", "impact", "rating", "level", "reasons", "interventions"):
        assert shown["risk"][key]
    assert shown["standards"] and shown["ack_due_at"].endswith("+00:00")

    for expected_pathway in (2, 3):
        due = cli.json("show", reference)["feedback_due_at"]
        cli.json("sweep", "--now", due)
        again = cli.json("sweep", "--now", due)
        assert again["applied"] == [], "a second sweep at the same time changes nothing"
        assert cli.json("show", reference)["pathway"] == expected_pathway

    due = cli.json("show", reference)["feedback_due_at"]
    cli.json("sweep", "--now", due)
    final = cli.json("show", reference)
    assert final["overdue_at_dean_at"] is not None
    moves = [
        (e["from_pathway"], e["to_pathway"]) for e in final["events"] if e["kind"] == "escalated"
    ]
    assert moves == [(1, 2), (2, 3)]
    assert [e["kind"] for e in final["events"]].count("overdue_at_dean") == 1
    assert all(e["at"] and e["kind"] for e in final["events"])
    roles = {(m["recipient_role"], m["kind"]) for m in final["outbox"]}
    assert ("dean", "escalated_in") in roles and ("quality_team", "overdue_at_dean") in roles

    listed = cli.json("list")
    assert [row["reference"] for row in listed] == [reference]


def test_a_confidential_concern_keeps_the_identity_from_contacts(cli: Cli) -> None:
    raw = concern_input(placement(cli), confidentiality="confidential")
    cli.submit(raw, now="2026-11-23T10:00:00+00:00")
    rows = (
        sqlite3.connect(cli.database)
        .execute("SELECT recipient_role, subject, body_text, body_html FROM outbox")
        .fetchall()
    )
    contact_rows = [row for row in rows if row[0] != "learner"]
    assert contact_rows
    for row in contact_rows:
        text = " ".join(part or "" for part in row[1:])
        assert "Priya" not in text and "priya.testlearner" not in text.lower()


def test_an_anonymous_concern_stores_neither_name_nor_email(cli: Cli) -> None:
    raw = concern_input(placement(cli), confidentiality="anonymous")
    raw["learner"] = {"group": "midwifery"}
    submitted = json.loads(cli.submit(raw, now="2026-11-23T10:00:00+00:00").stdout)
    assert submitted["code"]
    database = sqlite3.connect(cli.database)
    assert database.execute("SELECT count(*) FROM learners").fetchone() == (0,)
    dump = "\n".join(database.iterdump())
    assert submitted["code"] not in dump, "the code itself is never stored"


def test_invalid_input_exits_2_names_each_field_and_stores_nothing(cli: Cli) -> None:
    raw = concern_input(placement(cli), frequency="sometimes", confidentiality="secret")
    del raw["summary"]
    result = cli.submit(raw, now="2026-11-23T10:00:00+00:00", expect=2)
    for field in ("frequency", "confidentiality", "summary"):
        assert field in result.stderr
    assert cli.json("list") == []


def test_bad_now_and_unknown_reference_are_bad_input(cli: Cli) -> None:
    assert "--now" in cli.run("sweep", "--now", "next tuesday", expect=2).stderr
    assert "LC-2026-999999" in cli.run("show", "LC-2026-999999", expect=2).stderr


def test_a_bad_directory_file_names_the_line_and_changes_nothing(cli: Cli) -> None:
    before = cli.json("directory", "show")
    bad = cli.tmp_path / "bad.yaml"
    bad.write_text("regions:\n  - key: x\n    name: X\n    escalation_mailbox: not-an-email\n")
    result = cli.run("directory", "load", str(bad), expect=2)
    assert "line" in result.stderr
    assert cli.json("directory", "show") == before


def test_the_demo_walks_a_concern_up_the_ladder(cli: Cli) -> None:
    output = cli.run("demo").stdout
    assert "-> pathway 2" in output and "-> pathway 3" in output
    assert "overdue at dean" in output
    # It ends with the dean's weekly digest, heat map and all, as the dean would read it.
    assert "The dean's weekly digest for North Vale" in output
    assert "HEAT MAP OF OPEN CONCERNS" in output and "5 almost certain" in output


def test_a_confidential_identity_never_reaches_pathway_1_or_2_all_the_way_up(cli: Cli) -> None:
    raw = concern_input(placement(cli), confidentiality="confidential")
    reference = json.loads(cli.submit(raw, now="2026-11-23T10:00:00+00:00").stdout)["reference"]
    for _ in range(3):
        shown = cli.json("show", reference)
        for moment in (shown["ack_due_at"], shown["feedback_due_at"]):
            cli.json("sweep", "--now", moment)
    assert cli.json("show", reference)["overdue_at_dean_at"]
    rows = (
        sqlite3.connect(cli.database)
        .execute("SELECT recipient_role, kind, subject, body_text, body_html FROM outbox")
        .fetchall()
    )
    below_dean = [row for row in rows if row[0] not in ("learner", "dean", "quality_team")]
    assert {row[1] for row in below_dean} >= {
        "new_concern",
        "ack_missed",
        "escalated_in",
        "escalated_out",
    }
    for row in below_dean:
        text = " ".join(part or "" for part in row[2:])
        assert "Priya" not in text and "priya.testlearner" not in text.lower(), row[:2]
    at_dean = [row for row in rows if row[0] == "dean" and row[1] == "escalated_in"]
    assert "Priya Testlearner" in at_dean[0][3], "the dean may know who raised it"


def test_loading_a_directory_prints_what_changed(cli: Cli) -> None:
    from storage.directory import example_directory_path

    output = cli.run("directory", "load", str(example_directory_path())).stdout
    assert "Loaded the directory" in output and "LoadSummary(" not in output


def test_control_characters_and_loose_types_are_refused_by_field(cli: Cli) -> None:
    raw = concern_input(placement(cli), about_pathway1_contact="yes")
    raw["learner"]["name"] = "Casey\u0000Secret"
    result = cli.submit(raw, now="2026-11-23T10:00:00+00:00", expect=2)
    assert "learner.name" in result.stderr and "about_pathway1_contact" in result.stderr
    assert "Casey" not in result.stderr
    assert cli.json("list") == []


def test_a_bad_now_is_refused_before_the_database_is_touched(cli: Cli) -> None:
    assert "--now" in cli.run("sweep", "--now", "9999-12-31T16:00:00", expect=2).stderr
    assert not cli.database.exists()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CONCERNS_TIMEZONE", "Mars/Base"),
        ("CONCERNS_REMINDER_FRACTION", "0.0001"),
        ("CONCERNS_SILENCE_CLOSE_DAYS", "-1"),
        ("CONCERNS_DATABASE_URL", "not a url"),
    ],
)
def test_a_bad_setting_exits_2_naming_it(cli: Cli, name: str, value: str) -> None:
    cli.env[name] = value
    assert name in cli.run("list", expect=2).stderr


def test_an_unknown_placement_is_raised_with_a_warning(cli: Cli) -> None:
    raw = concern_input({"organisation": "St Nowhere Clinic"})
    result = cli.submit(raw, now="2026-11-23T10:00:00+00:00")
    assert "placement.organisation" in result.stderr
    assert json.loads(result.stdout)["reference"]
