"""The learner's Teams cards: the web form's questions and choices, answers and errors kept in
place, outside words only in TextRuns, and the buttons the other cards rely on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from intake.web import form_fields
from notifications import messages
from notifications import teams_learner_cards as cards

QUESTIONS = cards.FormQuestions(
    groups=form_fields.GROUP_LABELS,
    frequency=form_fields.FREQUENCY_LABELS,
    harm=form_fields.HARM_LABELS,
    raised_before=form_fields.RAISED_BEFORE_LABELS,
    yes_no=form_fields.YES_NO_LABELS,
    pathway1_contact=form_fields.PATHWAY1_CONTACT_LABELS,
    confidentiality=form_fields.CONFIDENTIALITY_LABELS,
    confidentiality_hints=form_fields.CONFIDENTIALITY_HINTS,
    not_listed=form_fields.NOT_LISTED,
    description_limit=form_fields.DESCRIPTION_LIMIT,
    short_text_limit=form_fields.SHORT_TEXT_LIMIT,
)
PLACES = [
    cards.PlaceChoice(
        key="vale-general",
        name="Vale General Hospitals NHS Trust",
        departments=(("vale-general/emergency", "Emergency Department"),),
    ),
    cards.PlaceChoice(key="riverside", name="Riverside Surgery"),
]
PUBLIC_URL = "https://concerns.example.nhs.uk/"
SNEAKY = "[click](https://evil.example) <at>Dean</at> **bold**"


def elements(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "type" in node:
            yield node
        for value in node.values():
            yield from elements(value)
    elif isinstance(node, list):
        for item in node:
            yield from elements(item)


def inputs(card: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in elements(card) if str(e["type"]).startswith("Input.")}


def blocks(card: dict[str, Any]) -> str:
    return "\n".join(e["text"] for e in elements(card) if e["type"] == "TextBlock")


def runs(card: dict[str, Any]) -> str:
    return "\n".join(e["text"] for e in elements(card) if e["type"] == "TextRun")


def executes(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in elements(card) if e["type"] == "Action.Execute"]


def entry(**changes: Any) -> cards.ConcernEntry:
    values: dict[str, Any] = {
        "reference": "LC-2026-000001",
        "status_words": "Open",
        "where_now": "Pathway 1: your placement",
        "next_step": "Feedback due by Monday 7 December 2026 at 10:00.",
        "place": "Emergency Department, Vale General Hospitals NHS Trust",
        "pathway": 1,
    }
    values.update(changes)
    return cards.ConcernEntry(**values)


def form(**kwargs: Any) -> dict[str, Any]:
    return cards.concern_form(
        QUESTIONS, PLACES, values=kwargs.pop("values", {}), public_url=PUBLIC_URL, **kwargs
    )


# --- the form ---------------------------------------------------------------------------------


def test_the_form_asks_every_web_form_question() -> None:
    found = inputs(form())
    assert set(found) == set(form_fields.FIELDS)
    assert found["description"]["isMultiline"] is True
    assert found["description"]["maxLength"] == form_fields.DESCRIPTION_LIMIT
    for name in form_fields.SINGLE_LINE:
        assert found[name]["maxLength"] == form_fields.SHORT_TEXT_LIMIT


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        ("group", form_fields.GROUP_LABELS),
        ("frequency", form_fields.FREQUENCY_LABELS),
        ("harm", form_fields.HARM_LABELS),
        ("raised-before", form_fields.RAISED_BEFORE_LABELS),
        ("about-supervisor", form_fields.YES_NO_LABELS),
    ],
)
def test_choices_are_the_web_forms(name: str, labels: dict[str, str]) -> None:
    choices = inputs(form())[name]["choices"]
    assert [(c["value"], c["title"]) for c in choices] == list(labels.items())


def test_places_come_from_the_directory_with_a_not_listed_choice() -> None:
    found = inputs(form())
    organisation, department = found["organisation"], found["department"]
    assert organisation["style"] == department["style"] == "filtered"
    assert [c["value"] for c in organisation["choices"]] == [
        "Vale General Hospitals NHS Trust",
        "Riverside Surgery",
        form_fields.NOT_LISTED,
    ]
    assert department["choices"] == [
        {
            "title": "Emergency Department (Vale General Hospitals NHS Trust)",
            "value": "vale-general/emergency",
        },
        {"title": "My department is not listed", "value": form_fields.NOT_LISTED},
    ]


def test_each_confidentiality_choice_is_explained_and_anonymous_points_to_the_web() -> None:
    card = form()
    words = blocks(card)
    assert form_fields.CONFIDENTIALITY_HINTS["named"] in words
    assert form_fields.CONFIDENTIALITY_HINTS["confidential"] in words
    assert "Teams knows who you are" in words
    assert "https://concerns.example.nhs.uk/concerns/new" in words
    assert [c["value"] for c in inputs(card)["confidentiality"]["choices"]] == [
        "named",
        "confidential",
        "anonymous",
    ]


def test_the_send_button_raises_the_concern() -> None:
    send, mine = executes(form())
    assert (send["verb"], send["title"]) == (cards.RAISE_CONCERN, "Send")
    assert mine["verb"] == cards.MY_CONCERNS
    assert mine["associatedInputs"] == "none"


def test_answers_are_kept_and_errors_sit_under_their_inputs() -> None:
    values = {
        "group": "nursing",
        "description": SNEAKY,
        "email": "x@",
        "cannot-raise-locally": "yes",
        "department": "vale-general/emergency",
        "frequency": "not-a-choice",
    }
    card = form(values=values, errors={"email": "Enter an email address", "harm": "Select one"})
    found = inputs(card)
    assert found["group"]["value"] == "nursing"
    assert found["description"]["value"] == SNEAKY
    assert found["email"]["value"] == "x@"
    assert found["cannot-raise-locally"]["value"] == cards.TOGGLE_ON
    assert found["department"]["value"] == "vale-general/emergency"
    assert "value" not in found["frequency"]  # not one of the choices
    body = card["body"]
    assert body[0]["style"] == "attention"
    assert "There is a problem" in blocks(body[0])
    for name, message in (("email", "Enter an email address"), ("harm", "Select one")):
        index = next(i for i, element in enumerate(body) if element.get("id") == name)
        assert body[index + 1] == {
            "type": "TextBlock",
            "text": message,
            "wrap": True,
            "color": "attention",
            "spacing": "none",
        }
    assert SNEAKY not in blocks(card)


def test_a_notice_with_a_link_heads_the_form() -> None:
    card = form(notice=cards.anonymous_refusal(PUBLIC_URL))
    first = card["body"][0]
    assert "cannot be anonymous" in blocks(first)
    [link] = [e for e in elements(first) if e["type"] == "Action.OpenUrl"]
    assert link["url"] == "https://concerns.example.nhs.uk/concerns/new"


# --- after sending ----------------------------------------------------------------------------


def test_the_confirmation_gives_the_reference_and_what_happens_next() -> None:
    card = cards.received_card(
        "LC-2026-000042",
        pathway=1,
        where_now="your placement",
        placement="listed",
        in_teams=True,
        by_email=True,
        patient_safety=True,
    )
    words = blocks(card)
    assert "LC-2026-000042" in words
    assert "What happens next" in words
    assert "Your concern has gone to your placement." in words
    assert "could not find" not in words
    assert "here in Teams and by email" in words
    assert cards.INCIDENT_REPORTING in words
    assert [a["verb"] for a in executes(card)] == [cards.MY_CONCERNS]


QUALITY_TEAM_HAS_IT = (
    "We could not find your placement in our list, so we have sent your concern to the regional "
    "quality team."
)
TUTOR_OR_GUARDIAN_HAS_IT = (
    "We could not find your department in our list, so we have sent your concern to your "
    "organisation's clinical tutor or Freedom to Speak Up guardian."
)
AS_DESCRIBED = "We could not find your placement in our list, so they will see it as you described"


@pytest.mark.parametrize(
    ("pathway", "placement", "says", "never_says"),
    [
        pytest.param(
            1,
            "not_listed",
            [QUALITY_TEAM_HAS_IT],
            ["has gone to", "find the right people first", TUTOR_OR_GUARDIAN_HAS_IT],
            id="pathway-1-organisation-not-listed",
        ),
        pytest.param(
            1,
            "department_not_listed",
            [TUTOR_OR_GUARDIAN_HAS_IT],
            ["has gone to", "find the right people first", QUALITY_TEAM_HAS_IT],
            id="pathway-1-department-not-listed",
        ),
        pytest.param(
            2,
            "not_listed",
            ["Your concern has gone to your school.", messages.SCHOOL_NOT_CLEAR, AS_DESCRIBED],
            ["find the right people", QUALITY_TEAM_HAS_IT],
            id="pathway-2-not-listed",
        ),
        pytest.param(
            3,
            "department_not_listed",
            ["Your concern has gone to the dean.", AS_DESCRIBED, "This is the highest level"],
            [
                "find the right people",
                "moves to the next level",
                TUTOR_OR_GUARDIAN_HAS_IT,
                messages.SCHOOL_NOT_CLEAR,
            ],
            id="pathway-3-not-listed",
        ),
    ],
)
def test_the_confirmation_says_who_has_a_concern_whose_placement_is_not_listed(
    pathway: int, placement: str, says: list[str], never_says: list[str]
) -> None:
    # Only one thing is true, per the routing fallbacks: not "gone to your placement" and "the
    # regional team will find the right people first" both.
    where_now = {1: "your placement", 2: "your school", 3: "the dean"}[pathway]
    card = cards.received_card(
        "LC-2026-000042",
        pathway=pathway,
        where_now=where_now,
        placement=placement,
        in_teams=True,
        by_email=True,
        patient_safety=False,
    )
    words = blocks(card)
    for sentence in says:
        assert sentence in words
    for sentence in never_says:
        assert sentence not in words


def test_the_confirmation_says_when_the_concern_is_not_followed_in_teams() -> None:
    card = cards.received_card(
        "LC-2026-000042",
        pathway=1,
        where_now="your placement",
        placement="listed",
        in_teams=False,
        by_email=True,
        patient_safety=False,
    )
    assert "not listed under My concerns" in blocks(card)
    assert cards.INCIDENT_REPORTING not in blocks(card)


# --- My concerns ------------------------------------------------------------------------------


def test_a_concern_shows_status_pathway_and_next_step() -> None:
    card = cards.my_concerns_card([entry()])
    words = blocks(card)
    assert "LC-2026-000001: Open" in words
    assert "Now with: Pathway 1: your placement" in words
    assert "Feedback due by Monday 7 December 2026 at 10:00." in words
    assert "Emergency Department" in runs(card)


def test_outside_words_are_only_in_text_runs() -> None:
    card = cards.my_concerns_card([entry(place=SNEAKY, summary=SNEAKY)])
    assert runs(card).count(SNEAKY) == 2
    assert "evil.example" not in blocks(card)
    assert "<at>" not in blocks(card)


def test_feedback_buttons_only_when_feedback_awaits_an_answer() -> None:
    waiting = cards.my_concerns_card(
        [entry(can_respond_to_feedback=True, pathway=2, level_round=1)]
    )
    answers = {a["verb"]: a["data"] for a in executes(waiting)}
    expected = {"reference": "LC-2026-000001", "pathway": 2, "round": 1}
    assert answers[cards.SATISFIED] == answers[cards.REMAIN_CONCERNED] == expected
    assert cards.SATISFIED not in {a["verb"] for a in executes(cards.my_concerns_card([entry()]))}


def test_add_information_opens_a_box_sent_with_the_reference() -> None:
    card = cards.my_concerns_card([entry(), entry(reference="LC-2026-000002")])
    shows = [e for e in elements(card) if e["type"] == "Action.ShowCard"]
    assert [s["title"] for s in shows] == ["Add information", "Add information"]
    ids = [next(iter(inputs(show["card"]))) for show in shows]
    assert ids == ["information:LC-2026-000001", "information:LC-2026-000002"]
    [send] = executes(shows[0]["card"])
    assert send["verb"] == cards.ADD_INFORMATION
    assert send["data"] == {"reference": "LC-2026-000001"}


def test_a_closed_concern_offers_no_buttons() -> None:
    card = cards.my_concerns_card([entry(status_words="Closed", can_add_information=False)])
    assert not [e for e in elements(card) if e["type"] == "Action.ShowCard"]
    assert [a["verb"] for a in executes(card)] == [cards.CONCERN_FORM]


def test_no_concerns_yet() -> None:
    assert "You have no concerns raised from Teams" in blocks(cards.my_concerns_card([]))


def test_many_concerns_are_capped_and_the_card_fits_teams() -> None:
    many = [
        entry(
            reference=f"LC-2026-{n:06d}",
            place="x" * 300,
            summary="y" * 200,
            can_respond_to_feedback=True,
            status_url="https://concerns.example.nhs.uk/concerns/status?t=" + "z" * 120,
        )
        for n in range(cards.MAX_CONCERNS_SHOWN + 5)
    ]
    card = cards.my_concerns_card(many)
    shown = [e for e in elements(card) if e["type"] == "Action.ShowCard"]
    assert len(shown) == cards.MAX_CONCERNS_SHOWN
    assert f"Showing your {cards.MAX_CONCERNS_SHOWN} most recent concerns." in blocks(card)
    assert len(json.dumps(card).encode()) < 28_000


# --- answers to the buttons -------------------------------------------------------------------


def test_information_not_saved_is_given_back_in_the_box() -> None:
    card = cards.not_added_card("LC-2026-000001", SNEAKY)
    assert "try again" in blocks(card)
    assert SNEAKY in runs(card)
    assert SNEAKY not in blocks(card)
    assert inputs(card)["information:LC-2026-000001"]["value"] == SNEAKY


def test_a_refusal_changes_nothing_and_gives_typed_words_back() -> None:
    card = cards.refused_card("Only the learner who raised this concern can do that.", typed=SNEAKY)
    assert "Nothing has been changed" in blocks(card)
    assert runs(card) == SNEAKY
    assert "Only the learner" in blocks(card)


def test_done_shows_what_happened_and_the_concern_now() -> None:
    card = cards.done_card("It is now closed.", entry(status_words="Closed"))
    assert "It is now closed." in blocks(card)
    assert "LC-2026-000001: Closed" in blocks(card)
