"""The learner's status page: look a concern up (reference + code, or a signed email link), see
a learner-safe timeline, add information, and answer feedback.

Access lives in the signed session cookie: for each concern looked up (a few at most), when it
was granted and last used, and the concern's link version it was granted under. It ends after 30
minutes unused, 4 hours after it was granted, and when the concern's link version moves on (the
learner corrected their email address: access opened with a link sent to the old one ends); the
code itself is never stored. Every action names its concern (a second tab, or a link opened in
the same browser, never turns it onto another), and an answer to feedback names the feedback it
answers. Every change runs in a thread, in one transaction, on the locked concern.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from escalation.actions import (
    ActionRefused,
    add_learner_information,
    learner_remains_concerned,
    learner_satisfied,
)
from intake.follow_up import (
    LearnerStatus,
    candidate_for_follow_up,
    feedback_version,
    learner_status,
    normalise_reference,
    pathway_words,
    verify_follow_up,
)
from intake.received import raise_if_waiting
from intake.service import learner_words
from intake.web.context import WebContext
from intake.web.form import CHANGE_KEY, FLASH_KEY
from intake.web.security import (
    CSRF_FIELD,
    CsrfRefused,
    posted_form,
    require_csrf,
    sent_from_our_page,
)
from intake.web.templating import page
from storage import repositories
from storage.db import transaction
from storage.tables import Concern, id_of

STATUS_PATH = "/concerns/status"
# {reference: [granted, last used, link version]}, the times as POSIX timestamps; access stored
# before link versions has no third item, which is version 0.
ACCESS_KEY = "status_access"
CURRENT_KEY = "status_current"  # the concern the status page shows
NOTICE_KEY = "status_notice"
ACCESS_IDLE = timedelta(minutes=30)
ACCESS_LONGEST = timedelta(hours=4)
MOST_CONCERNS_HELD = 5
CLOCK_LEEWAY = timedelta(seconds=60)
# The same information, or the same answer to feedback, sent again this soon (a second press of
# the button without JavaScript, a browser resending) is taken once.
SAME_INFORMATION_WITHIN = timedelta(minutes=2)
ADDED = "Your information has been added to your concern."
INFORMATION_LIMIT = 5_000
FIELD_LIMIT = 200

NOT_RIGHT = "The reference or code is not right. Check them and try again."
LINK_EXPIRED = (
    "The link you used has expired or is not complete. Enter your reference and code, or use "
    "the link in the most recent email we sent you."
)
ACCESS_ENDED = (
    "For your security, you need to enter your reference and code again (or use the link in "
    "our email) after 30 minutes without using the page, and 4 hours after you first opened it."
)
PAGE_MOVED_ON = (
    "This page answered earlier feedback, and your concern has moved on since, so nothing has "
    "been changed. The page now shows where your concern is."
)
SIGNED_OUT = "You have signed out of your concern."
PAGE_OUT_OF_DATE = (
    "This page was out of date (it may have been open in another tab or window), so nothing has "
    "been changed. Check what is below and send it again."
)


@dataclass(frozen=True)
class Access:
    reference: str
    granted_at: datetime
    link_version: int = 0


def grant_access(
    session: dict[str, Any], reference: str, *, link_version: int, now: datetime
) -> None:
    """Give this browser session access to a concern's status page, from now."""
    held = _held(session.get(ACCESS_KEY))
    held[reference] = [now.timestamp(), now.timestamp(), link_version]
    while len(held) > MOST_CONCERNS_HELD:  # the longest held goes first
        del held[min(held, key=lambda each: held[each][0])]
    session[ACCESS_KEY] = held
    session[CURRENT_KEY] = reference


def link_version_of(engine: Engine, reference: str) -> int | None:
    """A concern's current link version; None when there is no such concern (yet)."""
    with transaction(engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        return concern.link_version if concern is not None else None


def router(context: WebContext) -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    # --- access held in the session -----------------------------------------------------------

    def grant(request: Request, reference: str, link_version: int) -> None:
        grant_access(request.session, reference, link_version=link_version, now=context.clock())

    async def access_of(
        request: Request, reference: str | None = None
    ) -> tuple[Access | None, bool]:
        """Access to `reference` (by default the concern last shown), now marked used, and
        whether there was access to it that has now ended (by time, or because the concern's
        links were renewed since it was granted)."""
        held = _held(request.session.get(ACCESS_KEY))
        if reference is None:
            current = request.session.get(CURRENT_KEY)
            reference = current if isinstance(current, str) else None
        if reference is None or reference not in held:
            return None, False
        granted, used, version = held[reference]
        now = context.clock()
        idle = timedelta(seconds=now.timestamp() - used)
        # A little leeway backwards: instances' clocks differ by a moment.
        if not -CLOCK_LEEWAY <= idle <= ACCESS_IDLE or (
            timedelta(seconds=now.timestamp() - granted) > ACCESS_LONGEST
        ):
            del held[reference]
            request.session[ACCESS_KEY] = held
            return None, True
        current = await run_in_threadpool(link_version_of, context.engine, reference)
        if current is not None and current != version:
            # Opened with a link sent to an address the learner has since corrected.
            del held[reference]
            request.session[ACCESS_KEY] = held
            return None, True
        held[reference] = [granted, now.timestamp(), version]
        request.session[ACCESS_KEY] = held
        request.session[CURRENT_KEY] = reference
        granted_at = datetime.fromtimestamp(granted, tz=now.tzinfo)
        return Access(reference=reference, granted_at=granted_at, link_version=version), False

    def notice(request: Request, text: str) -> None:
        request.session[NOTICE_KEY] = text

    def take_notice(request: Request) -> str | None:
        text = request.session.pop(NOTICE_KEY, None)
        return text if isinstance(text, str) else None

    # --- pages --------------------------------------------------------------------------------

    def lookup_page(
        request: Request,
        *,
        message: str | None = None,
        errors: dict[str, str] | None = None,
        values: dict[str, str] | None = None,
        kept: str = "",
        status_code: int = 200,
    ) -> HTMLResponse:
        errors = errors or {}
        return page(
            context.templates,
            request,
            "status_lookup.html",
            {
                "message": message,
                "kept": kept,
                "errors": errors,
                "error_list": [
                    {"text": text, "href": f"#{field}"} for field, text in errors.items()
                ],
                "values": values or {},
            },
            status_code=status_code,
        )

    def status_page(
        request: Request,
        status: LearnerStatus,
        *,
        errors: dict[str, str] | None = None,
        information: str = "",
        status_code: int = 200,
    ) -> HTMLResponse:
        errors = errors or {}
        next_pathway = status.pathway + 1 if status.pathway < 3 else None
        return page(
            context.templates,
            request,
            "status.html",
            {
                "status": status,
                "notice": take_notice(request),
                "errors": errors,
                "error_list": [
                    {"text": text, "href": f"#{field}"} for field, text in errors.items()
                ],
                "information": information,
                "information_limit": INFORMATION_LIMIT,
                "next_pathway": next_pathway,
                "next_pathway_words": pathway_words(next_pathway) if next_pathway else None,
            },
            status_code=status_code,
        )

    def load_status(reference: str) -> LearnerStatus | None:
        with transaction(context.engine) as session:
            concern = repositories.concern_by_reference(session, reference)
            if concern is None:
                return None
            return learner_status(session, concern, context.policy)

    def ended(request: Request, *, information: str = "") -> HTMLResponse:
        """An action after access ended: nothing changes; the learner is asked again, and shown
        what they wrote, to copy before they do."""
        return lookup_page(request, message=ACCESS_ENDED, kept=information, status_code=403)

    # --- look-up ------------------------------------------------------------------------------

    @routes.get(STATUS_PATH, response_class=HTMLResponse)
    async def show(request: Request) -> HTMLResponse:
        access, expired = await access_of(request)
        if access is None:
            message = take_notice(request) or (ACCESS_ENDED if expired else None)
            return lookup_page(request, message=message)
        status = await run_in_threadpool(load_status, access.reference)
        if status is None:
            request.session.pop(ACCESS_KEY, None)
            return lookup_page(request)
        return status_page(request, status)

    @routes.post(STATUS_PATH, response_class=HTMLResponse)
    async def look_up(request: Request) -> Response:
        form = await posted_form(request)
        require_csrf(request, form.get(CSRF_FIELD))
        context.limits.hit("status_lookups", context.limits.client(request))
        reference = _field(form.get("reference"))
        code = _field(form.get("code"))
        errors: dict[str, str] = {}
        if not reference:
            errors["reference"] = "Enter your reference"
        if not code:
            errors["code"] = "Enter your follow-up code"
        if errors:
            return lookup_page(
                request, errors=errors, values={"reference": reference}, status_code=400
            )
        context.limits.hit("lookups_per_reference", normalise_reference(reference))

        def find() -> tuple[str, int] | None:
            # A concern sent a moment ago may still be waiting to be raised: raise it first.
            if raise_if_waiting(
                engine=context.engine,
                policy=context.policy,
                reference=normalise_reference(reference),
                now=context.clock(),
            ):
                context.raised_here()
            with transaction(context.engine) as session:
                candidate = candidate_for_follow_up(session, reference=reference)
            # Outside the transaction: Argon2 must not hold the database's lock.
            verified = verify_follow_up(candidate, code)
            if verified is None:
                return None
            return verified, link_version_of(context.engine, verified) or 0

        found = await run_in_threadpool(find)
        if found is None:
            # The same answer for an unknown reference, a named concern and a wrong code; the
            # fields are not echoed back, so the pages are identical too.
            return lookup_page(request, errors={"reference": NOT_RIGHT}, status_code=400)
        grant(request, *found)
        return RedirectResponse(STATUS_PATH, status_code=303)

    @routes.get(STATUS_PATH + "/link/{token}", response_class=HTMLResponse)
    async def follow_link(request: Request, token: str) -> Response:
        context.limits.hit("status_lookups", context.limits.client(request))
        links = context.policy.status_links
        link = links.link_in(token, context.clock()) if links else None
        if link is None:
            return lookup_page(request, message=LINK_EXPIRED, status_code=400)
        reference, version = link
        current = await run_in_threadpool(link_version_of, context.engine, reference)
        # A link to a concern not raised yet names version 0, as every new concern's does.
        if version != (current or 0):
            # Sent to an address the learner has since corrected: it no longer opens the concern.
            return lookup_page(request, message=LINK_EXPIRED, status_code=400)
        grant(request, reference, version)
        return RedirectResponse(STATUS_PATH, status_code=303)

    @routes.post(STATUS_PATH + "/sign-out")
    async def sign_out(request: Request) -> Response:
        form = await posted_form(request)
        require_csrf(request, form.get(CSRF_FIELD))
        request.session.pop(ACCESS_KEY, None)
        request.session.pop(CURRENT_KEY, None)
        # Also what the form left: the next person at a shared computer must not be able to
        # correct the address (and so open the concern) or see the confirmation.
        request.session.pop(CHANGE_KEY, None)
        request.session.pop(FLASH_KEY, None)
        notice(request, SIGNED_OUT)
        return RedirectResponse(STATUS_PATH, status_code=303)

    # --- the learner's actions ----------------------------------------------------------------

    async def act(
        request: Request,
        access: Access,
        action: Callable[[Session, Concern, datetime], str],
        *,
        information: str = "",
    ) -> Response:
        """Run one action on the locked concern; a refusal changes nothing and is shown."""
        reference = access.reference

        def run() -> str:
            with transaction(context.engine) as session:
                found = repositories.concern_by_reference(session, reference)
                concern = lock_concern(session, found)
                # Checked again under the lock: the learner may have corrected their address
                # since `access_of` looked, and access opened with the old link ends with it.
                if concern.link_version != access.link_version:
                    raise _LinksRenewed
                return action(session, concern, context.clock())

        try:
            done = await run_in_threadpool(run)
        except _LinksRenewed:
            held = _held(request.session.get(ACCESS_KEY))
            held.pop(reference, None)
            request.session[ACCESS_KEY] = held
            return ended(request, information=information)
        except ActionRefused as refused:
            status = await run_in_threadpool(load_status, reference)
            if status is None:
                return ended(request)
            field = "information" if information else "actions"
            return status_page(
                request,
                status,
                errors={field: str(refused)},
                information=information,
                status_code=400,
            )
        notice(request, done)
        return RedirectResponse(STATUS_PATH, status_code=303)

    async def checked(request: Request) -> tuple[Any, Access | None, bool]:
        """The form, access to the concern it names (None: none, or it has ended), and whether
        its token was refused. A form refused for its token but sent from our own page is from
        a learner whose session ended, or who has since opened the concern again in another tab
        (a new session, with access but another token): it is answered as access that ended, or
        as a page out of date, with what they wrote shown either way."""
        form = await posted_form(request)
        refused = False
        try:
            require_csrf(request, form.get(CSRF_FIELD))
        except CsrfRefused:
            if not sent_from_our_page(request, context.policy.public_url):
                raise
            refused = True
        context.limits.hit("learner_actions", context.limits.client(request))
        named = normalise_reference(_field(form.get("reference")))
        access, _ = await access_of(request, named) if named else (None, False)
        return form, access, refused

    async def shown_again(
        request: Request,
        access: Access,
        *,
        field: str,
        error: str | None = None,
        information: str = "",
    ) -> Response:
        """Nothing changes: the status page is shown as it is now, with what the learner wrote
        and why, at `field` ('information' or 'actions'): the `error` in what they sent (400),
        or without one, that they sent it from a page older than this session (403), which
        they may send again only if the page still offers it."""
        status = await run_in_threadpool(load_status, access.reference)
        if status is None:
            return ended(request, information=information)
        if error is None:
            if field == "information":
                sendable = status.can_add_information
                why = PAGE_OUT_OF_DATE if sendable else closed_to_information(status.reference)
            else:
                sendable = status.can_respond_to_feedback
                why = PAGE_OUT_OF_DATE if sendable else PAGE_MOVED_ON
            return status_page(
                request, status, errors={field: why}, information=information, status_code=403
            )
        return status_page(
            request, status, errors={field: error}, information=information, status_code=400
        )

    @routes.post(STATUS_PATH + "/information")
    async def add_information(request: Request) -> Response:
        form, access, refused = await checked(request)
        raw = form.get("information")
        text = raw.replace("\r\n", "\n").strip() if isinstance(raw, str) else ""
        if access is None:
            return ended(request, information=text)
        error = None
        if not text:
            error = "Enter the information you want to add"
        elif len(text) > INFORMATION_LIMIT:
            error = f"Information must be {INFORMATION_LIMIT:,} characters or fewer"
        if error or refused:
            # A text too long is said to be, from a page out of date too: sent again as it
            # was shown, it would be cut short.
            return await shown_again(
                request, access, field="information", error=error, information=text
            )

        def add(session: Session, concern: Concern, now: datetime) -> str:
            if concern.status != "open":
                raise ActionRefused(closed_to_information(concern.reference))
            kept = learner_words(session, concern, text)
            if not _just_added(session, concern, kept, now):
                add_learner_information(
                    session=session,
                    concern=concern,
                    text=kept,
                    channel="web",
                    inbound_id=None,
                    now=now,
                    policy=context.policy,
                )
            return ADDED

        return await act(request, access, add, information=text)

    @routes.post(STATUS_PATH + "/satisfied")
    async def satisfied(request: Request) -> Response:
        form, access, refused = await checked(request)
        if access is None:
            return ended(request)
        if refused:
            return await shown_again(request, access, field="actions")
        answered = _field(form.get("feedback"))

        def close(session: Session, concern: Concern, now: datetime) -> str:
            if concern.status == "open" or not _just_answered(
                session, concern, answered, "closed", now
            ):
                _require_feedback_shown(concern, answered)
                learner_satisfied(session=session, concern=concern, channel="web", now=now)
            return "Thank you for telling us you are satisfied. Your concern is now closed."

        return await act(request, access, close)

    @routes.post(STATUS_PATH + "/concerned")
    async def concerned(request: Request) -> Response:
        form, access, refused = await checked(request)
        if access is None:
            return ended(request)
        if refused:
            return await shown_again(request, access, field="actions")
        answered = _field(form.get("feedback"))

        def escalate(session: Session, concern: Concern, now: datetime) -> str:
            if (
                concern.status == "open"
                and concern.feedback_at is None
                and _just_answered(session, concern, answered, "learner_remains_concerned", now)
            ):
                # Taken from the first tap: it moved up unless it was already at the top.
                moved = not answered.startswith(f"p{concern.pathway}r")
            else:
                _require_feedback_shown(concern, answered)
                moved = learner_remains_concerned(
                    session=session,
                    concern=concern,
                    channel="web",
                    now=now,
                    policy=context.policy,
                )
            if moved:
                return (
                    f"Your concern has moved to pathway {concern.pathway}: "
                    f"{_after_colon(pathway_words(concern.pathway))}."
                )
            return (
                "We have recorded that you remain concerned. Your concern is already at the "
                "highest level: the regional postgraduate dean's team has been asked to look at "
                "it again and to give you further feedback."
            )

        return await act(request, access, escalate)

    return routes


def closed_to_information(reference: str) -> str:
    return f"{reference} is closed: information can no longer be added here"


class _LinksRenewed(Exception):
    """The concern's link version moved on from the one the session's access was granted under."""


def _require_feedback_shown(concern: Concern, answered: str) -> None:
    """An answer counts only for the feedback the page showed: a page left open while the
    concern moved on (another tab, new feedback) changes nothing."""
    current = feedback_version(concern) or ""
    if answered != current and (answered or current):
        raise ActionRefused(PAGE_MOVED_ON)


def _just_answered(
    session: Session, concern: Concern, answered: str, kind: str, now: datetime
) -> bool:
    """Whether the learner gave this answer (`kind`, the event it records) to this same feedback
    on the web a moment ago: a second tap sent while the first was on its way, which the browser
    shows instead of the first's answer, is told what the first did."""
    events = list(repositories.events_of(session, id_of(concern)))
    answers = [
        index
        for index, event in enumerate(events)
        if event.kind == kind and event.actor == "learner" and event.channel == "web"
    ]
    if not answers or not timedelta(0) <= now - events[answers[-1]].at <= SAME_INFORMATION_WITHIN:
        return False
    given = [event for event in events[: answers[-1]] if event.kind == "feedback_given"]
    if not given:
        return False
    pathway = (given[-1].detail or {}).get("pathway", given[-1].pathway)
    # The feedback a page answers is named as feedback_version names it: p<pathway>r<round>-<at>.
    return answered.startswith(f"p{pathway}r") and answered.endswith(
        f"-{int(given[-1].at.timestamp())}"
    )


def _just_added(session: Session, concern: Concern, text: str, now: datetime) -> bool:
    """Whether the learner added this same information on the web a moment ago."""
    added = [
        event
        for event in repositories.events_of(session, id_of(concern))
        if event.kind == "learner_added_information" and event.channel == "web"
    ]
    return bool(added) and (
        added[-1].detail.get("text") == text
        and timedelta(0) <= now - added[-1].at <= SAME_INFORMATION_WITHIN
    )


def _held(value: object) -> dict[str, list[Any]]:
    """The concerns a session holds access to, as stored ([granted, used, link version]; access
    stored before link versions is version 0); anything else is dropped."""
    if not isinstance(value, dict):
        return {}
    return {
        reference: [float(times[0]), float(times[1]), int(times[2]) if len(times) == 3 else 0]
        for reference, times in value.items()
        if isinstance(reference, str)
        and isinstance(times, list)
        and len(times) in (2, 3)
        and all(isinstance(moment, int | float) for moment in times[:2])
        and (len(times) == 2 or type(times[2]) is int)
    }


def lock_concern(session: Session, found: Concern | None) -> Concern:
    concern = repositories.lock_concern(session, id_of(found)) if found is not None else None
    if concern is None:
        raise ActionRefused("We could not find your concern. Look it up again.")
    return concern


def _field(value: object) -> str:
    return value.strip()[:FIELD_LIMIT] if isinstance(value, str) else ""


def _after_colon(words: str) -> str:
    return words.split(": ", 1)[1] if ": " in words else words
