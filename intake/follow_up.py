"""Following up a concern as its learner: finding it by reference and code, and what they see.

Channel-neutral: the web status page uses it, and so can chat. What `learner_status` returns is
learner-safe by construction: it is built from a short list of event kinds, each in our own
words, and never carries a contact's identity, a staff note, a risk reason or a contact's reply.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import Argon2Error, InvalidHashError
from sqlmodel import Session

from escalation.policy import Policy
from notifications.messages import PATHWAY_NAMES, when
from routing.model import ConcernStatus, Confidentiality
from storage import repositories
from storage.tables import Concern, Event, id_of

_HASHER = PasswordHasher()
# Argon2 holds 64 MiB while it runs: at most this many run at once in the process, whatever the
# number of worker threads, so a burst of guesses from many addresses (each within its rate
# limit) waits its turn instead of taking gigabytes.
ARGON2_AT_ONCE = 4
_ARGON2_TURNS = threading.BoundedSemaphore(ARGON2_AT_ONCE)
# Verified against when there is no concern to check, so every wrong answer takes as long.
_DUMMY_HASH = _HASHER.hash("NO-SUCH-CODE-AT-ALL")
_CODE_CHARACTERS = re.compile(r"[^A-Z0-9]")
MAX_REFERENCE_LENGTH = 40
MAX_CODE_LENGTH = 40


def normalise_reference(reference: str) -> str:
    """The reference as it is looked up (and as look-ups are counted per reference): anything
    past the longest reference is ignored, so it cannot make a look-up look new."""
    return reference.strip().upper()[:MAX_REFERENCE_LENGTH].strip()


def normalise_code(code: str) -> str:
    """'abcd efgh-jklm', 'ABCDEFGHJKLM' and 'ABCD-EFGH-JKLM' are the same code."""
    raw = _CODE_CHARACTERS.sub("", code.upper())
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


@dataclass(frozen=True)
class Candidate:
    """What a look-up needs from the database: read in a transaction, checked outside it
    (Argon2 is deliberately slow and must not hold the database's lock)."""

    reference: str | None
    code_hash: str | None


def candidate_for_follow_up(session: Session, *, reference: str) -> Candidate:
    """The concern a learner names, if it can be followed up with a code (anonymous ones)."""
    wanted = normalise_reference(reference)
    concern = repositories.concern_by_reference(session, wanted) if wanted else None
    if (
        concern is None
        or concern.code_hash is None
        or concern.confidentiality != Confidentiality.ANONYMOUS.value
    ):
        return Candidate(reference=None, code_hash=None)
    return Candidate(reference=concern.reference, code_hash=concern.code_hash)


def hash_code(code: str) -> str:
    """The one-time code as it is stored (Argon2), never the code itself."""
    with _ARGON2_TURNS:
        return _HASHER.hash(code)


def verify_follow_up(candidate: Candidate, code: str) -> str | None:
    """The candidate's reference when the code is right; None for any wrong answer, after the
    same work (a missing concern is checked against a dummy hash)."""
    given = normalise_code(code[: MAX_CODE_LENGTH * 2])[:MAX_CODE_LENGTH]
    matched: bool
    try:
        with _ARGON2_TURNS:
            matched = _HASHER.verify(candidate.code_hash or _DUMMY_HASH, given or "-")
    except (Argon2Error, InvalidHashError):
        matched = False
    return candidate.reference if matched and candidate.code_hash else None


def find_for_follow_up(session: Session, *, reference: str, code: str) -> Concern | None:
    """The anonymous concern with this reference and code; None for any wrong answer.

    An unknown reference, a named or confidential concern (they follow up through their signed
    link) and a wrong code all do the same work and give the same answer.
    """
    found = verify_follow_up(candidate_for_follow_up(session, reference=reference), code)
    return repositories.concern_by_reference(session, found) if found else None


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    when: str  # in Europe/London, as people read it
    title: str
    text: str | None = None  # words written for the learner (their own, or feedback to them)
    upcoming: bool = False  # a deadline still ahead, not something that happened


@dataclass(frozen=True)
class LearnerStatus:
    reference: str
    status: str  # open | closed
    status_words: str
    pathway: int
    where_now: str
    timeline: tuple[TimelineEntry, ...]
    can_add_information: bool
    can_respond_to_feedback: bool
    at_highest_level: bool
    closed_reason: str | None = None
    # Which feedback the answers on the page are for (see feedback_version).
    feedback_version: str | None = None
    # One line for a list of concerns (a chat's Home tab or card): what happens next.
    next_step: str = ""
    # When an open concern with feedback closes if the learner says nothing, as people read it.
    closes_on: str | None = None


def pathway_words(pathway: int) -> str:
    """'Pathway 1: your placement (supervisor, clinical tutor or speak-up guardian)'."""
    words = PATHWAY_NAMES.get(pathway, f"pathway {pathway}")
    return words[:1].upper() + words[1:]


def learner_status(session: Session, concern: Concern, policy: Policy) -> LearnerStatus:
    """What the learner may see of their concern, in their words."""
    zone = policy.calendar.timezone
    is_open = concern.status == ConcernStatus.OPEN.value
    entries: list[TimelineEntry] = []
    for event in repositories.events_of(session, id_of(concern)):
        entry = _entry(event, concern, policy)
        if entry is not None:
            entries.append(entry)
    if is_open and concern.feedback_at is None:
        entries.append(
            TimelineEntry(
                at=concern.feedback_due_at,
                when=when(concern.feedback_due_at, zone),
                title=f"Feedback due by {when(concern.feedback_due_at, zone)}",
                text=(
                    "If there is no feedback by then, your concern moves to the next level."
                    if concern.pathway < 3
                    else "This is the highest level: if feedback is late, the regional "
                    "quality team is told."
                ),
                upcoming=True,
            )
        )
    closed_reason = None if is_open else _last_closing(entries)
    return LearnerStatus(
        reference=concern.reference,
        status=concern.status,
        status_words="Open" if is_open else "Closed",
        pathway=concern.pathway,
        where_now=pathway_words(concern.pathway),
        timeline=tuple(entries),
        can_add_information=is_open,
        can_respond_to_feedback=is_open and concern.feedback_at is not None,
        at_highest_level=concern.pathway >= 3,
        closed_reason=closed_reason,
        next_step=_next_step(concern, closed_reason, policy),
        feedback_version=feedback_version(concern),
        closes_on=(
            when(concern.close_after, zone)
            if is_open and concern.feedback_at is not None and concern.close_after is not None
            else None
        ),
    )


def feedback_version(concern: Concern) -> str | None:
    """Names the feedback a learner is answering: the moment it was given at this level."""
    if concern.feedback_at is None:
        return None
    return f"p{concern.pathway}r{concern.level_round}-{int(concern.feedback_at.timestamp())}"


def _next_step(concern: Concern, closed_reason: str | None, policy: Policy) -> str:
    zone = policy.calendar.timezone
    if concern.status != ConcernStatus.OPEN.value:
        return closed_reason or "It has been closed."
    if concern.feedback_at is None:
        return f"Feedback due by {when(concern.feedback_due_at, zone)}."
    step = "Feedback has been given: tell us whether you are satisfied."
    if concern.close_after is not None:
        step += f" If we do not hear from you, it closes on {when(concern.close_after, zone)}."
    return step


def _last_closing(entries: list[TimelineEntry]) -> str:
    closings = [entry.text for entry in entries if entry.title == "Closed" and entry.text]
    return closings[-1] if closings else "It has been closed."


def _entry(event: Event, concern: Concern, policy: Policy) -> TimelineEntry | None:
    zone = policy.calendar.timezone
    stamp = when(event.at, zone)

    def entry(title: str, text: str | None = None) -> TimelineEntry:
        return TimelineEntry(at=event.at, when=stamp, title=title, text=text)

    detail = event.detail or {}
    if event.kind == "received":
        return entry("We received your concern")
    if event.kind == "acknowledged":
        return entry(f"Acknowledged at pathway {event.pathway}")
    if event.kind == "feedback_given":
        text = detail.get("text")
        pathway = detail.get("pathway", event.pathway)
        return entry(
            f"Feedback given at pathway {pathway}", text if isinstance(text, str) else None
        )
    if event.kind == "escalated":
        return entry(f"Moved to pathway {event.to_pathway}", _why_moved(event))
    if event.kind == "learner_added_information":
        text = detail.get("text")
        return entry("You added information", text if isinstance(text, str) else None)
    if event.kind == "learner_answered":
        return entry("You answered our questions")
    if event.kind == "learner_remains_concerned":
        return entry("You told us you remain concerned")
    if event.kind == "overdue_at_dean":
        return entry(
            "Feedback is late at the highest level",
            "The regional quality team has been told, and your concern is at the top of the "
            "dean's reports until it is resolved.",
        )
    if event.kind == "reopened":
        return entry("Reopened", "The people handling your concern reopened it.")
    if event.kind == "closed":
        reason = detail.get("reason")
        return entry(
            "Closed", _closed_words(reason if isinstance(reason, str) else None, event.actor)
        )
    return None


def _why_moved(event: Event) -> str:
    """Why it moved, in our words: staff's own reasons may hold notes not meant for the learner."""
    if event.actor == "learner":
        return f"You told us you remain concerned after feedback at pathway {event.from_pathway}."
    if event.actor == "system":
        return f"Feedback was not given at pathway {event.from_pathway} by the deadline."
    return "The people handling your concern moved it to the next level."


def _closed_words(reason: str | None, actor: str) -> str:
    if reason == "The learner is satisfied with the feedback" or actor == "learner":
        return "You told us you are satisfied with the feedback."
    if actor == "system" and reason:
        return reason + "."
    return "The people handling your concern closed it."
