"""The `concerns` command: operators' and tests' way into every use case.

Exit status: 0 done, 2 bad input (the message names the field), 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy.exc import ArgumentError, OperationalError

from app import bootstrap, teams_package
from app.settings import ChatSettings, Settings
from escalation import casework, retention
from escalation.digest import (
    DigestOutcome,
    DigestStatus,
    UnknownRegion,
    due_period,
    run_digest,
)
from escalation.sweep import sweep
from escalation.views import concern_details, concern_summary
from intake.service import NoDirectory, submit_concern
from intake.submission import Channel, InvalidSubmission, parse_submission
from notifications.digests import DigestKind, Period
from notifications.email import safe_filename
from storage import directory, migrate, repositories
from storage.db import transaction

BAD_INPUT = 2
DEFAULT_DIGEST_DIR = Path("./var/digests")
DIGEST_NAMES = {
    DigestKind.DAILY: "daily high-risk digest",
    DigestKind.WEEKLY: "weekly escalation digest",
    DigestKind.MONTHLY: "monthly highlight report",
}
# Deadlines are counted forward in working days: keep --now far from datetime's limits.
EARLIEST_YEAR, LATEST_YEAR = 2000, 2100


class BadInput(Exception):
    """A problem with what the operator typed or gave us; printed as is, exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return BAD_INPUT
    try:
        settings = Settings()
    except ValidationError as error:
        for item in error.errors():
            name = "CONCERNS_" + "_".join(str(p) for p in item["loc"]).upper()
            print(f"concerns: setting {name}: {item['msg']}", file=sys.stderr)
        return BAD_INPUT
    try:
        result: int = args.run(args, settings)
        return result
    except BadInput as error:
        print(f"concerns: {error}", file=sys.stderr)
        return BAD_INPUT
    except InvalidSubmission as error:
        print("concerns: the concern was not raised; fix these fields:", file=sys.stderr)
        for name, problem in error.errors.items():
            print(f"  {name}: {problem}", file=sys.stderr)
        return BAD_INPUT
    except directory.DirectoryError as error:
        print(f"concerns: the directory was not loaded; nothing changed.\n{error}", file=sys.stderr)
        return BAD_INPUT
    except NoDirectory as error:
        print(f"concerns: {error}", file=sys.stderr)
        return 1
    except ArgumentError:
        print(
            "concerns: setting CONCERNS_DATABASE_URL: not a database URL this service can use "
            "(sqlite:///path or postgresql://user:password@host/database)",
            file=sys.stderr,
        )
        return BAD_INPUT
    except OperationalError as error:
        # The message names the host and the reason, never the password or any row.
        print(f"concerns: cannot use the database: {error.orig}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # Whoever read the output stopped (`concerns show REF | head`): nothing more to say,
        # and what is left unwritten must not fail again as the interpreter flushes at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="concerns", description="Intake and escalation of NHS learners' concerns."
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(
        name: str, run: Callable[[argparse.Namespace, Settings], int], help: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(run=run)
        return sub

    db = commands.add_parser("db", help="database schema").add_subparsers(metavar="ACTION")
    upgrade = db.add_parser("upgrade", help="apply every migration")
    upgrade.set_defaults(run=_db_upgrade)

    directory_parser = commands.add_parser("directory", help="the contact directory")
    directory_commands = directory_parser.add_subparsers(metavar="ACTION")
    load = directory_commands.add_parser(
        "load", help="load a directory YAML file in one transaction"
    )
    load.add_argument("file", type=Path)
    load.set_defaults(run=_directory_load)
    show = directory_commands.add_parser("show", help="print the loaded directory")
    show.add_argument("--json", action="store_true")
    show.set_defaults(run=_directory_show)

    submit = command("submit", _submit, "raise a concern from a JSON file")
    submit.add_argument(
        "--file", required=True, type=Path, help="the concern as JSON ('-' for stdin)"
    )
    submit.add_argument("--now", help="when it was raised (ISO-8601); default: now")
    submit.add_argument("--json", action="store_true")

    listing = command("list", _list, "list concerns")
    listing.add_argument("--json", action="store_true")

    show_concern = command("show", _show, "show one concern")
    show_concern.add_argument("reference")
    show_concern.add_argument("--json", action="store_true")

    sweep_parser = command("sweep", _sweep, "apply every escalation step due")
    sweep_parser.add_argument("--now", help="sweep as of this time (ISO-8601); default: now")
    sweep_parser.add_argument("--json", action="store_true")

    digest = command(
        "digest",
        _digest,
        "build the latest due digest or report as files to read, or queue it once with --send",
    )
    digest.add_argument("kind", choices=[kind.value for kind in DigestKind])
    digest.add_argument("--region", help="a region's key (default: every active region)")
    digest.add_argument("--now", help="as of this time (ISO-8601); default: now")
    digest.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_DIGEST_DIR,
        help=f"folder for the files (default: {DEFAULT_DIGEST_DIR})",
    )
    digest.add_argument(
        "--send",
        action="store_true",
        help="queue it to each region's dean and quality team (once per period) instead",
    )

    teams_parser = commands.add_parser("teams", help="the Microsoft Teams app")
    teams_commands = teams_parser.add_subparsers(metavar="ACTION")
    package = teams_commands.add_parser(
        "package",
        help="write the app package to upload to Teams (TEAMS_APP_ID and CONCERNS_PUBLIC_URL in)",
    )
    package.add_argument(
        "--out",
        type=Path,
        default=Path("var/learner-concerns-teams.zip"),
        help="the zip to write (default: var/learner-concerns-teams.zip)",
    )
    package.set_defaults(run=_teams_package)

    staff_parser = commands.add_parser("staff", help="staff accounts")
    staff_commands = staff_parser.add_subparsers(metavar="ACTION")
    add = staff_commands.add_parser(
        "add", help="create a staff account (or re-scope one) and print a new API token once"
    )
    add.add_argument("--email", required=True)
    add.add_argument(
        "--role", required=True, help="contact, school_lead, dean, quality_team or admin"
    )
    add.add_argument(
        "--scope",
        help="the region's key (dean, quality_team; default: the only region) or the school's "
        "or provider's key (school_lead)",
    )
    add.set_defaults(run=_staff_add)

    retention = command(
        "retention",
        _retention,
        "remove closed concerns older than the retention period (CONCERNS_RETENTION_YEARS), and "
        "mail and digests tied to no concern finished with that long ago",
    )
    retention.add_argument("--dry-run", action="store_true", help="list them, remove nothing")
    retention.add_argument("--now", help="as of this time (ISO-8601); default: now")

    command("demo", _demo, "a guided run on a scratch database: triage, reminders, escalation")
    command("serve", _serve, "run the service: HTTP, the SMTP mailbox and the scheduler")
    return parser


# --- helpers ------------------------------------------------------------------------------------


def parse_now(value: str | None, *, timezone: ZoneInfo) -> datetime:
    """--now as an aware datetime; a time without an offset is read in the configured timezone."""
    if value is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadInput(
            f"--now: '{value}' is not an ISO-8601 time such as 2026-11-23T10:00:00+00:00"
        ) from None
    if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        raise BadInput(f"--now: give a time between {EARLIEST_YEAR} and {LATEST_YEAR}")
    return moment.replace(tzinfo=timezone) if moment.tzinfo is None else moment


def _ready(settings: Settings) -> bootstrap.Product:
    product = bootstrap.build(settings)
    bootstrap.prepare_database(product)
    return product


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _fail(message: str) -> NoReturn:
    raise BadInput(message)


# --- commands -----------------------------------------------------------------------------------


def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    product = bootstrap.build(settings)
    migrate.upgrade(product.engine)
    print("The database schema is up to date.")
    return 0


def _directory_load(args: argparse.Namespace, settings: Settings) -> int:
    path: Path = args.file
    if not path.is_file():
        _fail(f"FILE: no such file: {path}")
    product = bootstrap.build(settings)
    migrate.upgrade(product.engine)
    with transaction(product.engine) as session:
        summary = directory.load_directory_file(session, path, now=datetime.now(UTC))
    print(f"Loaded the directory from {path}.")
    print(summary.as_text())
    return 0


def _directory_show(args: argparse.Namespace, settings: Settings) -> int:
    product = _ready(settings)
    with transaction(product.engine) as session:
        described = directory.describe_directory(session)
    if args.json:
        _print_json(described)
    else:
        print(directory.format_directory(described))
    return 0


def _submit(args: argparse.Namespace, settings: Settings) -> int:
    path: Path = args.file
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as error:
        _fail(f"--file: cannot read {path}: {error.strerror}")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        _fail(f"--file: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})")
    new = parse_submission(raw)
    now = parse_now(args.now, timezone=ZoneInfo(settings.timezone))
    product = _ready(settings)
    submitted = submit_concern(
        engine=product.engine, concern=new, channel=Channel.CLI, now=now, policy=product.policy
    )
    if not submitted.placement_matched:
        print(
            "concerns: warning: placement.organisation/placement.department did not match the "
            "directory; the concern keeps the words given and the quality team will route it",
            file=sys.stderr,
        )
    if args.json:
        _print_json({"reference": submitted.reference, "code": submitted.code})
    else:
        print(
            f"Raised {submitted.reference}: pathway {submitted.pathway}, "
            f"{submitted.risk_level} risk."
        )
        if submitted.code:
            print(
                "Follow-up code (give it to the learner; it is not stored and not shown again): "
                f"{submitted.code}"
            )
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    product = _ready(settings)
    with transaction(product.engine) as session:
        rows = [concern_summary(session, c) for c in repositories.all_concerns(session)]
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("No concerns yet.")
    for row in rows:
        print(
            f"{row['reference']}  {row['status']:<6}  pathway {row['pathway']}  "
            f"{row['risk_level']:<6}  {row['place']}: {row['summary']}"
        )
    return 0


def _show(args: argparse.Namespace, settings: Settings) -> int:
    product = _ready(settings)
    with transaction(product.engine) as session:
        concern = repositories.concern_by_reference(session, args.reference)
        if concern is None:
            _fail(f"REFERENCE: no concern {args.reference.strip().upper()}")
        details = concern_details(session, concern)
    if args.json:
        _print_json(details)
    else:
        print(format_details(details, timezone=product.policy.calendar.timezone))
    return 0


def format_details(details: dict[str, Any], *, timezone: ZoneInfo) -> str:
    def local(iso: str | None) -> str:
        if not iso:
            return "-"
        return f"{datetime.fromisoformat(iso).astimezone(timezone):%a %d %b %Y %H:%M}"

    risk = details["risk"]
    lines = [
        f"{details['reference']}  ({details['status']}, pathway {details['pathway']}, "
        f"{details['confidentiality']})",
        f"  {details['place']}: {details['summary']}",
        f"  Risk: likelihood {risk['likelihood']} x impact {risk['impact']} = "
        f"{risk['rating']} ({risk['level']})",
        *[f"    - {reason}" for reason in risk["reasons"]],
        f"  Interventions: {'; '.join(risk['interventions'])}",
        f"  Standards: {', '.join(details['standards'])}",
        f"  Acknowledge by: {local(details['ack_due_at'])}   "
        f"Feedback by: {local(details['feedback_due_at'])}",
        "  Events:",
        *[
            f"    {local(e['at'])}  {e['kind']}"
            + (f" {e['from_pathway']} -> {e['to_pathway']}" if e["kind"] == "escalated" else "")
            for e in details["events"]
        ],
        "  Messages queued:",
        *[f"    {m['kind']} -> {m['recipient_role']} ({m['status']})" for m in details["outbox"]],
    ]
    return "\n".join(lines)


def _sweep(args: argparse.Namespace, settings: Settings) -> int:
    now = parse_now(args.now, timezone=ZoneInfo(settings.timezone))
    product = _ready(settings)
    report = sweep(engine=product.engine, now=now, policy=product.policy)
    if args.json:
        _print_json(report.as_dict())
    else:
        for step in report.applied:
            move = f" -> pathway {step.to_pathway}" if step.to_pathway else ""
            print(f"{step.reference}: {step.kind} (pathway {step.pathway}{move})")
        print(f"{len(report.applied)} step(s) applied.")
    return 1 if report.failed else 0


def _digest(args: argparse.Namespace, settings: Settings) -> int:
    kind = DigestKind(args.kind)
    timezone = ZoneInfo(settings.timezone)
    now = parse_now(args.now, timezone=timezone)
    product = _ready(settings)
    if due_period(kind, now, product.policy.calendar) is None:
        print(
            f"No {DIGEST_NAMES[kind]} is due at {now.astimezone(timezone):%a %d %b %Y %H:%M}: "
            "it runs at 07:00 on working days only."
        )
        return 0
    try:
        outcomes = run_digest(
            engine=product.engine,
            kind=kind,
            region_key=args.region,
            now=now,
            policy=product.policy,
            send=args.send,
        )
    except UnknownRegion as error:
        known = ", ".join(error.known) or "none: load a directory first"
        _fail(f"--region: no region '{error.key}' (known: {known})")
    if not outcomes:
        print("No active region: load a directory first (concerns directory load FILE).")
    for outcome in outcomes:
        period = _period_words(outcome.period, timezone)
        what = f"The {DIGEST_NAMES[kind]} for {outcome.region} ({period})"
        if args.send:
            _print_sent(what, outcome)
        else:
            print(f"{what}, not sent (--send queues it):")
            for path in _write_digest_files(outcome, args.out, timezone=timezone):
                print(f"  {path}")
    return 0


def _period_words(period: Period, timezone: ZoneInfo) -> str:
    start, end = period.start.astimezone(timezone), period.end.astimezone(timezone)
    return f"{start:%a %d %b %Y %H:%M} to {end:%a %d %b %Y %H:%M}"


def _print_sent(what: str, outcome: DigestOutcome) -> None:
    if outcome.status is DigestStatus.QUEUED:
        print(
            f"{what}: queued {outcome.messages} message(s), to {', '.join(outcome.recipients)}. "
            "The running service sends them."
        )
    elif outcome.status is DigestStatus.ALREADY_SENT:
        print(f"{what} was already sent: nothing queued.")
    elif outcome.status is DigestStatus.EMPTY:
        print(f"{what} has nothing in it: nothing queued (recorded as done).")
    else:
        print(f"{what} was recorded with nothing queued.")
        print(
            f"concerns: warning: region {outcome.region_key} has no active dean or quality-team "
            "contact with an email address (fix the directory)",
            file=sys.stderr,
        )


def _write_digest_files(outcome: DigestOutcome, folder: Path, *, timezone: ZoneInfo) -> list[Path]:
    """The digest as files a person can open: <kind>-<region>-<period start>.html/.txt/.csv."""
    if outcome.rendered is None:
        raise RuntimeError("a digest preview was not rendered")
    rendered = outcome.rendered
    stem = safe_filename(
        f"{outcome.kind.value}-{outcome.region_key}-"
        f"{outcome.period.start.astimezone(timezone).date().isoformat()}"
    )
    files = [(f"{stem}.html", rendered.html), (f"{stem}.txt", rendered.text)]
    files += [
        (f"{stem}.csv", attachment.text)
        for attachment in rendered.attachments
        if attachment.content_type == "text/csv"
    ]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name, text in files:
            path = folder / name
            # newline="": the CSV keeps its own CRLF line ends, the rest stays as rendered.
            path.write_text(text, encoding="utf-8", newline="")
            written.append(path)
    except OSError as error:
        _fail(f"--out: cannot write to {folder}: {error.strerror}")
    return written


def _teams_package(args: argparse.Namespace, settings: Settings) -> int:
    try:
        out = teams_package.write_package(
            args.out, app_id=ChatSettings().teams_app_id, public_url=settings.public_url
        )
    except teams_package.PackageError as error:
        raise BadInput(str(error)) from None
    print(f"Wrote {out}: upload it in Teams (Apps -> Manage your apps -> Upload an app), or in")
    print("the Teams admin centre (Teams apps -> Manage apps -> Upload new app).")
    return 0


def _staff_add(args: argparse.Namespace, settings: Settings) -> int:
    product = _ready(settings)
    try:
        with transaction(product.engine) as session:
            member, token = casework.add_staff(
                session, email=args.email, role=args.role, scope=args.scope, now=datetime.now(UTC)
            )
            email, role, scope = member.email, member.role, member.scope
    except casework.BadAccount as error:
        raise BadInput(str(error)) from None
    print(f"Staff account {email}: {role}" + (f" for {scope}" if scope else ""))
    print("API token (shown once, kept only as a hash; store it in a password manager):")
    print(token)
    return 0


def _retention(args: argparse.Namespace, settings: Settings) -> int:
    now = parse_now(args.now, timezone=ZoneInfo(settings.timezone))
    years = settings.retention_years
    product = _ready(settings)
    with transaction(product.engine) as session:
        expired = retention.plan_retention(session, now=now, years=years)
        old_mail = retention.count_unattached(session, "mail", now=now, years=years)
        old_messages = retention.count_unattached(session, "messages", now=now, years=years)
    print(f"{len(expired)} closed concern(s) closed more than {years} years ago:")
    for item in expired:
        print(f"  {item.reference}  closed {item.closed_at.date().isoformat()}")
    print(
        f"{old_mail} email(s) received and {old_messages} message(s) sent, tied to no concern "
        f"and finished with more than {years} years ago (bounces, auto-replies, mail kept aside "
        "and dealt with; digests and reports)."
    )
    if args.dry_run:
        print("Dry run: nothing removed.")
        return 0
    removed = retention.remove(product.engine, expired, now=now, years=years)
    print(f"Removed {len(removed)} concern(s).")
    mail = retention.remove_unattached(product.engine, "mail", now=now, years=years)
    messages = retention.remove_unattached(product.engine, "messages", now=now, years=years)
    print(f"Removed {mail} email(s) received and {messages} message(s) sent, tied to no concern.")
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from app.demo import run_demo

    return run_demo(settings)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: the other commands need neither uvicorn nor the scheduler.
    from app.serve import CannotServe, serve

    try:
        return serve(settings)
    except CannotServe as error:
        print(f"concerns: {error}", file=sys.stderr)
        return error.status


if __name__ == "__main__":
    sys.exit(main())
