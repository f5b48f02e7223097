"""The contact directory: read and check a directory YAML file, load it into the tables, show it.

The file format is documented in docs/directory.md. Reading is pure (text in, frozen specs out)
and reports every problem with its line; loading upserts rows by their keys in the caller's
transaction and marks rows the file no longer holds inactive, never deleting them.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import yaml
from sqlmodel import Session, SQLModel, col, select
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from routing.model import LearnerGroup, Role
from storage.db import serialise
from storage.tables import (
    Contact,
    Department,
    DirectoryLoad,
    Organisation,
    ProgrammeBody,
    Region,
    Site,
)

ORGANISATION_KINDS = ("nhs_trust", "gp_practice", "private_provider", "other")
SCHOOL_KINDS = (Role.FOUNDATION_SCHOOL.value, Role.SPECIALTY_SCHOOL.value)
LEARNER_GROUPS = tuple(group.value for group in LearnerGroup)
# What a school is responsible for follows from its kind; providers list their groups.
SCHOOL_LEARNER_GROUPS = {
    Role.FOUNDATION_SCHOOL.value: (LearnerGroup.FOUNDATION,),
    Role.SPECIALTY_SCHOOL.value: (LearnerGroup.SPECIALTY,),
}

_KEY = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_EMAIL = re.compile(r"^[^@\s]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}$")
_SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_NULL_TAG = "tag:yaml.org,2002:null"
_BOOL_TAG = "tag:yaml.org,2002:bool"


# --- what a directory file says ---------------------------------------------------------------


@dataclass(frozen=True)
class ContactSpec:
    """A person or mailbox; `lead` marks who is told first among several in the same role."""

    name: str
    email: str
    slack_user_id: str | None = None
    teams_user_id: str | None = None
    lead: bool = False


@dataclass(frozen=True)
class SiteSpec:
    key: str
    name: str
    address: str | None = None


@dataclass(frozen=True)
class DepartmentSpec:
    key: str
    name: str
    site: str | None
    supervisors: tuple[ContactSpec, ...]
    clinical_tutors: tuple[ContactSpec, ...]


@dataclass(frozen=True)
class OrganisationSpec:
    """A placement provider with its pathway-1 contacts."""

    key: str
    name: str
    kind: str
    speak_up_guardians: tuple[ContactSpec, ...]
    clinical_tutors: tuple[ContactSpec, ...]  # organisation-wide (department_id None)
    sites: tuple[SiteSpec, ...]
    departments: tuple[DepartmentSpec, ...]


@dataclass(frozen=True)
class BodySpec:
    """A pathway-2 body: a foundation school, a specialty school or an education provider."""

    key: str
    name: str
    kind: Role  # FOUNDATION_SCHOOL, SPECIALTY_SCHOOL or EDUCATION_PROVIDER
    lead: ContactSpec
    mailbox: str
    learner_groups: tuple[LearnerGroup, ...]
    programmes: tuple[str, ...]  # lower-case words; a school's specialties
    placement_organisations: tuple[str, ...] = ()


@dataclass(frozen=True)
class RegionSpec:
    key: str
    name: str
    escalation_mailbox: str
    dean: ContactSpec
    quality_team: ContactSpec
    organisations: tuple[OrganisationSpec, ...]
    schools: tuple[BodySpec, ...]
    education_providers: tuple[BodySpec, ...]

    @property
    def bodies(self) -> tuple[BodySpec, ...]:
        return self.schools + self.education_providers


@dataclass(frozen=True)
class DirectorySpec:
    regions: tuple[RegionSpec, ...]


@dataclass(frozen=True)
class DirectoryProblem:
    line: int | None
    message: str

    def format(self, source: str) -> str:
        if self.line is None:
            return f"{source}: {self.message}"
        return f"{source}, line {self.line}: {self.message}"


class DirectoryError(ValueError):
    """A directory file that cannot be loaded; the message lists every problem, one per line."""

    def __init__(self, source: str, problems: Iterable[DirectoryProblem]) -> None:
        self.source = source
        self.problems = tuple(sorted(problems, key=lambda problem: problem.line or 0))
        super().__init__("\n".join(problem.format(source) for problem in self.problems))


def contact_key(role: Role, scope_key: str, email: str) -> str:
    """The stable key of a contact row: one per person per role per scope."""
    return f"{role.value}:{scope_key}:{email.strip().lower()}"


# --- reading YAML nodes, with line numbers ----------------------------------------------------


def _line(node: Node) -> int:
    return node.start_mark.line + 1


@dataclass
class _Map:
    """A YAML mapping whose keys were checked; a key it lacks reads as absent."""

    where: str
    line: int
    entries: dict[str, tuple[Node, Node]] = field(default_factory=dict)

    def value(self, key: str) -> Node | None:
        entry = self.entries.get(key)
        return entry[1] if entry else None

    def key_line(self, key: str) -> int:
        return _line(self.entries[key][0])

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key


class _Reader:
    """Reads checked values out of YAML nodes and records every problem with its line.

    A getter that cannot read a value records why and returns a placeholder ("" or nothing), so
    reading goes on and finds every problem; `parse_directory` raises before a placeholder leaves.
    """

    def __init__(self) -> None:
        self.problems: list[DirectoryProblem] = []
        self._first_lines: dict[tuple[str, ...], int] = {}

    def report(self, line: int, where: str, problem: str) -> None:
        self.problems.append(DirectoryProblem(line, f"{where}: {problem}" if where else problem))

    def claim(self, name: tuple[str, ...], line: int, where: str, problem: str) -> None:
        """Record a name that must be unique; a second use is a problem."""
        first = self._first_lines.get(name)
        if first is None:
            self._first_lines[name] = line
        else:
            self.report(line, where, f"{problem} (first used on line {first})")

    def mapping(
        self, node: Node, where: str, *, required: Sequence[str], optional: Sequence[str] = ()
    ) -> _Map:
        result = _Map(where, _line(node))
        if not isinstance(node, MappingNode):
            what = "must be a mapping" if where else "the file must be a mapping"
            self.report(_line(node), where, f"{what} with the keys: {', '.join(required)}")
            return result
        allowed = (*required, *optional)
        for key_node, value_node in node.value:
            self._add_entry(result, key_node, value_node, allowed)
        for name in required:
            if name not in result.entries:
                self.report(result.line, where, f"missing required key '{name}'")
        return result

    def _add_entry(self, into: _Map, key_node: Node, value: Node, allowed: Sequence[str]) -> None:
        name = key_node.value if isinstance(key_node, ScalarNode) else None
        if name is None:
            self.report(_line(key_node), into.where, "keys must be plain words")
        elif name in into.entries:
            self.report(_line(key_node), into.where, f"key '{name}' appears more than once")
        elif name not in allowed:
            self.report(_line(key_node), into.where, _unknown_key(name, allowed))
        else:
            into.entries[name] = (key_node, value)

    def items(self, parent: _Map, key: str) -> list[tuple[Node, str]]:
        """The entries of a list, each with its path; nothing when absent or not a list."""
        node = parent.value(key)
        if node is None:
            return []
        if not isinstance(node, SequenceNode):
            self.report(parent.key_line(key), parent.where, f"'{key}' must be a list")
            return []
        if not node.value:
            self.report(parent.key_line(key), parent.where, f"'{key}' must not be an empty list")
        return [(item, f"{parent.path(key)}[{index}]") for index, item in enumerate(node.value)]

    def scalar(self, node: Node, where: str, label: str = "") -> str:
        """The text of a scalar, read as written: YAML's guesses (yes, 1.0, null) do not apply."""
        prefix = f"{label} " if label else ""
        if not isinstance(node, ScalarNode):
            self.report(_line(node), where, f"{prefix}must be text, not a list or mapping")
            return ""
        value = "" if node.tag == _NULL_TAG else str(node.value).strip()
        if not value:
            self.report(_line(node), where, f"{prefix}must not be empty")
        return value

    def optional_text(self, parent: _Map, key: str) -> str | None:
        node = parent.value(key)
        if node is None:
            return None
        return self.scalar(node, parent.where, f"'{key}'")

    def text(self, parent: _Map, key: str) -> str:
        return self.optional_text(parent, key) or ""

    def email(self, parent: _Map, key: str) -> str:
        value = self.text(parent, key)
        if value and not _EMAIL.match(value):
            problem = f"'{key}' is not an email address: '{value}'"
            self.report(parent.key_line(key), parent.where, problem)
        return value

    def key(self, parent: _Map, *, namespace: tuple[str, ...], what: str) -> str:
        """The entry's `key`, checked for shape and for uniqueness within `namespace`."""
        value = self.text(parent, "key")
        if not value:
            return value
        line = parent.key_line("key")
        if not _KEY.match(value):
            problem = (
                f"key '{value}' must be lower-case letters, digits and hyphens, like 'north-vale'"
            )
            self.report(line, parent.where, problem)
        self.claim((*namespace, value), line, parent.where, f"duplicate {what} key '{value}'")
        return value

    def choice(self, parent: _Map, key: str, choices: Sequence[str], what: str) -> str:
        value = self.text(parent, key)
        if value and value not in choices:
            self.report(parent.key_line(key), parent.where, _unknown_choice(what, value, choices))
        return value

    def flag(self, parent: _Map, key: str) -> bool:
        node = parent.value(key)
        if node is None:
            return False
        if isinstance(node, ScalarNode) and node.tag == _BOOL_TAG:
            return str(node.value).lower() in ("true", "yes", "on")
        self.report(parent.key_line(key), parent.where, f"'{key}' must be true or false")
        return False

    def item_texts(self, parent: _Map, key: str) -> list[tuple[str, int, str]]:
        """Each entry of a list of text as (text, line, path), empty entries left out."""
        found = []
        for item, where in self.items(parent, key):
            value = self.scalar(item, where)
            if value:
                found.append((value, _line(item), where))
        return found

    def words(self, parent: _Map, key: str) -> tuple[str, ...]:
        """A list of words, lower-cased with spaces tidied, each once."""
        words = (" ".join(value.lower().split()) for value, _, _ in self.item_texts(parent, key))
        return tuple(dict.fromkeys(words))


def _unknown_key(name: str, allowed: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"allowed here: {', '.join(allowed)}"
    return f"unknown key '{name}' ({hint})"


def _unknown_choice(what: str, value: str, choices: Sequence[str]) -> str:
    return f"unknown {what} '{value}' (choose from: {', '.join(choices)})"


# --- the file, section by section -------------------------------------------------------------

_PERSON_REQUIRED = ("name", "email")
_PERSON_OPTIONAL = ("slack_user_id", "teams_user_id")
_NOBODY = ContactSpec(name="", email="")


def parse_directory(text: str, *, source: str = "<string>") -> DirectorySpec:
    """Read and check a directory file; every problem found is reported in one DirectoryError."""
    root = _compose(text, source)
    reader = _Reader()
    spec = _directory(reader, root)
    if reader.problems:
        raise DirectoryError(source, reader.problems)
    return spec


def _compose(text: str, source: str) -> Node:
    """The YAML node tree (safe: nodes are never turned into objects), or the syntax error."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise DirectoryError(source, [_syntax_problem(exc, text)]) from exc
    except yaml.YAMLError as exc:
        problem = DirectoryProblem(None, f"not valid YAML: {' '.join(str(exc).split())}")
        raise DirectoryError(source, [problem]) from exc
    if root is None:
        raise DirectoryError(source, [DirectoryProblem(1, "the file is empty: it needs 'regions'")])
    return root


def _syntax_problem(exc: yaml.MarkedYAMLError, text: str) -> DirectoryProblem:
    mark = exc.problem_mark or exc.context_mark
    if mark is not None and mark.index >= len(text) and exc.context_mark is not None:
        # Noticed at the end of the file (an unclosed bracket or quote): name where it opened.
        mark = exc.context_mark
    message = f"invalid YAML: {exc.problem or exc.context}"
    if exc.problem and exc.context and exc.context_mark is not None:
        message += f" ({exc.context} started on line {exc.context_mark.line + 1})"
    return DirectoryProblem(mark.line + 1 if mark is not None else None, message)


def _directory(reader: _Reader, root: Node) -> DirectorySpec:
    document = reader.mapping(root, "", required=("regions",))
    regions = reader.items(document, "regions")
    return DirectorySpec(regions=tuple(_region(reader, node, where) for node, where in regions))


def _region(reader: _Reader, node: Node, where: str) -> RegionSpec:
    region = reader.mapping(
        node,
        where,
        required=("key", "name", "escalation_mailbox", "dean", "quality_team"),
        optional=("organisations", "schools", "education_providers"),
    )
    key = reader.key(region, namespace=("region",), what="region")
    organisations = tuple(
        _organisation(reader, item, item_where)
        for item, item_where in reader.items(region, "organisations")
    )
    organisation_keys = [organisation.key for organisation in organisations]
    return RegionSpec(
        key=key,
        name=reader.text(region, "name"),
        escalation_mailbox=reader.email(region, "escalation_mailbox"),
        dean=_one_person(reader, region, "dean"),
        quality_team=_one_person(reader, region, "quality_team"),
        organisations=organisations,
        schools=tuple(
            _school(reader, item, item_where)
            for item, item_where in reader.items(region, "schools")
        ),
        education_providers=tuple(
            _education_provider(reader, item, item_where, organisation_keys)
            for item, item_where in reader.items(region, "education_providers")
        ),
    )


def _organisation(reader: _Reader, node: Node, where: str) -> OrganisationSpec:
    organisation = reader.mapping(
        node,
        where,
        required=("key", "name", "kind", "speak_up_guardian"),
        optional=("clinical_tutor", "sites", "departments"),
    )
    key = reader.key(organisation, namespace=("organisation",), what="organisation")
    sites = tuple(
        _site(reader, item, item_where, organisation_path=where)
        for item, item_where in reader.items(organisation, "sites")
    )
    context = _OrganisationContext(
        key=key,
        path=where,
        site_keys=tuple(site.key for site in sites),
        has_clinical_tutor=organisation.value("clinical_tutor") is not None,
    )
    return OrganisationSpec(
        key=key,
        name=reader.text(organisation, "name"),
        kind=reader.choice(organisation, "kind", ORGANISATION_KINDS, "organisation kind"),
        speak_up_guardians=_people(reader, organisation, "speak_up_guardian", one_allowed=True),
        clinical_tutors=_people(reader, organisation, "clinical_tutor", one_allowed=True),
        sites=sites,
        departments=tuple(
            _department(reader, item, item_where, context)
            for item, item_where in reader.items(organisation, "departments")
        ),
    )


@dataclass(frozen=True)
class _OrganisationContext:
    """What a department is checked against: its organisation's key, sites and tutor."""

    key: str
    path: str  # where the organisation is in the file: its departments' keys are unique there
    site_keys: tuple[str, ...]
    has_clinical_tutor: bool


def _site(reader: _Reader, node: Node, where: str, *, organisation_path: str) -> SiteSpec:
    site = reader.mapping(node, where, required=("key", "name"), optional=("address",))
    return SiteSpec(
        # Unique within the organisation's entry, so a duplicate organisation is reported once.
        key=reader.key(site, namespace=("site", organisation_path), what="site"),
        name=reader.text(site, "name"),
        address=reader.optional_text(site, "address"),
    )


def _department(
    reader: _Reader, node: Node, where: str, organisation: _OrganisationContext
) -> DepartmentSpec:
    department = reader.mapping(
        node,
        where,
        required=("key", "name"),
        optional=("site", "supervisors", "clinical_tutor"),
    )
    site = reader.optional_text(department, "site")
    if site and site not in organisation.site_keys:
        known = ", ".join(organisation.site_keys) or "none listed"
        problem = f"unknown site '{site}' (sites of organisation '{organisation.key}': {known})"
        reader.report(department.key_line("site"), where, problem)
    if department.value("clinical_tutor") is None and not organisation.has_clinical_tutor:
        problem = "no clinical tutor: give the department or its organisation a 'clinical_tutor'"
        reader.report(department.line, where, problem)
    return DepartmentSpec(
        key=reader.key(department, namespace=("department", organisation.path), what="department"),
        name=reader.text(department, "name"),
        site=site,
        supervisors=_people(reader, department, "supervisors", one_allowed=False),
        clinical_tutors=_people(reader, department, "clinical_tutor", one_allowed=True),
    )


def _school(reader: _Reader, node: Node, where: str) -> BodySpec:
    school = reader.mapping(
        node,
        where,
        required=("key", "kind", "name", "lead", "mailbox"),
        optional=("specialties",),
    )
    kind = reader.choice(school, "kind", SCHOOL_KINDS, "school kind")
    specialties = reader.words(school, "specialties")
    if kind == Role.SPECIALTY_SCHOOL and school.value("specialties") is None:
        problem = "a specialty school needs 'specialties': the programme words it covers"
        reader.report(school.line, where, problem)
    if kind == Role.FOUNDATION_SCHOOL and school.value("specialties") is not None:
        problem = "'specialties' is only for specialty schools"
        reader.report(school.key_line("specialties"), where, problem)
    return BodySpec(
        key=_body_key(reader, school),
        name=reader.text(school, "name"),
        kind=Role(kind) if kind in SCHOOL_KINDS else Role.FOUNDATION_SCHOOL,
        lead=_one_person(reader, school, "lead"),
        mailbox=reader.email(school, "mailbox"),
        learner_groups=SCHOOL_LEARNER_GROUPS.get(kind, ()),
        programmes=specialties,
    )


def _education_provider(
    reader: _Reader, node: Node, where: str, organisation_keys: Sequence[str]
) -> BodySpec:
    provider = reader.mapping(
        node,
        where,
        required=("key", "name", "lead", "mailbox", "learner_groups"),
        optional=("programmes", "placement_organisations"),
    )
    return BodySpec(
        key=_body_key(reader, provider),
        name=reader.text(provider, "name"),
        kind=Role.EDUCATION_PROVIDER,
        lead=_one_person(reader, provider, "lead"),
        mailbox=reader.email(provider, "mailbox"),
        learner_groups=_learner_groups(reader, provider),
        programmes=reader.words(provider, "programmes"),
        placement_organisations=_placements(reader, provider, organisation_keys),
    )


def _body_key(reader: _Reader, body: _Map) -> str:
    # Schools and providers share one namespace: ProgrammeBody.key is unique.
    return reader.key(body, namespace=("body",), what="school or education provider")


def _learner_groups(reader: _Reader, provider: _Map) -> tuple[LearnerGroup, ...]:
    groups: list[LearnerGroup] = []
    for value, line, where in reader.item_texts(provider, "learner_groups"):
        if value in LEARNER_GROUPS:
            groups.append(LearnerGroup(value))
        else:
            reader.report(line, where, _unknown_choice("learner group", value, LEARNER_GROUPS))
    return tuple(dict.fromkeys(groups))


def _placements(
    reader: _Reader, provider: _Map, organisation_keys: Sequence[str]
) -> tuple[str, ...]:
    keys: list[str] = []
    for value, line, where in reader.item_texts(provider, "placement_organisations"):
        if value in organisation_keys:
            keys.append(value)
        else:
            known = ", ".join(organisation_keys) or "none listed"
            reader.report(line, where, f"unknown organisation '{value}' in this region ({known})")
    return tuple(dict.fromkeys(keys))


def _person(reader: _Reader, node: Node, where: str, *, may_lead: bool) -> ContactSpec:
    optional = (*_PERSON_OPTIONAL, "lead") if may_lead else _PERSON_OPTIONAL
    person = reader.mapping(node, where, required=_PERSON_REQUIRED, optional=optional)
    slack_user_id = reader.optional_text(person, "slack_user_id")
    if slack_user_id and not _SLACK_USER_ID.match(slack_user_id):
        problem = f"'slack_user_id' must be a Slack member ID like U012AB3CD, not '{slack_user_id}'"
        reader.report(person.key_line("slack_user_id"), where, problem)
    return ContactSpec(
        name=reader.text(person, "name"),
        email=reader.email(person, "email"),
        slack_user_id=slack_user_id,
        teams_user_id=reader.optional_text(person, "teams_user_id"),
        lead=reader.flag(person, "lead"),
    )


def _one_person(reader: _Reader, parent: _Map, key: str) -> ContactSpec:
    """A single contact (the dean, a body's lead): the only one in its role, so the lead."""
    node = parent.value(key)
    if node is None:
        return _NOBODY
    if not isinstance(node, MappingNode):
        reader.report(parent.key_line(key), parent.where, f"'{key}' must be a mapping")
        return _NOBODY
    return replace(_person(reader, node, parent.path(key), may_lead=False), lead=True)


def _people(
    reader: _Reader, parent: _Map, key: str, *, one_allowed: bool
) -> tuple[ContactSpec, ...]:
    """A list of contacts (or, where allowed, one); exactly one of them ends up the lead."""
    node = parent.value(key)
    if node is None:
        return ()
    if one_allowed and isinstance(node, MappingNode):
        return (replace(_person(reader, node, parent.path(key), may_lead=False), lead=True),)
    if one_allowed and not isinstance(node, SequenceNode):
        problem = f"'{key}' must be a person (name, email) or a list of people"
        reader.report(parent.key_line(key), parent.where, problem)
        return ()
    people: list[ContactSpec] = []
    first_lines: dict[str, int] = {}
    lead_line: int | None = None
    for item, where in reader.items(parent, key):
        person = _person(reader, item, where, may_lead=True)
        email = person.email.lower()
        if email and email in first_lines:
            problem = f"'{person.email}' is listed twice (first on line {first_lines[email]})"
            reader.report(_line(item), where, problem)
        first_lines.setdefault(email, _line(item))
        if person.lead and lead_line is not None:
            problem = f"only one person here can be the lead (line {lead_line} already is)"
            reader.report(_line(item), where, problem)
        elif person.lead:
            lead_line = _line(item)
        people.append(person)
    if people and lead_line is None:
        people[0] = replace(people[0], lead=True)
    return tuple(people)


# --- loading into the tables ------------------------------------------------------------------

TABLES = ("regions", "organisations", "sites", "departments", "programme_bodies", "contacts")


@dataclass
class TableChanges:
    added: int = 0
    updated: int = 0
    deactivated: int = 0


@dataclass
class LoadSummary:
    """What one directory load changed, table by table."""

    source: str
    sha256: str
    tables: dict[str, TableChanges] = field(
        default_factory=lambda: {name: TableChanges() for name in TABLES}
    )

    @property
    def changed(self) -> bool:
        return any(c.added or c.updated or c.deactivated for c in self.tables.values())

    def as_dict(self) -> dict[str, Any]:
        tables = {name: asdict(changes) for name, changes in self.tables.items()}
        return {"source": self.source, "sha256": self.sha256, "tables": tables}

    def as_text(self) -> str:
        lines = [f"Loaded {self.source} (sha256 {self.sha256[:12]})"]
        for name, c in self.tables.items():
            counts = f"{c.added} added, {c.updated} updated, {c.deactivated} deactivated"
            lines.append(f"  {name}: {counts}")
        return "\n".join(lines)


def load_directory(
    session: Session, spec: DirectorySpec, *, source: str, sha256: str, now: datetime
) -> LoadSummary:
    """Upsert the directory by key in the caller's transaction; rows the file lacks go inactive."""
    serialise(session, "directory")
    summary = LoadSummary(source=source, sha256=sha256)
    loader = _Loader(session, summary)
    for region in spec.regions:
        loader.region(region)
    loader.deactivate_the_rest()
    session.add(DirectoryLoad(loaded_at=now, source=source, sha256=sha256))
    session.flush()
    return summary


def load_directory_file(session: Session, path: Path, *, now: datetime) -> LoadSummary:
    """Read, check and load a directory file (see load_directory)."""
    source = str(path)
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise DirectoryError(
            source, [DirectoryProblem(None, f"cannot read: {exc.strerror}")]
        ) from exc
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problem = DirectoryProblem(None, "not UTF-8 text")
        raise DirectoryError(source, [problem]) from exc
    spec = parse_directory(text, source=source)
    sha256 = hashlib.sha256(content).hexdigest()
    return load_directory(session, spec, source=source, sha256=sha256, now=now)


def has_directory(session: Session) -> bool:
    """Whether a directory was ever loaded into this database."""
    return session.exec(select(DirectoryLoad.id).limit(1)).first() is not None


def example_directory_path() -> Path:
    """The shipped example region, the directory a fresh installation starts with."""
    return Path(__file__).with_name("example_region.yaml")


_Row = TypeVar("_Row", bound=SQLModel)


class _Table(Generic[_Row]):
    """One table's rows by natural key: upsert what the file holds, then deactivate the rest."""

    def __init__(
        self,
        session: Session,
        model: type[_Row],
        natural_key: Callable[[_Row], Hashable],
        changes: TableChanges,
    ) -> None:
        self._session = session
        self._model = model
        self._changes = changes
        self._rows = {natural_key(row): row for row in session.exec(select(model))}
        self._seen: set[Hashable] = set()

    def put(self, natural_key: Hashable, **values: Any) -> _Row:
        values["active"] = True
        row = self._rows.get(natural_key)
        if row is None:
            row = self._model(**values)
            self._session.add(row)
            self._rows[natural_key] = row
            self._changes.added += 1
        elif _assign(row, values):
            self._changes.updated += 1
        self._seen.add(natural_key)
        return row

    def deactivate_the_rest(self) -> None:
        for natural_key, row in self._rows.items():
            if natural_key not in self._seen and _assign(row, {"active": False}):
                self._changes.deactivated += 1


def _assign(row: SQLModel, values: dict[str, Any]) -> bool:
    """Set the values that differ; True when any did."""
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed


class _HasId(Protocol):
    id: int | None


class _Loader:
    """Writes one directory's rows, parents before children (children need their ids)."""

    def __init__(self, session: Session, summary: LoadSummary) -> None:
        changes = summary.tables
        self._session = session
        self._regions = _Table(session, Region, lambda row: row.key, changes["regions"])
        self._organisations = _Table(
            session, Organisation, lambda row: row.key, changes["organisations"]
        )
        self._sites = _Table(
            session, Site, lambda row: (row.organisation_id, row.key), changes["sites"]
        )
        self._departments = _Table(
            session, Department, lambda row: (row.organisation_id, row.key), changes["departments"]
        )
        self._bodies = _Table(
            session, ProgrammeBody, lambda row: row.key, changes["programme_bodies"]
        )
        self._contacts = _Table(session, Contact, lambda row: row.key, changes["contacts"])

    def _id(self, row: _HasId) -> int:
        if row.id is None:
            self._session.flush()
        assert row.id is not None
        return row.id

    def region(self, spec: RegionSpec) -> None:
        row = self._regions.put(
            spec.key, key=spec.key, name=spec.name, escalation_mailbox=spec.escalation_mailbox
        )
        region_id = self._id(row)
        self._contact(Role.DEAN, spec.key, spec.dean, region_id=region_id)
        self._contact(Role.QUALITY_TEAM, spec.key, spec.quality_team, region_id=region_id)
        for organisation in spec.organisations:
            self._organisation(organisation, region_id=region_id)
        for body in spec.bodies:
            self._body(body, region_id=region_id)

    def _organisation(self, spec: OrganisationSpec, *, region_id: int) -> None:
        row = self._organisations.put(
            spec.key, key=spec.key, region_id=region_id, name=spec.name, kind=spec.kind
        )
        scope = {"region_id": region_id, "organisation_id": self._id(row)}
        for person in spec.speak_up_guardians:
            self._contact(Role.SPEAK_UP_GUARDIAN, spec.key, person, **scope)
        for person in spec.clinical_tutors:
            self._contact(Role.CLINICAL_TUTOR, spec.key, person, **scope)
        site_ids = {site.key: self._site(site, scope["organisation_id"]) for site in spec.sites}
        for department in spec.departments:
            self._department(department, spec.key, site_ids, **scope)

    def _site(self, spec: SiteSpec, organisation_id: int) -> int:
        row = self._sites.put(
            (organisation_id, spec.key),
            organisation_id=organisation_id,
            key=spec.key,
            name=spec.name,
            address=spec.address,
        )
        return self._id(row)

    def _department(
        self,
        spec: DepartmentSpec,
        organisation_key: str,
        site_ids: dict[str, int],
        *,
        region_id: int,
        organisation_id: int,
    ) -> None:
        row = self._departments.put(
            (organisation_id, spec.key),
            organisation_id=organisation_id,
            site_id=site_ids[spec.site] if spec.site else None,
            key=spec.key,
            name=spec.name,
        )
        scope_key = f"{organisation_key}/{spec.key}"
        scope = {
            "region_id": region_id,
            "organisation_id": organisation_id,
            "department_id": self._id(row),
        }
        for person in spec.supervisors:
            self._contact(Role.SUPERVISOR, scope_key, person, **scope)
        for person in spec.clinical_tutors:
            self._contact(Role.CLINICAL_TUTOR, scope_key, person, **scope)

    def _body(self, spec: BodySpec, *, region_id: int) -> None:
        row = self._bodies.put(
            spec.key,
            key=spec.key,
            region_id=region_id,
            kind=spec.kind.value,
            name=spec.name,
            learner_groups=[group.value for group in spec.learner_groups],
            programmes=list(spec.programmes),
            placement_organisations=list(spec.placement_organisations),
        )
        body_id = self._id(row)
        mailbox = ContactSpec(name=f"{spec.name} mailbox", email=spec.mailbox, lead=True)
        self._contact(spec.kind, spec.key, spec.lead, region_id=region_id, body_id=body_id)
        self._contact(
            Role.PATHWAY2_MAILBOX, spec.key, mailbox, region_id=region_id, body_id=body_id
        )

    def _contact(
        self,
        role: Role,
        scope_key: str,
        person: ContactSpec,
        *,
        region_id: int,
        organisation_id: int | None = None,
        department_id: int | None = None,
        body_id: int | None = None,
    ) -> None:
        key = contact_key(role, scope_key, person.email)
        self._contacts.put(
            key,
            key=key,
            role=role.value,
            name=person.name,
            email=person.email,
            slack_user_id=person.slack_user_id,
            teams_user_id=person.teams_user_id,
            region_id=region_id,
            organisation_id=organisation_id,
            department_id=department_id,
            body_id=body_id,
            is_lead=person.lead,
        )

    def deactivate_the_rest(self) -> None:
        for table in (
            self._regions,
            self._organisations,
            self._sites,
            self._departments,
            self._bodies,
            self._contacts,
        ):
            table.deactivate_the_rest()


# --- showing what is loaded -------------------------------------------------------------------

_ROLE_ORDER = {role.value: index for index, role in enumerate(Role)}


class _Named(Protocol):
    key: str
    name: str
    active: bool


_N = TypeVar("_N", bound=_Named)


def _active_by_name(rows: Iterable[_N]) -> list[_N]:
    return sorted(
        (row for row in rows if row.active), key=lambda row: (row.name.casefold(), row.key)
    )


def describe_directory(session: Session) -> dict[str, Any]:
    """The active directory as plain data, for `concerns directory show` (text or --json)."""
    region_keys = {row.id: row.key for row in session.exec(select(Region))}
    contacts = _contacts_by_scope(session.exec(select(Contact)))
    sites: dict[int | None, list[Site]] = defaultdict(list)
    for site in _active_by_name(session.exec(select(Site))):
        sites[site.organisation_id].append(site)
    departments: dict[int | None, list[Department]] = defaultdict(list)
    for department in _active_by_name(session.exec(select(Department))):
        departments[department.organisation_id].append(department)
    bodies = _active_by_name(session.exec(select(ProgrammeBody)))
    return {
        "last_load": _last_load(session),
        "regions": [
            _region_entry(row, contacts) for row in _active_by_name(session.exec(select(Region)))
        ],
        "organisations": [
            _organisation_entry(row, region_keys, sites[row.id], departments[row.id], contacts)
            for row in _active_by_name(session.exec(select(Organisation)))
        ],
        "schools": [
            _body_entry(row, region_keys, contacts)
            for row in bodies
            if row.kind != Role.EDUCATION_PROVIDER
        ],
        "education_providers": [
            _body_entry(row, region_keys, contacts)
            for row in bodies
            if row.kind == Role.EDUCATION_PROVIDER
        ],
    }


_Contacts = dict[tuple[str, int | None], list[dict[str, Any]]]


def _contacts_by_scope(rows: Iterable[Contact]) -> _Contacts:
    """Active contacts as entries, grouped by the narrowest scope they belong to."""
    grouped: _Contacts = defaultdict(list)
    active = (row for row in rows if row.active)
    for row in sorted(active, key=lambda c: (_ROLE_ORDER.get(c.role, 99), not c.is_lead, c.name)):
        grouped[_scope_of(row)].append(
            {
                "name": row.name,
                "role": row.role,
                "email": row.email,
                "lead": row.is_lead,
                "slack_user_id": row.slack_user_id,
                "teams_user_id": row.teams_user_id,
            }
        )
    return grouped


def _scope_of(row: Contact) -> tuple[str, int | None]:
    if row.department_id is not None:
        return ("department", row.department_id)
    if row.organisation_id is not None:
        return ("organisation", row.organisation_id)
    if row.body_id is not None:
        return ("body", row.body_id)
    return ("region", row.region_id)


def _last_load(session: Session) -> dict[str, Any] | None:
    statement = select(DirectoryLoad).order_by(col(DirectoryLoad.id).desc()).limit(1)
    load = session.exec(statement).first()
    if load is None:
        return None
    return {"source": load.source, "sha256": load.sha256, "loaded_at": load.loaded_at.isoformat()}


def _region_entry(row: Region, contacts: _Contacts) -> dict[str, Any]:
    return {
        "key": row.key,
        "name": row.name,
        "escalation_mailbox": row.escalation_mailbox,
        "contacts": contacts.get(("region", row.id), []),
    }


def _organisation_entry(
    row: Organisation,
    region_keys: dict[int | None, str],
    sites: list[Site],
    departments: list[Department],
    contacts: _Contacts,
) -> dict[str, Any]:
    site_keys = {site.id: site.key for site in sites}
    return {
        "key": row.key,
        "name": row.name,
        "region": region_keys.get(row.region_id),
        "kind": row.kind,
        "sites": [{"key": site.key, "name": site.name, "address": site.address} for site in sites],
        "departments": [
            {
                "key": department.key,
                "name": department.name,
                "site": site_keys.get(department.site_id),
                "contacts": contacts.get(("department", department.id), []),
            }
            for department in departments
        ],
        "contacts": contacts.get(("organisation", row.id), []),
    }


def _body_entry(
    row: ProgrammeBody, region_keys: dict[int | None, str], contacts: _Contacts
) -> dict[str, Any]:
    return {
        "key": row.key,
        "name": row.name,
        "region": region_keys.get(row.region_id),
        "kind": row.kind,
        "learner_groups": list(row.learner_groups),
        "programmes": list(row.programmes),
        "placement_organisations": list(row.placement_organisations),
        "contacts": contacts.get(("body", row.id), []),
    }


def format_directory(directory: dict[str, Any]) -> str:
    """The output of describe_directory as an indented tree for people to read."""
    lines: list[str] = []
    last_load = directory.get("last_load")
    if last_load:
        lines.append(f"Loaded from {last_load['source']} at {last_load['loaded_at']}")
    if not directory["regions"]:
        lines.append("The directory is empty: load one with `concerns directory load FILE`.")
        return "\n".join(lines)
    lines += _section("Regions", directory["regions"], _region_lines)
    lines += _section("Placement organisations", directory["organisations"], _organisation_lines)
    lines += _section("Schools", directory["schools"], _body_lines)
    lines += _section("Education providers", directory["education_providers"], _body_lines)
    return "\n".join(lines)


def _section(
    title: str, entries: list[dict[str, Any]], entry_lines: Callable[[dict[str, Any]], list[str]]
) -> list[str]:
    lines = ["", title]
    for entry in entries:
        lines += [f"  {line}" for line in entry_lines(entry)]
    return lines if entries else [*lines, "  (none)"]


def _region_lines(region: dict[str, Any]) -> list[str]:
    heading = (
        f"{region['name']} [{region['key']}], escalation mailbox {region['escalation_mailbox']}"
    )
    return [heading, *_contact_lines(region["contacts"])]


def _organisation_lines(organisation: dict[str, Any]) -> list[str]:
    lines = [
        f"{organisation['name']} [{organisation['key']}], "
        f"{organisation['kind']} in {organisation['region']}",
        *_contact_lines(organisation["contacts"]),
    ]
    for site in organisation["sites"]:
        address = f": {site['address']}" if site["address"] else ""
        lines.append(f"  site {site['name']} [{site['key']}]{address}")
    for department in organisation["departments"]:
        where = f" at {department['site']}" if department["site"] else ""
        lines.append(f"  department {department['name']} [{department['key']}]{where}")
        lines += [f"  {line}" for line in _contact_lines(department["contacts"])]
    return lines


def _body_lines(body: dict[str, Any]) -> list[str]:
    lines = [f"{body['name']} [{body['key']}], {body['kind']} in {body['region']}"]
    for label, name in (
        ("learner groups", "learner_groups"),
        ("programmes", "programmes"),
        ("placements", "placement_organisations"),
    ):
        if body[name]:
            lines.append(f"  {label}: {', '.join(body[name])}")
    return lines + _contact_lines(body["contacts"])


def _contact_lines(contacts: list[dict[str, Any]]) -> list[str]:
    lines = []
    for contact in contacts:
        role = contact["role"].replace("_", " ")
        lead = " (lead)" if contact["lead"] else ""
        chat = "".join(
            f", {label} {contact[name]}"
            for label, name in (("Slack", "slack_user_id"), ("Teams", "teams_user_id"))
            if contact[name]
        )
        lines.append(f"  {role}{lead}: {contact['name']} <{contact['email']}>{chat}")
    return lines
