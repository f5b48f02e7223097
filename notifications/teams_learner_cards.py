"""The learner's Teams cards as Adaptive Cards: the concern form, the confirmation, "My concerns"
and the answers to their buttons. Pure: values in, card dicts out.

The form asks the web form's questions with the web form's words: the bot hands them in as a
`FormQuestions` (built from `intake.web.form_fields`, which this layer may not import), and each
input's id is the web form field's name, so the web form's own rules check the answers and
an error found for a field is shown under that input.

Anything not written in this module (a learner's words, a place they typed, their name) is put
in the card through `untrusted` (a TextRun, shown literally) or as an input's value, never in a
TextBlock. Directory names, references and our own error messages go in `ours`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from notifications.messages import SCHOOL_NOT_CLEAR
from notifications.teams_text import card, execute, ours, untrusted

# The verbs of the learner's Action.Execute buttons. The learner notification cards sent through
# the outbox use the same three feedback verbs, so these names are part of the bot's contract.
RAISE_CONCERN = "raise_concern"
CONCERN_FORM = "concern_form"
MY_CONCERNS = "my_concerns"
ADD_INFORMATION = "add_information"
SATISFIED = "satisfied"
REMAIN_CONCERNED = "remain_concerned"

# The text input of an "Add information" card. A card holding several concerns names each input
# after its concern (ids must be unique in a card); a card about one concern may use the bare id.
INFORMATION = "information"
INFORMATION_MAX = 5_000
# Teams refuses cards over about 28 KB: the most recent concerns are shown, not all of them.
MAX_CONCERNS_SHOWN = 10

ANONYMOUS = "anonymous"
NAMED = "named"
CONFIDENTIAL = "confidential"

# The toggle's values: the web form's checkbox sends "yes" or nothing.
TOGGLE_ON = "yes"
TOGGLE_OFF = "no"

INCIDENT_REPORTING = (
    "If a patient has been harmed or is at risk, also report it through your organisation's "
    "incident reporting system: this service does not replace it."
)

NOT_SAVED = (
    "We could not save your concern just now. Nothing you wrote is lost: it is all still here, "
    "as you left it. Nothing has been recorded yet, so please press Send again in a minute."
)


@dataclass(frozen=True)
class FormQuestions:
    """The web form's choices, hints and limits (value -> words), as the bot hands them in."""

    groups: Mapping[str, str]
    frequency: Mapping[str, str]
    harm: Mapping[str, str]
    raised_before: Mapping[str, str]
    yes_no: Mapping[str, str]
    pathway1_contact: Mapping[str, str]
    confidentiality: Mapping[str, str]
    confidentiality_hints: Mapping[str, str]
    not_listed: str
    description_limit: int
    short_text_limit: int


@dataclass(frozen=True)
class PlaceChoice:
    """An organisation the learner can choose (by name, as on the web form), with its
    departments as (value "<org key>/<dept key>", name)."""

    key: str
    name: str
    departments: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ConcernEntry:
    """One concern as its learner sees it in Teams (learner-safe by construction)."""

    reference: str
    status_words: str
    where_now: str
    next_step: str
    place: str  # the directory's names, or the learner's own words for an unlisted place
    pathway: int
    level_round: int = 0
    can_add_information: bool = True
    can_respond_to_feedback: bool = False
    summary: str | None = None  # the learner's own words: only when the policy shares them
    status_url: str | None = None


@dataclass(frozen=True)
class Notice:
    """Words at the top of a card, with an optional link button (our words only)."""

    text: str
    link_title: str | None = None
    link_url: str | None = None
    attention: bool = True
    lines: tuple[str, ...] = field(default_factory=tuple)


def new_concern_url(public_url: str) -> str:
    return public_url.rstrip("/") + "/concerns/new"


def anonymous_refusal(public_url: str) -> Notice:
    """Why Teams cannot take an anonymous concern, and where they can raise one."""
    return Notice(
        text=(
            "Teams knows who you are, so a concern sent from Teams cannot be anonymous, and "
            "nothing has been recorded. Choose confidential (only the regional quality team and "
            "the dean know who you are), or use the web form to stay anonymous."
        ),
        link_title="Use the web form",
        link_url=new_concern_url(public_url),
    )


# --- the form ---------------------------------------------------------------------------------


def concern_form(
    questions: FormQuestions,
    places: Sequence[PlaceChoice],
    *,
    values: Mapping[str, str],
    public_url: str,
    errors: Mapping[str, str] | None = None,
    notice: Notice | None = None,
) -> dict[str, Any]:
    """The concern form with `values` (web form field names) as its answers and `errors`
    (field name -> message) under the inputs they are about."""
    problems = dict(errors or {})
    body: list[dict[str, Any]] = []
    if notice is not None:
        body += notice_elements(notice)
    if problems:
        body.append(
            {
                "type": "Container",
                "style": "attention",
                "items": [
                    ours("There is a problem", weight="bolder"),
                    *(ours(f"- {message}", spacing="none") for message in problems.values()),
                ],
            }
        )
    body += [
        ours("Raise a concern", size="large", weight="bolder"),
        ours(
            "Tell us about a concern with your placement. These are the questions of our web "
            "form; nothing is recorded until you press Send. To add information to a concern "
            "you raised before, or answer its feedback, press My concerns instead."
        ),
        ours(INCIDENT_REPORTING, isSubtle=True),
    ]

    def add(element: dict[str, Any], *, hint: str | None = None) -> None:
        name = element["id"]
        if hint:
            body.append(ours(hint, isSubtle=True, spacing="medium"))
        body.append(element)
        if name in problems:
            body.append(ours(problems[name], color="attention", spacing="none"))

    organisations = [(place.name, place.name) for place in places]
    departments = [
        (value, f"{name} ({place.name})") for place in places for value, name in place.departments
    ]
    add(
        _choice("group", "Which kind of learner are you?", questions.groups, values, required=True),
        hint="This decides which school or university is told if your concern needs it.",
    )
    add(
        _choice(
            "organisation",
            "Organisation",
            dict([*organisations, (questions.not_listed, "My organisation is not listed")]),
            values,
            filtered=True,
        ),
        hint="The trust, practice or provider your placement is with. Type to search.",
    )
    add(
        _text(
            "organisation-other",
            "If your organisation is not listed, enter its name",
            values,
            questions.short_text_limit,
        )
    )
    add(_text("site", "Site or hospital (optional)", values, questions.short_text_limit))
    add(
        _choice(
            "department",
            "Department or ward",
            dict([*departments, (questions.not_listed, "My department is not listed")]),
            values,
            filtered=True,
        ),
        hint="Each department is listed with its organisation. Type to search.",
    )
    add(
        _text(
            "department-other",
            "If your department or ward is not listed, enter its name",
            values,
            questions.short_text_limit,
        )
    )
    add(
        _text("programme", "Programme or specialty (optional)", values, questions.short_text_limit),
        hint="For example, Foundation Programme FY1, Adult nursing or Physiotherapy.",
    )
    add(
        _text(
            "description",
            "What happened?",
            values,
            questions.description_limit,
            multiline=True,
            required=True,
        ),
        hint="Say what happened, where and when, and how it affects patients or your training. "
        "Do not include patients' names or other details that could identify them.",
    )
    add(
        _choice(
            "frequency",
            "How often does this happen?",
            questions.frequency,
            values,
            expanded=True,
            required=True,
        )
    )
    add(
        _choice(
            "harm",
            "Has anyone been harmed, or could they be?",
            questions.harm,
            values,
            expanded=True,
            required=True,
        )
    )
    add(
        _choice(
            "raised-before",
            "Have you raised this before?",
            questions.raised_before,
            values,
            expanded=True,
            required=True,
        )
    )
    add(
        _text(
            "raised-with",
            "Who did you raise it with? (optional)",
            values,
            questions.short_text_limit,
        ),
        hint="For example, your supervisor, the ward manager or your university tutor.",
    )
    add(
        _choice(
            "about-supervisor",
            "Is your concern about your supervisor or tutor?",
            questions.yes_no,
            values,
            expanded=True,
            required=True,
        ),
        hint="If it is, we will not send it to them: it goes to your school or university.",
    )
    add(
        _choice(
            "pathway1-contact",
            "Who would you like to deal with it in your placement? (optional)",
            questions.pathway1_contact,
            values,
            expanded=True,
        ),
        hint="If you do not choose, it goes to your supervisor or clinical tutor, unless it is "
        "about them. The Freedom to Speak Up guardian is independent of your team.",
    )
    add(
        {
            "type": "Input.Toggle",
            "id": "cannot-raise-locally",
            "title": "I cannot raise this in my placement (I fear it would count against me)",
            "valueOn": TOGGLE_ON,
            "valueOff": TOGGLE_OFF,
            "value": TOGGLE_ON if values.get("cannot-raise-locally") == TOGGLE_ON else TOGGLE_OFF,
            "wrap": True,
        }
    )
    body.append(ours("How do you want your concern to be shared?", weight="bolder"))
    for choice in (NAMED, CONFIDENTIAL):
        body.append(
            ours(
                f"{questions.confidentiality[choice]}: {questions.confidentiality_hints[choice]}",
                spacing="small",
            )
        )
    body.append(
        ours(
            f"{questions.confidentiality[ANONYMOUS]}: not from Teams. Teams knows who you are, "
            f"so to stay anonymous use the web form instead: {new_concern_url(public_url)}",
            spacing="small",
        )
    )
    add(
        _choice(
            "confidentiality",
            "Sharing",
            {
                NAMED: questions.confidentiality[NAMED],
                CONFIDENTIAL: questions.confidentiality[CONFIDENTIAL],
                ANONYMOUS: f"{questions.confidentiality[ANONYMOUS]} (use the web form)",
            },
            values,
            expanded=True,
            required=True,
        )
    )
    add(
        _text("name", "Full name", values, questions.short_text_limit),
        hint="Filled in from Teams: change it if you need to.",
    )
    add(
        _text("email", "Email address", values, questions.short_text_limit),
        hint="Your NHS or university email address. We write to you there as well as here.",
    )
    return card(
        body,
        [
            execute("Send", RAISE_CONCERN, {}, style="positive"),
            # Its own inputs only (none): it leaves the form's answers where they are.
            execute("My concerns", MY_CONCERNS, {}, associatedInputs="none"),
        ],
    )


def notice_elements(notice: Notice) -> list[dict[str, Any]]:
    """A notice as a container at the top of a card (with its link button, if any)."""
    items: list[dict[str, Any]] = [ours(notice.text, weight="bolder")]
    items += [ours(line, spacing="small") for line in notice.lines]
    if notice.link_title and notice.link_url:
        items.append(
            {
                "type": "ActionSet",
                "actions": [
                    {"type": "Action.OpenUrl", "title": notice.link_title, "url": notice.link_url}
                ],
            }
        )
    container: dict[str, Any] = {"type": "Container", "items": items}
    if notice.attention:
        container["style"] = "attention"
    return [container]


def _text(
    name: str,
    label: str,
    values: Mapping[str, str],
    max_length: int,
    *,
    multiline: bool = False,
    required: bool = False,
) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "Input.Text",
        "id": name,
        "label": label,
        "maxLength": max_length,
        "isMultiline": multiline,
    }
    if values.get(name):
        element["value"] = values[name][:max_length]
    if required:
        element.update(isRequired=True, errorMessage="Answer this question")
    return element


def _choice(
    name: str,
    label: str,
    choices: Mapping[str, str],
    values: Mapping[str, str],
    *,
    expanded: bool = False,
    filtered: bool = False,
    required: bool = False,
) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "Input.ChoiceSet",
        "id": name,
        "label": label,
        "style": "expanded" if expanded else ("filtered" if filtered else "compact"),
        "choices": [{"title": title, "value": value} for value, title in choices.items()],
        "wrap": True,
    }
    if not expanded:
        element["placeholder"] = "Select"
    if values.get(name) in choices:
        element["value"] = values[name]
    if required:
        element.update(isRequired=True, errorMessage="Choose one")
    return element


# --- after sending ----------------------------------------------------------------------------


def received_card(
    reference: str,
    *,
    pathway: int,
    where_now: str,
    placement: str,
    in_teams: bool,
    by_email: bool,
    patient_safety: bool,
) -> dict[str, Any]:
    """The answer once the concern is saved: its reference, what happens next, My concerns.

    `placement` is how much of it the directory knows ("listed", "department_not_listed",
    "not_listed"): on pathway 1 that decides who took the concern, as the web confirmation says.
    """
    body = [
        ours("We have received your concern", size="large", weight="bolder"),
        ours(f"Your reference is {reference}. Keep it: it names your concern if you ask us."),
        ours("What happens next", weight="bolder"),
        *(ours(words) for words in _where_it_went(pathway, where_now, placement)),
        ours(
            "They are asked to acknowledge it and to give you feedback by a deadline. "
            + (
                "This is the highest level: if feedback is late, the regional quality team is told."
                if pathway >= 3
                else "If they do not, it moves to the next level by itself, and we tell you."
            )
        ),
    ]
    where = " and ".join(
        part for part, yes in (("here in Teams", in_teams), ("by email", by_email)) if yes
    )
    if where:
        body.append(ours(f"We will tell you {where} when there is news or feedback."))
    if not in_teams:
        body.append(
            ours(
                "The email address you gave is not the one Teams has for you, so this concern "
                "is not listed under My concerns here: follow it by email."
            )
        )
    if patient_safety:
        body.append(ours(INCIDENT_REPORTING, color="attention", weight="bolder"))
    return card(body, [execute("My concerns", MY_CONCERNS, {})])


def _where_it_went(pathway: int, where_now: str, placement: str) -> list[str]:
    """Who has the new concern, per the routing rules (escalation.contacts): on pathway 1 a
    placement the directory does not know has no supervisor, so the organisation's clinical tutor
    or guardian takes it, or the quality team when the organisation is unknown too. Schools and
    the dean are found without the placement; the quality team takes it when the school is not
    clear."""
    if pathway == 1 and placement == "not_listed":
        return [
            "We could not find your placement in our list, so we have sent your concern to the "
            "regional quality team. They will find the right people at your placement and pass "
            "it on to them."
        ]
    if pathway == 1 and placement == "department_not_listed":
        return [
            "We could not find your department in our list, so we have sent your concern to your "
            "organisation's clinical tutor or Freedom to Speak Up guardian. They will deal with it "
            "or pass it on to the right people in your department."
        ]
    words = [f"Your concern has gone to {where_now}."]
    if pathway == 2:
        words.append(SCHOOL_NOT_CLEAR)
    if placement != "listed":
        words.append(
            "We could not find your placement in our list, so they will see it as you described it."
        )
    return words


# --- My concerns ------------------------------------------------------------------------------


def information_input_id(reference: str) -> str:
    return f"{INFORMATION}:{reference}"


def my_concerns_card(
    entries: Sequence[ConcernEntry],
    *,
    notice: Notice | None = None,
    information: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The learner's concerns, newest first, each with what they can do now. `information`
    (reference -> text) prefills an "Add information" box, so text that could not be saved is
    given back where they typed it."""
    body: list[dict[str, Any]] = []
    if notice is not None:
        body += notice_elements(notice)
    body.append(ours("Your concerns", size="large", weight="bolder"))
    if not entries:
        body.append(
            ours(
                "You have no concerns raised from Teams. To raise one, send me a message or "
                "press Raise a concern."
            )
        )
    for entry in entries[:MAX_CONCERNS_SHOWN]:
        body.append(concern_container(entry, information=(information or {}).get(entry.reference)))
    if len(entries) > MAX_CONCERNS_SHOWN:
        body.append(ours(f"Showing your {MAX_CONCERNS_SHOWN} most recent concerns.", isSubtle=True))
    return card(body, [execute("Raise a concern", CONCERN_FORM, {})])


def concern_container(entry: ConcernEntry, *, information: str | None = None) -> dict[str, Any]:
    """One concern: reference, status, pathway, next step, and its buttons."""
    items: list[dict[str, Any]] = [
        ours(f"{entry.reference}: {entry.status_words}", weight="bolder"),
        ours("Place:", spacing="small", isSubtle=True),
        untrusted(entry.place, limit=300),
    ]
    if entry.summary:
        items += [ours("Summary:", spacing="small", isSubtle=True), untrusted(entry.summary)]
    items += [
        ours(f"Now with: {entry.where_now}", spacing="small"),
        ours(entry.next_step, spacing="small"),
    ]
    actions = concern_actions(entry, information=information)
    if actions:
        items.append({"type": "ActionSet", "actions": actions})
    return {"type": "Container", "separator": True, "spacing": "medium", "items": items}


def concern_actions(entry: ConcernEntry, *, information: str | None = None) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = []
    data = {"reference": entry.reference}
    if entry.can_respond_to_feedback:
        answer = {**data, "pathway": entry.pathway, "round": entry.level_round}
        actions += [
            execute("I'm satisfied", SATISFIED, answer, style="positive"),
            execute("I remain concerned", REMAIN_CONCERNED, answer),
        ]
    if entry.can_add_information:
        actions.append(add_information_action(entry.reference, information=information))
    if entry.status_url:
        actions.append({"type": "Action.OpenUrl", "title": "Status page", "url": entry.status_url})
    return actions


def add_information_action(reference: str, *, information: str | None = None) -> dict[str, Any]:
    """An "Add information" button that opens a text box and sends it with verb add_information."""
    box: dict[str, Any] = {
        "type": "Input.Text",
        "id": information_input_id(reference),
        "label": f"What do you want to add to {reference}?",
        "isMultiline": True,
        "maxLength": INFORMATION_MAX,
    }
    if information:
        box["value"] = information[:INFORMATION_MAX]
    return {
        "type": "Action.ShowCard",
        "title": "Add information",
        "card": card(
            [box],
            [execute("Send", ADD_INFORMATION, {"reference": reference}, style="positive")],
        ),
    }


# --- answers to the buttons -------------------------------------------------------------------


def done_card(said: str, entry: ConcernEntry | None = None) -> dict[str, Any]:
    """What happened (our words), with the concern as it is now."""
    body: list[dict[str, Any]] = [ours(said, weight="bolder")]
    if entry is not None:
        body.append(concern_container(entry))
    return card(body, [execute("My concerns", MY_CONCERNS, {})])


def refused_card(reason: str, *, typed: str | None = None) -> dict[str, Any]:
    """Nothing was changed, and why (our words); their own words back when they typed some."""
    body: list[dict[str, Any]] = [ours("Nothing has been changed", weight="bolder"), ours(reason)]
    if typed and typed.strip():
        body += [
            ours("So that nothing you wrote is lost, here it is:", spacing="medium"),
            untrusted(typed, limit=INFORMATION_MAX),
        ]
    return card(body, [execute("My concerns", MY_CONCERNS, {})])


def not_added_card(reference: str, typed: str) -> dict[str, Any]:
    """Information that could not be saved: their words back, in the box, to send again."""
    body: list[dict[str, Any]] = [
        ours(
            f"We could not add your information to {reference} just now, so it has not been "
            "added. Nothing you wrote is lost: it is below, and in the box. Please try again in "
            "a minute.",
            weight="bolder",
            color="attention",
        ),
        untrusted(typed, limit=INFORMATION_MAX),
    ]
    return card(
        body,
        [
            add_information_action(reference, information=typed),
            execute("My concerns", MY_CONCERNS, {}),
        ],
    )


def not_answered_card(reference: str) -> dict[str, Any]:
    """An answer to feedback that could not be saved."""
    return card(
        [
            ours(
                f"We could not save your answer on {reference} just now, so nothing has "
                "changed. Please try again in a minute.",
                weight="bolder",
                color="attention",
            )
        ],
        [execute("My concerns", MY_CONCERNS, {})],
    )
