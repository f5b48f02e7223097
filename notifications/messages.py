"""What each message says, built from plain facts; confidentiality is enforced here, at build.

Nothing in this module knows about the database or about sending: escalation turns rows into
`ConcernFacts`, and `build_message` decides what a recipient in a given role may read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from routing.model import Confidentiality, Role
from routing.recipients import may_see_identity

PATIENT_SAFETY_SIGNPOST = (
    "Your concern describes harm, or a risk of harm, to patients. This process does not replace "
    "incident reporting: please also report it now through your organisation's local incident "
    "reporting system, and tell the person in charge if anyone is at immediate risk."
)

# How a place gives the learner's own words when the directory had no match: "Ward 7, Vale
# General (as given: the new day unit)". Chat messages leave those words out (see slack_contacts).
AS_GIVEN = "(as given: "

# Said wherever a new concern's learner is told it has gone to their school or university: the
# routing rules (escalation.contacts.choose_programme_body) give it to the quality team instead
# when the directory has no school for the learner's group, or several with nothing to choose.
SCHOOL_NOT_CLEAR = (
    "If we cannot tell from what you told us which school or university is yours, the regional "
    "quality team gets your concern instead and passes it on to the right one."
)

# As the learner reads them ("your placement"), and as the people handling a concern do.
PATHWAY_NAMES: Mapping[int, str] = {
    1: "pathway 1: your placement (supervisor, clinical tutor or speak-up guardian)",
    2: "pathway 2: your school or university",
    3: "pathway 3: the regional postgraduate dean at NHS England",
}
PATHWAY_NAMES_FOR_STAFF: Mapping[int, str] = {
    1: "pathway 1: the placement (supervisor, clinical tutor or speak-up guardian)",
    2: "pathway 2: the school or education provider",
    3: "pathway 3: the regional postgraduate dean",
}


@dataclass(frozen=True)
class Question:
    """Something an email did not tell us, asked in the acknowledgement and answered by reply.

    The learner copies `label: answer` lines into a reply; `intake.replies` reads them back, so
    the labels and the choices' words are the contract between the two.
    """

    key: str
    label: str
    prompt: str
    choices: tuple[tuple[str, str], ...] = ()  # (stored value, the words the learner sees)

    @property
    def line(self) -> str:
        hint = " / ".join(words for _, words in self.choices)
        return f"{self.label}: " + (f"({hint})" if hint else "")


QUESTIONS: Mapping[str, Question] = {
    question.key: question
    for question in (
        Question(
            key="frequency",
            label="How often",
            prompt="How often does this happen?",
            choices=(
                ("once", "once"),
                ("occasionally", "occasionally"),
                ("often", "often"),
                ("continuing", "every shift or continuing"),
            ),
        ),
        Question(
            key="harm",
            label="Anyone harmed",
            prompt="Has anyone been harmed, or could they be?",
            choices=(
                ("patient_harmed", "a patient was harmed"),
                ("patient_at_risk", "a patient is at risk"),
                ("learners_affected", "learners' training or wellbeing affected"),
                ("minor", "minor"),
                ("not_sure", "not sure"),
            ),
        ),
        Question(
            key="organisation",
            label="Organisation",
            prompt="Which organisation (trust, practice or provider) is your placement with?",
        ),
        Question(key="department", label="Department", prompt="Which department or ward?"),
        Question(
            key="learner_group",
            label="Learner group",
            prompt="Which kind of learner are you?",
            choices=(
                ("foundation", "foundation doctor"),
                ("specialty", "specialty trainee"),
                ("undergraduate_medical", "medical student"),
                ("undergraduate_dental", "dental student"),
                ("undergraduate_pharmacy", "pharmacy student"),
                ("nursing", "nursing student"),
                ("midwifery", "midwifery student"),
                ("ahp", "allied health student"),
                ("healthcare_science", "healthcare science"),
                ("support_workforce", "support workforce"),
            ),
        ),
    )
}


class MessageKind(StrEnum):
    LEARNER_ACK = "learner_ack"
    NEW_CONCERN = "new_concern"
    HIGH_RISK_ALERT = "high_risk_alert"
    ACK_REMINDER = "ack_reminder"
    ACK_MISSED = "ack_missed"
    ACK_MISSED_SECONDARY = "ack_missed_secondary"
    FEEDBACK_REMINDER = "feedback_reminder"
    ESCALATED_IN = "escalated_in"
    ESCALATED_OUT = "escalated_out"
    LEARNER_ESCALATED = "learner_escalated"
    OVERDUE_AT_DEAN = "overdue_at_dean"
    LEARNER_CLOSED = "learner_closed"
    LEARNER_FEEDBACK = "learner_feedback"
    # A contact said "not mine" (or staff moved it): the person it was passed to.
    REDIRECTED_IN = "redirected_in"
    REOPENED = "reopened"
    LEARNER_REOPENED = "learner_reopened"
    # An emailed reply asking for what could not be done (feedback on a concern that has moved
    # on, "I remain concerned" before any feedback): its sender is told why, as chat shows it.
    REPLY_NOT_APPLIED = "reply_not_applied"
    # The learner remains concerned after the dean's feedback: a new round at the top level.
    STILL_CONCERNED = "still_concerned"
    LEARNER_STILL_CONCERNED = "learner_still_concerned"
    # The learner's email address was corrected: the contacts who were given the wrong one.
    LEARNER_ADDRESS_CORRECTED = "learner_address_corrected"
    # What the learner added rates the concern high risk, but a rating staff set holds it lower:
    # the dean and quality team, who set ratings, are asked to look again.
    RATED_HIGH_OVER_OVERRIDE = "rated_high_over_override"
    DEADLINES_CHANGED = "deadlines_changed"
    # The learner wrote after their concern closed (their closing email said staff would see it
    # and could reopen it): the region's quality team.
    WROTE_AFTER_CLOSING = "wrote_after_closing"


class ContactStep(StrEnum):
    """What a message asks of the contact it is sent to: buttons in Slack and Teams."""

    ACKNOWLEDGE = "acknowledge"
    RECORD_FEEDBACK = "record_feedback"
    NOT_MINE = "not_mine"


_ALL_STEPS = (ContactStep.ACKNOWLEDGE, ContactStep.RECORD_FEEDBACK, ContactStep.NOT_MINE)
# The steps each kind of message asks for, in order: messages that ask the recipient to act. A
# feedback reminder follows an acknowledgement, so it offers only what is left to do; the
# secondary contact's and the dean's messages are for information (the staff page is linked).
CONTACT_STEPS: Mapping[MessageKind, tuple[ContactStep, ...]] = {
    MessageKind.NEW_CONCERN: _ALL_STEPS,
    MessageKind.ESCALATED_IN: _ALL_STEPS,
    MessageKind.REDIRECTED_IN: _ALL_STEPS,
    MessageKind.REOPENED: _ALL_STEPS,
    MessageKind.STILL_CONCERNED: _ALL_STEPS,
    MessageKind.ACK_REMINDER: _ALL_STEPS,
    MessageKind.ACK_MISSED: _ALL_STEPS,
    MessageKind.FEEDBACK_REMINDER: (ContactStep.RECORD_FEEDBACK, ContactStep.NOT_MINE),
    MessageKind.DEADLINES_CHANGED: _ALL_STEPS,
}


def contact_steps(kind: MessageKind, facts: ConcernFacts) -> tuple[ContactStep, ...]:
    """What this message asks of its contact now: not an acknowledgement the concern already has
    at its level (sooner deadlines told after it was acknowledged ask only for feedback)."""
    steps = CONTACT_STEPS.get(kind, ())
    if facts.acknowledged_at is not None:
        return tuple(step for step in steps if step is not ContactStep.ACKNOWLEDGE)
    return steps


@dataclass(frozen=True)
class LearnerIdentity:
    name: str | None
    email: str | None


@dataclass(frozen=True)
class ConcernFacts:
    """Everything a message may draw on; identity is filtered out per recipient."""

    reference: str
    summary: str
    description: str
    place: str
    pathway: int
    risk_level: str
    rating: str
    reasons: tuple[str, ...]
    interventions: tuple[str, ...]
    patient_safety: bool
    hotspot: bool
    confidentiality: Confidentiality
    learner: LearnerIdentity | None
    learner_group: str | None
    ack_due_at: datetime
    feedback_due_at: datetime
    timezone: ZoneInfo
    staff_url: str
    history: tuple[str, ...] = ()
    from_pathway: int | None = None
    why: str | None = None
    # Keys of QUESTIONS the learner has not answered yet (email concerns).
    questions: tuple[str, ...] = ()
    feedback: str | None = None
    # A signed link to the learner's status page (learner messages only).
    status_url: str | None = None
    # At the current level: an acknowledgement sent again (the learner's address corrected)
    # says what has happened since.
    acknowledged_at: datetime | None = None
    feedback_at: datetime | None = None
    # When the message is written: a deadline already passed is told as past.
    written_at: datetime | None = None
    # An acknowledgement missed: whether the level's next contact was told too (a level whose
    # only contact is the quality team's mailbox has none).
    others_told: bool = True
    # Whether the learner's school or university is known: at pathway 2 without it, the region's
    # quality team holds the concern until it is.
    school_known: bool = True
    # It may be about a pathway-1 contact, so it started at pathway 2 (domain.md).
    about_pathway1_contact: bool = False


@dataclass(frozen=True)
class Message:
    subject: str
    headline: str
    paragraphs: tuple[str, ...]
    facts: tuple[tuple[str, str], ...] = ()
    history: tuple[str, ...] = ()
    link: str | None = None
    signpost: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)
    questions: tuple[Question, ...] = ()


def when(moment: datetime, timezone: ZoneInfo) -> str:
    """A deadline as a person reads it: 'Monday 23 November 2026 at 16:30'."""
    local = moment.astimezone(timezone)
    return f"{local:%A} {local.day} {local:%B %Y} at {local:%H:%M}"


def _case_facts(facts: ConcernFacts, role: Role) -> tuple[tuple[str, str], ...]:
    rows = [
        ("Reference", facts.reference),
        ("Place", facts.place),
        ("Risk", f"{facts.risk_level} ({facts.rating})"),
        ("Acknowledge by", when(facts.ack_due_at, facts.timezone)),
        ("Feedback to the learner by", when(facts.feedback_due_at, facts.timezone)),
    ]
    if facts.patient_safety:
        rows.append(("Patient safety", "yes: the learner has been asked to report an incident"))
    if facts.hotspot:
        rows.append(("Hotspot", "other open concerns about this department in the last 90 days"))
    rows.append(("Raised by", _raised_by(facts, role)))
    return tuple(rows)


def _raised_by(facts: ConcernFacts, role: Role) -> str:
    if facts.confidentiality is Confidentiality.ANONYMOUS or facts.learner is None:
        return "an anonymous learner"
    if not may_see_identity(role=role, confidentiality=facts.confidentiality):
        return "a learner who asked for confidentiality (the dean and quality team know who)"
    who = facts.learner.name or "a learner"
    return f"{who} <{facts.learner.email}>" if facts.learner.email else who


STATUS_LINK_INVITATION = "Check your concern, add information or tell us if you are still concerned"


class LinkParagraph(str):
    """A paragraph that is a link: as text "label: url"; in an email's HTML part, the label
    linked (Outlook leaves many a bare address in HTML mail unlinked, and a learner on a phone
    cannot copy it easily)."""

    label: str
    url: str

    def __new__(cls, label: str, url: str) -> LinkParagraph:
        made = super().__new__(cls, f"{label}: {url}")
        made.label, made.url = label, url
        return made

    def __getnewargs__(self) -> tuple[str, str]:  # type: ignore[override]
        return (self.label, self.url)


def _status_link(facts: ConcernFacts) -> tuple[str, ...]:
    """The paragraph with the learner's signed status link, when there is one."""
    return (LinkParagraph(STATUS_LINK_INVITATION, facts.status_url),) if facts.status_url else ()


def _learner_signpost(facts: ConcernFacts) -> str | None:
    return PATIENT_SAFETY_SIGNPOST if facts.patient_safety else None


def _where_it_stands(facts: ConcernFacts) -> list[str]:
    """The level's deadlines for a new concern; for one whose acknowledgement is sent again
    later (to a corrected address), what the level has done since."""
    on = f"It is on {PATHWAY_NAMES[facts.pathway]}."
    if facts.pathway == 2 and facts.about_pathway1_contact:
        on += (
            " It starts there, not with your placement, because it may be about someone at "
            "your placement who would be told (a supervisor, tutor, assessor or mentor)."
        )
    if facts.feedback_at is not None:
        return [
            f"{on} They gave you feedback on {when(facts.feedback_at, facts.timezone)}: we are "
            "sending it to you in a separate email."
        ]

    def passed(deadline: datetime) -> bool:
        return facts.written_at is not None and deadline <= facts.written_at

    feedback_by = f"give you feedback by {when(facts.feedback_due_at, facts.timezone)}"
    ack_by = when(facts.ack_due_at, facts.timezone)
    if facts.acknowledged_at is not None:
        acknowledged = f"They acknowledged it on {when(facts.acknowledged_at, facts.timezone)}"
        then = f" and have been asked to {feedback_by}."
    elif passed(facts.ack_due_at):
        acknowledged = f"They were asked to acknowledge it by {ack_by} and have not done so yet"
        then = f". They have been asked to {feedback_by}."
    else:
        acknowledged = f"They have been asked to acknowledge it by {ack_by}"
        then = f" and to {feedback_by}."
    if passed(facts.feedback_due_at):
        then = f". They were asked to {feedback_by}, and it is late."
    done = f"{on} {acknowledged}{then}"
    return [done, _what_if_late(facts)]


def _what_if_late(facts: ConcernFacts) -> str:
    if facts.pathway >= 3:
        return (
            "This is the highest level. If feedback is late, the regional quality team is told "
            "and the concern stays at the top of the dean's reports until it is resolved."
        )
    return "If they do not, it moves up to the next level automatically and we will tell you."


def _confidentiality_note(facts: ConcernFacts) -> str:
    if facts.confidentiality is Confidentiality.NAMED:
        return "You asked for your name to be shared with the people handling your concern."
    if facts.confidentiality is Confidentiality.CONFIDENTIAL:
        return (
            "Your name and email address are seen only by the regional quality team and the "
            "dean: the people at your placement and your school or university are not told who "
            "raised it."
        )
    return "No name or contact details are kept with your concern."


def _if_feedback_is_late(facts: ConcernFacts) -> str:
    """What happens when the level's feedback is late, told to its contacts: at the highest
    level there is no next one."""
    if facts.pathway >= 3:
        return (
            "the regional quality team is told and the concern heads every dean digest until "
            "it is closed"
        )
    return "the concern moves to the next level"


# How a contact acts by email; `intake.replies.read_contact_command` reads these first lines.
HOW_TO_REPLY = (
    "Reply to this email to acknowledge it. To give the learner feedback, reply with "
    "'Feedback:' and then what the learner should be told. If it is not for you, reply with "
    "'Not mine' as the first line and it will go to someone else."
)


def _learner_ack(facts: ConcernFacts, role: Role) -> Message:
    questions = tuple(QUESTIONS[key] for key in facts.questions if key in QUESTIONS)
    paragraphs = [
        # Not "quote it if you contact us": a new email quoting it is kept for staff, since
        # only a reply to ours proves who sent it.
        f"Your reference is {facts.reference}. Keep it. To add information at any time, reply "
        "to this email: a new email, even one quoting the reference, cannot be added to your "
        "concern.",
        f"Placement as we understood it: {facts.place}.",
        *_where_it_stands(facts),
        _confidentiality_note(facts),
        *_status_link(facts),
    ]
    if questions:
        # Last, right above the lines it asks for: on a phone, anything between reads as the
        # lines' instructions.
        paragraphs.append(
            "Please help us route and prioritise it: reply to this email with the lines below, "
            "each answered after its colon (leave out any you would rather not answer)."
        )
    return Message(
        subject=f"[{facts.reference}] We have received your concern",
        headline="We have received your concern",
        paragraphs=tuple(paragraphs),
        signpost=_learner_signpost(facts),
        questions=questions,
    )


def _new_concern(facts: ConcernFacts, role: Role) -> Message:
    return Message(
        subject=f"[{facts.reference}] A learner's concern needs your acknowledgement",
        headline="A learner has raised a concern about their placement",
        paragraphs=(
            f"Summary: {facts.summary}",
            f"What happened: {facts.description}",
            "Please acknowledge it, act on it, and give the learner feedback before the "
            "deadlines below.",
            HOW_TO_REPLY,
        ),
        facts=_case_facts(facts, role),
        link=facts.staff_url,
    )


def _high_risk_alert(facts: ConcernFacts, role: Role) -> Message:
    # A concern raised earlier and rated high since (`why` says when it was raised) is not news
    # of a new concern.
    raised = facts.why is None
    return Message(
        subject=(
            f"[{facts.reference}] High-risk concern raised ({facts.rating})"
            if raised
            else f"[{facts.reference}] A concern is now rated high risk ({facts.rating})"
        ),
        headline="A high-risk concern has been raised"
        if raised
        else "A concern is now rated high risk",
        paragraphs=(
            *(() if raised else (facts.why or "",)),
            f"Summary: {facts.summary}",
            f"It is on {PATHWAY_NAMES_FOR_STAFF[facts.pathway]}.",
            "Why it is high risk: " + "; ".join(facts.reasons),
            "Recommended interventions: " + "; ".join(facts.interventions),
        ),
        facts=_case_facts(facts, role),
        link=facts.staff_url,
    )


def _ack_reminder(facts: ConcernFacts, role: Role) -> Message:
    return Message(
        subject=f"[{facts.reference}] Reminder: please acknowledge this concern",
        headline="Reminder: this concern has not been acknowledged",
        paragraphs=(
            f"Summary: {facts.summary}",
            f"Please acknowledge it by {when(facts.ack_due_at, facts.timezone)}.",
            HOW_TO_REPLY,
        ),
        facts=_case_facts(facts, role),
        link=facts.staff_url,
    )


def _ack_missed(facts: ConcernFacts, role: Role) -> Message:
    return Message(
        subject=f"[{facts.reference}] Overdue: acknowledgement deadline passed",
        headline="The acknowledgement deadline for this concern has passed",
        paragraphs=(
            f"Summary: {facts.summary}",
            "Please acknowledge it now."
            + (" The next contact at this level has been told." if facts.others_told else ""),
            f"If the learner has no feedback by {when(facts.feedback_due_at, facts.timezone)}, "
            f"{_if_feedback_is_late(facts)}.",
        ),
        facts=_case_facts(facts, role),
        link=facts.staff_url,
    )


def _ack_missed_secondary(facts: ConcernFacts, role: Role) -> Message:
    return Message(
        subject=f"[{facts.reference}] For your attention: a concern has not been acknowledged",
        headline="A concern at your level has not been acknowledged in time",
        paragraphs=(
            f"Summary: {facts.summary}",
            "You are the secondary contact for this level. Please make sure it is picked up.",
        ),
        facts=_case_facts(facts, role),
        link=facts.staff_url,
    )


def _feedback_reminder(facts: ConcernFacts, role: Role) -> Message:
    return Message(
        subject=f"[{facts.reference}] Reminder: the learner is waiting for feedback",
        headline="Reminder: feedback to the learner is due",
        paragraphs=(
            f"Summary: {facts.summary}",
            f"Please give the learner feedback by {when(facts.feedback_due_at, facts.timezone)}; "
            f"otherwise {_if_feedback_is_late(facts)}.",
            HOW_TO_REPLY,
        ),
        facts=_case_facts(facts, role),
        link=facts.staff_url,
    )


def _deadlines_changed(facts: ConcernFacts, role: Role) -> Message:
    feedback = f"give the learner feedback by {when(facts.feedback_due_at, facts.timezone)}"
    if facts.acknowledged_at is not None:
        asked = f"Please {feedback}."
    elif facts.written_at is not None and facts.ack_due_at <= facts.written_at:
        # Counted from when the concern reached this level, the new deadline may have passed.
        asked = (
            "At its new rating the time to acknowledge it has passed: please acknowledge it "
            f"now, and {feedback}."
        )
    else:
        asked = (
            f"Please acknowledge it by {when(facts.ack_due_at, facts.timezone)}, and {feedback}."
        )
    return Message(
        subject=f"[{facts.reference}] The deadlines for this concern have changed",
        headline="The deadlines for this concern have changed",
        paragraphs=(
            f"It is now rated {facts.risk_level} risk, after "
            f"{facts.why or 'what the learner told us since'}, and the deadlines at this level "
            "follow its risk. These replace the dates we sent you before.",
            asked,
            f"Summary: {facts.summary}",
            HOW_TO_REPLY,
        ),
        facts=_case_facts(facts, role),
        link=facts.staff_url,
    )


def _escalated_in(facts: ConcernFacts, role: Role) -> Message:
    return Message(
        subject=f"[{facts.reference}] A concern has been escalated to you",
        headline=f"A concern has moved to {PATHWAY_NAMES_FOR_STAFF[facts.pathway]}",
        paragraphs=(
            f"Why it moved: {facts.why}" if facts.why else "It moved up the escalation ladder.",
            f"Summary: {facts.summary}",
            f"What happened: {facts.description}",
            HOW_TO_REPLY,
        ),
        facts=_case_facts(facts, role),
        history=facts.history,
        link=facts.staff_url,
    )


def _escalated_out(facts: ConcernFacts, role: Role) -> Message:
    return Message(
        subject=f"[{facts.reference}] This concern has moved to the next level",
        headline="This concern has been escalated to the next level",
        paragraphs=(
            f"Why it moved: {facts.why}" if facts.why else "It moved up the escalation ladder.",
            f"It is now on {PATHWAY_NAMES_FOR_STAFF[facts.pathway]}.",
        ),
        facts=(("Reference", facts.reference), ("Place", facts.place)),
        link=facts.staff_url,
    )


def _learner_escalated(facts: ConcernFacts, role: Role) -> Message:
    return Message(
        subject=f"[{facts.reference}] Your concern has moved to the next level",
        headline="Your concern has moved to the next level",
        paragraphs=(
            f"It is now on {PATHWAY_NAMES[facts.pathway]}."
            if facts.pathway != 2 or facts.school_known
            else "It is now on pathway 2, your school or university. We do not know yet who at "
            "yours to send it to, so the region's quality team has it and will find the right "
            "people.",
            f"Why: {facts.why}" if facts.why else "It moved up the escalation ladder.",
            f"They have been asked to give you feedback by "
            f"{when(facts.feedback_due_at, facts.timezone)}.",
            *_status_link(facts),
        ),
        signpost=_learner_signpost(facts),
    )


def _overdue_at_dean(facts: ConcernFacts, role: Role) -> Message:
    return Message(
        subject=f"[{facts.reference}] Overdue at dean level",
        headline="This concern is overdue at dean level",
        paragraphs=(
            f"Summary: {facts.summary}",
            "Feedback was due at pathway 3 and has not been recorded. It will head every dean "
            "digest until it is closed.",
        ),
        facts=_case_facts(facts, role),
        history=facts.history,
        link=facts.staff_url,
    )


def _learner_closed(facts: ConcernFacts, role: Role) -> Message:
    return Message(
        subject=f"[{facts.reference}] Your concern has been closed",
        headline="Your concern has been closed",
        paragraphs=(
            f"Why: {facts.why}" if facts.why else "It has been closed.",
            "If you remain concerned, reply to this email: staff will see your reply and can "
            "reopen it.",
            *_status_link(facts),
        ),
        signpost=_learner_signpost(facts),
    )


def _learner_feedback(facts: ConcernFacts, role: Role) -> Message:
    return Message(
        subject=f"[{facts.reference}] Feedback on your concern",
        headline="You have feedback on your concern",
        paragraphs=(
            f"Feedback from {PATHWAY_NAMES[facts.pathway]}:",
            facts.feedback or "",
            "If you are satisfied, reply with 'I'm satisfied' as the first line. If you remain "
            "concerned, reply with 'I remain concerned' as the first line and "
            + (
                "the dean's team will be asked to look at it again."
                if facts.pathway >= 3
                else "it will move to the next level straight away."
            ),
            *(
                (
                    "You can also use your concern's status page to say you are satisfied or "
                    "that you remain concerned.",
                )
                if facts.status_url
                else ()
            ),
            *_status_link(facts),
        ),
        signpost=_learner_signpost(facts),
    )


def _redirected_in(facts: ConcernFacts, role: Role) -> Message:
    return Message(
        subject=f"[{facts.reference}] A learner's concern has been passed to you",
        headline="A concern has been passed to you to handle",
        paragraphs=(
            f"Why it came to you: {facts.why}" if facts.why else "It was passed to you.",
            f"Summary: {facts.summary}",
            f"What happened: {facts.description}",
            "The deadlines below were set when the concern reached this level; they do not "
            "restart.",
            HOW_TO_REPLY,
        ),
        facts=_case_facts(facts, role),
        history=facts.history,
        link=facts.staff_url,
    )


def _reopened(facts: ConcernFacts, role: Role) -> Message:
    return Message(
        subject=f"[{facts.reference}] A concern has been reopened",
        headline=f"A closed concern has been reopened on {PATHWAY_NAMES_FOR_STAFF[facts.pathway]}",
        paragraphs=(
            f"Why it was reopened: {facts.why}" if facts.why else "It has been reopened.",
            f"Summary: {facts.summary}",
            "Its deadlines start again from now: please acknowledge it and give the learner "
            "feedback before the deadlines below.",
            HOW_TO_REPLY,
        ),
        facts=_case_facts(facts, role),
        history=facts.history,
        link=facts.staff_url,
    )


def _learner_reopened(facts: ConcernFacts, role: Role) -> Message:
    return Message(
        subject=f"[{facts.reference}] Your concern has been reopened",
        headline="Your concern has been reopened",
        paragraphs=(
            f"Why: {facts.why}" if facts.why else "It has been reopened.",
            f"It is on {PATHWAY_NAMES[facts.pathway]}. They have been asked to give you feedback "
            f"by {when(facts.feedback_due_at, facts.timezone)}.",
            _what_if_late(facts),
            *_status_link(facts),
        ),
        signpost=_learner_signpost(facts),
    )


def _still_concerned(facts: ConcernFacts, role: Role) -> Message:
    return Message(
        subject=f"[{facts.reference}] The learner remains concerned after feedback",
        headline="The learner remains concerned after the feedback they were given",
        paragraphs=(
            "This is the highest level, so the concern stays with you: please look at it again.",
            f"Summary: {facts.summary}",
            "Its deadlines start again from now: please acknowledge it and give the learner "
            "further feedback before the deadlines below.",
            HOW_TO_REPLY,
        ),
        facts=_case_facts(facts, role),
        history=facts.history,
        link=facts.staff_url,
    )


def _learner_still_concerned(facts: ConcernFacts, role: Role) -> Message:
    return Message(
        subject=f"[{facts.reference}] We have told the dean's team you remain concerned",
        headline="We have told the dean's team you remain concerned",
        paragraphs=(
            f"Your concern is already at the highest level: {PATHWAY_NAMES[facts.pathway]}. "
            "They have been asked to look at it again and to give you further feedback by "
            f"{when(facts.feedback_due_at, facts.timezone)}.",
            _what_if_late(facts),
            *_status_link(facts),
        ),
        signpost=_learner_signpost(facts),
    )


def _reply_not_applied(facts: ConcernFacts, role: Role) -> Message:
    refusal = (facts.why or "What your reply asked for could not be done").rstrip(".") + "."
    if role is Role.LEARNER:
        return Message(
            subject=f"[{facts.reference}] We could not act on your reply",
            headline="We could not act on your reply",
            paragraphs=(
                refusal,
                "What you wrote has been added to your concern.",
                *_status_link(facts),
            ),
        )
    return Message(
        subject=f"[{facts.reference}] We could not act on your reply",
        headline="We could not act on your reply",
        paragraphs=(
            refusal,
            "Nothing about the concern has changed, and your email is kept with its record. "
            "You can reply to this email to try again, or act on the concern from its page.",
        ),
        link=facts.staff_url,
    )


def _learner_address_corrected(facts: ConcernFacts, role: Role) -> Message:
    return Message(
        subject=f"[{facts.reference}] The learner's email address has changed",
        headline="The learner's email address has changed",
        paragraphs=(
            "The email address we gave you for the learner who raised this concern was wrong: "
            "the learner has told us the right one, below. If you contact them outside this "
            "service, use that one; do not reply to the old address.",
            "Nothing else about the concern has changed.",
        ),
        facts=_case_facts(facts, role),
        link=facts.staff_url,
    )


def _rated_high_over_override(facts: ConcernFacts, role: Role) -> Message:
    return Message(
        subject=f"[{facts.reference}] Triage now rates this concern high risk",
        headline="Triage now rates this concern high risk",
        paragraphs=(
            f"Summary: {facts.summary}",
            "Since the rating staff set, the learner has told us more, and triage now rates the "
            f"concern high risk: {facts.why}.",
            f"The rating staff set ({facts.rating}) still stands, so nobody else has been told. "
            "Read what the learner added and decide whether the rating should change.",
        ),
        facts=_case_facts(facts, role),
        link=facts.staff_url,
    )


def _wrote_after_closing(facts: ConcernFacts, role: Role) -> Message:
    return Message(
        subject=f"[{facts.reference}] The learner wrote after their concern closed",
        headline="The learner wrote after their concern closed",
        paragraphs=(
            f"Summary: {facts.summary}",
            "Their closing email told them that staff would see what they wrote and could reopen "
            "the concern. Read it on the staff page, and reopen the concern if it needs more.",
        ),
        facts=_case_facts(facts, role),
        link=facts.staff_url,
    )


BUILDERS: Mapping[MessageKind, Callable[[ConcernFacts, Role], Message]] = {
    MessageKind.LEARNER_ACK: _learner_ack,
    MessageKind.NEW_CONCERN: _new_concern,
    MessageKind.HIGH_RISK_ALERT: _high_risk_alert,
    MessageKind.ACK_REMINDER: _ack_reminder,
    MessageKind.ACK_MISSED: _ack_missed,
    MessageKind.ACK_MISSED_SECONDARY: _ack_missed_secondary,
    MessageKind.FEEDBACK_REMINDER: _feedback_reminder,
    MessageKind.ESCALATED_IN: _escalated_in,
    MessageKind.ESCALATED_OUT: _escalated_out,
    MessageKind.LEARNER_ESCALATED: _learner_escalated,
    MessageKind.OVERDUE_AT_DEAN: _overdue_at_dean,
    MessageKind.LEARNER_CLOSED: _learner_closed,
    MessageKind.LEARNER_FEEDBACK: _learner_feedback,
    MessageKind.REDIRECTED_IN: _redirected_in,
    MessageKind.REOPENED: _reopened,
    MessageKind.LEARNER_REOPENED: _learner_reopened,
    MessageKind.REPLY_NOT_APPLIED: _reply_not_applied,
    MessageKind.STILL_CONCERNED: _still_concerned,
    MessageKind.LEARNER_STILL_CONCERNED: _learner_still_concerned,
    MessageKind.LEARNER_ADDRESS_CORRECTED: _learner_address_corrected,
    MessageKind.RATED_HIGH_OVER_OVERRIDE: _rated_high_over_override,
    MessageKind.DEADLINES_CHANGED: _deadlines_changed,
    MessageKind.WROTE_AFTER_CLOSING: _wrote_after_closing,
}


# The outbox kind of the answer to an email the mailbox keeps for staff instead of acting on
# (`kept_for_staff`): about no concern, since who sent it is not known.
KEPT_FOR_STAFF = "kept_for_staff"


def kept_for_staff(
    *, why: str, named_reference: str | None, form_url: str, patient_safety: bool = False
) -> Message:
    """The answer to an email kept for staff: why nothing was done with it, and how its sender
    (a learner or a member of staff; we cannot tell which) can do what they meant to. It says
    nothing of any concern: the sender is not known to be anyone the concern's people are."""
    about = f" about {named_reference}" if named_reference else ""
    paragraphs = [
        why.rstrip(".") + ".",
        "To keep every concern safe, we add to a concern only replies to the emails we sent "
        "about it, from the address we sent them to. So your email has not been added to any "
        "concern, and nothing has changed. It is kept for the region's quality team to read.",
        f"If you raised the concern: reply to any email we sent you{about}, or use the link in "
        "it to add information or tell us you remain concerned.",
        f"If you are a member of staff acting on it: reply to the email we sent you{about}, "
        "from the address it was sent to, or act on the concern from its staff page.",
    ]
    if named_reference:
        paragraphs.append(
            "If this is a new concern: send it to us again without a reference number, or use "
            f"the form at {form_url}"
        )
    subject = f"Your email{about} has been kept for the quality team"
    return Message(
        subject=subject,
        headline="We have your email",
        paragraphs=tuple(paragraphs),
        # What it says reads as patient safety: the learner is told to report it locally too,
        # as every other answer about harm tells them.
        signpost=PATIENT_SAFETY_SIGNPOST if patient_safety else None,
    )


def build_message(kind: MessageKind, *, facts: ConcernFacts, recipient_role: Role) -> Message:
    """The message of a kind for a recipient in a role, with only what that role may see."""
    return BUILDERS[kind](facts, recipient_role)
