"""What our emails say: true at every level, and in the HTML part in the shape of the text."""

from __future__ import annotations

import pytest

from notifications.messages import MessageKind, build_message
from notifications.render import render_email
from routing.model import Role
from tests.unit.test_reply_not_applied import facts


def html_of(kind: MessageKind, role: Role, **changes: object) -> str:
    message = build_message(kind, facts=facts(**changes), recipient_role=role)
    return render_email(message).html


def test_the_feedbacks_own_lines_stay_lines_in_the_html_part() -> None:
    """Most mail clients show the HTML part, where a bare line break is only a space: the
    contact's list of what was done must not run together into one line for the learner."""
    html = html_of(
        MessageKind.LEARNER_FEEDBACK,
        Role.LEARNER,
        feedback="We have:\n- fixed the <rota>\n- arranged cover\n\nCall me.",
    )
    shown = "We have:<br>\n- fixed the &lt;rota&gt;<br>\n- arranged cover<br>\n<br>\nCall me."
    assert shown in html


def test_the_learners_paragraphs_stay_paragraphs_for_the_contact() -> None:
    html = html_of(
        MessageKind.NEW_CONCERN,
        Role.SUPERVISOR,
        description="Left alone on nights.\n\nNobody answered the bleep.",
    )
    assert "What happened: Left alone on nights.<br>\n<br>\nNobody answered the bleep." in html


def text_of(kind: MessageKind, role: Role, **changes: object) -> str:
    message = build_message(kind, facts=facts(**changes), recipient_role=role)
    return " ".join(render_email(message).text.split())


@pytest.mark.parametrize(
    ("kind", "role"),
    [
        (MessageKind.LEARNER_FEEDBACK, Role.LEARNER),
        (MessageKind.FEEDBACK_REMINDER, Role.DEAN),
        (MessageKind.ACK_MISSED, Role.DEAN),
    ],
)
def test_at_the_highest_level_nobody_is_told_it_moves_to_a_next_level(
    kind: MessageKind, role: Role
) -> None:
    """With the dean there is no next level (domain.md): late feedback tells the quality team
    and heads the dean's digests, and 'I remain concerned' asks the dean's team to look again."""
    below = text_of(kind, role, pathway=2)
    top = text_of(kind, role, pathway=3)
    assert "next level" in below
    assert "next level" not in top
    if kind is MessageKind.LEARNER_FEEDBACK:
        assert "the dean's team will be asked to look at it again" in top
    else:
        assert "the regional quality team is told" in top


@pytest.mark.parametrize(
    "kind",
    [MessageKind.LEARNER_ACK, MessageKind.LEARNER_ESCALATED, MessageKind.REPLY_NOT_APPLIED],
)
def test_the_learners_status_link_is_a_link_in_the_html_part(kind: MessageKind) -> None:
    """Outlook leaves many a bare address in HTML mail unlinked: the learner's link is a link,
    and the plain text part still shows the address after the invitation."""
    url = "https://concerns.example.nhs.uk/concerns/status/link/abc.def?x=1&y=2"
    html = html_of(kind, Role.LEARNER, status_url=url)
    assert (
        '<a href="https://concerns.example.nhs.uk/concerns/status/link/abc.def?x=1&amp;y=2">'
        "Check your concern, add information or tell us if you are still concerned</a>"
    ) in html
    assert f"Check your concern, add information or tell us if you are still concerned: {url}" in (
        text_of(kind, Role.LEARNER, status_url=url)
    )


@pytest.mark.parametrize(
    ("kind", "role"),
    [
        (MessageKind.HIGH_RISK_ALERT, Role.DEAN),
        (MessageKind.ESCALATED_IN, Role.EDUCATION_PROVIDER),
        (MessageKind.ESCALATED_OUT, Role.SUPERVISOR),
        (MessageKind.REOPENED, Role.EDUCATION_PROVIDER),
    ],
)
def test_the_people_handling_a_concern_read_the_pathway_as_staff(
    kind: MessageKind, role: Role
) -> None:
    """'Your school or university' is the learner's; a dean or a supervisor reads which pathway
    it is on in the words of the staff pages."""
    text = text_of(kind, role, pathway=2)
    assert "pathway 2: the school or education provider" in text
    assert "your school or university" not in text


def test_the_learner_reads_the_pathway_as_theirs() -> None:
    assert "pathway 2: your school or university" in text_of(
        MessageKind.LEARNER_ESCALATED, Role.LEARNER, pathway=2
    )


def test_a_learner_whose_school_is_not_known_is_told_who_has_their_concern() -> None:
    """'It is now on pathway 2: your school or university' was not true when nobody there was
    known: the region's quality team holds it until someone is."""
    known = text_of(MessageKind.LEARNER_ESCALATED, Role.LEARNER, pathway=2)
    unknown = text_of(MessageKind.LEARNER_ESCALATED, Role.LEARNER, pathway=2, school_known=False)
    assert "It is now on pathway 2: your school or university." in known
    assert "the region's quality team has it" in unknown
    assert "quality team" not in known


def test_a_reminder_says_the_next_contact_was_told_only_when_one_was() -> None:
    assert "next contact at this level has been told" in text_of(
        MessageKind.ACK_MISSED, Role.SUPERVISOR
    )
    assert "next contact" not in text_of(MessageKind.ACK_MISSED, Role.SUPERVISOR, others_told=False)


def test_the_acknowledgements_request_for_answers_sits_right_above_the_lines() -> None:
    """On a phone, the add-information and status-link paragraphs between the request and the
    lines read as the lines' instructions. And the reference is not to be quoted in a new email:
    only a reply to ours joins the concern."""
    text = render_email(
        build_message(
            MessageKind.LEARNER_ACK,
            facts=facts(questions=("frequency", "harm")),
            recipient_role=Role.LEARNER,
        )
    ).text
    request = text.index("Please help us route and prioritise it")
    assert text.index("To add information at any time, reply to this email") < request
    lines = [line for line in text[request:].splitlines() if line.strip()]
    assert lines[1].startswith("How often:")
    assert "quote it if you contact us" not in text
