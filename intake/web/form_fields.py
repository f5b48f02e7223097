"""The web form's fields: their choices, how the answers become a submission, and the words
a learner sees when an answer needs fixing. Pure: no request, no database.

Every field's `name` is also its `id` (the first radio of a group carries the bare id), so an
error summary link `#<name>` lands on the field.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import EmailStr, TypeAdapter, ValidationError

from intake.submission import (
    CONTROL_CHARACTERS,
    InvalidSubmission,
    NewConcern,
    parse_submission,
    sendable_address,
)
from intake.summary import derive_summary
from notifications.messages import QUESTIONS
from routing.model import Confidentiality, Frequency, Harm, LearnerGroup, RaisedBefore

DESCRIPTION_LIMIT = 5_000  # the web form's own limit (the service accepts more from email)
SHORT_TEXT_LIMIT = 200
NOT_LISTED = "not-listed"

# Form order: the error summary lists problems in the order the fields appear.
FIELDS = (
    "group",
    "organisation",
    "organisation-other",
    "site",
    "department",
    "department-other",
    "programme",
    "description",
    "frequency",
    "harm",
    "raised-before",
    "raised-with",
    "about-supervisor",
    "cannot-raise-locally",
    "pathway1-contact",
    "confidentiality",
    "name",
    "email",
)
SINGLE_LINE = (
    "organisation-other",
    "site",
    "department-other",
    "programme",
    "raised-with",
    "name",
    "email",
)
# What each answer is, for a message that must say which one to fix (the error summary lists
# the messages alone).
ANSWER_NAMES = {
    "organisation-other": "the name of your organisation",
    "site": "the site",
    "department-other": "the name of your department",
    "programme": "your programme or specialty",
    "raised-with": "who you raised it with",
    "name": "your name",
    "email": "your email address",
    "description": "what happened",
}


def unusual_characters(name: str) -> str:
    """The message for an answer with characters that cannot be kept, naming the answer."""
    return f"Remove the unusual characters from {ANSWER_NAMES.get(name, 'this answer')}"


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _question_choices(key: str) -> dict[str, str]:
    return {value: _capitalised(label) for value, label in QUESTIONS[key].choices}


GROUP_LABELS: dict[str, str] = {
    **_question_choices("learner_group"),
    "ahp": "Allied health professions student",
    "healthcare_science": "Healthcare science student or trainee",
    "support_workforce": "Support worker in training (for example, a healthcare or nursing "
    "associate apprentice)",
}
assert set(GROUP_LABELS) == {group.value for group in LearnerGroup}

FREQUENCY_LABELS = _question_choices("frequency")
assert set(FREQUENCY_LABELS) == {f.value for f in Frequency if f is not Frequency.NOT_ANSWERED}

HARM_LABELS: dict[str, str] = {
    **_question_choices("harm"),
    "minor": "No one was harmed and it is minor",
    "not_sure": "I'm not sure",
}
assert set(HARM_LABELS) == {h.value for h in Harm if h is not Harm.NOT_ANSWERED}

RAISED_BEFORE_LABELS = {
    RaisedBefore.NO.value: "No",
    RaisedBefore.PATHWAY1.value: "Yes, in my placement",
    RaisedBefore.PATHWAY1_AND_2.value: "Yes, in my placement and with my school or university",
}
YES_NO_LABELS = {"yes": "Yes", "no": "No"}
# Who deals with it in the placement (domain.md: a learner may always choose the guardian).
PATHWAY1_CONTACT_LABELS = {
    "supervisor": "My supervisor or clinical tutor",
    "speak_up_guardian": "The Freedom to Speak Up guardian",
}
PATHWAY1_CONTACT_HINTS = {
    "supervisor": "The usual people to deal with concerns in your placement.",
    "speak_up_guardian": (
        "Someone in your organisation, independent of your team, who supports people to speak "
        "up. Choose this if you would rather your supervisor or tutor did not handle it."
    ),
}

CONFIDENTIALITY_LABELS = {
    Confidentiality.NAMED.value: "Named",
    Confidentiality.CONFIDENTIAL.value: "Confidential",
    Confidentiality.ANONYMOUS.value: "Anonymous",
}
CONFIDENTIALITY_HINTS = {
    Confidentiality.NAMED.value: "The people handling your concern know who you are.",
    Confidentiality.CONFIDENTIAL.value: (
        "Only the regional quality team and the dean know who you are. Your placement and your "
        "school or university see the concern without your name: we take your name and email "
        "address out of what you write. Other details, such as your role or a shift, may still "
        "show who you are."
    ),
    Confidentiality.ANONYMOUS.value: (
        "We do not keep your name or contact details at all. You get a reference and a code to "
        "check on your concern here. Nobody can contact you, so give as much detail as you can."
    ),
}

PATHWAY_WORDS = {
    1: (
        "your placement: the department's supervisor or clinical tutor, or the organisation's "
        "Freedom to Speak Up guardian"
    ),
    2: "your school or university: your foundation or specialty school, or your university's "
    "placement lead",
    3: "NHS England: the region's postgraduate dean and quality team",
}

# What to say when the service's own validation finds a problem the form's checks did not.
_SERVICE_FIELDS: dict[str, tuple[str, str]] = {
    "learner": ("name", "Enter your name and email address, or choose anonymous"),
    "learner.name": ("name", "Enter your name"),
    "learner.email": (
        "email",
        "Enter an email address in the correct format, like name@example.nhs.uk",
    ),
    "learner.group": ("group", "Select which kind of learner you are"),
    "learner.programme": ("programme", "Programme or specialty must be 200 characters or fewer"),
    "placement": ("organisation", "Select your organisation, or enter its name"),
    "placement.organisation": ("organisation", "Select your organisation, or enter its name"),
    "placement.department": ("department", "Select your department, or enter its name"),
    "placement.site": ("site", "Site must be 200 characters or fewer"),
    "summary": ("description", "Enter what happened"),
    "description": ("description", "Enter what happened"),
    "frequency": ("frequency", "Select how often this happens"),
    "harm": ("harm", "Select whether anyone has been harmed or could be"),
    "raised_before": ("raised-before", "Select whether you have raised this before"),
    "about_pathway1_contact": (
        "about-supervisor",
        "Select yes if your concern is about your supervisor or tutor",
    ),
    "cannot_raise_locally": ("cannot-raise-locally", "Check this answer"),
    "pathway1_contact": (
        "pathway1-contact",
        "Select who you would like to deal with your concern",
    ),
    "confidentiality": ("confidentiality", "Select how you want your concern to be shared"),
}


@dataclass(frozen=True)
class Directory:
    """The placements a learner can pick: organisations, their sites and departments."""

    organisations: tuple[Mapping[str, Any], ...]

    @classmethod
    def of(cls, described: Mapping[str, Any]) -> Directory:
        return cls(tuple(described.get("organisations", ())))

    def organisations_listed(self) -> list[tuple[str, str]]:
        """(key, name) for every organisation: the key is the option's value, since two
        organisations may share a name."""
        return [(str(org["key"]), str(org["name"])) for org in self.organisations]

    def departments(self) -> list[Listed]:
        """Every department, with what tells it from another of the same name."""
        return [
            Listed(
                value=f"{org['key']}/{department['key']}",
                key=str(department["key"]),
                organisation_key=str(org["key"]),
                organisation=str(org["name"]),
                name=str(department["name"]),
                site=str(department.get("site") or ""),
            )
            for org in self.organisations
            for department in org.get("departments", ())
        ]


@dataclass(frozen=True)
class Listed:
    """A department as the form lists it."""

    value: str  # "<organisation key>/<department key>"
    key: str
    organisation_key: str
    organisation: str
    name: str
    site: str  # the site's name, when the directory gives the department one

    @property
    def text(self) -> str:
        return ", ".join(part for part in (self.name, self.site, self.organisation) if part)


@dataclass
class Outcome:
    """A valid concern, or the problems to show (field id to message) with the answers kept."""

    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    concern: NewConcern | None = None


def answers_of(form: Mapping[str, Any]) -> dict[str, str]:
    """The form's answers as strings (anything not a string, such as a file, is dropped)."""
    values: dict[str, str] = {}
    for name in FIELDS:
        value = form.get(name)
        values[name] = value if isinstance(value, str) else ""
    return values


def read(form: Mapping[str, Any], directory: Directory) -> Outcome:
    """Check the form's answers and turn them into a NewConcern, or say what to fix."""
    values = answers_of(form)
    errors: dict[str, str] = {}
    text = {name: "" if _looks_blank(values[name]) else values[name].strip() for name in FIELDS}
    # Browsers send a textarea's line breaks as CR LF, and the character count on the page
    # counts each as one character: so does the limit here.
    text["description"] = _one_line_break(text["description"])

    for name in SINGLE_LINE:
        if "\r" in values[name] or "\n" in values[name]:
            errors[name] = "Enter this on one line, without line breaks"
        elif CONTROL_CHARACTERS.search(values[name]):
            errors[name] = unusual_characters(name)
        elif len(text[name]) > SHORT_TEXT_LIMIT:
            errors[name] = f"This must be {SHORT_TEXT_LIMIT} characters or fewer"

    _choice(errors, text, "group", GROUP_LABELS, "Select which kind of learner you are")
    organisation = _organisation(errors, text, directory)
    department = _department(errors, text, directory, organisation)

    if not text["description"]:
        errors["description"] = "Enter what happened"
    elif len(text["description"]) > DESCRIPTION_LIMIT:
        errors["description"] = (
            f"What happened must be {DESCRIPTION_LIMIT:,} characters or fewer "
            f"(you have entered {len(text['description']):,})"
        )
    _choice(errors, text, "frequency", FREQUENCY_LABELS, "Select how often this happens")
    _choice(errors, text, "harm", HARM_LABELS, "Select whether anyone has been harmed or could be")
    _choice(
        errors,
        text,
        "raised-before",
        RAISED_BEFORE_LABELS,
        "Select whether you have raised this before",
    )
    _choice(
        errors,
        text,
        "about-supervisor",
        YES_NO_LABELS,
        "Select yes if your concern is about your supervisor or tutor",
    )
    if text["cannot-raise-locally"] not in ("", "yes"):
        errors["cannot-raise-locally"] = "Check this answer"
    if text["pathway1-contact"] not in ("", *PATHWAY1_CONTACT_LABELS):
        errors["pathway1-contact"] = "Select who you would like to deal with your concern"
    _choice(
        errors,
        text,
        "confidentiality",
        CONFIDENTIALITY_LABELS,
        "Select how you want your concern to be shared",
    )
    _identity(errors, text)

    description = text["description"]
    if text["raised-with"] and "raised-with" not in errors:
        description = f"{description}\n\nRaised before with: {text['raised-with']}"
    raw: dict[str, Any] = {
        "learner": _without_blanks(
            {
                "name": text["name"],
                "email": text["email"],
                "group": text["group"],
                "programme": text["programme"],
            }
        ),
        "placement": _without_blanks(
            {"organisation": organisation, "department": department, "site": text["site"]}
        ),
        "summary": derive_summary(text["description"]) or "",
        "description": description,
        "frequency": text["frequency"],
        "harm": text["harm"],
        "raised_before": text["raised-before"],
        "about_pathway1_contact": text["about-supervisor"] == "yes",
        "cannot_raise_locally": text["cannot-raise-locally"] == "yes",
        "pathway1_contact": text["pathway1-contact"] or "supervisor",
        "confidentiality": text["confidentiality"],
    }
    try:
        concern = parse_submission(raw)
    except InvalidSubmission as invalid:
        for name, problem in invalid.errors.items():
            field_id, message = _SERVICE_FIELDS.get(name, ("description", "Check your answers"))
            if field_id == "organisation" and "organisation-other" in errors:
                continue  # one problem, said once: the name of the organisation is missing
            if "control characters" in problem:
                message = unusual_characters(field_id)
            errors.setdefault(field_id, message)
        concern = None
    if errors:
        return Outcome(values=values, errors=in_form_order(errors))
    return Outcome(values=values, concern=concern)


# Characters that show nothing: whitespace, format characters (zero-width spaces, soft hyphens,
# byte-order marks) and the fillers some keyboards and apps insert as "blank" characters.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
_FILLERS = frozenset("\u2800\u3164\u115f\u1160\uffa0")


def _looks_blank(value: str) -> bool:
    """Whether an answer shows nothing on the page: such an answer counts as not given."""
    return all(
        unicodedata.category(character) in _INVISIBLE_CATEGORIES or character in _FILLERS
        for character in value
    )


def _one_line_break(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def in_form_order(errors: Mapping[str, str]) -> dict[str, str]:
    order = {name: index for index, name in enumerate(FIELDS)}
    return dict(sorted(errors.items(), key=lambda item: order.get(item[0], len(order))))


def _choice(
    errors: dict[str, str], text: Mapping[str, str], name: str, choices: Iterable[str], message: str
) -> None:
    if text[name] not in choices:
        errors.setdefault(name, message)


def _organisation(errors: dict[str, str], text: Mapping[str, str], directory: Directory) -> str:
    """The organisation's key when picked from the list, or the learner's words."""
    chosen, other = text["organisation"], text["organisation-other"]
    if chosen == NOT_LISTED or (not chosen and other):
        if not other:
            errors.setdefault("organisation-other", "Enter the name of your organisation")
        return other
    if not chosen:
        errors.setdefault(
            "organisation", "Select your organisation, or enter its name if it is not listed"
        )
        return ""
    listed = directory.organisations_listed()
    if chosen in dict(listed):
        return chosen
    # A form drawn before options were valued by key names the organisation; a name only one
    # organisation has still says which.
    named = [key for key, name in listed if name == chosen]
    if len(named) == 1:
        return named[0]
    errors.setdefault("organisation", "Select your organisation from the list")
    return ""


def _department(
    errors: dict[str, str], text: Mapping[str, str], directory: Directory, organisation: str
) -> str:
    """The department's key when picked from the list (at the organisation picked), or the
    learner's words."""
    chosen, other = text["department"], text["department-other"]
    if chosen == NOT_LISTED or (not chosen and other):
        if not other:
            errors.setdefault("department-other", "Enter the name of your department or ward")
        return other
    if not chosen:
        errors.setdefault(
            "department", "Select your department or ward, or enter it if it is not listed"
        )
        return ""
    for listed in directory.departments():
        if listed.value == chosen:
            if organisation and organisation not in (
                listed.organisation_key,
                listed.organisation,
            ):
                errors.setdefault(
                    "department",
                    f"The department you selected is at {listed.organisation}: select one at "
                    "your organisation, or enter it if it is not listed",
                )
            return listed.key
    errors.setdefault("department", "Select your department or ward from the list")
    return ""


def _identity(errors: dict[str, str], text: Mapping[str, str]) -> None:
    choice = text["confidentiality"]
    if choice == Confidentiality.ANONYMOUS.value:
        for name, what in (("name", "name"), ("email", "email address")):
            if text[name]:
                errors.setdefault(
                    name,
                    f"Remove your {what}, or choose named or confidential: we keep no contact "
                    "details for an anonymous concern",
                )
    elif choice in CONFIDENTIALITY_LABELS:
        if not text["name"]:
            errors.setdefault("name", "Enter your name")
        if not text["email"]:
            errors.setdefault("email", "Enter your email address, so we can reply")


_EMAIL = TypeAdapter(EmailStr)


def read_line(raw: object) -> tuple[str, str | None]:
    """One line entered on its own, checked as the form checks its short answers: what was
    entered, stripped, and the error to show, if any (none for a blank)."""
    value = raw if isinstance(raw, str) else ""
    text = "" if _looks_blank(value) else value.strip()
    if "\r" in value or "\n" in value:
        return text, "Enter this on one line, without line breaks"
    if CONTROL_CHARACTERS.search(value):
        return text, "Remove the unusual characters from this answer"
    if len(text) > SHORT_TEXT_LIMIT:
        return text, f"This must be {SHORT_TEXT_LIMIT} characters or fewer"
    return text, None


def read_email(raw: object) -> tuple[str, str | None]:
    """An email address entered on its own (a corrected one), checked as the form checks the
    form's: what was entered, stripped (the address as it is stored when there is no error), and
    the error to show, if any."""
    text, error = read_line(raw)
    if error:
        return text, error
    if not text:
        return text, "Enter your email address, so we can reply"
    try:
        return sendable_address(str(_EMAIL.validate_python(text))), None
    except (ValidationError, ValueError):
        return text, _SERVICE_FIELDS["learner.email"][1]


def _without_blanks(values: Mapping[str, str]) -> dict[str, str]:
    return {key: value for key, value in values.items() if value}
