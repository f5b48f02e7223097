"""Reading learners' replies: the quote left out, the question lines read back, the first line."""

from __future__ import annotations

import time
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intake.replies import (
    MAX_FREE_TEXT_CHARS,
    Answers,
    described_group,
    only_our_message,
    read_answers,
    read_contact_command,
    same_subject,
    strip_quoted,
)
from notifications.messages import QUESTIONS
from routing.model import Frequency, Harm, LearnerGroup

NOTHING = Answers(
    frequency=None,
    harm=None,
    organisation=None,
    department=None,
    learner_group=None,
    remains_concerned=False,
    satisfied=False,
)
# The question lines exactly as the acknowledgement sends them.
UNANSWERED = "\n".join(question.line for question in QUESTIONS.values())


# --- strip_quoted ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "kept"),
    [
        ("Thanks\n> quoted\n>> older\nmore", "Thanks\nmore"),
        ("Thanks\n\nOn Mon, 2 Nov 2026 at 10:00, Concerns <c@x.example> wrote:\n> hi", "Thanks"),
        (
            "Thanks\nOn Monday 2 November 2026 at 10:00, Escalating Concerns\n"
            "<escalating-concerns@example.nhs.uk> wrote:\nquoted without markers",
            "Thanks",
        ),
        ("Thanks\n-----Original Message-----\nFrom: x\nquoted", "Thanks"),
        ("Thanks\n________________________________\nFrom: x\nSent: y\nquoted", "Thanks"),
        (
            "Thanks\n\nFrom: Concerns <c@x.example>\nSent: 02 November 2026 10:00\n"
            "To: Jane\nSubject: [LC-1] We have received your concern\n\nquoted",
            "Thanks",
        ),
        ("Thanks   \n\n\n", "Thanks"),
        (
            "From: the ward sister, who said\nto stay quiet",
            "From: the ward sister, who said\nto stay quiet",
        ),
        (
            "On nights I was alone.\nNobody wrote: anything",
            "On nights I was alone.\nNobody wrote: anything",
        ),
    ],
)
def test_strip_quoted(reply: str, kept: str) -> None:
    assert strip_quoted(reply) == kept


ATTRIBUTION = "On Mon, 2 Nov 2026 at 10:00, Concerns <c@x.example> wrote:"
STATUS_LINK = "https://concerns.example.nhs.uk/concerns/status/link/IkxDLTIwMjYi.awQOoA.bPLn-gE_X"


@pytest.mark.parametrize(
    "reply",
    [
        "> How often: often\n> Anyone harmed: not sure",
        f"{ATTRIBUTION}\n> We have received your concern\n> Check it: {STATUS_LINK}\n",
        f"\n\n{ATTRIBUTION}\nquoted without markers\nCheck it: {STATUS_LINK}",
        f"From: Concerns <c@x.example>\nSent: 02 November 2026 10:00\n\nCheck it: {STATUS_LINK}",
        f"-----Original Message-----\n> quoted\nCheck it: {STATUS_LINK}",
    ],
)
def test_a_reply_that_is_all_quote_keeps_no_text(reply: str) -> None:
    """The quote is our own email, with the learner's status link: it is never the reply."""
    assert strip_quoted(reply) == ""


@pytest.mark.parametrize(
    ("reply", "kept"),
    [
        (f"{ATTRIBUTION}\n> We have received your concern\n\nStill alone on nights.", (
            "Still alone on nights."
        )),
        (
            "On Monday 2 November 2026 at 10:00, Escalating Concerns\n"
            "<escalating-concerns@example.nhs.uk> wrote:\n> quoted\n>\nMine.\n",
            "Mine.",
        ),
        (f"{ATTRIBUTION}\n> first\nAnswer one\n> second\n\nAnswer two", (
            "Answer one\n\nAnswer two"
        )),
        (f"{ATTRIBUTION}\n> quoted\nMine.\n\n{ATTRIBUTION}\n> older\n", "Mine."),
    ],
)  # fmt: skip
def test_a_reply_written_below_the_quote_keeps_what_was_written(reply: str, kept: str) -> None:
    assert strip_quoted(reply) == kept


def test_our_links_and_tokens_are_never_kept_from_a_reply() -> None:
    reply = (
        f"The link {STATUS_LINK} did not open.\n"
        "I wrote to escalating-concerns+lc12xabcdefghijklmnopqrst@example.nhs.uk too."
    )
    assert strip_quoted(reply) == (
        "The link [link removed] did not open.\nI wrote to [link removed] too."
    )


def test_strip_quoted_handles_windows_line_ends() -> None:
    assert strip_quoted("Thanks\r\n> quoted\r\nbye\r\n") == "Thanks\nbye"


# --- the question lines ------------------------------------------------------------------------


def test_a_full_set_of_answers_is_read() -> None:
    answers = read_answers(
        "How often: every shift\n"
        "Anyone harmed: a patient is at risk\n"
        "Organisation: Vale General Hospital\n"
        "Department: Maternity\n"
        "Learner group: nursing student\n"
    )
    assert answers == Answers(
        frequency=Frequency.CONTINUING,
        harm=Harm.PATIENT_AT_RISK,
        organisation="Vale General Hospital",
        department="Maternity",
        learner_group=LearnerGroup.NURSING,
        remains_concerned=False,
        satisfied=False,
    )


def test_the_unanswered_question_lines_answer_nothing() -> None:
    assert read_answers(UNANSWERED) == NOTHING


@pytest.mark.parametrize("key", list(QUESTIONS))
def test_every_choice_is_read_by_its_words_and_by_its_stored_value(key: str) -> None:
    question = QUESTIONS[key]
    for stored, words in question.choices:
        for answer in (words, stored, words.upper(), f"  {words}. ", stored.replace("_", " ")):
            value = getattr(read_answers(f"{question.label}: {answer}"), key)
            assert value == stored, (answer, value)


@pytest.mark.parametrize("key", [key for key, question in QUESTIONS.items() if question.choices])
def test_every_choice_is_read_with_the_hint_left_in_place(key: str) -> None:
    question = QUESTIONS[key]
    for stored, words in question.choices:
        hint = question.line.split(":", 1)[1]
        assert getattr(read_answers(f"{question.label}: {words} {hint}"), key) == stored
        assert getattr(read_answers(f"{question.line} {words}"), key) == stored


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("How often: often (once / occasionally / often / every shift or continuing)", "often"),
        ("how   OFTEN :every day", "continuing"),
        ("HowOften: daily", "continuing"),
        ("How often: always", "continuing"),
        ("How often: constantly!", "continuing"),
        ("How often: sometimes", "occasionally"),
        ("How often: just once", "once"),
        # In the learner's own words (an exploratory test's replies).
        ("How often: most days, basically every week", "often"),
        ("How often: most nights", "often"),
        ("How often: all my nights", "continuing"),
        ("How often: every single shift", "continuing"),
        ("How often: weekly", "often"),
        ("How often: twice", "occasionally"),
        ("How often: every night shift", "continuing"),
        ("How often: not every week", None),
        ("How often: once a day", "continuing"),
        ("How often: more than once", "occasionally"),
        ("How often: twice a week", "often"),
        ("How often: it was a one-off", "once"),
        ("How often: once or twice", "occasionally"),
        ("* How often: often", "often"),
        ("How often: (once / occasionally / often / every shift or continuing)", None),
        ("How often: ( once / occasionally / often / every shift or continuing )", None),
        ("How often:", None),
        ("How often: once / occasionally / often / every shift or continuing", None),
        ("How often: once, maybe often", None),
        ("How often: not often", None),
        ("How often: no idea", None),
        ("How often - often", None),
        ("> How often: often", None),
    ],
)
def test_how_often(line: str, expected: str | None) -> None:
    assert read_answers(line).frequency == (Frequency(expected) if expected else None)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Anyone harmed: a patient was harmed", "patient_harmed"),
        ("Anyone harmed: yes, harmed", "patient_harmed"),
        ("Anyone harmed: at risk", "patient_at_risk"),
        ("Anyone harmed: a patient could be harmed", "patient_at_risk"),
        ("Anyone harmed: nobody harmed, but a patient is at risk", "patient_at_risk"),
        ("Anyone harmed: unsure", "not_sure"),
        ("Anyone harmed: I don't know", "not_sure"),
        ("Anyone harmed: I don\u2019t know", "not_sure"),
        ("Anyone harmed: I'm not sure", "not_sure"),
        ("Anyone harmed: my training", "learners_affected"),
        ("Anyone harmed: wellbeing", "learners_affected"),
        ("Anyone harmed: learners\u2019 training or wellbeing affected", "learners_affected"),
        ("Anyone harmed: minor", "minor"),
        # "No", and nothing more, is the form's "No one was harmed and it is minor".
        ("Anyone harmed: no one was harmed", "minor"),
        ("Anyone harmed: no", "minor"),
        ("Anyone harmed: No.", "minor"),
        ("Anyone harmed: nobody", "minor"),
        ("Anyone harmed: no patient has been harmed", "minor"),
        ("Anyone harmed: nobody, but a patient is at risk", "patient_at_risk"),
        # Harm in the words learners use for it, with someone cared for in the same clause.
        ("Anyone harmed: yes, a patient fell", "patient_harmed"),
        ("Anyone harmed: a patient died", "patient_harmed"),
        ("Anyone harmed: a patient passed away", "patient_harmed"),
        ("Anyone harmed: patients are dying on trolleys", "patient_harmed"),
        ("Anyone harmed: a man had a fall and fractured his hip", "patient_harmed"),
        ("Anyone harmed: a patient sustained a head injury", "patient_harmed"),
        ("Anyone harmed: the baby died", "patient_harmed"),
        ("Anyone harmed: a mum had a PPH and nobody senior came", "patient_harmed"),
        ("Anyone harmed: a patient got the wrong drug", "patient_harmed"),
        # "May" is a hedge: in doubt an answer reads lower, and the reply's words are still
        # rated ("patient fell" is a patient-safety signal there).
        ("Anyone harmed: In May a patient fell", "patient_at_risk"),
        ("Anyone harmed: nobody fell", None),
        ("Anyone harmed: I don't think anyone was harmed", None),
        # Without one, the learner's own words are left unread (their reply's text is rated).
        ("Anyone harmed: my concerns fell on deaf ears", None),
        ("Anyone harmed: the placement has fallen through", None),
        ("Anyone harmed: my grandmother died and I was refused leave", None),
        ("Anyone harmed: my supervisor broke her promise", None),
        # Harm only to the learner is their wellbeing.
        ("Anyone harmed: my training, I fell behind", "learners_affected"),
        ("Anyone harmed: my wellbeing, I broke down in tears", "learners_affected"),
        ("Anyone harmed: learners affected, I had to verify a death alone", "learners_affected"),
        ("Anyone harmed: I was hurt by what the consultant said", "learners_affected"),
        ("Anyone harmed: I was injured by a patient", "patient_harmed"),
        # Harm that nearly happened, could happen or will is a risk, over "and" too.
        ("Anyone harmed: a patient nearly fell", "patient_at_risk"),
        ("Anyone harmed: someone could have been badly injured", "patient_at_risk"),
        ("Anyone harmed: a patient may have been harmed", "patient_at_risk"),
        ("Anyone harmed: at risk of a fall", "patient_at_risk"),
        ("Anyone harmed: at risk of being harmed", "patient_at_risk"),
        ("Anyone harmed: a patient might fall and hurt themselves", "patient_at_risk"),
        ("Anyone harmed: a patient could have fallen and been hurt", "patient_at_risk"),
        ("Anyone harmed: patients may fall", "patient_at_risk"),
        ("Anyone harmed: maybe a patient fell", "patient_at_risk"),
        ("Anyone harmed: a patient is going to fall", "patient_at_risk"),
        ("Anyone harmed: a matter of time before a patient gets hurt", "patient_at_risk"),
        ("Anyone harmed: no one hurt yet but it's only a matter of time", "patient_at_risk"),
        ("Anyone harmed: no one hurt yet", "patient_at_risk"),
        ("Anyone harmed: an accident waiting to happen", "patient_at_risk"),
        # What happened, said not to have harmed anyone, is a risk.
        ("Anyone harmed: A patient fell but was not hurt", "patient_at_risk"),
        ("Anyone harmed: patient given wrong dose but no harm done", "patient_at_risk"),
        # Harm denied in another part of the answer says nothing of this one.
        ("Anyone harmed: A patient died. I wasnt hurt but Im upset.", "patient_harmed"),
        ("Anyone harmed: patient died, no harm to staff", "patient_harmed"),
        # Negations typed without the apostrophe; the learner's family; staff; equipment.
        ("Anyone harmed: the patient wasnt harmed", None),
        ("Anyone harmed: my mum died", None),
        ("Anyone harmed: her baby died", "patient_harmed"),
        ("Anyone harmed: a colleague was hurt", "learners_affected"),
        ("Anyone harmed: she fell asleep on call", None),
        ("Anyone harmed: the patient hoist is broken", None),
        # Two choices are no clear answer: moderate until someone reads it, and the reply's
        # words are rated as the rest of what the learner wrote ("a patient fell" is harm).
        ("Anyone harmed: harmed and at risk", None),
        ("Anyone harmed: a high-risk patient fell", None),
        ("Anyone harmed: minor, but a patient is at risk", None),
        ("Anyone harmed: not sure whether anyone was harmed", None),
    ],
)
def test_anyone_harmed(line: str, expected: str | None) -> None:
    assert read_answers(line).harm == (Harm(expected) if expected else None)


def test_several_frequencies_are_still_no_answer() -> None:
    # How often has no "most serious" reading: "once, or often" is left for the learner to say.
    assert read_answers("How often: once, or often").frequency is None


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Learner group: FY1", "foundation"),
        ("Learner group: foundation doctor", "foundation"),
        ("Learner group: student nurse", "nursing"),
        ("Learner group: midwife", "midwifery"),
        ("Learner group: medical student", "undergraduate_medical"),
        ("Learner group: student", None),
        ("Learner group: medical student and dental student", None),
    ],
)
def test_learner_group(line: str, expected: str | None) -> None:
    assert read_answers(line).learner_group == (LearnerGroup(expected) if expected else None)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Organisation: Vale General Hospital", "Vale General Hospital"),
        ("Organization:   Vale   General  ", "Vale General"),
        ("ORGANISATION:Vale\x00 General\x1b", "Vale General"),
        ("Organisation:", None),
        ("Organisation:    ", None),
        ("Organisation: ()", None),
        ("Organisation: " + "x" * 500, "x" * MAX_FREE_TEXT_CHARS),
    ],
)
def test_organisation(line: str, expected: str | None) -> None:
    assert read_answers(line).organisation == expected


def test_department_and_the_first_answer_wins() -> None:
    answers = read_answers("Department:\nDepartment: Ward 7\nDepartment: Ward 9")
    assert answers.department == "Ward 7"


def test_answers_in_the_quote_are_never_read() -> None:
    reply = (
        "Thanks for this.\n\n"
        "On Mon, 2 Nov 2026 at 10:00, Concerns <c@x.example> wrote:\n"
        "How often: every shift\n"
        "Organisation: Quoted Trust\n"
    )
    assert read_answers(reply) == NOTHING


def test_answers_above_the_quote_are_read() -> None:
    reply = (
        "How often: often\n\n"
        "On Mon, 2 Nov 2026 at 10:00, Concerns <c@x.example> wrote:\n"
        f"> {UNANSWERED.replace(chr(10), chr(10) + '> ')}\n"
    )
    assert read_answers(reply).frequency is Frequency.OFTEN


def test_answers_written_below_the_quote_are_read() -> None:
    reply = (
        "On Mon, 2 Nov 2026 at 10:00, Concerns <c@x.example> wrote:\n"
        f"> {UNANSWERED.replace(chr(10), chr(10) + '> ')}\n\n"
        "How often: every shift\nAnyone harmed: a patient is at risk\n"
    )
    answers = read_answers(reply)
    assert (answers.frequency, answers.harm) == (Frequency.CONTINUING, Harm.PATIENT_AT_RISK)


def quoted(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.split("\n"))


OUR_QUESTIONS = {key: question.line for key, question in QUESTIONS.items()}


def test_answers_written_under_our_quoted_questions_are_read() -> None:
    reply = (
        f"{ATTRIBUTION}\n> We have received your concern\n>\n"
        f"> {OUR_QUESTIONS['frequency']}\nevery shift\n"
        f"> {OUR_QUESTIONS['harm']}\n\nyes, a patient was hurt\n\n"
        f"> {OUR_QUESTIONS['organisation']}\nVale General Hospital\n"
        f"> {OUR_QUESTIONS['department']}\n"
        f"> {OUR_QUESTIONS['learner_group']}\nLearner group: I am a student nurse\n"
        ">\n> This message was sent automatically by the learner concerns service.\n"
    )
    answers = read_answers(reply)
    assert answers == Answers(
        frequency=Frequency.CONTINUING,
        harm=Harm.PATIENT_HARMED,
        organisation="Vale General Hospital",
        department=None,
        learner_group=LearnerGroup.NURSING,
        remains_concerned=False,
        satisfied=False,
    )


def test_inline_answers_count_under_text_written_above_and_a_wrapped_question() -> None:
    harm = OUR_QUESTIONS["harm"]
    wrapped = f"> {harm[:60]}\n> {harm[60:]}"  # clients wrap long quoted lines
    reply = (
        f"My answers are below.\n\n{ATTRIBUTION}\n"
        f"> How often does this happen?\noften\n{wrapped}\na patient is at risk\n"
    )
    answers = read_answers(reply)
    assert (answers.frequency, answers.harm) == (Frequency.OFTEN, Harm.PATIENT_AT_RISK)


def test_answers_written_above_win_over_inline_ones() -> None:
    reply = f"How often: once\n\n{ATTRIBUTION}\n> {OUR_QUESTIONS['frequency']}\nevery shift\n"
    assert read_answers(reply).frequency is Frequency.ONCE


@pytest.mark.parametrize(
    "reply",
    [
        # Our questions quoted with nothing under them: the next quoted line is no answer.
        f"{ATTRIBUTION}\n{quoted(UNANSWERED)}\n",
        # A question answered inside the quote is the quote, not the learner's words.
        f"{ATTRIBUTION}\n> How often: every shift\nsee above\n",
        # Under some other quoted line, not ours.
        f"{ATTRIBUTION}\n> How often do you work nights?\nevery shift\n",
        # Our questions in an unmarked quote (no '>'): nothing tells the answer from the quote.
        f"{ATTRIBUTION}\n{OUR_QUESTIONS['frequency']}\nevery shift\n",
        # Under a quoted line that is not a question, even after one.
        f"{ATTRIBUTION}\n> {OUR_QUESTIONS['frequency']}\n> Thanks, Jane\nevery shift\n",
    ],
)
def test_only_lines_under_our_quoted_questions_are_inline_answers(reply: str) -> None:
    assert read_answers(reply) == NOTHING


# --- the first line ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "first_line",
    ["I remain concerned", "i remain concerned.", "I am still concerned!", "Still concerned",
     "  I REMAIN   CONCERNED  ", "'I remain concerned'",
     "I remain concerned - nothing has changed on the ward.",
     "I remain concerned, nothing has changed",
     "Still concerned: the rota is the same", "I remain concerned \u2013 still alone",
     "I am still concerned. Nobody came.", "I'm still concerned", "I\u2019m still concerned.",
     # As learners write it: a lead-in, more words, no apostrophe, or "not satisfied".
     "No, I remain concerned. Last night I was left alone again.",
     "Not satisfied. I remain concerned.", "Im still concerned", "I'm not satisfied",
     "Still concerned tbh, nothing has changed.", "I remain concerned as nothing changed",
     "I remain concerned about the rota", "Hi, still concerned", "Sorry - still not satisfied",
     "Thanks, but I remain concerned", "I remain very concerned.",
     "I am still very concerned, nothing has changed.", "I still remain concerned",
     "I'm really not satisfied", "Okay, I remain concerned", "Sadly I remain concerned",
     "I'm afraid I remain concerned", "I'm still not happy, nothing has changed",
     "Not happy with that at all",
     # Later on the line, as a sentence of its own.
     "Thanks, I'm satisfied. But honestly the rota is still awful and I remain concerned.",
     "The rota is fixed and I remain concerned about teaching"],
)  # fmt: skip
def test_remains_concerned(first_line: str) -> None:
    answers = read_answers(f"\n\n{first_line}\n\nThe rota is still unsafe.")
    assert answers.remains_concerned is True
    assert answers.satisfied is False


@pytest.mark.parametrize(
    "first_line",
    ["I'm satisfied", "I\u2019m satisfied.", "I am satisfied", "Satisfied", "satisfied!",
     "I'm satisfied, thank you for sorting it", "Satisfied - thanks",
     "Yes I'm satisfied thanks", "Thanks, I'm satisfied", "Im satisfied",
     "I'm satisfied thank you for sorting it", "Okay, I'm very satisfied"],
)  # fmt: skip
def test_satisfied(first_line: str) -> None:
    answers = read_answers(f"{first_line}\nThank you.")
    assert answers.satisfied is True
    assert answers.remains_concerned is False


@pytest.mark.parametrize(
    "reply",
    [
        "Thanks.\nI remain concerned",
        "I'm satisfied that nothing was done",
        "I'm satisfied thanksgiving went well",
        "I remain concernedly waiting",
        "Satisfied? Not at all.",
        "Still concerned? Not any more.",
        "still concerned ?",
        "I'm not still concerned",
        "No longer concerned",
        "Not concerned now",
        "Satisfied thanks?",
        # Before "satisfied", which closes the concern, a "no" is not a lead-in.
        "No satisfied",
        "Nope satisfied, nothing changed",
        "No, I'm satisfied.",
        # Taken back on the same line.
        "Satisfied - not really, nothing has changed",
        "Thank you, I'm satisfied but the rota is the same",
        "Am I still concerned? I remain concerned?",
        "> I remain concerned",
        "On Mon, 2 Nov 2026, Concerns <c@x> wrote:\nI remain concerned",
        "-----Original Message-----\nI'm satisfied",
        "",
    ],
)
def test_anything_else_is_neither(reply: str) -> None:
    answers = read_answers(reply)
    assert answers.remains_concerned is False
    assert answers.satisfied is False


@settings(derandomize=True, deadline=None, max_examples=200)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                [*(question.line for question in QUESTIONS.values()), "> ", "On x wrote:",
                 "-----Original Message-----", "From: a", "Sent: b", "I remain concerned", "(",
                 "not", "n't", "\u2019", "\r", "\n", ":", "/", " "]
            ),
            st.text(max_size=50),
        ),
        max_size=200,
    )
)  # fmt: skip
def test_any_reply_is_read_without_error_and_quickly(pieces: list[str]) -> None:
    reply = "".join(pieces)
    started = time.perf_counter()
    answers = read_answers(reply)
    strip_quoted(reply)
    assert time.perf_counter() - started < 1.0
    assert not (answers.remains_concerned and answers.satisfied)
    for text in (answers.organisation, answers.department):
        assert text is None or 0 < len(text) <= MAX_FREE_TEXT_CHARS
        assert text is None or all(unicodedata.category(c) not in ("Cc", "Cs") for c in text)


@pytest.mark.parametrize(
    ("reply", "kind", "text"),
    [
        (
            "Feedback: Teaching is protected now.\nFrom Monday.",
            "feedback",
            "Teaching is protected now.\nFrom Monday.",
        ),
        ("\n\n  feedback - sorted\n", "feedback", "sorted"),
        ("**Feedback:** rota fixed", "feedback", "rota fixed"),
        ("Feedback:\nOn Mon, 23 Nov 2026 Concerns wrote:\n> old", "feedback", ""),
        ("Not mine", "not_mine", ""),
        ("not mine - I moved to surgery", "not_mine", "I moved to surgery"),
        ("Not for me. Try Dr Smith", "not_mine", "Try Dr Smith"),
        ("Thanks, looking at it", None, "Thanks, looking at it"),
        ("My feedback: later", None, "My feedback: later"),
        ("Nothing mine here", None, "Nothing mine here"),
        ("> Feedback: quoted only", None, ""),
    ],
)
def test_a_contacts_first_line_says_what_their_reply_does(
    reply: str, kind: str | None, text: str
) -> None:
    command = read_contact_command(reply)
    assert (command.kind, command.text) == (kind, text)


def test_the_reply_instructions_are_what_the_reader_understands() -> None:
    from notifications.messages import HOW_TO_REPLY

    assert "'Feedback:'" in HOW_TO_REPLY and "'Not mine'" in HOW_TO_REPLY
    assert read_contact_command("Feedback: done").kind == "feedback"
    assert read_contact_command("Not mine").kind == "not_mine"


OUR_FEEDBACK = (
    "Feedback on your concern LC-2026-000001:\n\n"
    "Teaching is now protected on Thursdays.\n\n"
    "If you are satisfied, you need do nothing. If you remain concerned, reply with "
    "'I remain concerned' as the first line."
)


def only_ours(reply: str) -> bool:
    return only_our_message(reply, (OUR_FEEDBACK, ""), our_address="c@x")


QUOTED_FEEDBACK = "On Mon, 23 Nov 2026 at 10:00, Concerns <c@x> wrote:\n" + "\n".join(
    f"> {line}" for line in OUR_FEEDBACK.splitlines()
)


@pytest.mark.parametrize(
    "reply",
    [
        "\n".join(f"> {line}" for line in OUR_FEEDBACK.splitlines()),
        "Sent from my iPhone\n\nOn Mon, 23 Nov 2026 at 10:00, Concerns <c@x> wrote:\n"
        + "\n".join(f">{line}" for line in OUR_FEEDBACK.splitlines()),
        "\n\n" + QUOTED_FEEDBACK + "\n>\n> \n",
        "",
    ],
)
def test_a_reply_of_only_our_message_says_nothing(reply: str) -> None:
    assert only_ours(reply)


@pytest.mark.parametrize(
    "reply",
    [
        "Thanks\n\n" + "\n".join(f"> {line}" for line in OUR_FEEDBACK.splitlines()),
        # Typed inside Outlook's quote, with no quote marks.
        "From: Concerns <c@x>\nSent: Monday, 23 Nov 2026\n\n"
        + OUR_FEEDBACK
        + "\nI remain concerned",
        "> Teaching is now protected on Thursdays.\nIt is not.",
        # A line of ours wrapped differently by the client: in doubt, the learner said something.
        "> If you are satisfied, you need do nothing.\n> If you remain concerned, reply with",
        "--\nJane Smith\nStudent nurse",
        # Lines that only look like a client's own.
        "To: whom it may concern, nothing changed\n\n" + QUOTED_FEEDBACK,
        "Sent: I was sent home again yesterday\n\n" + QUOTED_FEEDBACK,
        "On the ward nobody wrote: anything down, it is still happening\n" + QUOTED_FEEDBACK,
        "Subject: bullying\n\n" + QUOTED_FEEDBACK,
        "Date: it happened again on 3 March\n" + QUOTED_FEEDBACK,
        "From: the start this has been ignored\n" + QUOTED_FEEDBACK,
        "Cc: my educational supervisor\n" + QUOTED_FEEDBACK,
        "Sent from my bed, still off sick because of this\n" + QUOTED_FEEDBACK,
        "Get Outlook for the rota coordinator - still not fixed\n" + QUOTED_FEEDBACK,
        "____________________ still not fixed\n" + QUOTED_FEEDBACK,
        "-----Original Message----- still concerned\n" + QUOTED_FEEDBACK,
        # A line of ours written above the quote is the learner's, not the quote's.
        "Teaching is now protected on Thursdays.\n\n" + QUOTED_FEEDBACK,
        # Header-like lines of their own outside a header block.
        "From: Concerns <c@x>\nSent: 23 Nov 2026\n\nSubject: not sorted at all\n" + OUR_FEEDBACK,
        # Below a '>' quote, even a line that repeats one of ours is the learner's.
        QUOTED_FEEDBACK + "\n\nTeaching is now protected on Thursdays.",
        # An 'On ... wrote:' of their own (not naming our address) starts no quote.
        "On 3 nights last week I was alone again, this is what my supervisor wrote:\n\n"
        + OUR_FEEDBACK,
        # A From: line that is not ours starts no header block.
        "From: still not sorted, nothing has changed <jane@x.ac.uk>\n\n" + OUR_FEEDBACK,
        # Inside Outlook's block: a subject they changed, a date with no date in it.
        "From: Concerns <c@x>\nSent: 23 Nov 2026\nSubject: Still not sorted\n\n" + OUR_FEEDBACK,
        "From: Concerns <c@x>\nSent: I was sent home again\n\n" + OUR_FEEDBACK,
        # Outlook's quote has no marks: words typed inside it cannot be told from it, so even
        # one with nothing typed in it counts (in doubt, the learner said something).
        "\n________________________________\n*From:* Concerns <c@x>\n"
        "*Sent:* Monday, 23 November 2026 10:00\n"
        "*To:* Jane\n*Subject:* RE: [LC-2026-000001] Your concern\n\n" + OUR_FEEDBACK,
        # The attribution: a sentence before it, another address, a line of ours between it
        # and the quote.
        "On reflection, after 3 more nights alone, I remain concerned. On Mon, 23 Nov 2026 at "
        "10:00, Concerns <c@x> wrote:\n" + QUOTED_FEEDBACK.partition("\n")[2],
        "On 3 nights since, I emailed c@x and nobody wrote:\n" + QUOTED_FEEDBACK.partition("\n")[2],
        "On Mon, 23 Nov 2026 at 10:00, Concerns <notc@x> wrote:\n"
        + QUOTED_FEEDBACK.partition("\n")[2],
        QUOTED_FEEDBACK.partition("\n")[0]
        + "\nTeaching is now protected on Thursdays.\n"
        + QUOTED_FEEDBACK.partition("\n")[2],
    ],
)
def test_any_line_not_ours_is_the_learner_saying_something(reply: str) -> None:
    assert not only_ours(reply)


@pytest.mark.parametrize(
    ("subject", "same"),
    [
        ("RE: [LC-2026-000001] Your concern", True),
        ("Re: Re: [LC-2026-000001]  your concern", True),
        ("AW: [LC-2026-000001] Your concern", True),
        ("Fwd[2]: [LC-2026-000001] Your concern", True),
        ("Re: Still not sorted", False),
        ("", False),
    ],
)
def test_a_reply_that_changes_our_subject_says_something(subject: str, same: bool) -> None:
    assert same_subject(subject, ("[LC-2026-000001] Your concern",)) is same


# --- who the writer of a new email says they are ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "group"),
    [
        ("I'm a 2nd year student nurse on placement on ward 3", LearnerGroup.NURSING),
        ("I'm a student midwife at the Maternity Unit, Brookside.", LearnerGroup.MIDWIFERY),
        ("As a physio student I was left to treat patients alone", LearnerGroup.AHP),
        ("I am an FY1 in the Emergency Department", LearnerGroup.FOUNDATION),
        (
            "Hi, I\u2019m a 4th year medical student on the surgical firm.",
            LearnerGroup.UNDERGRADUATE_MEDICAL,
        ),
        # Someone else, or nobody, or two kinds: not taken.
        ("The student nurse on my ward was left alone", None),
        ("I am a bit worried about nights", None),
        ("I'm a student nurse, and as a midwife I", None),
        ("I'm a. Student nurse", None),
        ("As a result the nurse in charge had to cover two wards", None),
        ("I'm a bit worried that the nurse in charge left early every night.", None),
        ("I am a little upset that the physio team ignore us on the ward round.", None),
        ("I'm a 2nd yr student paramedic", LearnerGroup.AHP),
        ("I am a final year adult nursing student", LearnerGroup.NURSING),
    ],
)
def test_the_group_a_writer_says_they_are_in(text: str, group: LearnerGroup | None) -> None:
    assert described_group(text) == group


@pytest.mark.parametrize(
    ("reply", "remains", "satisfied"),
    [
        ("Hi,\n\nI remain concerned, nothing has changed.", True, False),
        ("Dear team\nI am still not satisfied.", True, False),
        ("Hello Dr Sample,\nThanks, I'm satisfied", False, True),
        ("Hi,\n", False, False),
    ],
)
def test_a_greeting_line_is_not_the_first_line(reply: str, remains: bool, satisfied: bool) -> None:
    """People start a reply with 'Hi,' or 'Dear team' on a line of its own: the answer is the
    line after it."""
    answers = read_answers(reply)
    assert (answers.remains_concerned, answers.satisfied) == (remains, satisfied)
