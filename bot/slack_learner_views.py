"""The learner's Slack screens as Block Kit: the concern modal, its answers, App Home. Pure.

The modal asks the web form's questions with the web form's words, and its answers are checked
by the web form's own rules (`intake.web.form_fields.read`, which ends in `parse_submission`):
each input block's id is the web form field's name, so an error found for a field goes back to
that block. Organisations are offered by directory key and departments as "<org key>/<dept
key>", which `submit_concern` matches in the directory as it matches names.

Anonymous concerns are not taken in Slack: Slack knows who sent the form, so "anonymous" would
not be true. Choosing it is answered with that explanation and a link to the web form, which
can take a concern anonymously; nothing is stored.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from intake.web import form_fields
from intake.web.form_fields import (
    CONFIDENTIALITY_HINTS,
    CONFIDENTIALITY_LABELS,
    FREQUENCY_LABELS,
    GROUP_LABELS,
    HARM_LABELS,
    NOT_LISTED,
    PATHWAY1_CONTACT_LABELS,
    RAISED_BEFORE_LABELS,
    YES_NO_LABELS,
    Directory,
    Outcome,
)
from notifications.slack_learners import OPEN_STATUS_PAGE
from notifications.slack_text import CONCERN_MODAL, OPEN_CONCERN_MODAL, escape
from routing.model import Confidentiality

# Slack's limits: options per select, characters in an option's text and value, a modal's title,
# a plain-text input, and the blocks of a view.
MAX_OPTIONS = 100
OPTION_TEXT_MAX = 75
OPTION_VALUE_MAX = 150
DESCRIPTION_MAX = 3000
HOME_MAX_CONCERNS = 40

ANONYMOUS = Confidentiality.ANONYMOUS.value
SLASH_COMMAND = "/concern"
# Each input block holds one element, whose action id is always this.
ANSWER = "concern_answer"
# The section at the top of the form that says why it is shown again.
NOTICE_BLOCK = "concern_notice"
# Shown above the form when a concern could not be saved: its first line in bold.
NOT_SAVED = (
    "We could not save your concern just now.\n"
    "Nothing you wrote is lost: it is all still here, as you left it. Nothing has been "
    "recorded yet, so please press Send again in a minute."
)
# A learner's own words are quoted back to them when they fit in a short message.
QUOTE_MAX = 500
# The free-text answers, with the names they are given back under.
TYPED_ANSWERS = {
    "description": "What happened",
    "organisation-other": "Organisation",
    "site": "Site or hospital",
    "department-other": "Department or ward",
    "programme": "Programme or specialty",
    "raised-with": "Raised with",
}


def new_concern_url(public_url: str) -> str:
    return public_url.rstrip("/") + "/concerns/new"


def anonymous_refusal(public_url: str) -> str:
    return (
        "Slack knows who you are, so a concern sent from Slack cannot be anonymous. Choose "
        "confidential (only the regional quality team and the dean know who you are), or use "
        f"the web form to stay anonymous: {new_concern_url(public_url)}"
    )


@dataclass(frozen=True)
class Place:
    """An organisation a learner can choose, with its departments as (key, name)."""

    key: str
    name: str
    departments: tuple[tuple[str, str], ...] = ()


# --- the modal --------------------------------------------------------------------------------


def concern_modal(
    places: Sequence[Place],
    *,
    values: Mapping[str, str],
    public_url: str,
    notice: str | None = None,
) -> dict[str, Any]:
    """The concern form as a modal, with `values` (web form field names) as its answers."""
    organisations = organisation_options(places, "")
    departments = department_option_groups(places, "")
    blocks: list[dict[str, Any]] = []
    if notice:
        blocks.append(notice_block(notice))
    blocks += [
        _mrkdwn_section(
            "Tell us about a concern with your placement. The same questions as our web form; "
            "nothing is recorded until you press *Send*.\n"
            "If a patient has been harmed or is at risk, also report it through your "
            "organisation's incident reporting system."
        ),
        _select_input(
            "group",
            "Which kind of learner are you?",
            _options(GROUP_LABELS.items()),
            values,
            hint="This decides which school or university is told if your concern needs it.",
        ),
        _select_input(
            "organisation",
            "Organisation",
            organisations,
            values,
            optional=True,
            hint="The trust, practice or provider your placement is with.",
        ),
        _text_input(
            "organisation-other",
            "If your organisation is not listed, enter its name",
            values,
            optional=True,
        ),
        _text_input("site", "Site or hospital (optional)", values, optional=True),
        _select_input(
            "department",
            "Department or ward",
            departments,
            values,
            optional=True,
            hint="Each department is listed under its organisation.",
        ),
        _text_input(
            "department-other",
            "If your department or ward is not listed, enter its name",
            values,
            optional=True,
        ),
        _text_input(
            "programme",
            "Programme or specialty (optional)",
            values,
            optional=True,
            hint="For example, Foundation Programme FY1, Adult nursing or Physiotherapy.",
        ),
        _text_input(
            "description",
            "What happened?",
            values,
            multiline=True,
            max_length=DESCRIPTION_MAX,
            hint="Say what happened, where and when, and how it affects patients or your "
            "training. Do not include patients' names or other details that could identify them.",
        ),
        _radio_input("frequency", "How often does this happen?", FREQUENCY_LABELS, values),
        _radio_input("harm", "Has anyone been harmed, or could they be?", HARM_LABELS, values),
        _radio_input("raised-before", "Have you raised this before?", RAISED_BEFORE_LABELS, values),
        _text_input(
            "raised-with",
            "Who did you raise it with? (optional)",
            values,
            optional=True,
            hint="For example, your supervisor, the ward manager or your university tutor.",
        ),
        _radio_input(
            "about-supervisor",
            "Is your concern about your supervisor or tutor?",
            YES_NO_LABELS,
            values,
            hint="If it is, we will not send it to them: it goes to your school or university.",
        ),
        _radio_input(
            "pathway1-contact",
            "Who would you like to deal with it in your placement? (optional)",
            PATHWAY1_CONTACT_LABELS,
            values,
            hint="If you do not choose, it goes to your supervisor or clinical tutor, unless it "
            "is about them. The Freedom to Speak Up guardian is independent of your team.",
            optional=True,
        ),
        _checkbox_input(
            "cannot-raise-locally",
            "Raising it in your placement",
            "I cannot raise this in my placement (I fear it would count against me)",
            values,
        ),
        _mrkdwn_section(
            "*How do you want your concern to be shared?*\n"
            + "\n".join(
                f"• *{CONFIDENTIALITY_LABELS[choice]}*: {CONFIDENTIALITY_HINTS[choice]}"
                for choice in (Confidentiality.NAMED.value, Confidentiality.CONFIDENTIAL.value)
            )
            + f"\n• *{CONFIDENTIALITY_LABELS[ANONYMOUS]}*: not from Slack. Slack knows who you "
            "are, so to stay anonymous use the web form instead: "
            + escape(new_concern_url(public_url))
        ),
        _radio_input(
            "confidentiality",
            "Sharing",
            {
                **{
                    choice: CONFIDENTIALITY_LABELS[choice]
                    for choice in (Confidentiality.NAMED.value, Confidentiality.CONFIDENTIAL.value)
                },
                ANONYMOUS: "Anonymous (use the web form)",
            },
            values,
        ),
        _text_input(
            "name",
            "Full name",
            values,
            optional=True,
            hint="Filled in from Slack: change it if you need to.",
        ),
        _text_input(
            "email",
            "Email address",
            values,
            optional=True,
            hint="Your NHS or university email address if you have one. We write to you there "
            "as well as in Slack.",
        ),
    ]
    return _form(blocks)


def _form(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": CONCERN_MODAL,
        "title": {"type": "plain_text", "text": "Raise a concern"},
        "submit": {"type": "plain_text", "text": "Send"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }


def notice_block(notice: str) -> dict[str, Any]:
    """A notice at the top of the form (escaped): its first line in bold, the rest as it is."""
    first, _, rest = notice.partition("\n")
    text = f"*{escape(first)}*" + (f"\n{escape(rest)}" if rest else "")
    return {**_mrkdwn_section(text), "block_id": NOTICE_BLOCK}


def form_again(submitted: Mapping[str, Any], *, notice: str) -> dict[str, Any] | None:
    """The form as the learner sent it, every answer kept, under a notice; None when the
    submitted view holds no form to show again.

    Built from the submitted view alone (its blocks, with their answers from its state), so it
    needs no database: it is what is shown when the database could not take the concern. The
    choices offered stay the ones the learner saw, even from an external select.
    """
    blocks = [
        block
        for block in submitted.get("blocks") or ()
        if isinstance(block, Mapping) and block.get("block_id") != NOTICE_BLOCK
    ]
    if not any(block.get("type") == "input" for block in blocks):
        return None
    state = (submitted.get("state") or {}).get("values") or {}
    kept = []
    for block in blocks:
        answer = (state.get(block.get("block_id")) or {}).get(ANSWER)
        if block.get("type") == "input" and isinstance(answer, Mapping):
            kept.append(_with_answer(block, answer))
        else:
            kept.append(copy.deepcopy(dict(block)))
    return _form([notice_block(notice), *kept])


def _with_answer(block: Mapping[str, Any], answer: Mapping[str, Any]) -> dict[str, Any]:
    """An input block whose element starts from the learner's answer (as its state gave it)."""
    kept = copy.deepcopy(dict(block))
    element: dict[str, Any] = kept.get("element") or {}
    for initial in ("initial_value", "initial_option", "initial_options"):
        element.pop(initial, None)
    kind = element.get("type")
    selected = answer.get("selected_option") or {}
    if kind == "plain_text_input":
        if isinstance(answer.get("value"), str) and answer["value"]:
            element["initial_value"] = answer["value"]
    elif kind in ("static_select", "radio_buttons"):
        option = _find_option(element, str(selected.get("value") or ""))
        if option is not None:
            element["initial_option"] = option
    elif kind == "external_select":
        if selected.get("value"):
            element["initial_option"] = {"text": selected.get("text"), "value": selected["value"]}
    elif kind == "checkboxes":
        chosen = {option.get("value") for option in answer.get("selected_options") or ()}
        options = [option for option in element.get("options") or () if option["value"] in chosen]
        if options:
            element["initial_options"] = options
    kept["element"] = element
    return kept


def not_saved_message(answers: Mapping[str, str]) -> str:
    """A direct message with the learner's own words, for when the form could not be shown
    again after their concern could not be saved: what they wrote is not lost."""
    written = [
        f"*{label}:*\n{quoted(answers[name])}"
        for name, label in TYPED_ANSWERS.items()
        if answers.get(name, "").strip()
    ]
    return "\n\n".join(
        [
            "We could not save the concern you sent just now, and nothing has been recorded. "
            "So that nothing you wrote is lost, here it is: when you send the form again "
            f"(type {SLASH_COMMAND}), copy it from here.",
            *written,
        ]
    )


def not_added_reply(text: str) -> str:
    """The answer in a concern's thread to a reply that could not be saved."""
    said = (
        "We could not add your message to your concern just now, so it has not been added. "
        "Please send it again here, in this thread, in a minute."
    )
    if not text.strip():
        return said
    if len(text) <= QUOTE_MAX:
        return f"{said} This is what you wrote:\n{quoted(text)}"
    return f"{said} Your message is still in this thread, just above: copy it from there."


def added_reply(reference: str) -> str:
    """The answer in a concern's thread to a reply that was added to it."""
    return f"Added to your concern {escape(reference)}: the people handling it will see it."


def refused_reply(reason: str) -> str:
    """The answer in a concern's thread to a reply the concern cannot take, with the reason."""
    because = escape(reason.strip().rstrip("."))
    return (
        f"We have not added your message to your concern: {because}. Your message is still in "
        "this thread, just above."
    )


def quoted(text: str) -> str:
    """The learner's own words as a quote (escaped: they can neither ping nor link)."""
    return "\n".join(f">{escape(line)}" for line in text.strip().splitlines())


def organisation_options(places: Sequence[Place], query: str) -> dict[str, Any]:
    """The organisation select's choices (those matching `query`): static while they fit in
    Slack's limit, else an external select that asks the app as the learner types."""
    if not query and len(places) + 1 > MAX_OPTIONS:
        return {"external": True}
    wanted = query.strip().lower()
    options = [_option(place.key, place.name) for place in places if wanted in place.name.lower()]
    return {
        "options": [
            *options[: MAX_OPTIONS - 1],
            _option(NOT_LISTED, "My organisation is not listed"),
        ]
    }


def department_option_groups(places: Sequence[Place], query: str) -> dict[str, Any]:
    """The department select's choices grouped by organisation (the web form lists each with
    its organisation too), static or external as for organisations."""
    too_many = len(places) + 1 > MAX_OPTIONS or any(
        len(place.departments) > MAX_OPTIONS for place in places
    )
    if not query and too_many:
        return {"external": True}
    wanted = query.strip().lower()
    groups: list[dict[str, Any]] = []
    for place in places:
        matching = wanted in place.name.lower()
        departments = [
            _option(f"{place.key}/{key}", name)
            for key, name in place.departments
            if matching or wanted in name.lower()
        ]
        if departments:
            groups.append({"label": _plain(place.name), "options": departments[:MAX_OPTIONS]})
    other = {
        "label": _plain("Not listed"),
        "options": [_option(NOT_LISTED, "My department is not listed")],
    }
    return {"option_groups": [*groups[: MAX_OPTIONS - 1], other]}


# --- the answers ------------------------------------------------------------------------------


def answers_from_state(state: Mapping[str, Any]) -> dict[str, str]:
    """A submitted modal's answers as the web form's fields (strings, "" when unanswered)."""
    values = state.get("values") or {}
    answers: dict[str, str] = {}
    for name in form_fields.FIELDS:
        element = (values.get(name) or {}).get(ANSWER) or {}
        answers[name] = _value_of(element)
    return answers


def check(answers: Mapping[str, str], *, public_url: str) -> Outcome:
    """The web form's checks on the answers; an anonymous choice is refused (see above)."""
    if answers.get("confidentiality") == ANONYMOUS:
        return Outcome(
            values=dict(answers), errors={"confidentiality": anonymous_refusal(public_url)}
        )
    return form_fields.read(answers, _chosen_directory(answers))


def _chosen_directory(answers: Mapping[str, str]) -> Directory:
    """The learner's choices as a directory of keys: the web form's rules then check that the
    department belongs to the organisation, and `submit_concern` matches the keys for real."""
    organisation = answers.get("organisation", "")
    department = answers.get("department", "")
    organisations: dict[str, list[dict[str, str]]] = {}
    if organisation and organisation != NOT_LISTED:
        organisations[organisation] = []
    if department and department != NOT_LISTED and "/" in department:
        owner, key = department.split("/", 1)
        organisations.setdefault(owner, []).append({"key": key, "name": key})
    return Directory(
        tuple(
            {"key": key, "name": key, "departments": departments}
            for key, departments in organisations.items()
        )
    )


def unslack(text: str) -> str:
    """A message's text as the learner typed it: the links Slack made of addresses and web
    addresses written as typed again (`<mailto:a@nhs.net|a@nhs.net>` is `a@nhs.net`), and
    Slack's three escapes undone. Markup comes first: only Slack's own `<` and `>` are left
    unescaped in what it sends."""
    text = _SLACK_LINK.sub(_as_typed, text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()


# A link Slack made of something typed: <mailto:a@b|a@b>, <https://x|x>, <https://x>.
_SLACK_LINK = re.compile(
    r"<(?P<scheme>mailto:|https?://)(?P<rest>[^<>|]*)(?:\|(?P<label>[^<>]*))?>"
)


def _as_typed(link: re.Match[str]) -> str:
    target = link["rest"] if link["scheme"] == "mailto:" else link["scheme"] + link["rest"]
    label = link["label"]
    if not label:
        return target
    if label in (target, link["rest"]):
        return label  # what was typed: "rota.example/x" stays without the scheme Slack added
    # A link written with other words shown ("the rota" linking to a page): both are kept.
    return f"{label} ({target})"


def prefill(text: str) -> dict[str, str]:
    """A direct message's text as the modal's description."""
    return {"description": unslack(text)[:DESCRIPTION_MAX]}


# --- other screens ----------------------------------------------------------------------------


def sending_view() -> dict[str, Any]:
    """Shown the moment the form is sent, while the concern is saved."""
    return _info_view("Sending your concern…")


def received_view(reference: str, *, in_slack: bool = True) -> dict[str, Any]:
    """Shown once the concern is saved. What happens next comes by email, and in Slack too
    when their Slack account was kept with them (see `slack_learners._slack_identity`)."""
    where = "here in Slack and by email" if in_slack else "by email"
    return _info_view(
        f"We have received your concern. Your reference is *{escape(reference)}*.\n"
        f"We are sending you a message {where} with what happens next."
    )


def dm_reply(message_ts: str) -> tuple[str, list[dict[str, Any]]]:
    """The answer to a direct message: a button that opens the form with what they wrote."""
    text = (
        "Thank you for your message. To raise it as a concern about your placement, press the "
        "button: the form opens with what you wrote, and asks a few more questions. Nothing is "
        "recorded until you send the form."
    )
    return text, [
        _mrkdwn_section(text),
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": OPEN_CONCERN_MODAL,
                    "text": {"type": "plain_text", "text": "Raise a concern"},
                    "style": "primary",
                    "value": message_ts,
                }
            ],
        },
    ]


@dataclass(frozen=True)
class HomeEntry:
    """One concern as its learner sees it in App Home (learner-safe by construction)."""

    reference: str
    place: str
    status_words: str
    where_now: str
    next_step: str
    summary: str | None = None
    status_url: str | None = None


def home_view(entries: Sequence[HomeEntry]) -> dict[str, Any]:
    """The App Home tab: a button to raise a concern, and the learner's concerns."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain("Your concerns")},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": OPEN_CONCERN_MODAL,
                    "text": _plain("Raise a concern"),
                    "style": "primary",
                    "value": "home",
                }
            ],
        },
    ]
    if not entries:
        blocks.append(_mrkdwn_section("You have not raised a concern from Slack yet."))
    for entry in entries[:HOME_MAX_CONCERNS]:
        lines = [
            f"*{escape(entry.reference)}*: {escape(entry.status_words)}",
            f"Place: {escape(entry.place)}",
            f"Now with: {escape(entry.where_now)}",
            escape(entry.next_step),
        ]
        if entry.summary:
            lines.insert(1, f"Summary: {escape(entry.summary)}")
        section = _mrkdwn_section("\n".join(lines))
        if entry.status_url:
            section["accessory"] = {
                "type": "button",
                "action_id": OPEN_STATUS_PAGE,
                "text": _plain("Open"),
                "url": entry.status_url,
            }
        blocks += [section, {"type": "divider"}]
    if len(entries) > HOME_MAX_CONCERNS:
        blocks.append(_mrkdwn_section(f"Showing your {HOME_MAX_CONCERNS} most recent concerns."))
    return {"type": "home", "blocks": blocks}


# --- blocks -----------------------------------------------------------------------------------


def _plain(text: str, limit: int = OPTION_TEXT_MAX) -> dict[str, Any]:
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return {"type": "plain_text", "text": text}


def _option(value: str, text: str) -> dict[str, Any]:
    return {"text": _plain(text), "value": value[:OPTION_VALUE_MAX]}


def _options(choices: Iterable[tuple[str, str]]) -> dict[str, Any]:
    return {"options": [_option(value, text) for value, text in choices]}


def _mrkdwn_section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _input(
    name: str,
    label: str,
    element: dict[str, Any],
    *,
    optional: bool = False,
    hint: str | None = None,
) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "input",
        "block_id": name,
        "label": _plain(label, 2000),
        "optional": optional,
        "element": {**element, "action_id": ANSWER},
    }
    if hint:
        block["hint"] = _plain(hint, 2000)
    return block


def _text_input(
    name: str,
    label: str,
    values: Mapping[str, str],
    *,
    optional: bool = False,
    multiline: bool = False,
    max_length: int = form_fields.SHORT_TEXT_LIMIT,
    hint: str | None = None,
) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "multiline": multiline,
        "max_length": max_length,
    }
    if values.get(name):
        element["initial_value"] = values[name][:max_length]
    return _input(name, label, element, optional=optional, hint=hint)


def _select_input(
    name: str,
    label: str,
    choices: Mapping[str, Any],
    values: Mapping[str, str],
    *,
    optional: bool = False,
    hint: str | None = None,
) -> dict[str, Any]:
    element: dict[str, Any] = {"placeholder": _plain("Select")}
    if choices.get("external"):
        element.update(type="external_select", min_query_length=2)
    else:
        element.update(type="static_select", **choices)
        initial = _find_option(choices, values.get(name, ""))
        if initial is not None:
            element["initial_option"] = initial
    return _input(name, label, element, optional=optional, hint=hint)


def _radio_input(
    name: str,
    label: str,
    labels: Mapping[str, str],
    values: Mapping[str, str],
    *,
    hint: str | None = None,
    optional: bool = False,
) -> dict[str, Any]:
    choices = _options(labels.items())
    element: dict[str, Any] = {"type": "radio_buttons", **choices}
    initial = _find_option(choices, values.get(name, ""))
    if initial is not None:
        element["initial_option"] = initial
    return _input(name, label, element, hint=hint, optional=optional)


def _checkbox_input(name: str, label: str, text: str, values: Mapping[str, str]) -> dict[str, Any]:
    option = {"text": _plain(text), "value": "yes"}
    element: dict[str, Any] = {"type": "checkboxes", "options": [option]}
    if values.get(name) == "yes":
        element["initial_options"] = [option]
    return _input(name, label, element, optional=True)


def _find_option(choices: Mapping[str, Any], value: str) -> dict[str, Any] | None:
    if not value:
        return None
    options = list(choices.get("options", ()))
    for group in choices.get("option_groups", ()):
        options.extend(group["options"])
    return next((option for option in options if option["value"] == value), None)


def _value_of(element: Mapping[str, Any]) -> str:
    kind = element.get("type")
    if kind in ("static_select", "external_select", "radio_buttons"):
        selected = element.get("selected_option") or {}
        return str(selected.get("value") or "")
    if kind == "checkboxes":
        chosen = element.get("selected_options") or []
        return "yes" if any(option.get("value") == "yes" for option in chosen) else ""
    value = element.get("value")
    return value if isinstance(value, str) else ""


def _info_view(text: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": CONCERN_MODAL + "_done",
        "title": {"type": "plain_text", "text": "Raise a concern"},
        "close": {"type": "plain_text", "text": "Close"},
        "blocks": [_mrkdwn_section(text)],
    }
