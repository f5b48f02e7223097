"""The staff pages: "My concerns" (/staff), a concern in full with a form for each action the
person may take (/staff/concerns/{reference}), and its audit trail (.../audit).

A concern the person may not see does not exist for them: every route answers 404, never 403.
Every read and every action runs in a thread, in one transaction, through `escalation.casework`
(which holds the rules and writes the access audit). Learner text is shown escaped, never marked
safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from app.staff.auth import SignedIn, staff_page_user
from app.staff.context import StaffContext
from app.staff.templating import leave_notice, staff_page, take_notice
from escalation import casework
from escalation.actions import MAX_FEEDBACK_CHARACTERS, MAX_REASON_CHARACTERS
from escalation.casework import ActionRefused, CaseAction, NotFound
from intake.web import form_fields
from intake.web.security import CSRF_FIELD, posted_form, require_csrf
from notifications.messages import PATHWAY_NAMES_FOR_STAFF, when
from routing.model import Pathway
from routing.recipients import COPY_ROLES
from routing.standards import STANDARDS
from storage.db import transaction
from storage.tables import Contact, StaffMember

Staff = Annotated[SignedIn, Depends(staff_page_user)]
CONCERN_PATH = "/staff/concerns/{reference}"
# Form fields are cut to a little over what the engine accepts, so it refuses (and says why)
# rather than the page silently cutting a person's words.
TEXT_LIMIT = MAX_FEEDBACK_CHARACTERS + 1


@dataclass(frozen=True)
class ActionForm:
    """One action's form on the concern page."""

    action: CaseAction
    heading: str
    button: str
    done: str  # the success banner; {reference} is filled in
    text_label: str | None = None  # the textarea's label; None: no text
    text_hint: str = ""
    text_limit: int = MAX_REASON_CHARACTERS
    secondary: bool = False

    @property
    def slug(self) -> str:
        return self.action.value.replace("_", "-")

    @property
    def text_id(self) -> str:
        return f"{self.slug}-text"

    @property
    def first_field(self) -> str:
        """Where the error summary points for this form."""
        if self.action is CaseAction.OVERRIDE_TRIAGE:
            return f"{self.slug}-likelihood"
        if self.action is CaseAction.EDIT_STANDARDS:
            return f"{self.slug}-standards"
        if self.action is CaseAction.CORRECT_LEARNER_EMAIL:
            return f"{self.slug}-email"
        return self.text_id if self.text_label else self.slug


FORMS: dict[CaseAction, ActionForm] = {
    form.action: form
    for form in (
        ActionForm(
            CaseAction.ACKNOWLEDGE,
            heading="Acknowledge",
            button="Acknowledge this concern",
            done="You acknowledged {reference}.",
        ),
        ActionForm(
            CaseAction.FEEDBACK,
            heading="Give feedback to the learner",
            button="Send feedback",
            done="Your feedback on {reference} was recorded and will be sent to the learner.",
            text_label="Feedback for the learner",
            text_hint="The learner receives these words. Say what has been done or will be done.",
            text_limit=MAX_FEEDBACK_CHARACTERS,
        ),
        ActionForm(
            CaseAction.ESCALATE,
            heading="Escalate to the next pathway",
            button="Escalate",
            done="{reference} was escalated.",
            text_label="Why it should be escalated",
            secondary=True,
        ),
        ActionForm(
            CaseAction.REDIRECT,
            heading="Not mine: send it to someone else",
            button="Send to someone else",
            done="{reference} was sent to someone else.",
            text_label="Why it is not yours (optional for contacts)",
            text_hint="The directory chooses who else holds the same role for this concern.",
            secondary=True,
        ),
        ActionForm(
            CaseAction.OVERRIDE_TRIAGE,
            heading="Change the risk rating",
            button="Change the rating",
            done="The risk rating of {reference} was changed.",
            text_label="Why the rating is being changed",
            secondary=True,
        ),
        ActionForm(
            CaseAction.EDIT_STANDARDS,
            heading="Quality Framework standards",
            button="Save the standards",
            done="The standards of {reference} were saved.",
            secondary=True,
        ),
        ActionForm(
            CaseAction.CORRECT_LEARNER_EMAIL,
            heading="Correct the learner's email address or name",
            button="Correct the learner's details",
            done="The learner's details on {reference} were corrected.",
            text_label="How the learner told you their address or name was wrong",
            text_hint=(
                "Only when the learner has told you themselves. A corrected address is sent the "
                "acknowledgement again, with a new link to the concern; links sent to the old "
                "address stop working, and nothing more is sent there. A corrected name alone "
                "sends nothing."
            ),
            secondary=True,
        ),
        ActionForm(
            CaseAction.CLOSE,
            heading="Close this concern",
            button="Close",
            done="{reference} was closed.",
            text_label="Why it is being closed",
            secondary=True,
        ),
        ActionForm(
            CaseAction.REOPEN,
            heading="Reopen this concern",
            button="Reopen",
            done="{reference} was reopened.",
            text_label="Why it is being reopened",
            secondary=True,
        ),
    )
}
FORM_OF_SLUG = {form.slug: form for form in FORMS.values()}

ROLE_NAMES = {
    "supervisor": "Supervisor",
    "clinical_tutor": "Clinical tutor",
    "speak_up_guardian": "Freedom to speak up guardian",
    "foundation_school": "Foundation school",
    "specialty_school": "Specialty school",
    "education_provider": "Education provider",
    "pathway2_mailbox": "School or provider mailbox",
    "dean": "Postgraduate dean",
    "quality_team": "Quality team",
}
PART_NAMES = {
    "primary": "acts on it",
    # Told only when the acknowledgement is late (domain.md); they may act on it before.
    "secondary": "told if the acknowledgement is late; may act on it",
    "copy": "told for information",
    "alert": "alerted (high risk)",
}


def _part_name(contact: Mapping[str, Any]) -> str:
    """What a contact's part on the concern is, in words. A level's secondary contact who is
    also one it tells in copy (the quality team at pathway 3) was told at once."""
    part = str(contact["part"])
    pathway = contact.get("pathway")
    copied = COPY_ROLES[Pathway(pathway)] if pathway in {int(level) for level in Pathway} else ()
    if part == "secondary" and any(role.value == contact["role"] for role in copied):
        return "told for information; acts on it if the acknowledgement is late"
    return PART_NAMES.get(part, part)


PATHWAY_WORDS = {
    pathway: name[0].upper() + name[1:] for pathway, name in PATHWAY_NAMES_FOR_STAFF.items()
}
SCORES = [{"value": "", "text": "Choose"}] + [
    {"value": str(score), "text": str(score)} for score in range(1, 6)
]


def router(context: StaffContext) -> APIRouter:
    routes = APIRouter(include_in_schema=False)
    zone = context.policy.calendar.timezone

    def moment(value: str | None) -> str | None:
        return when(datetime.fromisoformat(value), zone) if value else None

    # --- my concerns -----------------------------------------------------------------------

    @routes.get("/staff", response_class=HTMLResponse)
    async def home(request: Request, signed_in: Staff) -> Response:
        def load() -> list[dict[str, Any]]:
            with transaction(context.engine) as session:
                return casework.my_concerns(session, signed_in.who)

        now = context.clock()
        rows = []
        for row in await run_in_threadpool(load):
            ack_due = datetime.fromisoformat(row["ack_due_at"])
            feedback_due = row["feedback_due_at"]
            overdue = row["overdue_at_dean"] or (
                (not row["acknowledged"] and ack_due < now)
                or (
                    not row["feedback_given"]
                    and feedback_due is not None
                    and datetime.fromisoformat(feedback_due) < now
                )
            )
            rows.append(
                row
                | {
                    "ack_due": "Acknowledged" if row["acknowledged"] else moment(row["ack_due_at"]),
                    "feedback_due": "Given"
                    if row["feedback_given"]
                    else moment(row["feedback_due_at"]) or "Not set",
                    "overdue": overdue,
                }
            )
        return staff_page(
            context.templates,
            request,
            "home.html",
            {"rows": rows, "notice": take_notice(request)},
        )

    # --- a concern -------------------------------------------------------------------------

    def read(signed_in: SignedIn, reference: str) -> dict[str, Any]:
        """The concern as this person may see it (an identity shown is recorded); 404 when
        they may not see it."""
        with transaction(context.engine) as session:
            concern = casework.find_case(session, signed_in.who, reference)
            if concern is None:
                raise NotFound(reference)
            details = casework.read_case(
                session,
                signed_in.who,
                signed_in.member,
                concern,
                channel="web",
                now=context.clock(),
            )
            details["actors"] = _actor_names(
                session, [event["actor"] for event in details["events"]]
            )
            return details

    def concern_page(
        request: Request,
        details: dict[str, Any],
        *,
        errors: dict[str, str] | None = None,
        general_error: str | None = None,
        entered: Mapping[str, Any] | None = None,
        status_code: int = 200,
    ) -> HTMLResponse:
        errors = errors or {}
        error_list = [{"text": text, "href": f"#{field}"} for field, text in errors.items()]
        if general_error:
            error_list.append({"text": general_error, "href": "#actions"})
        allowed = [
            FORMS[action]
            for action in map(CaseAction, details["allowed_actions"])
            if _applies(action, details)
        ]
        order = list(FORMS)
        allowed.sort(key=lambda form: order.index(form.action))
        actors: dict[str, str] = details["actors"]
        timeline = [
            _event_words(event, actors) | {"when": moment(event["at"])}
            for event in details["events"]
        ]
        added = [entry for entry in timeline if entry["from_learner"]]
        return staff_page(
            context.templates,
            request,
            "concern.html",
            {
                "case": details,
                "notice": take_notice(request),
                "errors": errors or ({"actions": general_error} if general_error else {}),
                "general_error": general_error,
                "error_list": error_list,
                "entered": entered or {},
                "forms": allowed,
                "timeline": timeline,
                "added": added,
                "learner_group_name": form_fields.GROUP_LABELS.get(
                    details["learner_group"] or "", details["learner_group"]
                ),
                "pathway_name": PATHWAY_WORDS.get(
                    details["pathway"], f"Pathway {details['pathway']}"
                ),
                "dates": {
                    key: moment(details[key])
                    for key in (
                        "created_at",
                        "ack_due_at",
                        "acknowledged_at",
                        "feedback_due_at",
                        "feedback_at",
                        "closed_at",
                        "overdue_at_dean_at",
                    )
                },
                "contacts": [
                    contact
                    | {
                        "role_name": ROLE_NAMES.get(contact["role"], contact["role"]),
                        "part_name": _part_name(contact),
                    }
                    for contact in details["contacts"]
                ],
                "standards": [
                    {"code": code, "name": STANDARDS.get(code, code)}
                    for code in details["standards"]
                ],
                "standard_items": [
                    {
                        "value": code,
                        "text": f"{code} {name}",
                        "checked": code
                        in (
                            entered.get("standards", [])
                            if entered and "standards" in entered
                            else details["standards"]
                        ),
                    }
                    for code, name in STANDARDS.items()
                ],
                "scores": SCORES,
            },
            status_code=status_code,
        )

    async def load_or_404(signed_in: SignedIn, reference: str) -> dict[str, Any]:
        try:
            return await run_in_threadpool(read, signed_in, reference)
        except NotFound:
            raise HTTPException(status_code=404) from None

    @routes.get(CONCERN_PATH, response_class=HTMLResponse)
    async def show(request: Request, reference: str, signed_in: Staff) -> Response:
        details = await load_or_404(signed_in, reference)
        if details["reference"] != reference:
            # A reference typed in lower case or with spaces: one address per concern.
            return RedirectResponse(
                CONCERN_PATH.format(reference=details["reference"]), status_code=303
            )
        return concern_page(request, details)

    @routes.post(CONCERN_PATH + "/{action}", response_class=HTMLResponse)
    async def take_action(
        request: Request,
        reference: str,
        action: str,
        signed_in: Staff,
    ) -> Response:
        form = FORM_OF_SLUG.get(action)
        if form is None:
            raise HTTPException(status_code=404)
        posted = await posted_form(request)
        require_csrf(request, posted.get(CSRF_FIELD))
        text = _text(posted.get("text"))
        likelihood = _score(posted.get("likelihood"))
        impact = _score(posted.get("impact"))
        standards = [value for value in posted.getlist("standards") if isinstance(value, str)]
        email, name, problem = "", "", None
        if form.action is CaseAction.CORRECT_LEARNER_EMAIL:
            email, email_error = form_fields.read_email(posted.get("email"))
            name, name_error = form_fields.read_line(posted.get("name"))
            if not email:
                email_error = "Enter the learner's correct email address"
            if email_error:
                problem = _FieldRefused(f"{form.slug}-email", email_error)
            elif name_error:
                problem = _FieldRefused(f"{form.slug}-name", name_error)
        entered = {
            "action": form.action.value,
            "text": text,
            "likelihood": str(likelihood or ""),
            "impact": str(impact or ""),
            "email": email,
            "name": name,
            **({"standards": standards} if form.action is CaseAction.EDIT_STANDARDS else {}),
        }

        def run() -> str:
            with transaction(context.engine) as session:
                concern = casework.act(
                    session,
                    signed_in.who,
                    reference,
                    form.action,
                    channel="web",
                    now=context.clock(),
                    policy=context.policy,
                    text=text,
                    likelihood=likelihood,
                    impact=impact,
                    standards=standards,
                    email=email,
                    name=name,
                )
                return concern.reference

        try:
            if form.action is CaseAction.OVERRIDE_TRIAGE and (likelihood is None or impact is None):
                raise ActionRefused("Choose both likelihood and impact, each from 1 to 5")
            if problem is not None:
                raise problem
            done = await run_in_threadpool(run)
        except NotFound:
            raise HTTPException(status_code=404) from None
        except ActionRefused as refused:
            details = await load_or_404(signed_in, reference)
            if form.action.value not in details["allowed_actions"] or not _applies(
                form.action, details
            ):
                # Not this person's to do, or not now: there is no form to point at.
                return concern_page(request, details, general_error=str(refused), status_code=409)
            return concern_page(
                request,
                details,
                errors={
                    refused.field
                    if isinstance(refused, _FieldRefused)
                    else _field_of(form, str(refused)): str(refused)
                },
                entered=entered,
                status_code=400,
            )
        leave_notice(request, form.done.format(reference=done))
        return RedirectResponse(CONCERN_PATH.format(reference=done), status_code=303)

    # --- the audit trail -------------------------------------------------------------------

    @routes.get(CONCERN_PATH + "/audit", response_class=HTMLResponse)
    async def audit(request: Request, reference: str, signed_in: Staff) -> Response:
        def load() -> tuple[str, list[dict[str, Any]], dict[str, str]] | None:
            with transaction(context.engine) as session:
                concern = casework.find_case(session, signed_in.who, reference)
                if concern is None:
                    return None
                entries = casework.audit_trail(session, signed_in.who, concern)
                names = _actor_names(session, [entry["actor"] for entry in entries])
                return concern.reference, entries, names

        found = await run_in_threadpool(load)
        if found is None:
            raise HTTPException(status_code=404)
        found_reference, entries, names = found
        rows = [
            _event_words(entry, names)
            | {
                "when": moment(entry["at"]),
                "channel": entry["channel"],
                "details": _detail_lines(entry["detail"]),
            }
            for entry in entries
        ]
        return staff_page(
            context.templates,
            request,
            "audit.html",
            {"reference": found_reference, "rows": rows},
        )

    return routes


# --- words ----------------------------------------------------------------------------------


def _applies(action: CaseAction, details: Mapping[str, Any]) -> bool:
    """Whether an allowed action's form is worth showing: a closed concern can only be
    reopened, an open one not; an acknowledged one needs no acknowledging."""
    if details["status"] != "open":
        return action is CaseAction.REOPEN
    if action is CaseAction.REOPEN:
        return False
    return not (action is CaseAction.ACKNOWLEDGE and details["acknowledged_at"])


def _text(value: object) -> str:
    return value.replace("\r\n", "\n").strip()[:TEXT_LIMIT] if isinstance(value, str) else ""


def _score(value: object) -> int | None:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


class _FieldRefused(ActionRefused):
    """An answer the page itself refuses, before the engine is asked: `field` is its id."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _field_of(form: ActionForm, message: str) -> str:
    """The field a refusal is about: the reason given, the learner's name, or else the form's
    first field."""
    if form.action in (CaseAction.OVERRIDE_TRIAGE, CaseAction.CORRECT_LEARNER_EMAIL):
        lowered = message.lower()
        if "reason" in lowered or "say why" in lowered:
            return form.text_id
        if "learner's name" in lowered:
            return f"{form.slug}-name"
    return form.first_field


def _actor_names(session: Session, actors: list[str]) -> dict[str, str]:
    """Who acted, in words: 'staff 3' is the member's email, 'contact 7' the contact's name."""
    names: dict[str, str] = {}
    for actor in set(actors):
        kind, _, number = actor.partition(" ")
        if not number.isdigit():
            continue
        if kind == "staff":
            member = session.get(StaffMember, int(number))
            if member is not None:
                names[actor] = member.email
        elif kind == "contact":
            contact = session.get(Contact, int(number))
            if contact is not None:
                role = ROLE_NAMES.get(contact.role, contact.role).lower()
                names[actor] = f"{contact.name} ({role})"
    return names


def _who(actor: str, names: Mapping[str, str]) -> str:
    if actor in names:
        return names[actor]
    return {
        "learner": "the learner",
        "anonymous learner": "the learner (anonymous)",
        "system": "the service",
        "staff": "staff",
    }.get(actor, actor)


def _detail_text(detail: Mapping[str, Any], key: str) -> str | None:
    value = detail.get(key)
    return value if isinstance(value, str) and value else None


def _roles(values: object) -> str:
    if not isinstance(values, list) or not values:
        return "none"
    return ", ".join(ROLE_NAMES.get(str(value), str(value)) for value in values)


def _event_words(event: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """An event (or an access record) in plain words: a title, any text, and who did it."""
    kind = str(event["kind"])
    detail: Mapping[str, Any] = event.get("detail") or {}
    reason = _detail_text(detail, "reason")
    title = kind.replace("_", " ").capitalize()
    text: str | None = reason
    if kind == "received":
        title = "Concern received"
        text = f"Raised as {detail.get('confidentiality', 'unknown')}"
    elif kind == "triaged":
        title = (
            f"Triaged automatically: {detail.get('level')} risk (likelihood "
            f"{detail.get('likelihood')} x impact {detail.get('impact')} = {detail.get('rating')})"
        )
        reasons = detail.get("reasons")
        text = "; ".join(str(r) for r in reasons) if isinstance(reasons, list) else None
    elif kind == "routed":
        title = f"Routed to pathway {detail.get('pathway')}"
        reasons = detail.get("reasons")
        text = "; ".join(str(r) for r in reasons) if isinstance(reasons, list) else None
    elif kind == "contacts_told":
        title = "Contacts told"
        acting = list(detail.get("primary") or []) + list(detail.get("secondary") or [])
        text = f"Acting: {_roles(acting)}. For information: {_roles(detail.get('copy'))}."
    elif kind == "acknowledged":
        title = f"Acknowledged at pathway {event.get('pathway')}"
    elif kind == "feedback_given":
        pathway = detail.get("pathway", event.get("pathway"))
        title = f"Feedback given to the learner at pathway {pathway}"
        text = _detail_text(detail, "text")
    elif kind == "contact_replied":
        title = "A contact replied"
        text = _detail_text(detail, "text")
    elif kind == "learner_added_information":
        title = "The learner added information"
        text = _detail_text(detail, "text")
    elif kind == "learner_email_changed":
        by_learner = event.get("actor") == "learner"
        title = (
            "The learner corrected their email address"
            if by_learner
            else "The learner's email address was corrected"
        )
        text = (
            ("Right after sending the form. " if by_learner else f"{reason} " if reason else "")
            + "The acknowledgement was sent again to the corrected address; links in emails to "
            "the old one no longer open the concern, and replies from it are kept aside."
        )
    elif kind == "learner_name_corrected":
        title = "The learner's name was corrected"
        text = reason
    elif kind == "learner_answered":
        title = "The learner answered the follow-up questions"
        changes = detail.get("changes")
        text = _detail_lines(changes) if isinstance(changes, dict) else None
    elif kind == "learner_remains_concerned":
        title = "The learner remains concerned after feedback"
        if detail.get("new_round") is not None:
            text = (
                "Already at the highest level: its deadlines started again, and the dean was "
                "asked to look at it again."
            )
    elif kind == "escalated":
        title = f"Escalated from pathway {event.get('from_pathway')} to {event.get('to_pathway')}"
        if event.get("from_pathway") is None:
            title = "Escalated"
    elif kind == "closed":
        title = "Closed"
    elif kind == "reopened":
        title = "Reopened"
    elif kind == "triage_overridden":
        now = detail.get("now")
        if not isinstance(now, dict):
            now = {}
        title = (
            f"Risk rating changed by hand to {now.get('level')} (likelihood "
            f"{now.get('likelihood')} x impact {now.get('impact')})"
        )
    elif kind == "redirected":
        role = ROLE_NAMES.get(str(detail.get("role")), "contact").lower()
        title = f"Not mine: sent to another {role}"
    elif kind == "standards_edited":
        title = "Quality Framework standards changed"
        before = ", ".join(map(str, detail.get("from") or [])) or "none"
        after = ", ".join(map(str, detail.get("to") or [])) or "none"
        text = f"From {before} to {after}"
    elif kind == "ack_reminder":
        title = "Reminder sent: acknowledgement due"
    elif kind == "ack_missed":
        title = "Acknowledgement deadline missed"
    elif kind == "feedback_reminder":
        title = "Reminder sent: feedback due"
    elif kind == "high_risk_alert":
        title = "High risk: the dean and quality team were alerted"
        text = f"Told: {_roles(detail.get('told'))}"
    elif kind == "rated_high_over_override":
        title = "Triage now rates it high risk: the dean and quality team were told"
        text = f"The rating staff set still stands. Told: {_roles(detail.get('told'))}"
    elif kind == "overdue_at_dean":
        title = "Feedback is late at the highest level: the quality team was told"
    elif kind == "contact_replaced":
        title = f"{ROLE_NAMES.get(str(detail.get('role')), 'A contact')} replaced"
    elif kind == "delivery_failed":
        role = str(detail.get("recipient_role") or "")
        whom = (
            "the learner"
            if role == "learner"
            else f"the {ROLE_NAMES[role].lower()}"
            if role in ROLE_NAMES
            else "a contact"
        )
        title = f"An email to {whom} could not be delivered"
        text = (
            "Their mail server returned it. Check their address in the directory."
            if role != "learner"
            else "Their mail server returned it: they may not know what is happening."
        )
    elif kind == "identity_viewed":
        title = "The learner's identity was viewed"
        text = None
    elif kind == "exported":
        title = "Exported"
        text = None
    return {
        "title": title,
        "text": text,
        "by": _who(str(event["actor"]), names),
        "from_learner": kind in {"learner_added_information", "learner_answered"},
    }


def _detail_lines(detail: object) -> str:
    """An event's recorded detail as 'key: value' lines, for the audit trail."""
    if not isinstance(detail, dict):
        return ""
    lines = []
    for key, value in detail.items():
        if isinstance(value, dict):
            shown = ", ".join(f"{k} {v}" for k, v in value.items())
        elif isinstance(value, list):
            shown = "; ".join(map(str, value)) or "none"
        else:
            shown = str(value)
        lines.append(f"{key.replace('_', ' ')}: {shown}")
    return "\n".join(lines)
