"""Stored emails become concerns and replies on a real database; forged and automatic mail not."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from email.utils import make_msgid

import pytest
from alembic import command
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from escalation.actions import (
    Actor,
    change_learner_email,
    close_concern,
    record_feedback,
)
from escalation.redact import REMOVED
from intake.emails import header_message_id, html_to_text
from intake.mail_intake import IntakeReport, process_pending
from intake.service import submit_concern
from intake.submission import Channel, parse_submission
from notifications.messages import PATIENT_SAFETY_SIGNPOST, when
from notifications.threading import MailThreading
from storage import inbox, migrate, repositories
from storage.db import create_db_engine, transaction
from storage.directory import example_directory_path, load_directory, parse_directory
from storage.inbox import Received, store_received
from storage.tables import (
    Concern,
    Department,
    Event,
    InboundMessage,
    Learner,
    Organisation,
    OutboxMessage,
)
from tests.integration.helpers import (
    LONDON,
    MONDAY_MORNING,
    concern_input,
    example_placement,
    load_example_directory,
    policy,
    rate_by_hand,
)

MAILBOX = "escalating-concerns@example.nhs.uk"
LEARNER = "jane.smith@student.example.ac.uk"
THREADING = MailThreading(secret=b"test-secret", mailbox=MAILBOX)


@pytest.fixture
def db(engine: Engine) -> Engine:
    load_example_directory(engine)
    return engine


def email(
    *,
    sender: str = f"Jane Smith <{LEARNER}>",
    # A medium concern until the learner answers (being left alone on the ward, unsupervised
    # practice, would be high risk from the start).
    subject: str = "Rota gaps on Ward 7 at Vale General",
    body: str = (
        "On nights the rota has gaps and my teaching keeps being cancelled.\n\n"
        "Kind regards,\nJane Smith\nStudent nurse"
    ),
    headers: dict[str, str] | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = MAILBOX
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="student.example.ac.uk")
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    return message.as_bytes()


def deliver(
    engine: Engine, raw: bytes, *, mail_from: str = LEARNER, now: datetime = MONDAY_MORNING
) -> IntakeReport:
    store_received(engine, [Received(mail_from=mail_from, rcpt_tos=(MAILBOX,), raw=raw)], now=now)
    return process_pending(engine=engine, policy=policy(), threading=THREADING, now=now)


def answered(
    engine: Engine,
    answers: str,
    *,
    about: str | None = "There is nobody to ask for help on nights.",
    after: timedelta = timedelta(hours=1),
) -> tuple[Concern, Concern]:
    """A concern raised by email, then the learner's reply to its acknowledgement `after` later
    with these answers: the concern before the reply and after it. `about`: what the concern
    says (None: the usual email's words)."""
    deliver(engine, email() if about is None else email(body=about))
    before = only_concern(engine)
    (ack,) = outbox(engine, kind="learner_ack")
    deliver(engine, reply_to(ack, body=answers), now=MONDAY_MORNING + after)
    return before, only_concern(engine)


def only_concern(engine: Engine) -> Concern:
    with transaction(engine) as session:
        concerns = repositories.all_concerns(session)
        assert len(concerns) == 1
        return concerns[0]


def staff_correct_the_address(db: Engine, corrected: str, *, now: datetime) -> None:
    """The region's staff correct the only concern's learner address, as the learner asked."""
    with transaction(db) as session:
        concern = repositories.lock_concern(session, only_concern(db).id or 0)
        assert concern is not None
        assert change_learner_email(
            session=session,
            concern=concern,
            email=corrected,
            name=None,
            by=Actor(kind="staff", channel="web"),
            now=now,
            policy=policy(),
            reason="The learner phoned",
        )


def outbox(engine: Engine, **where: object) -> list[OutboxMessage]:
    with transaction(engine) as session:
        statement = select(OutboxMessage).order_by(OutboxMessage.id)  # type: ignore[arg-type]
        for name, value in where.items():
            statement = statement.where(getattr(OutboxMessage, name) == value)
        return list(session.exec(statement).all())


def events(engine: Engine, concern_id: int) -> list[Event]:
    with transaction(engine) as session:
        return list(repositories.events_of(session, concern_id))


def reply_to(sent: OutboxMessage, **kwargs: object) -> bytes:
    """A reply to one of our messages, threaded the way a mail client does it."""
    our_id = THREADING.message_id(sent.id or 0, sent.recipient_address, queued_at=sent.created_at)
    headers = {"In-Reply-To": our_id, "References": our_id}
    return email(subject=f"Re: {sent.subject}", headers=headers, **kwargs)  # type: ignore[arg-type]


def test_a_new_email_becomes_a_confidential_concern_with_questions_for_the_learner(
    db: Engine,
) -> None:
    report = deliver(db, email())
    assert (report.processed, report.new_concerns) == (1, 1)
    concern = only_concern(db)
    assert concern.channel == "email"
    assert concern.confidentiality == "confidential"
    assert concern.pathway == 1
    assert (concern.frequency, concern.harm) == ("not_answered", "not_answered")
    with transaction(db) as session:
        inbound = session.exec(select(InboundMessage)).one()
        department = repositories.find_department(
            session, concern.organisation_id or 0, "general-surgery"
        )
    assert inbound.status == "processed" and inbound.concern_id == concern.id
    assert department is not None and concern.department_id == department.id

    (ack,) = outbox(db, kind="learner_ack")
    assert ack.recipient_address == LEARNER
    assert "How often:" in ack.body_text and "Anyone harmed:" in ack.body_text
    assert "Learner group:" in ack.body_text
    # A reader of the HTML part sees the same question lines, one a line.
    shown = html_to_text(ack.body_html or "").splitlines()
    for line in ack.body_text.splitlines():
        if line.startswith(("How often:", "Anyone harmed:", "Learner group:")):
            assert line.strip() in shown
    assert "Organisation:" not in ack.body_text  # it was found in the directory
    assert "General Surgery (Ward 7)" in ack.body_text

    told = outbox(db, kind="new_concern")
    assert told, "the placement's supervisor is told"
    for message in told:
        for leak in ("Jane", "Smith", LEARNER, "jane.smith"):
            assert leak not in message.body_text and leak not in (message.body_html or "")
        assert "the rota has gaps" in message.body_text


def test_attachment_names_are_redacted_like_the_text(db: Engine) -> None:
    """A file named after the sender must not give a confidential concern's learner away."""
    message = EmailMessage()
    message["From"] = LEARNER  # no name: only the address says who it is
    message["To"] = MAILBOX
    message["Subject"] = "Left alone on Ward 7 at Vale General"
    message["Message-ID"] = make_msgid(domain="student.example.ac.uk")
    message.set_content("On nights I was left alone on the ward with nobody to call.")
    message.add_attachment(
        b"%PDF-1.4", maintype="application", subtype="pdf", filename="statement-jane.smith.pdf"
    )
    deliver(db, message.as_bytes())
    assert "statement-[name removed].pdf" in only_concern(db).description
    told = outbox(db, kind="new_concern")
    assert told
    for sent in told:
        assert "jane" not in sent.body_text.lower() and "smith" not in sent.body_text.lower()


@pytest.mark.parametrize(
    "sender",
    [
        '"Jane Smith (js1234@student.example.ac.uk)" <js1234@student.example.ac.uk>',
        '"Smith, Jane <js1234@student.example.ac.uk>" <js1234@student.example.ac.uk>',
        '"Jane Smith (jane.smith@nhs.example)" <js1234@student.example.ac.uk>',
    ],
)
def test_a_name_written_with_an_address_in_it_is_still_the_learners_and_is_redacted(
    db: Engine, sender: str
) -> None:
    """Outlook and some webmail write the address into the display name: the name is still
    the learner's, for the dean, and contacts still must not read it in the text."""
    body = (
        "I am Jane Smith, a student nurse; Smith is on the rota as Jane S.\n"
        "Write to jane.smith@nhs.example or to me here. I was left alone on nights."
    )
    deliver(db, email(sender=sender, body=body), mail_from="js1234@student.example.ac.uk")
    concern = only_concern(db)
    told = outbox(db, kind="new_concern")
    assert told, "the placement's supervisor is told"
    for text in (concern.summary, concern.description, *(sent.body_text for sent in told)):
        for leak in ("jane", "smith", "js1234"):
            assert leak not in text.lower()
    assert "left alone on nights" in concern.description
    with transaction(db) as session:
        learner = session.get(Learner, concern.learner_id)
    assert learner is not None and learner.name in ("Jane Smith", "Smith, Jane")


@pytest.mark.parametrize(
    "body",
    [
        "My supervisor shouts at me in front of patients.",
        # What nurses and midwives call the practice supervisor or assessor.
        "Most nights I am left on my own with 12 patients while my mentor goes to another ward.",
        "My preceptor never signs anything off.",
    ],
)
def test_an_email_about_a_supervisor_starts_at_pathway_2_and_no_pathway_1_contact_is_told(
    db: Engine, body: str
) -> None:
    deliver(db, email(body=body))
    concern = only_concern(db)
    assert concern.pathway == 2
    # The learner is told why it is not with their placement.
    (ack,) = outbox(db, kind="learner_ack")
    assert "It starts there, not with your placement" in " ".join(ack.body_text.split())
    roles = {message.recipient_role for message in outbox(db)}
    assert not roles & {"supervisor", "clinical_tutor", "speak_up_guardian"}


def test_the_learners_reply_answers_the_questions_and_triage_follows(db: Engine) -> None:
    deliver(db, email())
    (ack,) = outbox(db, kind="learner_ack")
    before = only_concern(db)
    report = deliver(
        db,
        reply_to(
            ack,
            body="How often: every shift\nAnyone harmed: a patient was harmed\n"
            "Learner group: nursing student\n\n> quoted text of ours",
        ),
        now=MONDAY_MORNING + timedelta(hours=1),
    )
    assert report.replies == 1
    after = only_concern(db)
    assert (after.frequency, after.harm, after.learner_group) == (
        "continuing",
        "patient_harmed",
        "nursing",
    )
    assert after.risk_level == "high" and before.risk_level != "high"
    assert after.patient_safety
    assert after.ack_due_at < before.ack_due_at, "a high-risk level has shorter deadlines"
    alerts = outbox(db, kind="high_risk_alert")
    assert alerts, "the dean and quality team are alerted"
    # Of a concern rated high since it was raised, not of a new one.
    assert all("A concern is now rated high risk" in alert.body_text for alert in alerts)
    assert all("It was raised on Monday" in alert.body_text for alert in alerts)
    # Those told the old deadlines are told the new ones at once, each once.
    told_before = {m.recipient_address for m in outbox(db, kind="new_concern", channel="email")}
    moved = outbox(db, kind="deadlines_changed", channel="email")
    assert told_before and {m.recipient_address for m in moved} == told_before
    assert len(moved) == len(told_before)
    assert all(m.send_after == MONDAY_MORNING + timedelta(hours=1) for m in moved)
    assert all(when(after.ack_due_at, LONDON) in (m.body_text or "") for m in moved)
    assert all("after what the learner told us since" in (m.body_text or "") for m in moved)
    kinds = [event.kind for event in events(db, after.id or 0)]
    assert "learner_added_information" in kinds and "learner_answered" in kinds


def test_an_acknowledgement_deadline_already_passed_is_told_as_passed(db: Engine) -> None:
    """The level's deadlines count from when the concern reached it, so a higher rating can
    set one in the past: the contacts are asked to acknowledge now, not by a date gone by."""
    harm = "How often: every shift\nAnyone harmed: a patient was harmed\n"
    _, after = answered(db, harm, about=None, after=timedelta(days=1, hours=5))
    assert after.risk_level == "high" and after.ack_due_at < MONDAY_MORNING + timedelta(
        days=1, hours=5
    )
    moved = outbox(db, kind="deadlines_changed", channel="email")
    assert moved
    for message in moved:
        assert "the time to acknowledge it has passed: please acknowledge it now" in (
            message.body_text or ""
        )


def test_no_new_deadline_is_asked_for_when_even_feedback_is_late_at_the_new_rating(
    db: Engine,
) -> None:
    """Nobody is asked for feedback already late: it moves up at the sweep's next look."""
    saturday = MONDAY_MORNING + timedelta(days=12)
    harm = "How often: every shift\nAnyone harmed: a patient was harmed\n"
    before, after = answered(db, harm, about=None, after=timedelta(days=12))
    assert before.feedback_due_at > saturday
    assert after.risk_level == "high" and after.feedback_due_at < saturday
    assert outbox(db, kind="deadlines_changed") == []


def test_later_deadlines_are_not_sent_to_the_contacts(db: Engine) -> None:
    """Answers that lower the rating move the deadlines later: nobody is told (acting sooner
    harms nobody), and the rating itself follows."""
    before, after = answered(
        db, "How often: once\nAnyone harmed: minor\n", about="The rota is posted late every month."
    )
    assert after.feedback_due_at > before.feedback_due_at, (before.risk_level, after.risk_level)
    assert outbox(db, kind="deadlines_changed") == []


def test_harm_in_the_learners_own_words_is_read_as_harm(db: Engine) -> None:
    """ "Yes, a patient fell" is the learner's answer to "Has anyone been harmed?", in their own
    words: before, it was not understood, and a concern that happened once stayed medium risk."""
    _, after = answered(db, "How often: once\nAnyone harmed: yes, a patient fell\n")
    assert (after.frequency, after.harm) == ("once", "patient_harmed")
    assert after.patient_safety and after.risk_level == "high"
    assert outbox(db, kind="high_risk_alert"), "the dean and quality team are alerted"


def test_an_answer_that_is_not_clear_is_still_read_for_harm(db: Engine) -> None:
    """ "A high-risk patient fell" names a risk and a harm: no clear answer, so harm stays
    unanswered, but the words are the learner's and are rated: a patient safety concern."""
    _, after = answered(db, "How often: once\nAnyone harmed: a high-risk patient fell\n")
    assert (after.frequency, after.harm) == ("once", "not_answered")
    assert after.patient_safety and after.impact >= 4


def test_a_learner_who_fell_behind_is_not_a_patient_harmed(db: Engine) -> None:
    """The same reply about the learner's own training (once, and they fell behind) is the
    learners affected: medium risk, and nobody alerted."""
    _, after = answered(
        db,
        "How often: once\nAnyone harmed: my training, I fell behind\n",
        about="Our teaching is cancelled most weeks.",
    )
    assert (after.frequency, after.harm) == ("once", "learners_affected")
    assert not after.patient_safety and after.risk_level == "medium"
    assert not outbox(db, kind="high_risk_alert")


def test_a_reply_is_read_for_triage_without_its_answer_lines(db: Engine) -> None:
    """'Anyone harmed: minor' repeats our question's words: it is an answer, not an account of
    harm, and never rates the concern as a patient-safety one; the learner's own words are."""
    deliver(db, email(body="Our teaching is cancelled most weeks."))
    (ack,) = outbox(db, kind="learner_ack")
    before = only_concern(db)
    deliver(
        db,
        reply_to(ack, body="How often: occasionally\nAnyone harmed: minor\n"),
        now=MONDAY_MORNING + timedelta(hours=1),
    )
    answered = only_concern(db)
    assert answered.harm == "minor" and not answered.patient_safety
    assert answered.risk_level != "high" and not outbox(db, kind="high_risk_alert")
    assert before.risk_level == answered.risk_level or answered.risk_level == "low"

    deliver(
        db,
        reply_to(ack, body="Last night we were left unsupervised and a patient was harmed."),
        now=MONDAY_MORNING + timedelta(hours=2),
    )
    after = only_concern(db)
    assert after.patient_safety and after.impact >= 4
    assert outbox(db, kind="high_risk_alert"), "the dean and quality team are alerted"


def test_an_answer_written_under_our_quoted_question_is_not_read_as_harm(db: Engine) -> None:
    """'Minor harm' typed under '> Anyone harmed: (...)' answers the question; read as the
    learner's account, its word 'harm' would make the concern a patient-safety one."""
    deliver(db, email(body="Our teaching is cancelled most weeks."))
    (ack,) = outbox(db, kind="learner_ack")
    inline = re.sub(r"(> Anyone harmed: .*\n)", r"\1Minor harm\n", quoting(ack))
    deliver(db, reply_to(ack, body=inline), now=MONDAY_MORNING + timedelta(hours=1))
    concern = only_concern(db)
    assert concern.harm == "minor"
    assert not concern.patient_safety and concern.risk_level != "high"
    assert not outbox(db, kind="high_risk_alert")


def test_a_satisfied_reply_is_not_read_for_new_risk(db: Engine) -> None:
    """It closes the concern: thanks for sorting out 'the unsafe nights' alert nobody."""
    deliver(db, email(body="Our teaching is cancelled most weeks."))
    notice = outbox(db, kind="new_concern")[0]
    deliver(
        db,
        reply_to(notice, sender=f"Supervisor <{notice.recipient_address}>", body="Feedback: Done."),
        mail_from=notice.recipient_address,
        now=MONDAY_MORNING + timedelta(hours=2),
    )
    (feedback,) = outbox(db, kind="learner_feedback")
    deliver(
        db,
        reply_to(feedback, body="I'm satisfied. Thank you for sorting out the unsafe nights."),
        now=MONDAY_MORNING + timedelta(hours=3),
    )
    concern = only_concern(db)
    assert concern.status == "closed"
    assert not concern.patient_safety and not outbox(db, kind="high_risk_alert")


HARMED = "last night a patient was harmed because there was no senior cover"


def test_an_account_written_under_our_quoted_question_is_read_for_triage(db: Engine) -> None:
    """More than an answer under '> How often: (...)' is the learner's account too."""
    deliver(db, email(body="Our teaching is cancelled most weeks."))
    (ack,) = outbox(db, kind="learner_ack")
    inline = re.sub(r"(> How often: .*\n)", rf"\1Every shift - {HARMED}.\n", quoting(ack))
    deliver(db, reply_to(ack, body=inline), now=MONDAY_MORNING + timedelta(hours=1))
    concern = only_concern(db)
    assert concern.frequency == "continuing"
    assert concern.patient_safety and outbox(db, kind="high_risk_alert")


def test_a_satisfied_reply_that_closes_nothing_is_read_for_triage(db: Engine) -> None:
    """'Satisfied' before any feedback closes nothing: the rest of the reply is still news."""
    deliver(db, email(body="Our teaching is cancelled most weeks."))
    (ack,) = outbox(db, kind="learner_ack")
    deliver(
        db,
        reply_to(ack, body=f"Satisfied - but {HARMED}."),
        now=MONDAY_MORNING + timedelta(hours=1),
    )
    concern = only_concern(db)
    assert concern.status == "open"
    assert concern.patient_safety and outbox(db, kind="high_risk_alert")


def test_a_reply_processed_after_later_information_is_still_rated(db: Engine) -> None:
    """Mail is processed with its batch's moment: information added since may carry a later
    time than it, and the reply's own words must still be what is rated."""
    deliver(db, email(body="Our teaching is cancelled most weeks."))
    (ack,) = outbox(db, kind="learner_ack")
    deliver(db, reply_to(ack, body="Thanks."), now=MONDAY_MORNING + timedelta(hours=2))
    deliver(db, reply_to(ack, body=f"Also, {HARMED}."), now=MONDAY_MORNING + timedelta(hours=1))
    concern = only_concern(db)
    assert concern.patient_safety and outbox(db, kind="high_risk_alert")


def quoting(sent: OutboxMessage) -> str:
    """Our message quoted below an attribution line, as a mail client does when replying."""
    quoted = "\n".join(f"> {line}" for line in sent.body_text.splitlines())
    return f"On Mon, 23 Nov 2026 at 10:00, Learner concerns <{MAILBOX}> wrote:\n{quoted}\n"


def test_a_reply_with_nothing_of_its_own_keeps_none_of_our_quoted_email(db: Engine) -> None:
    """The quote holds the learner's status link: contacts must never see it as their text."""
    deliver(db, email())
    (ack,) = outbox(db, kind="learner_ack")
    assert "/concerns/status/link/" in ack.body_text
    report = deliver(db, reply_to(ack, body=quoting(ack)), now=MONDAY_MORNING + timedelta(hours=1))
    assert report.replies == 1
    concern = only_concern(db)
    (added,) = [e for e in events(db, concern.id or 0) if e.kind == "learner_added_information"]
    assert added.detail["text"] == "(The reply had no new text. The original email is kept.)"
    assert (concern.frequency, concern.harm) == ("not_answered", "not_answered")


def test_a_reply_written_below_the_quote_is_kept_and_its_answers_read(db: Engine) -> None:
    deliver(db, email())
    (ack,) = outbox(db, kind="learner_ack")
    deliver(
        db,
        reply_to(
            ack,
            body=f"{quoting(ack)}\nStill alone on nights.\nHow often: every shift\n"
            "Anyone harmed: a patient is at risk\n",
        ),
        now=MONDAY_MORNING + timedelta(hours=1),
    )
    concern = only_concern(db)
    (added,) = [e for e in events(db, concern.id or 0) if e.kind == "learner_added_information"]
    assert added.detail["text"] == (
        "Still alone on nights.\nHow often: every shift\nAnyone harmed: a patient is at risk"
    )
    assert (concern.frequency, concern.harm) == ("continuing", "patient_at_risk")


def test_answers_written_inline_under_our_quoted_questions_are_read(db: Engine) -> None:
    deliver(db, email(subject="Left alone", body="On nights I was left alone on the ward."))
    (ack,) = outbox(db, kind="learner_ack")
    inline = quoting(ack).replace(
        "> How often: (once / occasionally / often / every shift or continuing)\n",
        "> How often: (once / occasionally / often / every shift or continuing)\nevery shift\n",
    )
    inline = re.sub(r"(> Anyone harmed: .*\n)", r"\1yes, a patient was hurt\n", inline)
    inline = inline.replace("> Organisation: \n", "> Organisation: \nVale General Hospital\n")
    assert inline.count("\n> ") == quoting(ack).count("\n> ")
    report = deliver(db, reply_to(ack, body=inline), now=MONDAY_MORNING + timedelta(hours=1))
    concern = only_concern(db)
    assert (concern.frequency, concern.harm) == ("continuing", "patient_harmed")
    assert concern.risk_level == "high" and concern.patient_safety
    assert "answers taken" in report.outcomes[0]
    (added,) = [e for e in events(db, concern.id or 0) if e.kind == "learner_added_information"]
    assert "/concerns/status/" not in added.detail["text"]


ATTRIBUTION = f"On Mon, 23 Nov 2026 at 10:00, Learner concerns &lt;{MAILBOX}&gt; wrote:"
# How HTML mail clients quote the message replied to ({ours}: its body), where the learner's own
# text may go above ({above}) or below ({below}) it. Outlook writes its reply header block and
# the original after it, unmarked; what follows the original cannot be told from it.
HTML_QUOTES = {
    "apple": '<div>{above}</div><div><br><blockquote type="cite"><div>'
    + ATTRIBUTION
    + "</div><div>{ours}</div></blockquote></div><div>{below}</div>",
    "thunderbird": '<p>{above}</p><div class="moz-cite-prefix">' + ATTRIBUTION + "<br></div>"
    '<blockquote type="cite" cite="mid:x@example">{ours}</blockquote><p>{below}</p>',
    "gmail": '<div dir="ltr">{above}</div><br><div class="gmail_quote"><div dir="ltr" '
    'class="gmail_attr">' + ATTRIBUTION + '<br></div><blockquote class="gmail_quote" '
    'style="margin:0px 0px 0px 0.8ex">{ours}</blockquote></div><div>{below}</div>',
    "no attribution": "<div>{above}</div><blockquote>{ours}</blockquote><div>{below}</div>",
    "outlook": '<div>{above}</div><div id="appendonsend"></div><hr style="display:inline-block">'
    '<div id="divRplyFwdMsg" dir="ltr"><font face="Calibri"><b>De :</b> Learner concerns '
    "&lt;concerns@example&gt;<br><b>Envoy\u00e9 :</b> lundi 23 novembre 2026 10:00<br>"
    "<b>\u00c0 :</b> Jane<br><b>Objet :</b> Re: x</font><div>&nbsp;</div></div><div>{ours}</div>",
}


def html_reply(sent: OutboxMessage, client: str, *, above: str = "", below: str = "") -> bytes:
    """An HTML-only reply to one of our messages, quoting its HTML body as `client` does."""
    ours = re.search(r"<body[^>]*>(.*)</body>", sent.body_html or "", re.DOTALL)
    assert ours is not None
    html = HTML_QUOTES[client].format(above=above, below=below, ours=ours.group(1))
    message = EmailMessage()
    message["From"] = f"Jane Smith <{LEARNER}>"
    message["To"] = MAILBOX
    message["Subject"] = f"Re: {sent.subject}"
    our_id = THREADING.message_id(sent.id or 0, sent.recipient_address)
    message["In-Reply-To"] = message["References"] = our_id
    message.set_content(f"<html><body>{html}</body></html>", subtype="html")
    return message.as_bytes()


@pytest.mark.parametrize(
    ("client", "where"),
    [
        (client, where)
        for client in HTML_QUOTES
        for where in ("above", "below", "nowhere")
        if (client, where) != ("outlook", "below")
    ],
)
def test_an_html_reply_keeps_the_learners_text_and_never_our_quoted_email(
    db: Engine, client: str, where: str
) -> None:
    """Our email holds the learner's signed status link: it is never kept as their text."""
    deliver(db, email())
    (ack,) = outbox(db, kind="learner_ack")
    assert ack.body_html and "/concerns/status/link/" in ack.body_html
    written = {where: "Still alone on <b>nights</b>.<br>Nobody came."} if where != "nowhere" else {}
    deliver(db, html_reply(ack, client, **written), now=MONDAY_MORNING + timedelta(hours=1))
    concern = only_concern(db)
    (added,) = [e for e in events(db, concern.id or 0) if e.kind == "learner_added_information"]
    if where == "nowhere":
        assert added.detail["text"] == "(The reply had no new text. The original email is kept.)"
    else:
        assert added.detail["text"] == "Still alone on nights.\nNobody came."


def test_an_html_reader_can_answer_inline_under_our_questions(db: Engine) -> None:
    deliver(db, email(subject="Left alone", body="On nights I was left alone on the ward."))
    (ack,) = outbox(db, kind="learner_ack")
    # Typing under a quoted line splits the quote there, as Apple Mail and Gmail do.
    split = '</pre></blockquote><div>every shift</div><blockquote type="cite"><pre>'
    html = html_reply(ack, "apple").replace(b"Anyone harmed:", split.encode() + b"Anyone harmed:")
    assert html.count(b"every shift</div>") == 1
    deliver(db, html, now=MONDAY_MORNING + timedelta(hours=1))
    assert only_concern(db).frequency == "continuing"


def test_a_flood_of_new_concerns_from_one_sender_is_kept_aside_past_the_limit(db: Engine) -> None:
    """A script gone wrong, or mail forged in a learner's name, must not tell the supervisor and
    alert the dean once per message: past the day's limit, new concerns wait for staff."""

    def send(sender: str, at: datetime) -> IntakeReport:
        raw = email(sender=f"Someone <{sender}>", body="A patient was harmed on nights.")
        store_received(db, [Received(mail_from=sender, rcpt_tos=(MAILBOX,), raw=raw)], now=at)
        return process_pending(
            engine=db,
            policy=policy(),
            threading=THREADING,
            now=at,
            concerns_per_sender_per_day=2,
        )

    reports = [send(LEARNER, MONDAY_MORNING + timedelta(minutes=n)) for n in range(3)]
    assert [r.new_concerns for r in reports] == [1, 1, 0]
    assert reports[2].quarantined == 1
    with transaction(db) as session:
        concerns = repositories.all_concerns(session)
        (kept,) = inbox.kept_aside(session, limit=10)
        told = session.exec(select(OutboxMessage)).all()
    assert len(concerns) == 2
    # Filed under the region the sender's concerns are in, for its dean and quality team.
    assert kept.region_id == concerns[0].region_id is not None
    assert kept.outcome is not None and "already 2 new concerns from this sender" in kept.outcome
    assert {message.concern_id for message in told} == {concern.id for concern in concerns}

    # Another sender is not held back, and the same sender is heard again a day later.
    assert send("someone.else@student.example.ac.uk", MONDAY_MORNING).new_concerns == 1
    later = MONDAY_MORNING + timedelta(days=1, minutes=1)
    assert send(LEARNER, later).new_concerns == 1


def test_a_forged_reply_from_another_address_never_joins_the_concern(db: Engine) -> None:
    deliver(db, email())
    (ack,) = outbox(db, kind="learner_ack")
    forged = reply_to(
        ack,
        sender="Mallory <mallory@evil.example>",
        body="I'm satisfied\nHow often: once\nAnyone harmed: minor",
    )
    report = deliver(db, forged, mail_from="mallory@evil.example")
    assert report.quarantined == 1
    concern = only_concern(db)
    assert (concern.frequency, concern.harm) == ("not_answered", "not_answered")
    kinds = [event.kind for event in events(db, concern.id or 0)]
    assert "learner_added_information" not in kinds
    with transaction(db) as session:
        statuses = {row.status for row in session.exec(select(InboundMessage))}
        # What the staff page "Kept aside" lists (app.staff.kept_aside).
        (kept,) = inbox.kept_aside(session, limit=10)
    assert statuses == {"processed", "quarantined"}
    assert kept.from_address == "mallory@evil.example"
    assert kept.subject is not None and kept.subject.startswith("Re:")
    assert kept.outcome is not None and "does not match the sender" in kept.outcome
    # The token is genuine (sent to the learner), so the mail is filed under its concern's
    # region; it still grants nothing.
    assert kept.region_id == concern.region_id
    # Its sender (a supervisor replying from another address, say) is told why nothing was
    # done, with nothing of the concern, not even its reference.
    (answer,) = outbox(db, kind="kept_for_staff")
    assert answer.recipient_address == "mallory@evil.example"
    assert "a different address from the one ours was sent to" in answer.body_text
    assert concern.reference not in answer.body_text + answer.subject


def test_a_reply_from_an_address_the_learner_corrected_no_longer_acts_on_the_concern(
    db: Engine,
) -> None:
    deliver(db, email())
    (ack,) = outbox(db, kind="learner_ack")
    corrected = "jane.smith@correct.example.ac.uk"
    with transaction(db) as session:
        concern = repositories.lock_concern(session, ack.concern_id or 0)
        assert concern is not None
        assert change_learner_email(
            session=session,
            concern=concern,
            email=corrected,
            name="Jane Smith",
            by=Actor(kind="learner", channel="web"),
            now=MONDAY_MORNING,
            policy=policy(),
        )
    # The token and the sender match (the ack went to that address), but it is no longer the
    # learner's: kept for staff, nothing applied.
    report = deliver(db, reply_to(ack, body="I'm satisfied\nHow often: once\nAnyone harmed: minor"))
    assert report.quarantined == 1
    concern = only_concern(db)
    assert (concern.frequency, concern.harm) == ("not_answered", "not_answered")
    assert "learner_added_information" not in [e.kind for e in events(db, concern.id or 0)]
    with transaction(db) as session:
        (kept,) = inbox.kept_aside(session, limit=10)
    assert kept.outcome is not None and "no longer the learner's" in kept.outcome
    assert kept.region_id == concern.region_id
    # A reply to the acknowledgement sent again, from the corrected address, is the learner's.
    (again,) = outbox(db, kind="learner_ack", recipient_address=corrected)
    report = deliver(
        db,
        reply_to(again, sender=f"Jane Smith <{corrected}>", body="How often: once"),
        mail_from=corrected,
    )
    assert report.quarantined == 0
    assert "learner_added_information" in [e.kind for e in events(db, concern.id or 0)]


def test_a_made_up_token_files_the_mail_under_no_region(db: Engine) -> None:
    deliver(db, email())
    (ack,) = outbox(db, kind="learner_ack")
    made_up = f"lc{ack.id}x{'a' * 20}"
    forged = email(
        sender="Mallory <mallory@evil.example>",
        subject="Re: my concern",
        body="Please tell me everything about it",
        headers={"In-Reply-To": f"<{made_up}@localhost>"},
    )
    report = deliver(db, forged, mail_from="mallory@evil.example")
    assert report.quarantined == 1
    with transaction(db) as session:
        (kept,) = inbox.kept_aside(session, limit=10)
    assert kept.region_id is None  # every region's dean and quality team see it


def test_a_token_naming_an_id_beyond_the_databases_integers_is_not_ours(db: Engine) -> None:
    """PostgreSQL refused to look up such an id, and the message failed again and again."""
    forged = email(
        sender="Mallory <mallory@evil.example>",
        subject="Re: my concern",
        body="Please tell me everything about it",
        headers={"In-Reply-To": f"<lc999999999999999999x{'a' * 20}@localhost>"},
    )
    report = deliver(db, forged, mail_from="mallory@evil.example")
    assert (report.failed, report.quarantined) == (0, 1)
    with transaction(db) as session:
        (kept,) = inbox.kept_aside(session, limit=10)
    assert kept.region_id is None


def test_quoting_a_reference_alone_grants_nothing_it_is_kept_for_staff(db: Engine) -> None:
    """Someone else quoting a concern's reference: nothing of the concern changes, no concern is
    raised (it would tell supervisors and alert deans again), and the sender is told how to
    add to a concern, with nothing of it but the reference they wrote."""
    deliver(db, email())
    first = only_concern(db)
    report = deliver(
        db,
        email(
            sender="Someone Else <someone@example.nhs.uk>",
            subject=f"Re: [{first.reference}] We have received your concern",
            body=f"About {first.reference}: I'm satisfied.",
        ),
        mail_from="someone@example.nhs.uk",
    )
    assert (report.new_concerns, report.quarantined) == (0, 1)
    concern = only_concern(db)
    assert concern.status == "open" and concern.feedback_at is None
    with transaction(db) as session:
        (kept,) = inbox.kept_aside(session, limit=10)
    assert kept.outcome is not None and f"names {first.reference}" in kept.outcome
    assert kept.region_id == first.region_id
    (answer,) = outbox(db, kind="kept_for_staff")
    assert answer.recipient_address == "someone@example.nhs.uk"
    assert answer.concern_id is None and answer.reference is None
    assert first.reference in answer.body_text
    assert first.summary not in answer.body_text
    assert "reply to any email we sent you about" in answer.body_text


def concern_count(engine: Engine) -> int:
    with transaction(engine) as session:
        return len(repositories.all_concerns(session))


def test_a_learner_writing_anew_about_their_concern_is_told_how_to_add_to_it(
    db: Engine,
) -> None:
    """The learner follows up with a new email quoting the reference, as our acknowledgement
    asks them to quote it: kept for staff, not raised again, and told to reply to our email or
    use its link; the same sender is not answered without end."""
    deliver(db, email())
    first = only_concern(db)
    for number in range(12):
        deliver(
            db,
            email(
                subject=first.reference.lower(),
                body=f"Hi, my reference is {first.reference}. It happened again ({number}).",
            ),
        )
    assert concern_count(db) == 1
    answers = outbox(db, kind="kept_for_staff")
    assert len(answers) == 10  # the acknowledgements' daily limit per sender
    assert {row.recipient_address for row in answers} == {LEARNER}
    with transaction(db) as session:
        kept = inbox.kept_aside(session, limit=20)
    assert len(kept) == 12
    assert any("the sender was not told" in (row.outcome or "") for row in kept)


def test_a_contact_answering_by_a_new_email_is_not_raised_as_a_learners_concern(
    db: Engine,
) -> None:
    """A supervisor writing 'Re LC-...: acknowledged' as a new email: not a confidential
    learner's concern from that supervisor with a high-risk alert; kept for staff, and told to
    reply to our email or act from the staff page."""
    deliver(db, email())
    first = only_concern(db)
    notice = outbox(db, kind="new_concern")[0]
    report = deliver(
        db,
        email(
            sender=f"Riley Mockup <{notice.recipient_address}>",
            subject=first.reference,
            body=f"Re {first.reference} - acknowledged, I will look into this today.\n\n"
            "Riley Mockup\nEducational Supervisor",
        ),
        mail_from=notice.recipient_address,
    )
    assert (report.new_concerns, report.quarantined, report.acknowledgements) == (0, 1, 0)
    assert concern_count(db) == 1 and only_concern(db).acknowledged_at is None
    (answer,) = outbox(db, kind="kept_for_staff")
    assert answer.recipient_address == notice.recipient_address
    assert "act on the concern from its staff page" in answer.body_text


def test_a_contacts_reply_to_a_notification_is_their_acknowledgement(db: Engine) -> None:
    deliver(db, email())
    notice = outbox(db, kind="new_concern")[0]
    report = deliver(
        db,
        reply_to(
            notice,
            sender=f"Supervisor <{notice.recipient_address}>",
            body="Thanks, I am looking into this today.",
        ),
        mail_from=notice.recipient_address,
        now=MONDAY_MORNING + timedelta(hours=2),
    )
    assert report.acknowledgements == 1
    concern = only_concern(db)
    assert concern.acknowledged_at == MONDAY_MORNING + timedelta(hours=2)
    kinds = [event.kind for event in events(db, concern.id or 0)]
    assert "contact_replied" in kinds and "acknowledged" in kinds
    assert outbox(db, kind="reply_not_applied") == []


@pytest.mark.parametrize("written", ["xn--bcher-kva.example", "b\u00fccher.example"])
def test_a_contact_at_an_international_domain_is_the_same_in_punycode_or_unicode(
    engine: Engine, written: str
) -> None:
    """The directory takes such a domain in its ASCII (punycode) form; the contact's reply may
    come from either form, and is read as Unicode: the same address."""
    text = example_directory_path().read_text(encoding="utf-8")
    spec = parse_directory(text.replace("@vale-general.example.nhs.uk", "@xn--bcher-kva.example"))
    with transaction(engine) as session:
        load_directory(session, spec, source="idn.yaml", sha256="x", now=MONDAY_MORNING)
    deliver(engine, email())
    notice = next(
        sent
        for sent in outbox(engine, kind="new_concern")
        if sent.recipient_address.endswith("@xn--bcher-kva.example")
    )
    sender = notice.recipient_address.replace("xn--bcher-kva.example", written)
    raw = reply_to(notice, sender=f"Supervisor <{sender}>", body="Looking into it today.")
    # As an SMTPUTF8 client writes it (the standard library writes an encoded word instead).
    raw = raw.replace(b"=?utf-8?q?b=C3=BCcher?=", "b\u00fccher".encode())
    assert f"<{sender}>".encode() in raw
    report = deliver(engine, raw, mail_from=sender, now=MONDAY_MORNING + timedelta(hours=2))
    assert (report.acknowledgements, report.quarantined) == (1, 0)


def test_a_sender_whose_name_has_periods_or_latin_1_bytes_is_read(db: Engine) -> None:
    """'Dr. R. Mockup' is how mail clients (and Python) write such a name; RFC 5322 calls it
    obsolete, and it is no reason to keep the mail aside."""
    raw = email(sender=f"Jos\u00e9 Garc\u00eda <{LEARNER}>")
    raw = raw.replace(b"=?utf-8?q?Jos=C3=A9_Garc=C3=ADa?=", b"Jos\xe9 Garc\xeda")
    assert raw.startswith(b"From: Jos\xe9 Garc\xeda <")
    assert deliver(db, raw).new_concerns == 1
    notice = outbox(db, kind="new_concern")[0]
    report = deliver(
        db,
        reply_to(
            notice,
            sender=f"Dr. R. Mockup <{notice.recipient_address}>",
            body="Thanks, I am looking into this today.",
        ),
        mail_from=notice.recipient_address,
        now=MONDAY_MORNING + timedelta(hours=2),
    )
    assert report.acknowledgements == 1


def test_a_contacts_feedback_reply_reaches_the_learner(db: Engine) -> None:
    deliver(db, email())
    notice = outbox(db, kind="new_concern")[0]
    deliver(
        db,
        reply_to(
            notice,
            sender=f"Supervisor <{notice.recipient_address}>",
            body="Feedback: Teaching is now protected on Thursdays.\nThe rota says so.\n\n"
            "On Mon, 23 Nov 2026 Concerns wrote:\n> A learner has raised a concern",
        ),
        mail_from=notice.recipient_address,
        now=MONDAY_MORNING + timedelta(hours=2),
    )
    concern = only_concern(db)
    assert concern.feedback_at == MONDAY_MORNING + timedelta(hours=2)
    assert concern.acknowledged_at == concern.feedback_at
    given = [e for e in events(db, concern.id or 0) if e.kind == "feedback_given"]
    assert given[0].detail["text"] == "Teaching is now protected on Thursdays.\nThe rota says so."
    assert given[0].channel == "email"
    (sent,) = outbox(db, kind="learner_feedback")
    assert "Teaching is now protected on Thursdays." in sent.body_text
    assert "A learner has raised a concern" not in sent.body_text
    assert outbox(db, kind="reply_not_applied") == []


def test_a_contacts_not_mine_reply_passes_it_on(db: Engine) -> None:
    deliver(db, email())
    notice = outbox(db, kind="new_concern")[0]
    report = deliver(
        db,
        reply_to(
            notice,
            sender=f"Supervisor <{notice.recipient_address}>",
            body="Not mine - I left this department in October.",
        ),
        mail_from=notice.recipient_address,
        now=MONDAY_MORNING + timedelta(hours=2),
    )
    assert "passed" in report.outcomes[0]
    concern = only_concern(db)
    assert concern.acknowledged_at is None
    (moved,) = [e for e in events(db, concern.id or 0) if e.kind == "redirected"]
    assert moved.detail["reason"] == "I left this department in October."
    assert moved.detail["from_contact_ids"] == [notice.recipient_contact_id]
    (passed,) = outbox(db, kind="redirected_in")
    assert passed.recipient_contact_id != notice.recipient_contact_id
    assert outbox(db, kind="reply_not_applied") == []


def test_a_feedback_reply_that_does_not_apply_changes_nothing(db: Engine) -> None:
    deliver(db, email())
    notice = outbox(db, kind="new_concern")[0]
    report = deliver(
        db,
        reply_to(notice, sender=f"S <{notice.recipient_address}>", body="Feedback:"),
        mail_from=notice.recipient_address,
    )
    assert "not applied: Write the feedback" in report.outcomes[0]
    assert report.outcomes[0].endswith("; the sender was told why")
    concern = only_concern(db)
    assert concern.feedback_at is None and concern.acknowledged_at is None
    assert outbox(db, kind="learner_feedback") == []
    # The supervisor hears why at once, as a chat button would have shown it: nothing else.
    (answer,) = outbox(db, kind="reply_not_applied")
    assert answer.recipient_address == notice.recipient_address
    assert (answer.recipient_role, answer.recipient_contact_id) == (
        notice.recipient_role,
        notice.recipient_contact_id,
    )
    assert answer.send_after == MONDAY_MORNING and answer.reference == concern.reference
    assert answer.subject == f"[{concern.reference}] We could not act on your reply"
    assert "Write the feedback for the learner." in answer.body_text
    assert "Nothing about the concern has changed" in answer.body_text
    assert "reply to this email to try again" in answer.body_text
    assert f"/staff/concerns/{concern.reference}" in answer.body_text
    for part in (answer.subject, answer.body_text, answer.body_html or ""):
        for leak in ("jane", "smith", "left alone", "student"):
            assert leak not in part.lower()


def test_feedback_from_a_contact_the_concern_has_moved_on_from_is_refused_and_explained(
    db: Engine,
) -> None:
    deliver(db, email())
    notice = outbox(db, kind="new_concern")[0]
    with transaction(db) as session:
        concern = session.exec(select(Concern)).one()
        concern.pathway = 2
    report = deliver(
        db,
        reply_to(
            notice,
            sender=f"Supervisor <{notice.recipient_address}>",
            body="Feedback: The rota is fixed.",
        ),
        mail_from=notice.recipient_address,
        now=MONDAY_MORNING + timedelta(hours=2),
    )
    assert "not applied" in report.outcomes[0]
    assert only_concern(db).feedback_at is None
    (answer,) = outbox(db, kind="reply_not_applied")
    assert answer.recipient_address == notice.recipient_address
    assert "is now with pathway 2: only its contacts there can give feedback." in answer.body_text


def test_answers_to_refused_replies_are_capped_per_sender(db: Engine) -> None:
    """A sender whose replies are refused again and again (or a naive auto-responder that
    starts its replies with "Feedback:") gets at most the day's cap of answers."""
    deliver(db, email())
    notice = outbox(db, kind="new_concern")[0]
    outcomes: list[str] = []
    for n in range(3):
        store_received(
            db,
            [
                Received(
                    mail_from=notice.recipient_address,
                    rcpt_tos=(MAILBOX,),
                    raw=reply_to(
                        notice, sender=f"S <{notice.recipient_address}>", body="Feedback:"
                    ),
                )
            ],
            now=MONDAY_MORNING + timedelta(minutes=n),
        )
        report = process_pending(
            engine=db,
            policy=policy(),
            threading=THREADING,
            now=MONDAY_MORNING + timedelta(minutes=n),
            acks_per_sender_per_day=2,
        )
        outcomes.extend(report.outcomes)
    assert len(outbox(db, kind="reply_not_applied")) == 2
    assert outcomes[2].endswith("; the sender was not told (2 such answers to them in 24 hours)")


@pytest.mark.parametrize(
    "body",
    [
        "I remain concerned.\nNothing has changed on the ward.",
        "I remain concerned - nothing has changed on the ward.",
    ],
)
def test_i_remain_concerned_after_feedback_moves_the_concern_up_at_once(
    db: Engine, body: str
) -> None:
    deliver(db, email())
    (ack,) = outbox(db, kind="learner_ack")
    with transaction(db) as session:
        concern = session.exec(select(Concern)).one()
        concern.feedback_at = MONDAY_MORNING + timedelta(hours=3)
    deliver(db, reply_to(ack, body=body), now=MONDAY_MORNING + timedelta(hours=4))
    concern = only_concern(db)
    assert concern.pathway == 2
    (added,) = [e for e in events(db, concern.id or 0) if e.kind == "learner_added_information"]
    assert added.detail["text"] == body
    assert outbox(db, kind="escalated_in")
    assert outbox(db, kind="reply_not_applied") == []
    # The learner is told why in their own terms, not as the trail records it for staff.
    (moved,) = outbox(db, kind="learner_escalated")
    assert "Why: You told us you remain concerned after the feedback at pathway 1" in (
        moved.body_text or ""
    )
    assert "The learner remains concerned" not in (moved.body_text or "")


def test_remaining_concerned_with_new_harm_is_rated_before_it_moves(db: Engine) -> None:
    """The next level is told the rating and deadlines the learner's words bring, once, not the
    old ones followed by a correction."""
    deliver(db, email())
    (ack,) = outbox(db, kind="learner_ack")
    with transaction(db) as session:
        concern = session.exec(select(Concern)).one()
        concern.feedback_at = MONDAY_MORNING + timedelta(hours=3)
    body = "I remain concerned. Last night a patient was harmed."
    deliver(db, reply_to(ack, body=body), now=MONDAY_MORNING + timedelta(hours=4))
    concern = only_concern(db)
    assert concern.pathway == 2 and concern.risk_level == "high"
    assert outbox(db, kind="escalated_in")
    assert outbox(db, kind="deadlines_changed") == []
    due = when(concern.feedback_due_at, LONDON)
    assert all(due in (m.body_text or "") for m in outbox(db, kind="escalated_in"))


def test_a_reply_to_feedback_the_concern_has_moved_on_from_changes_nothing(db: Engine) -> None:
    """The learner answers an older feedback email after the concern moved to pathway 2 and
    had new feedback there: nothing moves, and the learner is told why."""
    deliver(db, email())
    with transaction(db) as session:
        concern = session.exec(select(Concern)).one()
        concern.feedback_at = MONDAY_MORNING + timedelta(hours=1)
        older = OutboxMessage(
            idempotency_key=f"{concern.reference}:learner_feedback:p1r0:learner",
            concern_id=concern.id,
            reference=concern.reference,
            channel="email",
            kind="learner_feedback",
            recipient_role="learner",
            recipient_address=LEARNER,
            subject=f"[{concern.reference}] Feedback on your concern",
            body_text="Feedback at pathway 1.",
            created_at=MONDAY_MORNING,
            send_after=MONDAY_MORNING,
            status="sent",
        )
        session.add(older)
        concern.pathway = 2  # moved on, and feedback given there since
    (older_row,) = outbox(db, kind="learner_feedback")
    report = deliver(
        db, reply_to(older_row, body="I remain concerned"), now=MONDAY_MORNING + timedelta(hours=3)
    )
    assert "answered earlier feedback" in report.outcomes[0]
    concern = only_concern(db)
    assert concern.pathway == 2 and concern.status == "open"
    assert outbox(db, kind="escalated_in") == []
    (answer,) = outbox(db, kind="reply_not_applied")
    assert "Your reply answered earlier feedback" in answer.body_text


def test_the_learner_answers_feedback_sent_again_to_their_corrected_address(
    db: Engine,
) -> None:
    """Feedback sent again after the learner's address was corrected is the current feedback:
    answering it by reply moves the concern as an answer to the first would have."""
    deliver(db, email())
    corrected = "jane.smith@correct.example.ac.uk"
    with transaction(db) as session:
        concern = repositories.lock_concern(session, only_concern(db).id or 0)
        assert concern is not None
        record_feedback(
            session=session,
            concern=concern,
            by=Actor(kind="staff", channel="web"),
            text="Night cover is fixed.",
            now=MONDAY_MORNING + timedelta(hours=1),
            policy=policy(),
        )
    staff_correct_the_address(db, corrected, now=MONDAY_MORNING + timedelta(days=1))
    (again,) = outbox(db, kind="learner_feedback", recipient_address=corrected)
    report = deliver(
        db,
        reply_to(again, sender=f"Jane Smith <{corrected}>", body="I remain concerned"),
        mail_from=corrected,
        now=MONDAY_MORNING + timedelta(days=1, hours=1),
    )
    assert "answered earlier feedback" not in report.outcomes[0]
    assert only_concern(db).pathway == 2
    assert outbox(db, kind="reply_not_applied") == []


def test_before_feedback_i_remain_concerned_is_kept_as_information(db: Engine) -> None:
    deliver(db, email())
    (ack,) = outbox(db, kind="learner_ack")
    report = deliver(db, reply_to(ack, body="I remain concerned"))
    assert only_concern(db).pathway == 1
    assert "not applied" in report.outcomes[0]
    # The learner is told why, with the link to their concern's status page.
    (answer,) = outbox(db, kind="reply_not_applied")
    assert (answer.recipient_address, answer.recipient_role) == (LEARNER, "learner")
    assert "has no feedback yet: it moves up by itself if feedback is late." in answer.body_text
    assert "What you wrote has been added to your concern" in answer.body_text
    assert "/concerns/status/link/" in answer.body_text
    # The same reply processed again (as after a crash before its outcome was noted) is
    # answered once.
    with transaction(db) as session:
        inbound = session.exec(select(InboundMessage).order_by(col(InboundMessage.id))).all()[-1]
        inbound.status = "received"
    again = process_pending(engine=db, policy=policy(), threading=THREADING, now=MONDAY_MORNING)
    assert again.processed == 1 and "not applied" in again.outcomes[0]
    assert len(outbox(db, kind="reply_not_applied")) == 1


def test_a_learner_whose_concern_is_closed_is_not_told_their_reply_was_refused(
    db: Engine,
) -> None:
    """The closing email said staff see their replies and can reopen it: that stands."""
    deliver(db, email())
    (ack,) = outbox(db, kind="learner_ack")
    with transaction(db) as session:
        concern = session.exec(select(Concern)).one()
        concern.status = "closed"
    report = deliver(db, reply_to(ack, body="I remain concerned\nNobody came back to me."))
    assert "not applied" in report.outcomes[0]
    assert "told" not in report.outcomes[0]
    assert outbox(db, kind="reply_not_applied") == []


def test_satisfied_before_any_feedback_is_explained_at_once_even_at_night(db: Engine) -> None:
    deliver(db, email())
    (ack,) = outbox(db, kind="learner_ack")
    saturday_night = MONDAY_MORNING + timedelta(days=5, hours=13)  # Saturday 23:00
    assert saturday_night.weekday() == 5
    report = deliver(db, reply_to(ack, body="I'm satisfied"), now=saturday_night)
    assert "not applied" in report.outcomes[0] and only_concern(db).status != "closed"
    (answer,) = outbox(db, kind="reply_not_applied")
    assert answer.send_after == saturday_night
    assert "has no feedback yet to be satisfied with." in answer.body_text


def test_a_not_mine_reply_on_a_closed_concern_is_explained(db: Engine) -> None:
    deliver(db, email())
    notice = outbox(db, kind="new_concern")[0]
    with transaction(db) as session:
        concern = session.exec(select(Concern)).one()
        concern.status = "closed"
    report = deliver(
        db,
        reply_to(notice, sender=f"S <{notice.recipient_address}>", body="Not mine"),
        mail_from=notice.recipient_address,
    )
    assert "not applied" in report.outcomes[0]
    (answer,) = outbox(db, kind="reply_not_applied")
    assert answer.recipient_address == notice.recipient_address
    assert "is closed" in answer.body_text


@pytest.mark.parametrize(
    ("headers", "mail_from", "sender"),
    [
        ({"Auto-Submitted": "auto-replied"}, LEARNER, f"Jane <{LEARNER}>"),
        ({"Precedence": "bulk"}, LEARNER, f"Jane <{LEARNER}>"),
        ({"List-Id": "<nurses.lists.example>"}, LEARNER, f"Jane <{LEARNER}>"),
        ({}, "", "MAILER-DAEMON@mx.example.ac.uk"),
        ({"X-Autoreply": "yes"}, LEARNER, f"Jane <{LEARNER}>"),
    ],
)
def test_automatic_mail_is_stored_but_never_answered(
    db: Engine, headers: dict[str, str], mail_from: str, sender: str
) -> None:
    report = deliver(db, email(sender=sender, headers=headers), mail_from=mail_from)
    assert report.ignored == 1
    assert outbox(db) == []
    with transaction(db) as session:
        assert repositories.all_concerns(session) == []
        (row,) = session.exec(select(InboundMessage)).all()
    assert row.status == "ignored"


def test_an_out_of_office_subject_is_not_answered(db: Engine) -> None:
    report = deliver(db, email(subject="Automatic reply: Your concern"))
    assert report.ignored == 1
    assert outbox(db) == []


def test_acknowledgements_to_one_sender_are_rate_limited(db: Engine) -> None:
    """A naive auto-responder mailing us fresh messages stops getting answers."""
    for n in range(12):
        deliver(
            db,
            email(subject=f"I am away {n}", body="I am away until Monday."),
            now=MONDAY_MORNING + timedelta(minutes=n),
        )
    assert len(outbox(db, kind="learner_ack")) == 10
    with transaction(db) as session:
        assert len(repositories.all_concerns(session)) == 12, "nothing a learner sends is lost"


def test_the_rate_limit_holds_whatever_the_case_of_the_learners_stored_address(
    db: Engine,
) -> None:
    """The acknowledgement goes to the address the learner gave first ('Jane.Smith@...' on the
    web form); mail from 'jane.smith@...' is the same sender, and the cap still applies."""
    with transaction(db) as session:
        session.add(
            Learner(email=LEARNER.replace("jane.smith", "Jane.Smith"), created_at=MONDAY_MORNING)
        )
    for n in range(12):
        deliver(
            db,
            email(subject=f"I am away {n}", body="I am away until Monday."),
            now=MONDAY_MORNING + timedelta(minutes=n),
        )
    acks = outbox(db, kind="learner_ack")
    assert {ack.recipient_address for ack in acks} == {"Jane.Smith@student.example.ac.uk"}
    assert len(acks) == 10


def test_the_same_message_delivered_twice_is_processed_once(db: Engine) -> None:
    raw = email()
    deliver(db, raw)
    report = deliver(db, raw)
    assert report.processed == 0
    only_concern(db)


FORWARDER = "SRS0=x7Kq=TZ=student.example.ac.uk=jane.smith@forwarder.example.org"


def store_by_route(engine: Engine, raw: bytes, *, mail_from: str, now: datetime) -> None:
    """Store one delivery as the mailbox does, Message-ID read from the message."""
    store_received(
        engine,
        [
            Received(
                mail_from=mail_from,
                rcpt_tos=(MAILBOX,),
                raw=raw,
                message_id=header_message_id(raw),
            )
        ],
        now=now,
    )


def kept_rows(engine: Engine) -> list[InboundMessage]:
    with transaction(engine) as session:
        return list(session.exec(select(InboundMessage).order_by(col(InboundMessage.id))).all())


def test_one_email_that_also_came_through_a_forwarder_is_one_concern(db: Engine) -> None:
    """A forwarder that rewrites the envelope sender (SRS) makes a second delivery storing
    cannot tell apart; the copy is kept, byte for byte, and not acted on again."""
    raw = email()
    forwarded = b"Received: from forwarder.example.org by mx.example.nhs.uk\r\n" + raw
    store_by_route(db, raw, mail_from=LEARNER, now=MONDAY_MORNING)
    store_by_route(db, forwarded, mail_from=FORWARDER, now=MONDAY_MORNING)
    report = process_pending(engine=db, policy=policy(), threading=THREADING, now=MONDAY_MORNING)
    assert (report.processed, report.ignored) == (2, 1)
    only_concern(db)
    assert len(outbox(db, kind="learner_ack")) == 1
    first, second = kept_rows(db)
    assert (first.status, second.status) == ("processed", "ignored")
    assert second.raw == forwarded and second.concern_id is None
    assert f"a second copy of stored email {first.id}" in (second.outcome or "")


def test_a_reply_that_came_by_two_routes_adds_its_information_once(db: Engine) -> None:
    store_by_route(db, email(), mail_from=LEARNER, now=MONDAY_MORNING)
    process_pending(engine=db, policy=policy(), threading=THREADING, now=MONDAY_MORNING)
    (ack,) = outbox(db, kind="learner_ack")
    later = MONDAY_MORNING + timedelta(hours=1)
    reply = reply_to(ack, body="It happened again last night.")
    store_by_route(db, reply, mail_from=FORWARDER, now=later)
    store_by_route(db, reply, mail_from=LEARNER, now=later)
    report = process_pending(engine=db, policy=policy(), threading=THREADING, now=later)
    assert (report.replies, report.ignored) == (1, 1)
    kinds = [event.kind for event in events(db, only_concern(db).id or 0)]
    assert kinds.count("learner_added_information") == 1


def test_a_copy_that_was_ignored_does_not_stop_the_authors_own(db: Engine) -> None:
    """Forwarders that rewrite the sender are often lists, which mark their copy as list mail:
    that copy is ignored, and the learner's own copy must still become their concern."""
    raw = email()
    listed = b"List-Id: <nights.forwarder.example.org>\r\nPrecedence: list\r\n" + raw
    store_by_route(db, listed, mail_from=FORWARDER, now=MONDAY_MORNING)
    store_by_route(db, raw, mail_from=LEARNER, now=MONDAY_MORNING)
    report = process_pending(engine=db, policy=policy(), threading=THREADING, now=MONDAY_MORNING)
    assert (report.processed, report.ignored) == (2, 1)
    only_concern(db)
    assert [row.status for row in kept_rows(db)] == ["ignored", "processed"]


def test_a_message_id_too_big_to_index_is_stored_without_it(engine: Engine) -> None:
    """998 characters of three bytes each would overflow PostgreSQL's index entry: the mail is
    still stored (it dedupes by its content), with no Message-ID to find copies by."""
    huge = "<" + "\u6f22" * 980 + "@example.org>"
    store_received(
        engine,
        [Received(mail_from=LEARNER, rcpt_tos=(MAILBOX,), raw=email(), message_id=huge)],
        now=MONDAY_MORNING,
    )
    (row,) = kept_rows(engine)
    assert row.message_id is None


def test_the_message_id_index_is_added_over_mail_stored_before(engine: Engine) -> None:
    config = migrate.alembic_config(engine)
    command.downgrade(config, "0012")
    huge = "<" + "\u6f22" * 980 + "@example.org>"
    store_received(
        engine,
        [
            Received(mail_from=LEARNER, rcpt_tos=(MAILBOX,), raw=email(), message_id="<a@x.org>"),
            Received(mail_from=LEARNER, rcpt_tos=(MAILBOX,), raw=email(), message_id=huge),
        ],
        now=MONDAY_MORNING,
    )
    with engine.begin() as connection:  # as storing did before: the whole Message-ID kept
        connection.execute(
            update(InboundMessage)
            .where(col(InboundMessage.message_id).is_(None))
            .values(message_id=huge)
        )
    command.upgrade(config, "head")
    assert [row.message_id for row in kept_rows(engine)] == ["<a@x.org>", None]


def test_the_same_message_id_from_someone_else_is_not_a_copy(db: Engine) -> None:
    """Only the same author's email is a copy: a Message-ID alone proves nothing."""
    raw = email()
    other = raw.replace(LEARNER.encode(), b"sam.jones@student.example.ac.uk")
    store_by_route(db, raw, mail_from=LEARNER, now=MONDAY_MORNING)
    store_by_route(db, other, mail_from="sam.jones@student.example.ac.uk", now=MONDAY_MORNING)
    report = process_pending(engine=db, policy=policy(), threading=THREADING, now=MONDAY_MORNING)
    assert (report.processed, report.ignored) == (2, 0)
    with transaction(db) as session:
        assert len(repositories.all_concerns(session)) == 2


@pytest.fixture
def shared_db(postgres_url: str) -> Iterator[Engine]:
    """PostgreSQL, which several instances share (on SQLite one process does all the work)."""
    engine = create_db_engine(postgres_url)
    migrate.upgrade(engine)
    load_example_directory(engine)
    yield engine
    engine.dispose()


def test_two_instances_processing_two_copies_at_once_act_once(shared_db: Engine) -> None:
    """One instance holds the first copy while another reaches the second: the second waits for
    the first to finish, then sees it was a copy."""
    db = shared_db
    raw = email()
    store_by_route(db, raw, mail_from=LEARNER, now=MONDAY_MORNING)
    store_by_route(db, raw, mail_from=FORWARDER, now=MONDAY_MORNING)
    first = kept_rows(db)[0]
    results: list[IntakeReport] = []
    with transaction(db) as session:
        held = inbox.claim_pending(session, message_id=first.id or 0)
        assert held is not None
        other = threading.Thread(
            target=lambda: results.append(
                process_pending(engine=db, policy=policy(), threading=THREADING, now=MONDAY_MORNING)
            )
        )
        other.start()
        other.join(timeout=1.5)
        assert other.is_alive(), "the second copy waits for the first"
        # This instance finishes the first copy (as processing does) and commits.
        held.status, held.from_address, held.outcome = "processed", LEARNER, "a new concern"
    other.join(timeout=20)
    assert not other.is_alive()
    (report,) = results
    assert (report.processed, report.ignored) == (1, 1)
    with transaction(db) as session:
        assert repositories.all_concerns(session) == []
    assert kept_rows(db)[1].status == "ignored"


def test_a_placement_named_in_the_reply_routes_the_concern_to_its_people(db: Engine) -> None:
    deliver(db, email(subject="No teaching", body="Teaching is cancelled every week."))
    (ack,) = outbox(db, kind="learner_ack")
    assert "Organisation:" in ack.body_text and "Department:" in ack.body_text
    told_before = {m.recipient_address for m in outbox(db, kind="new_concern")}
    deliver(
        db,
        reply_to(
            ack,
            body="Organisation: Vale General Hospitals NHS Trust\nDepartment: Maternity Unit",
        ),
        now=MONDAY_MORNING + timedelta(minutes=30),
    )
    concern = only_concern(db)
    assert concern.department_id is not None and concern.placement_text is None
    told_after = {m.recipient_address for m in outbox(db, kind="new_concern")}
    new_people = told_after - told_before
    assert new_people, "the maternity unit's contacts hear about it"
    assert all("vale-general" in address for address in new_people)


def test_a_deans_reply_to_a_digest_is_kept_for_staff_not_attached(db: Engine) -> None:
    from escalation.digest import DigestKind, run_digest

    deliver(db, email())
    run_digest(
        engine=db,
        kind=DigestKind.WEEKLY,
        region_key=None,
        now=MONDAY_MORNING,
        policy=policy(),
        send=True,
    )
    (digest, *_) = outbox(db, kind="digest_weekly")
    report = deliver(
        db,
        reply_to(digest, sender=f"Dean <{digest.recipient_address}>", body="Thanks, noted."),
        mail_from=digest.recipient_address,
    )
    assert report.quarantined == 1
    assert "digest weekly, which is not about one concern" in report.outcomes[0]
    assert only_concern(db).acknowledged_at is None
    with transaction(db) as session:
        (kept,) = inbox.kept_aside(session, limit=10)
    # Filed under the dean's region: that region's dean and quality team read it.
    assert kept.region_id == only_concern(db).region_id


def bounce_of(sent: OutboxMessage, *, failed: str, report_id: str = "<r1@mx.example>") -> bytes:
    """The report a mail server sends back when one of our emails cannot be delivered."""
    original = EmailMessage()
    original["From"] = MAILBOX
    original["To"] = sent.recipient_address
    original["Subject"] = sent.subject
    # As it was sent: the token, and the MAC of when the row was queued.
    original["Message-ID"] = THREADING.message_id(
        sent.id or 0, sent.recipient_address, queued_at=sent.created_at
    )
    original.set_content("(the text of our message)")
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.nhs.uk>\n"
        f"To: {MAILBOX}\nSubject: Undelivered Mail Returned to Sender\n"
        f"Message-ID: {report_id}\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\n\n'
        "--b1\nContent-Type: text/plain\n\nYour message could not be delivered.\n\n"
        "--b1\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.example.nhs.uk\n\n"
        f"Final-Recipient: rfc822; {failed}\nAction: failed\nStatus: 5.1.1\n\n"
        "--b1\nContent-Type: message/rfc822\n\n"
        + original.as_string().replace("\r\n", "\n")
        + "\n--b1--\n"
    ).encode()


def test_a_bounced_notification_is_noted_on_its_concern_once_and_never_answered(
    db: Engine,
) -> None:
    """A contact who was never told is visible to staff: the failed delivery goes into the
    concern's audit trail (by role, not address), once, and the report itself gets no answer
    and raises no concern."""
    deliver(db, email())
    notice = outbox(db, kind="new_concern")[0]
    queued = len(outbox(db))
    report = deliver(db, bounce_of(notice, failed=notice.recipient_address), mail_from="")
    assert report.ignored == 1
    concern = only_concern(db)
    (noted,) = [e for e in events(db, concern.id or 0) if e.kind == "delivery_failed"]
    assert noted.detail["outbox_id"] == notice.id
    assert noted.detail["recipient_role"] == notice.recipient_role
    assert notice.recipient_address not in str(noted.detail)
    assert len(outbox(db)) == queued
    # The same failure reported again is not noted twice.
    deliver(
        db, bounce_of(notice, failed=notice.recipient_address, report_id="<r2@mx>"), mail_from=""
    )
    assert len([e for e in events(db, concern.id or 0) if e.kind == "delivery_failed"]) == 1


def test_a_report_cannot_name_a_failure_for_another_address(db: Engine) -> None:
    """Our token is bound to the address the message went to: a report claiming that someone
    else's copy failed (or forged by anyone without the token) notes nothing."""
    deliver(db, email())
    notice = outbox(db, kind="new_concern")[0]
    deliver(db, bounce_of(notice, failed="someone.else@example.nhs.uk"), mail_from="")
    concern = only_concern(db)
    assert [e for e in events(db, concern.id or 0) if e.kind == "delivery_failed"] == []


def test_a_contacts_thanks_for_a_corrected_address_does_not_acknowledge_the_concern(
    db: Engine,
) -> None:
    """The notice of a corrected address asks nothing of its reader and does not say a reply
    acknowledges: 'Thanks' to it is kept on the concern, not taken as their acknowledgement."""
    deliver(db, email())
    corrected = "jane.smith@correct.example.ac.uk"
    with transaction(db) as session:
        concern = repositories.lock_concern(session, only_concern(db).id or 0)
        assert concern is not None
        concern.confidentiality = "named"
    staff_correct_the_address(db, corrected, now=MONDAY_MORNING + timedelta(hours=1))
    notices = outbox(db, kind="learner_address_corrected", channel="email")
    notice = next(sent for sent in notices if sent.recipient_role == "supervisor")
    report = deliver(
        db,
        reply_to(notice, sender=f"Supervisor <{notice.recipient_address}>", body="Thanks."),
        mail_from=notice.recipient_address,
        now=MONDAY_MORNING + timedelta(hours=2),
    )
    assert report.acknowledgements == 0, report.outcomes
    concern = only_concern(db)
    assert concern.acknowledged_at is None
    kinds = [event.kind for event in events(db, concern.id or 0)]
    assert "contact_replied" in kinds and "acknowledged" not in kinds
    # A reply to the new-concern message still acknowledges it.
    (first,) = [
        sent
        for sent in outbox(db, kind="new_concern", channel="email")
        if sent.recipient_contact_id == notice.recipient_contact_id
    ]
    report = deliver(
        db,
        reply_to(first, sender=f"Supervisor <{first.recipient_address}>", body="On it."),
        mail_from=first.recipient_address,
        now=MONDAY_MORNING + timedelta(hours=3),
    )
    assert report.acknowledgements == 1


def test_answers_emailed_to_a_closed_concern_under_a_staff_rating_alert_nobody(
    db: Engine,
) -> None:
    """A staff rating cannot be changed once the concern is closed: telling the dean and quality
    team to 'decide whether the rating should change' asks them for what they cannot do, and
    added information on a closed concern is read for new risk by nobody."""
    deliver(db, email(body="Our teaching is cancelled most weeks."))
    (ack,) = outbox(db, kind="learner_ack")
    staff = Actor(kind="staff", channel="web")
    with transaction(db) as session:
        concern = repositories.lock_concern(session, only_concern(db).id or 0)
        assert concern is not None
        rate_by_hand(session, concern, likelihood=1, impact=1, now=MONDAY_MORNING)
        close_concern(
            session=session,
            concern=concern,
            by=staff,
            reason="Resolved with the school",
            now=MONDAY_MORNING,
            policy=policy(),
        )
    report = deliver(
        db,
        reply_to(ack, body="How often: every shift\nAnyone harmed: a patient was harmed"),
        now=MONDAY_MORNING + timedelta(hours=1),
    )
    assert report.replies == 1
    assert report.outcomes[0].endswith("answers not taken: the concern has closed")
    concern = only_concern(db)
    assert concern.status == "closed"
    assert (concern.frequency, concern.harm) == ("not_answered", "not_answered")
    assert outbox(db, kind="rated_high_over_override") == []
    # The reply itself is kept on the concern, for staff who reopen it, and the quality team
    # is told that it came (the closing email promised staff would see it), once that day.
    (added,) = [e for e in events(db, concern.id or 0) if e.kind == "learner_added_information"]
    assert "a patient was harmed" in added.detail["text"]
    (told,) = outbox(db, kind="wrote_after_closing", channel="email")
    assert told.recipient_role == "quality_team"
    assert "reopen the concern if it needs more" in " ".join(told.body_text.split())
    deliver(db, reply_to(ack, body="And again."), now=MONDAY_MORNING + timedelta(hours=2))
    assert len(outbox(db, kind="wrote_after_closing", channel="email")) == 1


def test_answers_emailed_to_a_closed_concern_change_nothing_and_alert_nobody(
    db: Engine,
) -> None:
    """A closed concern's rating and routing can no longer be changed by anyone: answers
    replied to its old acknowledgement are kept with the reply but neither re-rate it nor send
    the dean a high-risk alert about a concern that is over."""
    deliver(db, email(body="Our teaching is cancelled most weeks."))
    (ack,) = outbox(db, kind="learner_ack")
    with transaction(db) as session:
        concern = repositories.lock_concern(session, only_concern(db).id or 0)
        assert concern is not None
        before = (concern.rating, concern.risk_level, concern.auto_likelihood, concern.auto_impact)
        close_concern(
            session=session,
            concern=concern,
            by=Actor(kind="staff", channel="web"),
            reason="Resolved with the school",
            now=MONDAY_MORNING,
            policy=policy(),
        )
    report = deliver(
        db,
        reply_to(
            ack,
            body="How often: every shift\nAnyone harmed: a patient was harmed\n"
            "Organisation: Vale General Hospitals NHS Trust",
        ),
        now=MONDAY_MORNING + timedelta(hours=1),
    )
    assert report.outcomes[0].endswith("answers not taken: the concern has closed")
    concern = only_concern(db)
    after = (concern.rating, concern.risk_level, concern.auto_likelihood, concern.auto_impact)
    assert after == before
    assert (concern.frequency, concern.harm) == ("not_answered", "not_answered")
    assert outbox(db, kind="high_risk_alert") == []
    kinds = [e.kind for e in events(db, concern.id or 0) if e.at > MONDAY_MORNING]
    assert "learner_answered" not in kinds and "triaged" not in kinds


def test_a_reply_of_only_our_quote_does_not_put_off_the_closing(db: Engine) -> None:
    """After feedback, a concern closes once the learner has said nothing for the set working
    days. A reply sent by mistake (our message quoted with '>', nothing added, perhaps a
    phone's 'Sent from my iPhone') says nothing. An Outlook reply does, even one with nothing
    typed in it: Outlook quotes without marks, and words typed inside its quote could not be
    told from it. So does an attachment (a photo of the rota)."""
    deliver(db, email())
    notice = outbox(db, kind="new_concern")[0]
    deliver(
        db,
        reply_to(notice, sender=f"S <{notice.recipient_address}>", body="Feedback: Sorted."),
        mail_from=notice.recipient_address,
        now=MONDAY_MORNING + timedelta(hours=1),
    )
    (feedback,) = outbox(db, kind="learner_feedback")
    closes_at = only_concern(db).close_after
    assert closes_at is not None
    deliver(db, reply_to(feedback, body=quoting(feedback)), now=MONDAY_MORNING + timedelta(days=2))
    from_phone = f"Sent from my iPhone\n\n{quoting(feedback)}"
    deliver(db, reply_to(feedback, body=from_phone), now=MONDAY_MORNING + timedelta(days=2))
    assert only_concern(db).close_after == closes_at
    outlook = [
        "",
        "________________________________",
        f"From: Learner concerns <{MAILBOX}>",
        "Sent: 23 November 2026 10:00",
        "To: Jane Smith",
        f"Subject: {feedback.subject}",
        "",
        *feedback.body_text.splitlines(),
    ]
    deliver(db, reply_to(feedback, body="\n".join(outlook)), now=MONDAY_MORNING + timedelta(days=2))
    answered = only_concern(db).close_after
    assert answered is not None and answered > closes_at
    closes_at = answered
    reply = reply_to(feedback, body="")
    message = message_from_bytes(reply, policy=default)
    message.clear_content()
    message.set_content(quoting(feedback))
    message.add_attachment(b"\x89PNG", maintype="image", subtype="png", filename="rota.png")
    deliver(db, message.as_bytes(), now=MONDAY_MORNING + timedelta(days=3))
    later = only_concern(db).close_after
    assert later is not None and later > closes_at


def test_new_harm_under_a_staff_rating_set_on_a_high_concern_is_still_told(db: Engine) -> None:
    """The dean rated a high-risk concern down, knowing what it said. A patient since harmed is
    news: the dean and quality team are told once for each rise in the automatic rating, not
    for answers that raise nothing."""
    deliver(db, email(body="Left unsupervised with no senior cover and a patient was harmed."))
    (ack,) = outbox(db, kind="learner_ack")
    with transaction(db) as session:
        concern = repositories.lock_concern(session, only_concern(db).id or 0)
        assert concern is not None and concern.risk_level == "high"
        rate_by_hand(session, concern, likelihood=2, impact=2, now=MONDAY_MORNING)

    def told() -> list[str]:
        return [message.recipient_role for message in outbox(db, kind="rated_high_over_override")]

    deliver(
        db, reply_to(ack, body="How often: occasionally"), now=MONDAY_MORNING + timedelta(hours=1)
    )
    assert told() == []
    for hours in (2, 3):
        deliver(
            db,
            reply_to(ack, body="Anyone harmed: a patient was harmed"),
            now=MONDAY_MORNING + timedelta(hours=hours),
        )
    concern = only_concern(db)
    assert (concern.risk_level, concern.auto_impact) == ("low", 5)
    assert sorted(told()) == ["dean", "quality_team"]
    assert [e.kind for e in events(db, concern.id or 0)].count("rated_high_over_override") == 1


def raised_in_confidence_on_the_web(db: Engine, *, name: str, address: str) -> OutboxMessage:
    """A confidential concern a nursing student raised on the form; its acknowledgement."""
    raw = concern_input(
        example_placement(db),
        confidentiality="confidential",
        learner={"name": name, "email": address, "group": "nursing"},
    )
    submit_concern(
        engine=db,
        concern=parse_submission(raw),
        channel=Channel.WEB,
        now=MONDAY_MORNING,
        policy=policy(),
    )
    (ack,) = outbox(db, kind="learner_ack")
    return ack


def test_a_confidential_learners_emailed_reply_loses_the_name_their_mail_shows(
    db: Engine,
) -> None:
    """The record keeps the first name given ('J. Smith' on the form); the learner's mail shows
    'Jane Smith'. What they write in a reply must lose both, as the concern's own text did when
    it was raised by email: 'Jane' in the reply named them to the supervisor."""
    address = "js2041@student.example.ac.uk"
    ack = raised_in_confidence_on_the_web(db, name="J. Smith", address=address)
    report = deliver(
        db,
        reply_to(
            ack,
            sender=f"Jane Smith <{address}>",
            body="Jane again, the FY1 on nights: it happened twice more this week.",
        ),
        mail_from=address,
        now=MONDAY_MORNING + timedelta(hours=1),
    )
    assert report.replies == 1
    [added] = [
        event
        for event in events(db, only_concern(db).id or 0)
        if event.kind == "learner_added_information"
    ]
    assert "Jane" not in added.detail["text"] and "Smith" not in added.detail["text"]


def test_a_confidential_learners_reply_never_nests_a_marker_in_another(db: Engine) -> None:
    """The names the mail shows, the concern and the record keep go in one pass: a learner who
    typed 'Name' in the form's name box (or is called 'Removed') must not make the supervisor
    read '[[name removed] removed]', a marker that shows a name was taken out twice."""
    address = "js2042@student.example.ac.uk"
    ack = raised_in_confidence_on_the_web(db, name="Name Removed", address=address)
    deliver(
        db,
        reply_to(ack, sender=f"Jane Smith <{address}>", body="Jane again: it happened twice more."),
        mail_from=address,
        now=MONDAY_MORNING + timedelta(hours=1),
    )
    [added] = [
        event
        for event in events(db, only_concern(db).id or 0)
        if event.kind == "learner_added_information"
    ]
    assert added.detail["text"].startswith(f"{REMOVED} again: it happened twice more.")


def test_what_a_learner_says_they_are_is_their_kind_of_learner(db: Engine) -> None:
    """'I'm a 2nd year student nurse' needs no answer to the question: pathway 2 is then her
    university's, not the quality team's until she answers; someone else she mentions is not."""
    deliver(
        db,
        email(body="I'm a 2nd year student nurse. The rota has gaps and teaching is cancelled."),
    )
    concern = only_concern(db)
    assert concern.learner_group == "nursing"
    (ack,) = outbox(db, kind="learner_ack")
    assert "Learner group:" not in ack.body_text
    with transaction(db) as session:
        routed = [e for e in repositories.events_of(session, concern.id or 0) if e.kind == "routed"]
    assert "Kind of learner taken from what the learner wrote: nursing student" in str(
        routed[0].detail
    )


def test_a_learner_mentioned_is_not_the_writer(db: Engine) -> None:
    deliver(db, email(body="The student nurse on my ward is left alone with the rota gaps."))
    assert only_concern(db).learner_group is None


def test_a_placement_answered_as_learners_write_it_is_found_in_the_directory(db: Engine) -> None:
    """'Organisation: Vale General' and 'Department: the emergency department at Vale Royal'
    were kept as written, and the concern stayed with the quality team: a reply's placement is
    now found as a new email's is."""
    deliver(db, email(subject="bullying", body="My registrar shouts at me on nights."))
    before = only_concern(db)
    assert before.organisation_id is None
    (ack,) = outbox(db, kind="learner_ack")
    assert "Organisation:" in ack.body_text
    deliver(
        db,
        reply_to(
            ack,
            body="Organisation: Vale General\nDepartment: the emergency department at Vale Royal\n",
        ),
        now=MONDAY_MORNING + timedelta(hours=1),
    )
    after = only_concern(db)
    with transaction(db) as session:
        assert session.get(Organisation, after.organisation_id).key == "vale-general"  # type: ignore[union-attr]
        assert session.get(Department, after.department_id).key == "emergency"  # type: ignore[union-attr]
    assert after.placement_text is None


def test_an_answer_that_changes_nobody_told_leaves_no_trail_saying_it_did(db: Engine) -> None:
    """Answering only the kind of learner at pathway 1, where the supervisor was told already:
    the staff page said 'Contacts told: Supervisor, Clinical tutor ... the learner's answers
    changed who should be told', and nobody new was told."""
    deliver(db, email())
    (ack,) = outbox(db, kind="learner_ack")
    sent_before = len(outbox(db))
    deliver(
        db,
        reply_to(ack, body="Learner group: nursing student\n"),
        now=MONDAY_MORNING + timedelta(hours=1),
    )
    concern = only_concern(db)
    assert concern.learner_group == "nursing"
    assert len(outbox(db)) == sent_before
    reasons = [
        (event.detail or {}).get("reason")
        for event in events(db, concern.id or 0)
        if event.kind == "contacts_told"
    ]
    assert "the learner's answers changed who should be told" not in reasons


@pytest.mark.parametrize(
    ("body", "summary"),
    [
        (
            "Hi,\n\nMy name is Jane. Teaching is cancelled every week.",
            "Teaching is cancelled every week.",
        ),
        # Not its sign-off, when all it says is in one sentence after a greeting.
        (
            "Hi, teaching on Ward 7 at Vale General is cancelled every week.\n\nThanks,\nJane",
            "Hi, teaching on Ward 7 at Vale General is cancelled every week.",
        ),
    ],
)
def test_an_email_without_a_subject_is_summed_up_by_what_it_says(
    db: Engine, body: str, summary: str
) -> None:
    deliver(db, email(subject="", body=body))
    assert only_concern(db).summary == summary


def test_kept_mail_that_reads_as_patient_safety_tells_the_sender_to_report_it(db: Engine) -> None:
    """A follow-up written anew about a patient who died is kept for staff: its answer tells the
    learner to report it locally too, as every answer about harm does, and staff's list says
    to read it today."""
    deliver(db, email())
    first = only_concern(db)
    deliver(
        db,
        email(
            subject=f"Update on {first.reference}",
            body="Last night a patient died after I was left alone on the ward with 30 patients.",
        ),
        now=MONDAY_MORNING + timedelta(days=1),
    )
    assert concern_count(db) == 1
    (answer,) = outbox(db, kind="kept_for_staff")
    assert PATIENT_SAFETY_SIGNPOST in " ".join(answer.body_text.split())
    with transaction(db) as session:
        (kept,) = inbox.kept_aside(session, limit=10)
    assert kept.outcome is not None and "it reads as patient safety, read it today" in kept.outcome


def test_kept_mail_about_anything_else_has_no_signpost(db: Engine) -> None:
    deliver(db, email())
    first = only_concern(db)
    deliver(db, email(subject=first.reference, body="Any news? Teaching is still cancelled."))
    (answer,) = outbox(db, kind="kept_for_staff")
    assert PATIENT_SAFETY_SIGNPOST not in " ".join(answer.body_text.split())


def test_a_confidential_learner_whose_name_is_a_word_keeps_it_for_triage_and_the_dean(
    db: Engine,
) -> None:
    """Sam Fell emails that a patient fell: the email was redacted before triage read it, so
    the fall was missed (the same email from Sam Jones was red), and the dean read the cut copy.
    Now triage and the dean read it as written; contacts read it without 'Fell'."""
    body = "Last night a patient fell because there was one nurse for 28 patients."
    deliver(
        db,
        email(sender="Sam Fell <sam.fell@student.example.ac.uk>", subject="Nights", body=body),
        mail_from="sam.fell@student.example.ac.uk",
    )
    concern = only_concern(db)
    assert concern.patient_safety
    assert "fell" not in concern.description.lower()
    assert concern.description_as_written == body
    (ack,) = outbox(db, kind="learner_ack")
    assert PATIENT_SAFETY_SIGNPOST in " ".join(ack.body_text.split())
    # A reply is read the same way.
    deliver(
        db,
        reply_to(
            ack,
            sender="Sam Fell <sam.fell@student.example.ac.uk>",
            body="Yesterday another patient fell out of bed and was injured.",
        ),
        mail_from="sam.fell@student.example.ac.uk",
        now=MONDAY_MORNING + timedelta(hours=1),
    )
    (added,) = [e for e in events(db, concern.id or 0) if e.kind == "learner_added_information"]
    assert "another patient fell out of bed" in added.detail["triage_text"]
    assert "fell" not in added.detail["text"].lower()
