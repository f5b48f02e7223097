"""Reading a learner's reply: what they wrote above the quote, and their answers to our questions.

The acknowledgement asks the questions in `notifications.messages.QUESTIONS` as lines
`Label: (choice / choice ...)`; a learner answers by replying with `Label: answer` lines. The
labels and the choices' words are the contract between the two modules. Pure: text in, values out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from escalation.links import LINK_PATH
from intake.summary import GREETING
from notifications.messages import QUESTIONS, Question
from notifications.threading import TOKEN
from routing.model import Frequency, Harm, LearnerGroup
from routing.triage import NEGATIONS_WITHOUT_APOSTROPHE

MAX_FREE_TEXT_CHARS = 200
_MAX_CHOICE_CHARS = 300

# Where a quoted earlier message starts, in the forms the common mail clients write.
_ON = re.compile(r"^\s*On\s", re.IGNORECASE)
_ON_WROTE = re.compile(r"^\s*On\b.*\bwrote:\s*$", re.IGNORECASE)
_ORIGINAL_MESSAGE = re.compile(r"^\s*-{2,}\s*Original Message\s*-{2,}\s*$", re.IGNORECASE)
_SEPARATOR = re.compile(r"^\s*_{20,}\s*$")
_OUTLOOK_FROM = re.compile(r"^\s*\**From:\**\s", re.IGNORECASE)
_OUTLOOK_SENT = re.compile(r"^\s*\**(?:Sent|Date):\**\s", re.IGNORECASE)
_OUTLOOK_BLOCK_LINES = 4  # Sent: follows From: within this many lines
_QUOTED = re.compile(r"^\s*>")
_QUOTE_MARKS = re.compile(r"^\s*(?:>\s?)+")
# Our own links and tokens, whole words, wherever they are left in what a reply keeps: a learner's
# status link opens their concern, and the text is shown to the people handling it.
_OUR_LINKS = re.compile(rf"(?<!\S)\S*?(?:{re.escape(LINK_PATH)}|{TOKEN.pattern})\S*", re.IGNORECASE)
LINK_REMOVED = "[link removed]"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_TOKEN = re.compile(r"[a-z0-9]+|[,.;:!?()/]")
_PUNCTUATION = frozenset(",.;:!?()/")
_BREAK = "|"  # stands for punctuation: no phrase spans it, no negation reaches over it
_CLAUSE_BREAKS = frozenset({_BREAK, "but", "however", "though", "although", "yet"})
_APOSTROPHES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u02bc": "'", "`": "'"})
_EDGE_PUNCTUATION = " \t.!,;:'\"\u201c\u201d"

# What may follow the phrase on the first line, before anything else the learner wrote.
_PHRASE_ENDS = re.compile(r" ?[.,;:!\-\u2013\u2014]")
_REMAINS_CONCERNED = frozenset(
    {"i remain concerned", "i am still concerned", "i'm still concerned", "im still concerned",
     "still concerned", "i'm not satisfied", "i am not satisfied", "im not satisfied",
     "not satisfied", "i'm still not satisfied", "i am still not satisfied", "still not satisfied",
     "i remain unsatisfied", "i'm not happy", "i am not happy", "im not happy", "not happy",
     "i'm still not happy", "i am still not happy", "im still not happy", "still not happy",
     "still unhappy", "i'm still unhappy", "i am still unhappy"}
)  # fmt: skip
_SATISFIED = frozenset({"i'm satisfied", "i am satisfied", "im satisfied", "satisfied"})
# What may come before either on the first line: "No, I remain concerned.", "Sadly I remain
# concerned", "Yes I'm satisfied", "Thanks, I'm satisfied". Before "satisfied", which closes the
# concern, only the positive ones: "No satisfied" and "Nope satisfied, nothing changed" are not.
_LEAD_INS = ("yes", "yeah", "yep", "thanks", "thank you", "hi", "hello", "ok", "okay")
_CONCERNED_LEAD_INS = (
    *_LEAD_INS, "no", "nope", "sorry", "unfortunately", "sadly", "but", "however", "honestly",
    "i'm afraid", "im afraid", "i am afraid",
)  # fmt: skip


def _lead_in(words: Sequence[str]) -> re.Pattern[str]:
    return re.compile(
        rf"\A(?:(?:{'|'.join(re.escape(word) for word in words)})"
        r"(?=[\s.,;:!\-\u2013\u2014]|$)[\s.,;:!\-\u2013\u2014]*)+"
    )


_LEAD_IN = _lead_in(_LEAD_INS)
_CONCERNED_LEAD_IN = _lead_in(_CONCERNED_LEAD_INS)
# Words that only say how much: "I remain very concerned", "I'm really not satisfied", "I still
# remain concerned".
_INTENSIFIERS = re.compile(
    r"\b(?:very|really|deeply|extremely|so|quite|truly|genuinely|seriously|greatly|still(?= "
    r"remain))\s+"
)
# What may follow "I remain concerned": punctuation, or a space and more words; not a question
# mark, nor letters joined to it ("concernedly").
_GOES_ON = re.compile(r"[^\w\s?]| [^\s?]")
# Thanks after satisfied, with no punctuation between: "I'm satisfied thank you for sorting it".
_THANKS = re.compile(r",? (?:thanks|thank you|thankyou|many thanks)(?=$|[^\w?])")

# A new email's opening, where a learner says who they are, is all that is looked at.
_MAX_DESCRIBED_CHARS = 2_000

# Negations that cancel a choice named right after them ('nobody harmed', 'not often').
_NEGATIONS = frozenset(
    {"no", "not", "nobody", "none", "never", "noone", "neither", "nor",
     *NEGATIONS_WITHOUT_APOSTROPHE}
)  # fmt: skip
# Words before a choice that a negation may be ("no patient has been harmed"), and a hedge
# ("could have fallen and been hurt").
_NEGATION_REACH = 4
_HEDGE_REACH = 5
# Words that make harm named after them only a risk: "nearly fell", "could have been badly
# hurt", "at risk of a fall", "a patient will fall and hurt themselves".
_HEDGES = (
    ("nearly",), ("almost",), ("could",), ("might",), ("would",), ("will",), ("may",), ("can",),
    ("maybe",), ("perhaps",), ("probably",), ("possibly",), ("likely",), ("if",), ("until",),
    ("going", "to"), ("risk", "of"), ("danger", "of"), ("waiting", "for"), ("time", "before"),
)  # fmt: skip
# Harm in the learner's own words ("a patient fell", "the baby died") counts only with someone
# who is cared for in the same clause: a learner also "fell behind", "had a death in the
# family", or has a supervisor who "broke her promise". Without one, the answer is left
# unread, and the reply's words are rated as the rest of what the learner wrote.
_CARED_FOR = frozenset(
    {
        "patient", "patients", "baby", "babies", "mother", "mothers", "mum", "woman", "women",
        "man", "men", "child", "children", "resident", "residents",
    }
)  # fmt: skip
_HARM_WITH_SOMEONE = (
    "died", "dead", "death", "passed away", "dying", "fell", "fall", "fallen", "fracture",
    "fractured", "broke her", "broke his", "broke their", "injury", "injuries",
    "cardiac arrest", "pph", "haemorrhage", "hemorrhage", "bled", "bleed", "bleeding",
    "wrong drug", "wrong dose", "overdose",
)  # fmt: skip
# "No" to "Has anyone been harmed?", and nothing more, is the form's choice "No one was harmed
# and it is minor". A longer answer is read word by word ("nobody, but a patient is at risk").
_NOBODY_HARMED = frozenset(
    {"no", "none", "nobody", "no one", "noone", "no harm", "not harmed", "nobody harmed",
     "no one harmed", "nobody was harmed", "no one was harmed", "no one has been harmed",
     "nobody has been harmed", "no harm done", "no patient was harmed",
     "no patients were harmed", "no patient has been harmed", "no patient harmed"}
)  # fmt: skip
# A harm word that is only about the learner ("I was hurt by what he said", "my wellbeing has
# been harmed") is their wellbeing, not a patient's.
_THE_LEARNER = frozenset(
    {"i", "me", "my", "myself", "im", "ive", "id", "we", "us", "colleague", "colleagues",
     "staff", "student", "students", "trainee", "trainees", "learner", "learners"}
)  # fmt: skip

# Words learners use for a choice, beyond the choice's own words and its stored value.
_SYNONYMS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "frequency": {
        "once": ("just once", "one off", "only once", "one time", "a single time"),
        "occasionally": (
            "sometimes", "occasional", "once or twice", "now and then", "rarely", "twice",
            "a few times", "monthly", "every month", "once a month", "more than once",
            "once a fortnight", "once in a while", "every so often",
        ),
        "often": (
            "frequently", "regularly", "a lot", "most shifts", "once a week", "weekly",
            "every week", "most weeks", "most days", "several times a week", "twice a week",
            "a few times a week", "most nights", "most of my shifts", "most of my nights",
            "every other shift", "every other night",
        ),
        "continuing": (
            "every day", "daily", "always", "constantly", "constant", "every shift",
            "all the time", "ongoing", "continuous", "continually", "still happening",
            "every night", "nightly", "every night shift", "every weekend", "every on call",
            "once a day", "twice a day", "several times a day", "all my nights",
            "all my shifts", "every time", "each shift", "each night", "every single shift",
        ),
    },
    "harm": {
        "patient_harmed": ("harmed", "harm", "hurt", "injured", *_HARM_WITH_SOMEONE),
        "patient_at_risk": (
            "at risk", "risk", "unsafe", "near miss", "risk of harm", "could be harmed",
            "might be harmed", "potential harm", "potentially harmed", "matter of time",
            "waiting to happen",
        ),
        "learners_affected": ("training", "wellbeing", "well being", "learners affected"),
        "minor": ("minor harm",),
        "not_sure": ("unsure", "don't know", "do not know", "not certain", "uncertain"),
    },
    "learner_group": {
        "foundation": ("fy1", "fy2", "foundation"),
        "specialty": ("registrar", "specialty", "speciality trainee", "core trainee", "st1"),
        "undergraduate_medical": ("medical student", "medic"),
        "undergraduate_dental": ("dental student", "dentistry student"),
        "undergraduate_pharmacy": ("pharmacy student", "pharmacist student"),
        "nursing": ("student nurse", "nursing", "nurse"),
        "midwifery": ("student midwife", "midwifery", "midwife"),
        "ahp": (
            "allied health", "ahp", "physiotherapy", "paramedic", "radiography", "physio",
            "physio student", "occupational therapy", "ot student", "radiographer",
            "speech and language", "dietetics", "podiatry", "operating department practitioner",
        ),
        "healthcare_science": ("healthcare scientist", "healthcare science"),
        "support_workforce": ("support worker", "healthcare assistant", "hca"),
    },
}  # fmt: skip


@dataclass(frozen=True)
class Answers:
    """What a learner answered in a reply; None where they did not answer, or not clearly."""

    frequency: Frequency | None
    harm: Harm | None
    organisation: str | None
    department: str | None
    learner_group: LearnerGroup | None
    remains_concerned: bool
    satisfied: bool

    @property
    def to_our_questions(self) -> bool:
        """Whether any of our questions was answered: how often, harm, placement, group."""
        asked = (self.frequency, self.harm, self.organisation, self.department, self.learner_group)
        return any(answer is not None for answer in asked)


# A contact's reply does one thing by its first line: "Feedback: ..." gives the learner feedback,
# "Not mine" hands the concern on; any other reply acknowledges it (and is kept on the concern).
_FEEDBACK = re.compile(r"^\s*\**feedback\**\s*[:\-]\**\s*", re.IGNORECASE)
_NOT_MINE = re.compile(
    r"^\s*(?:not mine|not for me|not me|wrong person)\b[\s.!,;:\-]*", re.IGNORECASE
)


@dataclass(frozen=True)
class ContactCommand:
    """What a contact's reply asks for: "feedback" or "not_mine" with its text, or nothing."""

    kind: str | None
    text: str


def read_contact_command(text: str) -> ContactCommand:
    """The action a contact's reply asks for, read from its first written line."""
    lines = _written(text).split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        return ContactCommand(None, "")
    for kind, pattern in (("feedback", _FEEDBACK), ("not_mine", _NOT_MINE)):
        match = pattern.match(lines[0])
        if match:
            rest = "\n".join([lines[0][match.end() :], *lines[1:]]).strip()
            return ContactCommand(kind, rest)
    return ContactCommand(None, "\n".join(lines).strip())


def without_answers(written: str, whole: str) -> str:
    """What a learner wrote (`written`, from the reply `whole`) as triage reads it: without what
    is only an answer to our questions ('Anyone harmed: minor', 'Minor harm' typed under our
    quoted question), whose words are ours and not the learner's account; and without our
    labels. A longer line stays, since it may say more than the answer ('Every shift - last
    night a patient was harmed ...'); the answers themselves are read by `read_answers`."""
    inline: list[tuple[str, str]] = []
    _inline_answers(whole, answer_lines=inline)
    only_answers = {line for key, line in inline if _only_an_answer(key, line)}
    kept: list[str] = []
    for line in written.split("\n"):
        if line.strip() in only_answers:
            continue
        labelled = next(
            ((key, match) for key, label in _LABELS.items() if (match := label.match(line))), None
        )
        if labelled is not None:
            key, match = labelled
            if _only_an_answer(key, match.group("value")):
                continue
            line = match.group("value")
        kept.append(line)
    return "\n".join(kept)


# An answer is a few words: a longer line is read as the learner's account too.
_ANSWER_MOST_WORDS = 6


def _only_an_answer(key: str, text: str) -> bool:
    """Whether `text` is no more than an answer to the question `key`."""
    answered = _answer(QUESTIONS[key], text)
    return answered is not None and len(text.split()) <= _ANSWER_MOST_WORDS


def only_our_message(reply: str, ours: Sequence[str], *, our_address: str) -> bool:
    """Whether a reply (its whole text, quote and all) is only our message (`ours`: its texts,
    plain and from HTML, sent from `our_address`) quoted the plainest way: every line of it
    one of ours marked '>', after at most the line that starts such a quote ('On Mon, 23 Nov
    2026 at 10:00, Learner concerns <our address> wrote:') and a phone's 'Sent from my
    iPhone'. That is a reply sent by mistake.

    In doubt, the learner said something: a false 'nothing' could let a concern close whose
    learner wrote that they remain concerned. So lines are compared whole, and every other
    line is the learner's wherever it is: a word typed inside a quote, a line of ours written
    without '>' (Outlook quotes that way, and words typed inside its quote cannot be told
    from it), a header-like line ('Subject: bullying'), or a line a client wrapped. (The
    subject is the caller's to check: `same_subject`.)"""
    if "@" not in our_address:
        return False
    our_lines = {_compared(line) for text in ours for line in text.splitlines()}
    attribution = _attribution(our_address)
    quoted = False
    for line in reply.splitlines():
        compared = _compared(line)
        if not compared:
            continue
        if _QUOTED.match(line):
            if compared not in our_lines:
                return False
            quoted = True
        elif quoted or not (
            attribution.fullmatch(compared) or _DEVICE_SIGNATURE.fullmatch(compared)
        ):
            return False
    return True


def _attribution(our_address: str) -> re.Pattern[str]:
    """The line a client writes before a quote of our message, as _compared leaves it: 'On',
    a date (a digit in it) and our name, with no sentence in it (no '.', '!', '?' or ';'),
    then our address whole and 'wrote:'."""
    address = re.escape(f"<{our_address.casefold()}>")
    return re.compile(rf"on (?=[^.!?;]*\d)[^.!?;<>]{{0,120}}{address} wrote:")


_DEVICE_SIGNATURE = re.compile(
    r"sent from my (?:iphone|ipad|android(?: phone| device)?|galaxy|mobile(?: device)?|"
    r"smartphone|samsung(?: galaxy)?(?: smartphone| tablet| mobile)?)|"
    r"get outlook for (?:ios|android)"
)
# What mail clients put before a subject they reply to or forward, in several languages.
_REPLY_PREFIX = re.compile(
    r"^(?:\s*(?:re|fw|fwd|aw|wg|sv|vs|antw|tr|rif|r)\s*(?:\[\d+\]|\(\d+\))?\s*:)+\s*",
    re.IGNORECASE,
)


def same_subject(reply_subject: str, ours: Sequence[str]) -> bool:
    """Whether a reply keeps the subject of our message it answers ('RE: [LC-...] Your concern';
    `ours`: the subjects it may have had): a learner may say something in the subject alone
    ('Still not sorted')."""
    return _compared(_REPLY_PREFIX.sub("", reply_subject)) in {_compared(each) for each in ours}


def _compared(line: str) -> str:
    """A line as lines of a reply and of our message are compared: without quote marks, case
    or runs of spaces, and Outlook's bold labels ('*From:*') as plain ones."""
    return " ".join(_QUOTE_MARKS.sub("", line).replace("*", "").split()).casefold()


def strip_quoted(text: str) -> str:
    """What the writer of a reply wrote, for display: never the message it quotes (our own
    email, with the learner's status link in it); empty if they wrote nothing of their own."""
    return _written(text)


def read_answers(text: str) -> Answers:
    """The answers in a reply, read only from what the learner wrote, never from a quote:
    `Label: answer` lines, then answers written under our questions in the quote."""
    lines = _written(text).split("\n")
    answers: dict[str, str | None] = {}
    for line in lines:
        for key, question in QUESTIONS.items():
            if answers.get(key) is not None:
                continue  # the first answer to a question counts
            match = _LABELS[key].match(line)
            if match:
                answers[key] = _answer(question, match.group("value"))
    for key, value in _inline_answers(text):
        if answers.get(key) is None:
            answers[key] = _answer(QUESTIONS[key], value)
    # The first line that is more than a greeting ("Hi,", "Dear team"), as people start a reply.
    written_lines = [line for line in lines if line.strip()]
    while len(written_lines) > 1 and _GREETING_LINE.fullmatch(written_lines[0].strip()):
        written_lines.pop(0)
    first_line = written_lines[0] if written_lines else ""
    said = " ".join(first_line.translate(_APOSTROPHES).lower().split())
    frequency, harm, group = (
        answers.get("frequency"),
        answers.get("harm"),
        answers.get("learner_group"),
    )
    return Answers(
        frequency=Frequency(frequency) if frequency else None,
        harm=Harm(harm) if harm else None,
        organisation=answers.get("organisation"),
        department=answers.get("department"),
        learner_group=LearnerGroup(group) if group else None,
        remains_concerned=_remains_concerned(said),
        satisfied=_satisfied(said),
    )


# How a learner introduces themselves: "I'm a 2nd year student nurse", "as a physio student".
_INTRODUCTIONS = (("im", "a"), ("im", "an"), ("i", "am", "a"), ("i", "am", "an"), ("as", "a"),
                  ("as", "an"))  # fmt: skip
# What may come between the introduction and what they are: a year or a field ("a 2nd year adult
# student nurse"), never another word ("as a result the nurse", "I'm a bit worried that the
# nurse").
_DESCRIBING = re.compile(
    r"(?:\d(?:st|nd|rd|th)?|first|second|third|fourth|fifth|sixth|final|year|yr|adult|child|"
    r"childrens|children|mental|health|learning|disability|disabilities|paediatric|"
    r"undergraduate|postgraduate|graduate|newly|qualified|trainee|qualifying|ug|pg|student)"
)
_DESCRIBED_WITHIN = 4


def described_group(text: str) -> LearnerGroup | None:
    """The learner group a new email's writer says they are in ("I'm a student midwife at
    Brookside", "I am an FY1", "as a 4th year medical student"), when they name exactly one:
    pathway 2 is then their school's or university's, rather than the quality team's until they
    answer. Only what they say of themselves counts, right after saying it: "the student nurse
    on my ward" and "I'm a bit worried that the nurse in charge" are someone else."""
    words = _words(text[:_MAX_DESCRIBED_CHARS])
    named: set[str] = set()
    for start in range(len(words)):
        for introduction in _INTRODUCTIONS:
            end = start + len(introduction)
            if tuple(words[start:end]) != introduction:
                continue
            at = end
            while at < end + _DESCRIBED_WITHIN and at < len(words):
                if _DESCRIBING.fullmatch(words[at]) is None:
                    break
                at += 1
            for phrase, stored in _PHRASES["learner_group"]:
                if words[at : at + len(phrase)] == phrase:
                    named.add(stored)
                    break
    return LearnerGroup(named.pop()) if len(named) == 1 else None


# A line that only greets: "Hi,", "Dear team", "Hello Dr Sample", "Good morning all" (not "Hi,
# still concerned").
_GREETING_LINE = re.compile(
    rf"(?!.*\b(?:concerned|satisfied)\b)(?:{GREETING}|hey)(?:[ ,]+[\w'.-]+){{0,3}}[ ,.!]*",
    re.IGNORECASE,
)
# Said after "satisfied" on its line, it takes it back: "Satisfied - not really", "Thanks, I'm
# satisfied. But the rota is still awful and I remain concerned."
_TAKEN_BACK = re.compile(
    r"\b(?:not|no|but|however|although|though|concerned|nothing has changed)\b"
)
# "I remain concerned" said later on the first line, after a stop or "and"/"but", and not asked.
_SAID_LATER = re.compile(
    r"(?:[.!;,]\s*|\b(?:and|but|so)\s+)(?:but\s+|and\s+|so\s+)?(?:honestly\s+)?"
    rf"(?:{'|'.join(sorted(re.escape(p) for p in _REMAINS_CONCERNED if p.startswith('i')))})"
    r"(?=$|[^\w?'])(?![^.!;]*\?)"
)


def _remains_concerned(said: str) -> bool:
    """Whether a first line (lower case, spaces collapsed) says the learner remains concerned:
    it starts with it, after at most a lead-in ("No, I remain concerned."), and anything may
    follow but a question ("I remain concerned about the rota", "Still concerned tbh"; not
    "Still concerned? Not at all."). In doubt it is taken: moving a concern up that the
    learner meant to leave costs a level a look, while missing it lets the concern close on a
    learner who wrote that they remain concerned."""
    said = _CONCERNED_LEAD_IN.sub("", said.lstrip(_EDGE_PUNCTUATION), count=1)
    said = _INTENSIFIERS.sub("", said.lstrip(_EDGE_PUNCTUATION))
    if any(
        said.startswith(phrase) and (len(said) == len(phrase) or _GOES_ON.match(said, len(phrase)))
        for phrase in _REMAINS_CONCERNED
    ):
        return True
    # Later on the line, as a sentence or clause of its own: "Thanks, I'm satisfied. But honestly
    # the rota is awful and I remain concerned." Not asked ("Still concerned? No, all sorted").
    return _SAID_LATER.search(said) is not None


def _satisfied(said: str) -> bool:
    """Whether a first line (lower case, spaces collapsed) says the learner is satisfied: the
    phrase whole, after at most a lead-in ("Thanks, I'm satisfied"), then punctuation or thanks
    and anything ("I'm satisfied, thank you for sorting it"). Followed by another word, or
    taken back on its line ("Satisfied - not really"), it is not taken, since it closes the
    concern: "I'm satisfied that nothing was done" may mean anything, and is kept as information
    only. Nor before '?' ("Satisfied? Not at all")."""
    said = _LEAD_IN.sub("", said.lstrip(_EDGE_PUNCTUATION), count=1)
    said = _INTENSIFIERS.sub("", said.lstrip(_EDGE_PUNCTUATION))
    for phrase in _SATISFIED:
        if not said.startswith(phrase):
            continue
        end = len(phrase)
        if _TAKEN_BACK.search(said, end):
            return False
        if (
            not said[end:].strip(_EDGE_PUNCTUATION)
            or _PHRASE_ENDS.match(said, end)
            or _THANKS.match(said, end)
        ):
            return True
    return False


def _written(text: str) -> str:
    """What the writer wrote: above the quote, or else below and between its quoted blocks;
    our own links and tokens taken out wherever they are left; may be empty."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    written = _unquoted(lines) or _bottom_posted(lines)
    return _OUR_LINKS.sub(LINK_REMOVED, written)


def _unquoted(lines: list[str]) -> str:
    """What the writer wrote: no quoted lines, nothing from a reply header on; may be empty."""
    kept: list[str] = []
    for index, line in enumerate(lines):
        if _starts_quote(lines, index):
            break
        if not _QUOTED.match(line):
            kept.append(line.rstrip())
    return "\n".join(kept).strip()


def _bottom_posted(lines: list[str]) -> str:
    """What a writer who answers below the quote wrote: the unquoted lines after a block of
    '>' lines, without the 'On ... wrote:' lines; may be empty.

    Only '>' marks tell the quote from the answer: the lines after any other reply header
    (Outlook's block, a separator), or after an attribution with no '>' lines after it, are the
    quoted message itself, so nothing from there on is kept.
    """
    kept: list[str] = []
    after_quote = False
    index = 0
    while index < len(lines):
        line = lines[index]
        if _QUOTED.match(line):
            after_quote = True
        elif _ON_WROTE.match(line):
            after_quote = False  # what follows is quoted, marked or not
        elif _starts_quote(lines, index) and _ON.match(line):
            after_quote = False
            index += 1  # an attribution wrapped over two lines
        elif _starts_quote(lines, index):
            break
        elif after_quote:
            kept.append(line.rstrip())
        index += 1
    return "\n".join(kept).strip()


def _inline_answers(
    text: str, *, answer_lines: list[tuple[str, str]] | None = None
) -> list[tuple[str, str]]:
    """Answers written inline: the unquoted paragraph right under one of our questions quoted
    with '>' (its label line as we sent it, wrapped or not, or its prompt), by question key.
    The lines they were read from are added to `answer_lines` (question key, line stripped),
    when it is given.

    Only our unanswered question lines count as questions, and only the learner's own lines
    under them as answers: a quoted line is never read as what the learner wrote.
    """
    # A blank line at the end closes the last answer.
    lines = [*text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), ""]
    found: list[tuple[str, str]] = []
    asked: str | None = None  # the question just quoted, while nothing else has been
    hint_open = False  # its hint wrapped onto the next quoted lines
    answer: list[str] = []
    for index, line in enumerate(lines):
        quote = _QUOTE_MARKS.match(line)
        if quote is None and asked is not None and not _starts_quote(lines, index):
            if line.strip():
                answer.append(line.strip())
                if answer_lines is not None:
                    answer_lines.append((asked, line.strip()))
                continue
            if not answer:
                continue  # blank lines between the question and its answer
        if answer and asked is not None:
            found.append((asked, _own_label_removed(asked, " ".join(answer))))
        answer = []
        if quote is None:
            asked, hint_open = None, False
            continue
        quoted = line[quote.end() :]
        if hint_open:
            hint_open = ")" not in quoted
            continue
        asked = _our_question(quoted)
        hint_open = asked is not None and "(" in quoted and ")" not in quoted
    return found


def _our_question(line: str) -> str | None:
    """The key of the question a quoted line asks as we sent it, or None."""
    said = _plain(line)
    for key, question in QUESTIONS.items():
        if said == _plain(question.prompt):
            return key
        match = _LABELS[key].match(line)
        if match is None:
            continue
        hint = match.group("value").strip()
        # The hint as sent, or its start when the client wrapped the line.
        if not hint or (hint.startswith("(") and _HINT_TEXT[key].startswith(_plain(hint))):
            return key
    return None


def _plain(text: str) -> str:
    """Text compared loosely: lower case, one space between words, plain apostrophes."""
    return " ".join(text.translate(_APOSTROPHES).split()).lower()


def _own_label_removed(key: str, answer: str) -> str:
    """An inline answer without the question's label, if the learner wrote it again."""
    match = _LABELS[key].match(answer)
    return match.group("value") if match else answer


def _starts_quote(lines: list[str], index: int) -> bool:
    """Whether a reply header ('On ... wrote:', Outlook's block, a separator) starts here."""
    line = lines[index]
    if _ORIGINAL_MESSAGE.match(line) or _SEPARATOR.match(line) or _ON_WROTE.match(line):
        return True
    following = lines[index + 1 : index + 1 + _OUTLOOK_BLOCK_LINES]
    # Clients wrap a long 'On <date>, <name> <address> wrote:' over two lines.
    if _ON.match(line) and following and _ON_WROTE.match(f"{line} {following[0]}"):
        return True
    return bool(_OUTLOOK_FROM.match(line)) and any(_OUTLOOK_SENT.match(nxt) for nxt in following)


def _label_pattern(question: Question) -> re.Pattern[str]:
    """`Label: value`, the label in any case and spacing, after an optional bullet."""
    words = [re.escape(word) for word in question.label.lower().split()]
    label = r"\s*".join(words).replace("organisation", "organi[sz]ation")
    return re.compile(rf"^\s*[-*\u2022]?\s*{label}\s*:(?P<value>.*)$", re.IGNORECASE)


def _answer(question: Question, value: str) -> str | None:
    """A choice's stored value, or free text; None if unanswered, still the hint, or unclear."""
    value = " ".join(_CONTROL.sub("", value).split())
    if question.choices:
        # A learner may leave the hint in place beside their answer.
        value = _HINTS[question.key].sub(" ", value)
        if question.key == "harm" and " ".join(_words(value)).strip(" |") in _NOBODY_HARMED:
            return Harm.MINOR.value
        # An answer is a few words; a long paragraph is not one, and must not cost much.
        return _choice(question.key, value[:_MAX_CHOICE_CHARS]) if value.strip() else None
    value = value[:MAX_FREE_TEXT_CHARS].strip()
    return value if value and value != "()" else None


def _hint_pattern(question: Question) -> re.Pattern[str]:
    """The bracketed hint of a question's line, in any case and spacing."""
    hint = " / ".join(words for _, words in question.choices)
    words = (re.escape(word) for word in hint.translate(_APOSTROPHES).split())
    return re.compile(r"\(\s*" + r"\s*".join(words) + r"\s*\)", re.IGNORECASE)


def _phrases(question: Question) -> list[tuple[list[str], str]]:
    """Every way of naming each choice, as words, the longest first."""
    synonyms = _SYNONYMS.get(question.key, {})
    phrases = [
        (_words(phrase), stored)
        for stored, choice_words in question.choices
        for phrase in (choice_words, stored.replace("_", " "), *synonyms.get(stored, ()))
    ]
    return sorted(phrases, key=lambda item: -len(item[0]))


def _choice(key: str, value: str) -> str | None:
    """The one choice an answer names; None if it names none, or several."""
    words = _words(value)
    used = [False] * len(words)
    named: set[str] = set()
    # Parts of the answer (between punctuation) where harm is said not to have happened ("fell
    # but was not hurt"): what happened there was a risk. Elsewhere ("A patient died. I wasn't
    # hurt") it says nothing of the harm.
    denied: set[int] = set()
    harmed_at: list[int] = []
    # Each word is used once, longest phrases first: 'not sure' is read before 'not' negates.
    for phrase, stored in _PHRASES[key]:
        size = len(phrase)
        for start in range(len(words) - size + 1):
            if words[start : start + size] != phrase or any(used[start : start + size]):
                continue
            used[start : start + size] = [True] * size
            if _shortly_after(words, start, _NEGATIONS_AS_PHRASES):
                if stored == Harm.PATIENT_HARMED.value:
                    denied.add(words[:start].count(_BREAK))
                    if words[start + size : start + size + 1] == ["yet"]:
                        # "No one hurt yet": not harmed, but the learner expects it.
                        named.add(Harm.PATIENT_AT_RISK.value)
                continue
            if stored == Harm.PATIENT_HARMED.value:
                stored_here = _harm_read(words, start, phrase)
                if stored_here == Harm.PATIENT_HARMED.value:
                    harmed_at.append(words[:start].count(_BREAK))
                elif stored_here is not None:
                    named.add(stored_here)
                continue
            named.add(stored)
    for part in harmed_at:
        named.add(Harm.PATIENT_AT_RISK.value if part in denied else Harm.PATIENT_HARMED.value)
    return named.pop() if len(named) == 1 else None


def _harm_read(words: list[str], start: int, phrase: list[str]) -> str | None:
    """What harm named at `start` says, from its clause: a patient harmed; at risk after a hedge
    ("nearly fell"); the learner's own wellbeing when only they are in it ("I was hurt"); or
    nothing, for a word of the learner's own that needs someone cared for and has none."""
    clause_words = _clause(words, start)
    clause = set(clause_words)
    # The learner's own family ("my mum died") is not someone cared for on the placement.
    cared_for = any(
        word in _CARED_FOR and (index == 0 or clause_words[index - 1] != "my")
        for index, word in enumerate(clause_words)
    )
    if " ".join(phrase) in _HARM_WITH_SOMEONE and not cared_for:
        return None
    if not cared_for and clause & _THE_LEARNER:
        return Harm.LEARNERS_AFFECTED.value
    if _shortly_after(words, start, _HEDGES, reach=_HEDGE_REACH):
        return Harm.PATIENT_AT_RISK.value
    return Harm.PATIENT_HARMED.value


def _clause(words: list[str], at: int) -> list[str]:
    """The words of the clause the word at `at` is in."""
    first, last = at, at
    while first > 0 and words[first - 1] not in _CLAUSE_BREAKS:
        first -= 1
    while last < len(words) and words[last] not in _CLAUSE_BREAKS:
        last += 1
    return words[first:last]


def _shortly_after(
    words: list[str], start: int, these: Sequence[tuple[str, ...]], *, reach: int = _NEGATION_REACH
) -> bool:
    """Whether one of these (a negation, or a hedge) ends in the same clause at most `reach`
    words before the word at `start`."""
    first = start
    while first > max(0, start - reach) and words[first - 1] not in _CLAUSE_BREAKS:
        first -= 1
    before = words[first:start]
    return any(
        tuple(before[index : index + len(phrase)]) == phrase
        for phrase in these
        for index in range(len(before) - len(phrase) + 1)
    )


def _words(text: str) -> list[str]:
    """Lower-case words and clause breaks, "n't" read as 'not', apostrophes dropped."""
    text = text.translate(_APOSTROPHES).lower().replace("n't", " not").replace("'", "")
    return [_BREAK if token in _PUNCTUATION else token for token in _TOKEN.findall(text)]


_NEGATIONS_AS_PHRASES = tuple((word,) for word in sorted(_NEGATIONS))
# Built once from the contract in notifications.messages.
_LABELS = {key: _label_pattern(question) for key, question in QUESTIONS.items()}
_HINTS = {key: _hint_pattern(question) for key, question in QUESTIONS.items()}
_PHRASES = {key: _phrases(question) for key, question in QUESTIONS.items()}
_HINT_TEXT = {key: _plain(question.line.partition(":")[2]) for key, question in QUESTIONS.items()}
