"""Kept aside for staff: mail the mailbox would not attach to any concern, and form submissions
that keep failing to be raised.

Mail is kept aside when a reply's token does not match its sender, when new mail names a
concern's reference, when it answers a digest, when its sender cannot be read, or when processing
it kept failing; nothing kept aside is attached, and only the first two are answered (how to do
what the sender meant, `intake.mail_intake._tell_kept_for_staff`). Deans and quality teams read
it here (sender, subject, text and the names of attachments, which are never opened): mail of
their own region, and mail whose region is not known; admins see only that it is there. Anyone
else is answered 404, as if the pages did not exist. Whoever deals with a message marks it so: it
leaves the list for the list of mail dealt with, and the stored message notes who and when; a
message marked by mistake can be put back. A submission that failed to be raised is listed by
reference with its error's type: its words stay in the database until it is raised.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from app.staff.auth import SignedIn, staff_page_user
from app.staff.context import StaffContext
from app.staff.templating import leave_notice, staff_page, take_notice
from intake.emails import parse_email
from intake.web.security import CSRF_FIELD, posted_form, require_csrf
from notifications.messages import when
from routing.access import kept_aside_regions, reads_kept_aside_mail, sees_kept_aside
from storage import inbox, submissions
from storage import staff as accounts
from storage.db import transaction
from storage.tables import InboundMessage, id_of

KEPT_ASIDE_PATH = "/staff/kept-aside"
# The page lists the newest mail and the oldest failing submissions, up to this many of each.
MOST_LISTED = 200
NO_SUBJECT = "(no subject)"
# Ids are database integers: more digits than this cannot be one (SQLite's limit is 2**63 - 1).
MESSAGE_ID_DIGITS = 18
# Dealt-with mail listed under the kept-aside mail, the most recently marked first.
MOST_DEALT_WITH_LISTED = 50
DEALT_WITH_NOTICE = "Marked the message as dealt with. It is kept, with your name."
PUT_BACK_NOTICE = "Put the message back on the list of mail kept aside."
ALREADY_DEALT_WITH_NOTICE = "The message is already marked as dealt with. Nothing changed."
ALREADY_PUT_BACK_NOTICE = "The message is already on the list of mail kept aside. Nothing changed."
_ERROR_TYPE = re.compile(r"[A-Za-z_][\w.]*")
_NOTE = re.compile(r"; (?P<what>dealt with|put back) by (?P<by>[^;\s]+) at (?P<at>[^;\s]+)")

Staff = Annotated[SignedIn, Depends(staff_page_user)]


def _error_type(last_error: str | None) -> str:
    """The kind of error only. Raising stores just the type's name; anything else (a row noted
    before that, as the error's repr) can quote the learner's words, and shows as "unknown"."""
    value = (last_error or "").strip()
    found = _ERROR_TYPE.match(value)
    if found is None or found.end() not in (len(value), value.find("(")):
        return "unknown"
    return found.group(0)


def _message_id(text: str) -> int:
    """A message's id from its address; anything else is a page that does not exist (404), not
    a malformed request: "abc", or a number too large for the database."""
    if not text.isascii() or not text.isdigit() or len(text) > MESSAGE_ID_DIGITS:
        raise HTTPException(status_code=404)
    return int(text)


def _why(outcome: str | None) -> str:
    """The mailbox's reason, as a sentence under "Why it was kept aside" (without the notes of
    who dealt with it or put it back, which marking adds after a "; ")."""
    reason = (outcome or "").split("; ", 1)[0].removesuffix(": kept for staff").strip()
    return reason[:1].upper() + reason[1:] if reason else "Not recorded"


def _history(outcome: str | None, zone: ZoneInfo) -> list[str]:
    """What staff did with a message, oldest first, from the notes marking adds to its outcome
    ("; dealt with by {email} at {ISO moment}", "; put back by ...")."""
    shown = []
    for note in _NOTE.finditer(outcome or ""):
        try:
            at = datetime.fromisoformat(note["at"])
        except ValueError:
            at = None
        # A moment without its offset would be read as this server's local time: not shown.
        moment = when(at, zone) if at is not None and at.tzinfo else "at a time not recorded"
        action = "Marked as dealt with" if note["what"] == "dealt with" else "Put back on the list"
        shown.append(f"{action} by {note['by']}, {moment}")
    return shown


# The concern new mail named, as the mailbox noted when it kept it aside (intake.mail_intake).
_NAMED = re.compile(r"\bnames (LC-\d{4}-\d{6}) but is not a reply")


def _named(outcome: str | None, staff_url: Callable[[str], str]) -> dict[str, str] | None:
    """The concern the mail named, with its staff page, for staff to compare them."""
    found = _NAMED.search(outcome or "")
    if found is None:
        return None
    return {"reference": found.group(1), "url": staff_url(found.group(1))}


def router(context: StaffContext) -> APIRouter:
    routes = APIRouter()
    zone = context.policy.calendar.timezone

    def mail_row(row: InboundMessage, *, readable: bool) -> dict[str, Any]:
        return {
            "id": id_of(row),
            "received": when(row.received_at, zone),
            "why": _why(row.outcome),
            "sender": (row.from_address or row.mail_from or "(no sender)") if readable else None,
            "subject": (row.subject or NO_SUBJECT) if readable else None,
            "dealt_with": row.status == inbox.DEALT_WITH,
            # Marked before who and when had columns of their own: the note is in the outcome.
            "dealt_with_by": row.dealt_with_by or "(see the stored message)",
            "dealt_with_at": when(row.dealt_with_at, zone) if row.dealt_with_at else "",
            "history": _history(row.outcome, zone),
            "answered": "the sender was told" in (row.outcome or ""),
            "named": _named(row.outcome, context.policy.staff_url),
        }

    @routes.get(KEPT_ASIDE_PATH, response_class=HTMLResponse)
    async def kept_aside_page(request: Request, signed_in: Staff) -> HTMLResponse:
        if not sees_kept_aside(signed_in.who):
            raise HTTPException(status_code=404)
        readable = reads_kept_aside_mail(signed_in.who)

        now = context.clock()

        def load() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
            regions = kept_aside_regions(signed_in.who)
            with transaction(context.engine) as session:
                mail = [
                    mail_row(row, readable=readable)
                    for row in inbox.kept_aside(session, limit=MOST_LISTED, region_ids=regions)
                ]
                # Only those who deal with mail see what was dealt with (and can put it back).
                done = (
                    [
                        mail_row(row, readable=True)
                        for row in inbox.dealt_with(
                            session, limit=MOST_DEALT_WITH_LISTED, region_ids=regions
                        )
                    ]
                    if readable
                    else []
                )
                failing = [
                    {
                        "reference": row.reference,
                        "received": when(row.received_at, zone),
                        "attempts": row.attempts,
                        "error": _error_type(row.last_error),
                        "next_attempt": when(row.next_attempt_at, zone)
                        if row.next_attempt_at and row.next_attempt_at > now
                        else "Due now",
                    }
                    for row in submissions.failing(session, limit=MOST_LISTED)
                ]
            return mail, done, failing

        mail, done, failing = await run_in_threadpool(load)
        return staff_page(
            context.templates,
            request,
            "kept_aside.html",
            {
                "mail": mail,
                "dealt_with": done,
                "failing": failing,
                "readable": readable,
                "most": MOST_LISTED,
                "most_dealt_with": MOST_DEALT_WITH_LISTED,
                "notice": take_notice(request),
            },
        )

    @routes.get(KEPT_ASIDE_PATH + "/mail/{message}", response_class=HTMLResponse)
    async def kept_aside_mail(request: Request, message: str, signed_in: Staff) -> HTMLResponse:
        if not reads_kept_aside_mail(signed_in.who):
            raise HTTPException(status_code=404)
        message_id = _message_id(message)

        def load() -> tuple[dict[str, Any], bytes, str] | None:
            with transaction(context.engine) as session:
                row = inbox.kept_aside_message(
                    session,
                    message_id,
                    region_ids=kept_aside_regions(signed_in.who),
                    dealt_with_too=True,
                )
                if row is None:
                    return None
                accounts.record_access(
                    session,
                    kind="kept_aside_read",
                    staff=signed_in.member,
                    channel="web",
                    now=context.clock(),
                    detail={"message_id": message_id},
                )
                return mail_row(row, readable=True), bytes(row.raw), row.mail_from

        def read() -> dict[str, Any] | None:
            loaded = load()
            if loaded is None:
                return None
            shown, raw, mail_from = loaded
            # Parsed after the transaction: a large message must not hold the database.
            parsed = parse_email(raw, mail_from=mail_from)
            return shown | {
                # Mail whose processing kept failing was kept before its headers were noted.
                "sender": parsed.from_address or shown["sender"],
                "subject": shown["subject"]
                if shown["subject"] != NO_SUBJECT
                else parsed.subject or NO_SUBJECT,
                "envelope_sender": mail_from or "(none: a bounce)",
                "text": parsed.text,
                "attachments": [
                    {
                        "name": item.filename or "(no name)",
                        "type": item.content_type,
                        "size": item.size,
                    }
                    for item in parsed.attachments
                ],
                "problems": list(parsed.problems),
            }

        shown = await run_in_threadpool(read)
        if shown is None:
            raise HTTPException(status_code=404)
        return staff_page(context.templates, request, "kept_aside_mail.html", {"message": shown})

    async def move(
        request: Request,
        message: str,
        signed_in: SignedIn,
        *,
        change: Callable[..., bool],
        kind: str,
        notice: str,
        already: str,
    ) -> Response:
        """Mark a message as dealt with, or put it back: CSRF-checked, conditional (of two
        presses only the first counts; the second is told it was already done, with nothing
        changed), and recorded in the access audit. A message they may not read is a 404."""
        if not reads_kept_aside_mail(signed_in.who):
            raise HTTPException(status_code=404)
        message_id = _message_id(message)
        posted = await posted_form(request)
        require_csrf(request, posted.get(CSRF_FIELD))

        def apply() -> str | None:
            """The notice to show, or None when there is no such message for them."""
            now = context.clock()
            regions = kept_aside_regions(signed_in.who)
            with transaction(context.engine) as session:
                if change(session, message_id, by=signed_in.email, now=now, region_ids=regions):
                    accounts.record_access(
                        session,
                        kind=kind,
                        staff=signed_in.member,
                        channel="web",
                        now=now,
                        detail={"message_id": message_id},
                    )
                    return notice
                # Another tab, or a colleague, did it first.
                visible = inbox.kept_aside_message(
                    session, message_id, region_ids=regions, dealt_with_too=True
                )
                return already if visible is not None else None

        shown = await run_in_threadpool(apply)
        if shown is None:
            raise HTTPException(status_code=404)
        # Never the subject: it is learner text (see leave_notice).
        leave_notice(request, shown)
        return RedirectResponse(KEPT_ASIDE_PATH, status_code=303)

    @routes.post(KEPT_ASIDE_PATH + "/mail/{message}/dealt-with")
    async def dealt_with(request: Request, message: str, signed_in: Staff) -> Response:
        return await move(
            request,
            message,
            signed_in,
            change=inbox.mark_dealt_with,
            kind="kept_aside_dealt_with",
            notice=DEALT_WITH_NOTICE,
            already=ALREADY_DEALT_WITH_NOTICE,
        )

    @routes.post(KEPT_ASIDE_PATH + "/mail/{message}/put-back")
    async def put_back(request: Request, message: str, signed_in: Staff) -> Response:
        return await move(
            request,
            message,
            signed_in,
            change=inbox.put_back,
            kind="kept_aside_put_back",
            notice=PUT_BACK_NOTICE,
            already=ALREADY_PUT_BACK_NOTICE,
        )

    return routes
