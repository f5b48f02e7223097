"""The answer to an emailed reply that could not be acted on: the refusal and a link, nothing of
the concern or its learner, whoever it goes to."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from notifications.messages import ConcernFacts, LearnerIdentity, MessageKind, build_message
from notifications.render import render_email
from routing.model import Confidentiality, Role

REFUSAL = "LC-2026-000042 is now with pathway 2: only its contacts there can give feedback"
SECRETS = (
    "Priya",
    "priya@example.nhs.uk",
    "SECRET-SUMMARY",
    "SECRET-DESCRIPTION",
    "SECRET-PLACE",
    "SECRET-REASON",
    "SECRET-HISTORY",
    "SECRET-FEEDBACK",
)


def facts(**changes: object) -> ConcernFacts:
    values: dict[str, object] = {
        "reference": "LC-2026-000042",
        "summary": "SECRET-SUMMARY",
        "description": "SECRET-DESCRIPTION the registrar left me alone",
        "place": "SECRET-PLACE Emergency Department",
        "pathway": 2,
        "risk_level": "medium",
        "rating": "A",
        "reasons": ("SECRET-REASON",),
        "interventions": ("Programme review",),
        "patient_safety": True,
        "hotspot": False,
        "confidentiality": Confidentiality.CONFIDENTIAL,
        "learner": LearnerIdentity(name="Priya Learner", email="priya@example.nhs.uk"),
        "learner_group": "foundation",
        "ack_due_at": datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
        "feedback_due_at": datetime(2026, 12, 7, 10, 0, tzinfo=UTC),
        "timezone": ZoneInfo("Europe/London"),
        "staff_url": "http://127.0.0.1:8000/staff/concerns/LC-2026-000042",
        "why": REFUSAL,
        "history": ("SECRET-HISTORY",),
        "feedback": "SECRET-FEEDBACK",
        "status_url": "http://127.0.0.1:8000/concerns/status/link/signed",
    }
    values.update(changes)
    return ConcernFacts(**values)  # type: ignore[arg-type]


def answer(role: Role, **changes: object) -> tuple[str, str, str]:
    message = build_message(
        MessageKind.REPLY_NOT_APPLIED, facts=facts(**changes), recipient_role=role
    )
    rendered = render_email(message)
    return rendered.subject, rendered.text, rendered.html


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("confidentiality", list(Confidentiality))
def test_the_answer_holds_the_refusal_and_nothing_of_the_concern(
    role: Role, confidentiality: Confidentiality
) -> None:
    subject, text, html = answer(role, confidentiality=confidentiality)
    assert subject == "[LC-2026-000042] We could not act on your reply"
    assert f"{REFUSAL}." in text
    for part in (subject, text, html):
        for secret in SECRETS:
            assert secret not in part


def test_a_contact_gets_the_concerns_page_and_never_the_learners_status_link() -> None:
    _, text, _ = answer(Role.SUPERVISOR)
    assert "/staff/concerns/LC-2026-000042" in text
    assert "/concerns/status/link/" not in text
    assert "Nothing about the concern has changed" in text


def test_a_learner_gets_their_status_link_and_no_staff_page() -> None:
    _, text, _ = answer(Role.LEARNER)
    assert "/concerns/status/link/signed" in text
    assert "/staff/concerns/" not in text
    assert "What you wrote has been added to your concern." in text


def test_the_refusal_is_escaped_in_the_html_part() -> None:
    _, _, html = answer(Role.SUPERVISOR, why="Feedback <b>must</b> be shorter")
    assert "<b>must</b>" not in html and "&lt;b&gt;must&lt;/b&gt;" in html
