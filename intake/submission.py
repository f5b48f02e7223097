"""What a learner sends, validated the same way for every channel, with errors named by field."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from notifications.email import UnusableAddress, plain_address
from routing.model import Confidentiality, Frequency, Harm, LearnerGroup, RaisedBefore
from storage.tables import SUMMARY_MAX

DESCRIPTION_MAX = 20_000


class Channel(StrEnum):
    EMAIL = "email"
    WEB = "web"
    SLACK = "slack"
    TEAMS = "teams"
    CLI = "cli"


@dataclass(frozen=True)
class LearnerDetails:
    name: str | None = None
    email: str | None = None
    group: LearnerGroup | None = None
    programme: str | None = None
    slack_user_id: str | None = None
    teams_user_id: str | None = None


@dataclass(frozen=True)
class PlacementDetails:
    organisation: str | None  # None: not known yet (an email that does not name it)
    department: str | None = None
    site: str | None = None


@dataclass(frozen=True)
class NewConcern:
    """A valid concern as every channel hands it to `submit_concern`."""

    placement: PlacementDetails
    summary: str
    description: str
    frequency: Frequency
    harm: Harm
    raised_before: RaisedBefore
    confidentiality: Confidentiality
    learner: LearnerDetails
    about_pathway1_contact: bool = False
    cannot_raise_locally: bool = False
    prefers_speak_up_guardian: bool = False
    # Why the channel decided something the learner did not say (kept in the audit trail).
    intake_notes: tuple[str, ...] = ()
    # Other names the learner goes by in what they sent, taken out of a confidential concern's
    # words with theirs: an email's display name as written ("Jane Smith (jane@nhs.net)").
    also_named: tuple[str, ...] = ()


class InvalidSubmission(ValueError):
    """The submission has bad fields; `errors` maps each dotted field name to what is wrong."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{name}: {problem}" for name, problem in self.errors.items()))


def _text(max_length: int) -> Any:
    return Field(min_length=1, max_length=max_length)


class _Learner(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(default=None, max_length=200)
    email: EmailStr | None = None
    group: LearnerGroup | None = None
    programme: str | None = Field(default=None, max_length=200)

    @field_validator("email")
    @classmethod
    def _mail_reaches_it(cls, value: str | None) -> str | None:
        return None if value is None else sendable_address(value)


def sendable_address(address: str) -> str:
    """A valid address as given, refused (ValueError) when our mail could never be sent to it:
    an internationalised local part ('jöhn@...') is valid, but every email to it would fail, and
    the learner would never hear back."""
    try:
        plain_address(address)
    except UnusableAddress:
        raise ValueError("our email cannot be sent to this address") from None
    return address


class _Placement(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    organisation: str = _text(200)
    department: str | None = Field(default=None, max_length=200)
    site: str | None = Field(default=None, max_length=200)


class _Submission(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    learner: _Learner | None = None
    placement: _Placement
    summary: str = _text(SUMMARY_MAX)
    description: str = _text(DESCRIPTION_MAX)
    frequency: Frequency
    harm: Harm
    raised_before: RaisedBefore
    about_pathway1_contact: StrictBool = False
    cannot_raise_locally: StrictBool = False
    pathway1_contact: str = Field(default="supervisor", pattern="^(supervisor|speak_up_guardian)$")
    confidentiality: Confidentiality

    @field_validator("frequency", "harm")
    @classmethod
    def _answered(cls, value: Frequency | Harm) -> Frequency | Harm:
        # 'not answered' is what an email carries until the learner replies; a form must answer.
        if value.value == "not_answered":
            choices = ", ".join(v.value for v in type(value) if v.value != "not_answered")
            raise ValueError(f"choose one of: {choices}")
        return value

    @model_validator(mode="after")
    def _identity_fits_confidentiality(self) -> _Submission:
        problems: dict[str, str] = {}
        learner = self.learner
        if self.confidentiality is Confidentiality.ANONYMOUS:
            if learner is not None and learner.name:
                problems["learner.name"] = (
                    "leave it out: nothing identifying is kept for an anonymous concern"
                )
            if learner is not None and learner.email:
                problems["learner.email"] = (
                    "leave it out: nothing identifying is kept for an anonymous concern"
                )
        else:
            choice = self.confidentiality.value
            if learner is None:
                problems["learner"] = f"required for a {choice} concern (name, email and group)"
            else:
                if not learner.name:
                    problems["learner.name"] = f"required for a {choice} concern"
                if not learner.email:
                    problems["learner.email"] = f"required for a {choice} concern, so we can reply"
                if learner.group is None:
                    problems["learner.group"] = (
                        "required: it decides which school or university is told"
                    )
        if problems:
            raise _FieldProblems(problems)
        return self


class _FieldProblems(ValueError):
    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems.values()))


def parse_submission(raw: Any) -> NewConcern:
    """Validate raw input (JSON, form fields) into a NewConcern; InvalidSubmission if not."""
    if not isinstance(raw, Mapping):
        raise InvalidSubmission({"(top level)": "must be a JSON object of the concern's fields"})
    unprintable = dict(_control_characters(raw))
    try:
        valid = _Submission.model_validate(dict(raw))
    except ValidationError as error:
        raise InvalidSubmission({**_field_errors(error), **unprintable}) from None
    if unprintable:
        raise InvalidSubmission(unprintable)
    learner = valid.learner or _Learner()
    anonymous = valid.confidentiality is Confidentiality.ANONYMOUS
    return NewConcern(
        placement=PlacementDetails(
            organisation=valid.placement.organisation,
            department=valid.placement.department or None,
            site=valid.placement.site or None,
        ),
        summary=valid.summary,
        description=valid.description,
        frequency=valid.frequency,
        harm=valid.harm,
        raised_before=valid.raised_before,
        confidentiality=valid.confidentiality,
        learner=LearnerDetails(
            name=None if anonymous else learner.name,
            email=None if anonymous else (str(learner.email) if learner.email else None),
            group=learner.group,
            programme=learner.programme or None,
        ),
        about_pathway1_contact=valid.about_pathway1_contact,
        cannot_raise_locally=valid.cannot_raise_locally,
        prefers_speak_up_guardian=valid.pathway1_contact == "speak_up_guardian",
    )


# Text may hold line breaks and tabs; other control characters are never typed by a person and
# some (NUL) cannot even be stored by PostgreSQL.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


# Fields that end up in one line of a message (and some in an email header): no line breaks.
ONE_LINE_FIELDS = frozenset(
    {
        "summary",
        "learner.name",
        "learner.email",
        "learner.programme",
        "placement.organisation",
        "placement.department",
        "placement.site",
    }
)


def _control_characters(value: Any, name: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str) and CONTROL_CHARACTERS.search(value):
        yield name or "(top level)", "contains control characters; remove them"
    elif isinstance(value, str) and name in ONE_LINE_FIELDS and ("\r" in value or "\n" in value):
        yield name, "must be one line; remove the line breaks"
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _control_characters(item, f"{name}.{key}" if name else str(key))


def _field_errors(error: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for item in error.errors():
        context = item.get("ctx") or {}
        inner = context.get("error")
        if isinstance(inner, _FieldProblems):
            errors.update(inner.problems)
            continue
        name = ".".join(str(part) for part in item["loc"]) or "(top level)"
        errors.setdefault(name, _plain(item))
    return errors


def _plain(item: Mapping[str, Any]) -> str:
    kind = item["type"]
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "not a field of a concern (check the spelling)"
    if kind == "string_too_short":
        return "must not be blank"
    return str(item["msg"]).removeprefix("Value error, ")
