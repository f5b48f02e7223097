"""A concern's summary, when the learner gave none: the first sentence of what they wrote that
says something of the concern. The web form has no summary question, and an email may have no
subject; staff lists, digests and alerts are headed by it."""

from __future__ import annotations

import re

SUMMARY_LIMIT = 120


# A sentence that only greets or says who the writer is: "Hi,", "Dear Sir or Madam,", "My name is
# Priya and I'm a 4th year medical student on the surgical firm.", "I'm a student nurse at
# Brookside." Staff lists and digests headed by it would say nothing of the concern. A sentence
# that goes on to say something ("Hi, I was left alone with 20 patients") is not one.
_WHO_I_AM = (
    r"(?:i am|i'm|i\u2019m|im) an? (?:[\w-]+ ){0,4}"
    r"(?:student|trainee|doctor|nurse|midwife|fy1|fy2|registrar|physio\w*|paramedic|pharmacist"
    r"|radiographer|apprentice|learner)(?: (?:on|at|in|with|from|doing)(?: (?!and\b|but\b)"
    r"[\w'&()-]+){1,6})?"
)
# How people greet at the start of what they write (also a reply's first line, intake.replies).
GREETING = r"(?:hi|hello|hiya|dear|good (?:morning|afternoon|evening))"
_INTRODUCTION = re.compile(
    rf"{GREETING}(?:[ ,]+[\w'-]+){{0,4}}"
    # Pleasantries and preambles, as sentences of their own (after a greeting or not).
    rf"|(?:{GREETING}[ ,]+)?(?:"
    r"i hope (?:you are|you're|you\u2019re|this (?:email )?finds you) (?:well|ok|okay)"
    r"|i (?:wanted|want|would like|need) to (?:raise|report|tell you about|share) "
    r"(?:something|a concern|an issue|a problem|some concerns|my concerns?)"
    r"|i am writing (?:to|about|regarding) (?:raise )?(?:a concern|an issue|my concerns?)"
    rf"|my name is(?: [\w'.,\[\]-]+){{1,5}}(?: and {_WHO_I_AM})?"
    rf"|{_WHO_I_AM})",
    re.IGNORECASE,
)


# A sentence ends at '.', '!' or '?' before a space or the end, but not after a title or an
# initial ("Dr. Smith", "J. Bloggs", "e.g.").
_SENTENCE = re.compile(
    r"(?:.+?(?<!\bdr)(?<!\bmr)(?<!\bmrs)(?<!\bms)(?<!\bprof)(?<!\bst)(?<!\be\.g)(?<!\bi\.e)"
    r"(?<!\b[a-z])[.!?](?=\s|$))|.+",
    re.IGNORECASE,
)


def derive_summary(description: str) -> str:
    """The first sentence of the description that says something of the concern (not a greeting
    or an introduction, unless there is nothing else), within a line, at most 120 characters,
    cut between words."""
    sentences = [
        sentence.strip()
        for line in description.strip().splitlines()
        for sentence in _SENTENCE.findall(line.strip())
        if sentence.strip()
    ]
    told = [s for s in sentences if not _INTRODUCTION.fullmatch(s.rstrip(".!?,").strip())]
    summary = (told or sentences or [""])[0]
    if len(summary) <= SUMMARY_LIMIT:
        return summary
    cut = summary[: SUMMARY_LIMIT - 1]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:-") + "…"
