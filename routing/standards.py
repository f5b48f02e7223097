"""Quality Framework standards: their names, and the ones a concern's words suggest it touches."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from routing.model import Harm
from routing.triage import BULLYING_WORDS, DISCRIMINATION_WORDS, ConcernText, Phrases

DOMAINS: Mapping[str, str] = MappingProxyType(
    {
        "1": "Learning environment and culture",
        "2": "Educational governance and leadership",
        "3": "Supporting and empowering learners",
        "4": "Supporting and empowering educators",
        "5": "Delivering curricula and assessments",
        "6": "Developing a sustainable workforce",
    }
)

STANDARDS: Mapping[str, str] = MappingProxyType(
    {
        "1.1": "Safe, effective, compassionate care",
        "1.2": "Valued, treated fairly, with dignity and respect, no negative behaviours",
        "1.3": "Quality improvement and research opportunities",
        "1.4": "Reflective practice",
        "1.5": "Educational facilities (space, IT, library)",
        "1.6": "Inter-professional learning",
        "2.1": "Governance measures performance and responds",
        "2.2": "Leadership improves quality",
        "2.3": "Team-working",
        "2.4": "Equality and diversity",
        "2.5": "Informing stakeholders of performance issues / patient safety incidents",
        "3.1": "Educational and pastoral support",
        "3.2": "Assessments",
        "3.3": "Valued members of the team",
        "3.4": "Timely induction",
        "3.5": "Understand their role",
        "4.1": "Educators trained",
        "4.2": "Know curricula",
        "4.3": "Appraised",
        "4.4": "Supported in role",
        "5.1": "Curricula enable learning outcomes",
        "5.2": "Responsive to change",
        "5.3": "Patient and learner involvement",
        "6.1": "Attrition",
        "6.2": "Careers advice",
        "6.3": "Workforce planning",
        "6.4": "Transition to employment",
    }
)

PATIENT_SAFETY_STANDARDS: tuple[str, ...] = ("1.1", "2.5")

STANDARDS_OF_HARM: Mapping[Harm, tuple[str, ...]] = MappingProxyType(
    {
        Harm.PATIENT_HARMED: PATIENT_SAFETY_STANDARDS,
        Harm.PATIENT_AT_RISK: PATIENT_SAFETY_STANDARDS,
        # Too broad to point at one standard; the words of the concern decide.
        Harm.LEARNERS_AFFECTED: (),
        Harm.MINOR: (),
        Harm.NOT_SURE: (),
        Harm.NOT_ANSWERED: (),
    }
)

# With no recognised theme the concern is still a learner asking for help, so it is tagged as
# educational and pastoral support. A patient-safety concern never needs this fallback: it is
# already tagged 1.1 and 2.5.
FALLBACK_STANDARD = "3.1"


@dataclass(frozen=True)
class Theme:
    """A theme in a concern's words and the standards it touches."""

    name: str
    phrases: Phrases
    standards: tuple[str, ...]


# Suggestions only: staff edit the tags, so a theme may over-reach a little rather than miss.
THEMES: tuple[Theme, ...] = (
    Theme(
        name="supervision",
        phrases=Phrases(
            (
                "supervision",
                "unsupervised",
                "not supervised",
                "no senior cover",
                "no senior support",
                "no consultant cover",
            )
        ),
        standards=("1.1", "3.1"),
    ),
    Theme(
        name="negative behaviours",
        phrases=Phrases((*BULLYING_WORDS, "disrespect", "disrespectful")),
        standards=("1.2",),
    ),
    Theme(
        name="discrimination",
        phrases=Phrases(
            (
                *DISCRIMINATION_WORDS,
                "transphobic",
                "equality",
                "diversity",
                "reasonable adjustment",
            )
        ),
        standards=("1.2", "2.4"),
    ),
    Theme(
        name="quality improvement and research",
        phrases=Phrases(("quality improvement", "QIP", "audit", "research")),
        standards=("1.3",),
    ),
    Theme(
        name="reflective practice",
        phrases=Phrases(("reflective practice", "reflection", "debrief")),
        standards=("1.4",),
    ),
    Theme(
        name="facilities",
        phrases=Phrases(
            (
                "facilities",
                "facility",
                "IT",
                "computer",
                "library",
                "libraries",
                "wifi",
                "wi-fi",
                "printer",
                "locker",
                "parking",
                "desk space",
                "rest area",
                "changing room",
            )
        ),
        standards=("1.5",),
    ),
    Theme(
        name="inter-professional learning",
        phrases=Phrases(("inter-professional", "interprofessional", "multi-professional")),
        standards=("1.6",),
    ),
    Theme(
        name="response to concerns",
        phrases=Phrases(
            (
                "nothing was done",
                "nothing has been done",
                "nothing changed",
                "nothing has changed",
                "no action",
                "no response",
                "never heard back",
                "concern ... ignored",
                "concerns ... ignored",
            )
        ),
        standards=("2.1",),
    ),
    Theme(
        name="leadership",
        phrases=Phrases(("leadership", "senior leader")),
        standards=("2.2",),
    ),
    Theme(
        name="team-working",
        phrases=Phrases(("teamwork", "team-working", "poor communication")),
        standards=("2.3",),
    ),
    Theme(
        name="pastoral support",
        phrases=Phrases(
            (
                "no support",
                "unsupported",
                "pastoral",
                "wellbeing",
                "well-being",
                "mental health",
                "stress",
                "anxiety",
            )
        ),
        standards=("3.1",),
    ),
    Theme(
        name="assessments",
        phrases=Phrases(
            (
                "assessment",
                "sign off",
                "signed off",
                "competency",
                "competencies",
                "ARCP",
                "portfolio",
                "e-portfolio",
                "logbook",
            )
        ),
        standards=("3.2", "5.1"),
    ),
    Theme(
        name="part of the team",
        phrases=Phrases(
            (
                "not part of the team",
                "not valued",
                "not welcome",
                "unwelcome",
                "excluded",
                "left out",
                "pair of hands",
            )
        ),
        standards=("3.3",),
    ),
    Theme(
        name="induction",
        phrases=Phrases(("induction",)),
        standards=("3.4",),
    ),
    Theme(
        name="understanding their role",
        phrases=Phrases(
            (
                "unclear role",
                "role is unclear",
                "role was unclear",
                "scope of practice",
                "out of my depth",
                "beyond my competence",
                "what is expected of me",
            )
        ),
        standards=("3.5",),
    ),
    Theme(
        name="educators trained",
        phrases=Phrases(
            (
                "untrained supervisor",
                "untrained educator",
                "supervisor ... not ... trained",
                "supervisors ... not ... trained",
                "educator ... not ... trained",
                "educators ... not ... trained",
                "not trained to supervise",
                "not trained to teach",
                "no supervisor training",
                "no educator training",
            )
        ),
        standards=("4.1",),
    ),
    Theme(
        name="educators know the curriculum",
        phrases=Phrases(
            (
                "know the curriculum",
                "unaware of the curriculum",
                "not familiar with the curriculum",
            )
        ),
        standards=("4.2",),
    ),
    Theme(
        name="educators supported",
        phrases=Phrases(
            (
                "too busy to supervise",
                "too busy to teach",
                "no time to supervise",
                "no time to teach",
                "no time for teaching",
            )
        ),
        standards=("4.4",),
    ),
    Theme(
        name="teaching and curriculum",
        phrases=Phrases(
            (
                "no teaching",
                "teaching ... cancelled",
                "cancelled teaching",
                "curriculum",
                "learning outcomes",
                "learning opportunities",
            )
        ),
        standards=("5.1",),
    ),
    Theme(
        name="responsive to change",
        phrases=Phrases(("new curriculum", "curriculum change", "curriculum changes")),
        standards=("5.2",),
    ),
    Theme(
        name="patient and learner involvement",
        phrases=Phrases(("patient involvement", "learner involvement", "learner voice")),
        standards=("5.3",),
    ),
    Theme(
        name="workload and attrition",
        phrases=Phrases(
            (
                "workload",
                "rota",
                "burnout",
                "burnt out",
                "burned out",
                "exhausted",
                "exhaustion",
                "leaving",
                "quit",
                "quitting",
                "resign",
                "resignation",
                "no breaks",
            )
        ),
        standards=("6.1",),
    ),
    Theme(
        name="careers advice",
        phrases=Phrases(("careers advice", "career advice", "career guidance", "career support")),
        standards=("6.2",),
    ),
    Theme(
        name="staffing",
        phrases=Phrases(
            (
                "understaffed",
                "understaffing",
                "short staffed",
                "short-staffed",
                "staff shortage",
                "rota gap",
                "vacancies",
            )
        ),
        standards=("6.1", "6.3"),
    ),
    Theme(
        name="transition to employment",
        phrases=Phrases(
            (
                "transition to employment",
                "transition to practice",
                "preceptorship",
                "job offer",
                "first post",
            )
        ),
        standards=("6.4",),
    ),
)


def _standard_order(code: str) -> tuple[int, ...]:
    # Numeric order, so that a future "1.10" would sort after "1.9".
    return tuple(int(part) for part in code.split("."))


def suggest_standards(*, text: str, harm: Harm, patient_safety: bool) -> tuple[str, ...]:
    """Suggest the standards a concern touches, sorted and never empty."""
    codes = set(STANDARDS_OF_HARM[harm])
    if patient_safety:
        codes.update(PATIENT_SAFETY_STANDARDS)
    words = ConcernText(text)
    for theme in THEMES:
        if theme.phrases.found_in(words):
            codes.update(theme.standards)
    if not codes:
        codes.add(FALLBACK_STANDARD)
    return tuple(sorted(codes, key=_standard_order))


def domain_of(code: str) -> str:
    """Return the domain key of a standard ("1.2" -> "1"); DOMAINS holds its title."""
    if code not in STANDARDS:
        raise ValueError(f"unknown Quality Framework standard {code!r}")
    return code.split(".")[0]
