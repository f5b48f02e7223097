"""The learner's form: raise a concern at /concerns/new, then see its reference (and, for an
anonymous concern, its one-time code) once at /concerns/confirmation."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from cryptography.exceptions import InvalidTag
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from intake.received import (
    Receipt,
    SameForm,
    raise_if_waiting,
    receive_concern,
    seal,
    unseal,
)
from intake.submission import Channel
from intake.web import form_fields
from intake.web.context import WebContext
from intake.web.form_fields import Directory, Outcome
from intake.web.security import (
    CSRF_FIELD,
    CsrfRefused,
    RateLimited,
    posted_form,
    require_csrf,
    sent_from_our_page,
)
from intake.web.templating import page
from notifications.messages import SCHOOL_NOT_CLEAR
from routing.model import Confidentiality
from storage.db import transaction
from storage.tables import Department, Organisation, Site

log = logging.getLogger(__name__)

# A form sent from our page after the learner's session ended (intake.web.security).
SESSION_ENDED = (
    "Your session ended before you sent the form, so your concern has not been sent yet. "
    "Your answers are below: check them and send the form again."
)
# The session key of the one-time confirmation: popped by the first view of the page. The
# session cookie is signed, not encrypted, so an anonymous learner's code, and the email address
# a named or confidential learner gave, are sealed in it (under keys made from the secret key):
# a cookie read off a shared computer's browser does not give them away. And the confirmation is
# shown only this soon after sending: a cookie saved from then and sent again later shows
# nothing.
FLASH_KEY = "confirmation"
CONFIRMATION_SHOWN_WITHIN = timedelta(minutes=10)
CODE_SEAL_PURPOSE = "confirmation code"
EMAIL_SEAL_PURPOSE = "confirmation email"
NAME_SEAL_PURPOSE = "confirmation name"
# The session's note of the form it sent, so that it may correct a mistyped email address for a
# while (intake.web.email_change): {reference, sealed_email, sealed_name, sent_at}.
CHANGE_KEY = "email_change"
# Long enough to read the confirmation, look for the acknowledgement in the inbox and come back
# (as long as the status page's own idle limit); short enough that a shared computer's browser
# is unlikely to still hold it when the next person sits down.
CHANGE_EMAIL_WITHIN = timedelta(minutes=30)
# Each form drawn carries a one-time key: the same form sent again soon after (a second press of
# Send without JavaScript, a browser resending) is answered with the first one's receipt, by this
# process while the first is being stored, and by the database on every instance.
SUBMISSION_KEY_FIELD = "submission_key"
SENT_REMEMBERED_SECONDS = 120.0
MOST_SENT_REMEMBERED = 10_000
# The form's places are read again once this old (and at once when a learner picked one that
# the copy kept does not hold).
DIRECTORY_FRESH_SECONDS = 10.0
PLACE_FIELDS = frozenset({"organisation", "department"})

_Named = TypeVar("_Named", Organisation, Department)


def router(context: WebContext) -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    def read_directory() -> Directory:
        """Active organisations and their departments by name."""
        with transaction(context.engine) as session:
            organisations = _by_name(session.exec(select(Organisation).where(Organisation.active)))
            departments = _by_name(session.exec(select(Department).where(Department.active)))
            sites = {site.id: site.name for site in session.exec(select(Site).where(Site.active))}
            return Directory.of(
                {
                    "organisations": [
                        {
                            "key": organisation.key,
                            "name": organisation.name,
                            "departments": [
                                {
                                    "key": department.key,
                                    "name": department.name,
                                    "site": sites.get(department.site_id),
                                }
                                for department in departments
                                if department.organisation_id == organisation.id
                            ],
                        }
                        for organisation in organisations
                    ]
                }
            )

    places = _Places(read_directory)
    sent = _SentForms()

    def show_form(
        request: Request,
        directory: Directory,
        outcome: Outcome | None,
        status_code: int = 200,
        *,
        problem: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        """The form, with the answers so far and what to fix; `problem` says why a complete
        form was not sent (the learner's answers are kept to send again)."""
        values = outcome.values if outcome else form_fields.answers_of({})
        errors = outcome.errors if outcome else {}
        shown = _form_values(directory, values, errors)
        if problem:
            shown["problem"] = problem
            shown["error_list"] = [{"text": problem}, *shown["error_list"]]
        response = page(
            context.templates,
            request,
            "form.html",
            shown | {"submission_key": secrets.token_urlsafe(16)},
            status_code=status_code,
        )
        response.headers.update(headers or {})
        return response

    @routes.get("/concerns/new", response_class=HTMLResponse)
    async def new_concern(request: Request) -> HTMLResponse:
        return show_form(request, await run_in_threadpool(places.current), None)

    async def checked(form: FormData) -> tuple[Directory, Outcome]:
        """The places known and the answers checked against them. Checking is pure work on
        what was sent: done on the loop, so that worker threads are left only the database
        (concurrent submissions then do not fight over the interpreter for their checks)."""
        known = places.fresh()
        if known is None:
            known = await run_in_threadpool(places.read)
        outcome = form_fields.read(form, known)
        if outcome.concern is None and PLACE_FIELDS & outcome.errors.keys():
            # A place loaded into the directory a moment ago is not in the copy we keep.
            known = await run_in_threadpool(places.read)
            outcome = form_fields.read(form, known)
        return known, outcome

    @routes.post("/concerns/new", response_class=HTMLResponse)
    async def submit(request: Request) -> Response:
        form = await posted_form(request)
        try:
            require_csrf(request, form.get(CSRF_FIELD))
        except CsrfRefused:
            if not sent_from_our_page(request, context.policy.public_url):
                raise
            # The learner's session ended while they wrote: nothing is sent, and nothing they
            # wrote is lost. The form comes back with their answers and a token that works.
            known, outcome = await checked(form)
            return show_form(request, known, outcome, status_code=403, problem=SESSION_ENDED)
        same_form = _same_form_key(form)
        known, outcome = await checked(form)
        concern = outcome.concern
        if concern is None:
            return show_form(request, known, outcome, status_code=400)
        if same_form is None or not sent.seen(same_form):
            # Only a complete form is counted (correcting answers is not), and a second press
            # of Send is not: it raises nothing, and a 429 for it would hide the first sending's
            # confirmation (and an anonymous learner's code). Limits and this memory are the
            # process's own: a second press reaching another instance is counted there (once),
            # and answered from the database.
            try:
                context.limits.hit("submissions", context.limits.client(request))
            except RateLimited as limited:
                return show_form(
                    request,
                    known,
                    outcome,
                    status_code=429,
                    problem=(
                        "You have sent too many concerns from here in a short time. Your "
                        f"concern has not been sent yet: try again in {limited.wait}. What you "
                        "entered is below."
                    ),
                    headers=limited.headers,
                )

        def store() -> Receipt:
            now = context.clock()
            receipt = receive_concern(
                engine=context.engine,
                concern=concern,
                channel=Channel.WEB,
                now=now,
                policy=context.policy,
                same_form=_same_form(same_form, now) if same_form else None,
            )
            if receipt.sent_before:
                # Stored earlier (by another instance, or before this one restarted): raised
                # there, or by the intake tick.
                return receipt
            # With nothing to raise it in the background here, raise it before answering.
            if context.on_received is None and raise_if_waiting(
                engine=context.engine,
                policy=context.policy,
                reference=receipt.reference,
                now=context.clock(),
            ):
                context.raised_here()
            return receipt

        # The same form sent twice (a second press of Send): one concern, shown both times.
        try:
            receipt = await sent.once(
                same_form, lambda: run_in_threadpool(store), on_stored=context.on_received
            )
        except Exception:
            # The database is down, or a bug: nothing was stored, and the learner's words are
            # kept on the page to send again rather than lost behind an error page.
            log.exception("web form: the concern could not be stored")
            return show_form(
                request,
                known,
                outcome,
                status_code=503,
                problem=(
                    "Sorry, there is a problem with the service and your concern has not been "
                    "sent. What you entered is below: try again in a few minutes."
                ),
            )
        # Where the acknowledgement and its status link go: shown so that a mistyped address is
        # noticed (an anonymous concern keeps none).
        email = (
            concern.learner.email
            if concern.confidentiality is not Confidentiality.ANONYMOUS
            else None
        )
        noted = _noted_email(request.session, context.keys_for, receipt.reference)
        if noted is not None:
            # The same form sent again (a browser resending it): the note of its first sending
            # stands, so the time to correct the address is not lengthened, and an address
            # corrected since is the one shown, not the mistyped one the form still holds.
            email = noted
        else:
            request.session.pop(CHANGE_KEY, None)
            if email:
                # This browser may correct a mistyped address for a while
                # (intake.web.email_change).
                note_sending(
                    request.session,
                    keys=context.keys_for,
                    reference=receipt.reference,
                    email=email,
                    name=concern.learner.name,
                    sent_at=context.clock().timestamp(),
                )
        request.session[FLASH_KEY] = {
            "reference": receipt.reference,
            "sealed_code": (
                seal_text(context.keys_for(CODE_SEAL_PURPOSE)[-1], receipt.code, receipt.reference)
                if receipt.code
                else None
            ),
            "sealed_email": (
                seal_text(context.keys_for(EMAIL_SEAL_PURPOSE)[-1], email, receipt.reference)
                if email
                else None
            ),
            "sent_at": context.clock().timestamp(),
            "pathway": receipt.pathway,
            "placement": _placement_listed(outcome.values),
            "confidentiality": concern.confidentiality.value,
        }
        return RedirectResponse("/concerns/confirmation", status_code=303)

    @routes.get("/concerns/confirmation", response_class=HTMLResponse)
    async def confirmation(request: Request) -> HTMLResponse:
        flash = request.session.pop(FLASH_KEY, None)
        if not isinstance(flash, dict) or not isinstance(flash.get("reference"), str):
            return page(context.templates, request, "confirmation.html", {"shown": True})
        sent_at = flash.get("sent_at")
        age = context.clock().timestamp() - sent_at if isinstance(sent_at, int | float) else None
        if age is None or not -60 <= age <= CONFIRMATION_SHOWN_WITHIN.total_seconds():
            return page(context.templates, request, "confirmation.html", {"shown": True})
        sealed = flash.get("sealed_code")
        code = (
            unseal_text(context.keys_for(CODE_SEAL_PURPOSE), sealed, flash["reference"])
            if isinstance(sealed, str)
            else None
        )
        anonymous = flash.get("confidentiality") == "anonymous"
        sealed_email = flash.get("sealed_email")
        email = (
            unseal_text(context.keys_for(EMAIL_SEAL_PURPOSE), sealed_email, flash["reference"])
            if isinstance(sealed_email, str) and not anonymous
            else None
        )
        pathway = flash.get("pathway")
        return page(
            context.templates,
            request,
            "confirmation.html",
            {
                "shown": False,
                "reference": flash["reference"],
                "code": code,
                "email": email,
                "change_minutes": int(CHANGE_EMAIL_WITHIN.total_seconds() // 60),
                "anonymous": anonymous,
                "confidential": flash.get("confidentiality") == "confidential",
                "pathway": pathway,
                "pathway_words": form_fields.PATHWAY_WORDS.get(
                    pathway if isinstance(pathway, int) else 0
                ),
                "placement": _placement_shown(flash),
                "school_unclear": SCHOOL_NOT_CLEAR,
            },
        )

    return routes


def note_sending(
    session: dict[str, Any],
    *,
    keys: Callable[[str], list[str]],
    reference: str,
    email: str,
    name: str | None,
    sent_at: float,
) -> None:
    """Remember, in this browser's session, the form it sent (named or confidential only)."""
    session[CHANGE_KEY] = {
        "reference": reference,
        "sealed_email": seal_text(keys(EMAIL_SEAL_PURPOSE)[-1], email, reference),
        "sealed_name": (seal_text(keys(NAME_SEAL_PURPOSE)[-1], name, reference) if name else None),
        "sent_at": sent_at,
    }


def _noted_email(
    session: dict[str, Any], keys: Callable[[str], list[str]], reference: str
) -> str | None:
    """The address in this session's note of sending `reference`, if it holds one."""
    note = session.get(CHANGE_KEY)
    if not isinstance(note, dict) or note.get("reference") != reference:
        return None
    sealed = note.get("sealed_email")
    return (
        unseal_text(keys(EMAIL_SEAL_PURPOSE), sealed, reference)
        if isinstance(sealed, str)
        else None
    )


def seal_text(key: str, text: str, reference: str) -> str:
    """A code or an address sealed (bound to its reference) as text for the session."""
    return base64.urlsafe_b64encode(seal(_aes_key(key), text, bound_to=reference)).decode()


def unseal_text(keys: Iterable[str], sealed: str, reference: str) -> str | None:
    """What `seal_text` sealed under any of `keys`; None if none opens it."""
    try:
        raw = base64.urlsafe_b64decode(sealed.encode())
    except (binascii.Error, ValueError):
        return None
    for key in keys:
        try:
            return unseal(_aes_key(key), raw, bound_to=reference)
        except (InvalidTag, ValueError):
            continue
    return None


def _aes_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _same_form_key(form: FormData) -> tuple[str, ...] | None:
    """What makes two sendings the same form: its one-time key, the session's CSRF token and a
    hash of every answer (an edited form sent again with the same key is a new submission, so
    nothing the learner wrote is dropped). None without a usable key (a form drawn before keys)."""
    key = form.get(SUBMISSION_KEY_FIELD)
    token = form.get(CSRF_FIELD)
    if not isinstance(key, str) or not 16 <= len(key) <= 64 or not isinstance(token, str):
        return None
    answers = sorted((name, value) for name, value in form.multi_items() if isinstance(value, str))
    return (key, token, _digest(*(part for answer in answers for part in answer)).hex())


def _same_form(key: tuple[str, ...], now: datetime) -> SameForm:
    """The form as the database remembers it: its key's hash, and the key that seals an anonymous
    learner's code, made from the one-time key and CSRF token (which the database never holds)."""
    submission_key, token, answers = key
    return SameForm(
        key_hash=_digest("a form sent", submission_key, token, answers).hex(),
        seal_key=_digest("sealing its code", submission_key, token),
        remembered_since=now - timedelta(seconds=SENT_REMEMBERED_SECONDS),
    )


def _digest(*parts: str) -> bytes:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(f"{len(part)}:{part}".encode())
    return digest.digest()


class _SentForms:
    """Forms sent in the last two minutes, by their key, with their receipt (or the wait for it),
    in this process's memory (call on the event loop); a receipt holds an anonymous learner's
    one-time code, so it is kept no longer than a second press of Send needs. A second sending
    that reaches another instance behind a load balancer is answered by the database instead
    (storage.tables.SentForm), waiting there for a first still being stored."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._sent: OrderedDict[tuple[str, ...], tuple[float, asyncio.Future[Receipt]]] = (
            OrderedDict()
        )

    def seen(self, key: tuple[str, ...]) -> bool:
        """Whether this form was sent lately (and is stored, or being stored)."""
        self._forget_old()
        return key in self._sent

    async def once(
        self,
        key: tuple[str, ...] | None,
        store: Callable[[], Awaitable[Receipt]],
        *,
        on_stored: Callable[[], None] | None = None,
    ) -> Receipt:
        """Store the form, unless it was sent lately: then the first sending's receipt, waiting
        for it while it is being stored. Should that storing fail, this sending tries itself.

        Storing runs as a task of its own: a request cancelled while it waits (the service
        stopping) leaves it to finish, and a second sending still gets its receipt.
        `on_stored` runs once per form stored, whoever waits for it."""
        if key is not None:
            self._forget_old()
            found = self._sent.get(key)
            if found is not None:
                # If that storing failed, the form was forgotten: this sending stores it.
                with contextlib.suppress(Exception):
                    return await asyncio.shield(found[1])
        storing: asyncio.Future[Receipt] = asyncio.ensure_future(store())

        def finished(task: asyncio.Future[Receipt]) -> None:
            if task.cancelled() or task.exception() is not None:  # the error is retrieved here
                if key is not None and self._sent.get(key, (0.0, None))[1] is task:
                    del self._sent[key]
            elif on_stored is not None and not task.result().sent_before:
                on_stored()

        storing.add_done_callback(finished)
        if key is not None:
            self._sent[key] = (self._monotonic(), storing)
            while len(self._sent) > MOST_SENT_REMEMBERED:
                self._sent.popitem(last=False)
        return await asyncio.shield(storing)

    def _forget_old(self) -> None:
        cutoff = self._monotonic() - SENT_REMEMBERED_SECONDS
        while self._sent:
            key, (started, _) = next(iter(self._sent.items()))
            if started >= cutoff:
                break
            del self._sent[key]


class _Places:
    """The directory's places as last read, shared by every request (each submission checks the
    learner's choice against them, and the directory changes rarely)."""

    def __init__(
        self, read: Callable[[], Directory], *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._read = read
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._kept: tuple[Directory, float] | None = None

    def fresh(self) -> Directory | None:
        """The copy kept, or None when it is too old (the caller then reads it, off the loop)."""
        kept = self._kept
        if kept is not None and self._monotonic() - kept[1] < DIRECTORY_FRESH_SECONDS:
            return kept[0]
        return None

    def current(self) -> Directory:
        kept = self.fresh()
        return kept if kept is not None else self.read()

    def read(self) -> Directory:
        """Read the directory now, and keep it."""
        read_at = self._monotonic()
        directory = self._read()
        with self._lock:
            if self._kept is None or self._kept[1] <= read_at:
                self._kept = (directory, read_at)
        return directory


def _placement_listed(values: dict[str, str]) -> str:
    """How much of the placement was picked from the directory: "listed" (the organisation and
    the department), "department_not_listed" (the organisation only) or "not_listed"."""
    picked = {name for name in PLACE_FIELDS if values.get(name) not in ("", form_fields.NOT_LISTED)}
    if picked == PLACE_FIELDS:
        return "listed"
    return "department_not_listed" if "organisation" in picked else "not_listed"


def _placement_shown(flash: Mapping[str, Any]) -> str:
    """The confirmation's placement case (a confirmation stored before there were three says
    only whether the whole placement was picked)."""
    placement = flash.get("placement")
    if placement in ("listed", "department_not_listed", "not_listed"):
        return str(placement)
    return "listed" if flash.get("placement_matched") is not False else "not_listed"


def _by_name(rows: Iterable[_Named]) -> list[_Named]:
    return sorted(rows, key=lambda row: (row.name.casefold(), row.key))


def _form_values(
    directory: Directory, values: dict[str, str], errors: dict[str, str]
) -> dict[str, Any]:
    """What form.html needs: choices for each question, the answers so far and the problems."""

    def items(labels: dict[str, str], hints: dict[str, str] | None = None) -> list[dict[str, Any]]:
        return [
            {"value": value, "text": label, **({"hint": {"text": hints[value]}} if hints else {})}
            for value, label in labels.items()
        ]

    organisations = [{"value": "", "text": "Select your organisation"}]
    organisations += [
        {"value": key, "text": name} for key, name in directory.organisations_listed()
    ]
    organisations.append({"value": form_fields.NOT_LISTED, "text": "My organisation is not listed"})
    departments = [{"value": "", "text": "Select your department or ward"}]
    departments += [
        {"value": listed.value, "text": listed.text} for listed in directory.departments()
    ]
    departments.append(
        {"value": form_fields.NOT_LISTED, "text": "My department or ward is not listed"}
    )
    return {
        "values": values,
        "errors": errors,
        "error_list": [{"text": message, "href": f"#{name}"} for name, message in errors.items()],
        "field_errors": {name: {"text": message} for name, message in errors.items()},
        "choices": {
            "group": items(form_fields.GROUP_LABELS),
            "organisation": organisations,
            "department": departments,
            "frequency": items(form_fields.FREQUENCY_LABELS),
            "harm": items(form_fields.HARM_LABELS),
            "raised_before": items(form_fields.RAISED_BEFORE_LABELS),
            "yes_no": items(form_fields.YES_NO_LABELS),
            "pathway1_contact": items(
                form_fields.PATHWAY1_CONTACT_LABELS, form_fields.PATHWAY1_CONTACT_HINTS
            ),
            "confidentiality": items(
                form_fields.CONFIDENTIALITY_LABELS, form_fields.CONFIDENTIALITY_HINTS
            ),
        },
        "description_limit": form_fields.DESCRIPTION_LIMIT,
    }
