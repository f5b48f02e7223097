"""`submit_concern` on a real database (SQLite and PostgreSQL) with the example directory."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import select

from escalation.actions import Actor, change_learner_email
from intake.service import learner_words, submit_concern
from intake.submission import Channel, InvalidSubmission, parse_submission
from storage import repositories
from storage.db import transaction
from storage.tables import Concern, ConcernContact, Event, Learner, OutboxMessage
from tests.integration.helpers import (
    LONDON,
    MONDAY_MORNING,
    concern_input,
    example_placement,
    load_example_directory,
    policy,
)


@pytest.fixture
def db(engine: Engine) -> Engine:
    load_example_directory(engine)
    return engine


def submit(engine: Engine, raw: dict, now: datetime = MONDAY_MORNING):  # type: ignore[no-untyped-def]
    return submit_concern(
        engine=engine, concern=parse_submission(raw), channel=Channel.CLI, now=now, policy=policy()
    )


def outbox(engine: Engine, reference: str) -> list[OutboxMessage]:
    with transaction(engine) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None
        return list(repositories.outbox_of(session, concern.id or 0))


def test_a_medium_concern_is_triaged_routed_and_queued_in_one_go(db: Engine) -> None:
    submitted = submit(db, concern_input(example_placement(db)))

    assert submitted.reference == "LC-2026-000001"
    assert submitted.code is None
    with transaction(db) as session:
        concern = repositories.concern_by_reference(session, submitted.reference)
        assert concern is not None
        assert (concern.pathway, concern.status, concern.risk_level) == (1, "open", "medium")
        assert (concern.likelihood, concern.impact, concern.rating) == (3, 3, "A")
        assert concern.risk_reasons, "every rating carries its reasons"
        assert concern.standards
        assert concern.interventions == ["Programme review", "Learner/educator review"]
        # Two working days to acknowledge from Monday 10:00 -> Wednesday 10:00 London time.
        assert concern.ack_due_at == datetime(2026, 11, 25, 10, 0, tzinfo=LONDON)
        assert concern.next_due_at == datetime(2026, 11, 24, 10, 0, tzinfo=LONDON)
        kinds = [e.kind for e in repositories.events_of(session, concern.id or 0)]
    assert kinds == ["received", "triaged", "routed"]
    queued = {(m.kind, m.recipient_role) for m in outbox(db, submitted.reference)}
    assert queued == {("new_concern", "supervisor"), ("learner_ack", "learner")}


def test_references_run_in_sequence(db: Engine) -> None:
    placement = example_placement(db)
    references = [submit(db, concern_input(placement)).reference for _ in range(3)]
    assert references == ["LC-2026-000001", "LC-2026-000002", "LC-2026-000003"]
    next_year = datetime(2027, 1, 4, 10, 0, tzinfo=LONDON)
    assert submit(db, concern_input(placement), now=next_year).reference == "LC-2027-000001"


def test_concurrent_submits_get_unique_sequential_references(db: Engine) -> None:
    placement = example_placement(db)
    references: list[str] = []
    errors: list[BaseException] = []

    def raise_one() -> None:
        try:
            references.append(submit(db, concern_input(placement)).reference)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=raise_one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(references) == [f"LC-2026-{n:06d}" for n in range(1, 9)]


def test_a_confidential_concern_never_reaches_contacts_with_the_learners_identity(
    db: Engine,
) -> None:
    raw = concern_input(example_placement(db), confidentiality="confidential")
    submitted = submit(db, raw)
    for message in outbox(db, submitted.reference):
        if message.recipient_role == "learner":
            assert message.recipient_address == "priya.testlearner@example.nhs.uk"
            continue
        for part in (message.subject, message.body_text, message.body_html or ""):
            assert "Priya" not in part and "Testlearner" not in part
            assert "priya.testlearner" not in part.lower()


def test_a_confidential_learners_name_and_address_are_taken_out_of_what_they_wrote(
    db: Engine,
) -> None:
    # Learners introduce themselves and sign off on a form too; a confidential concern must not
    # hand their name to the supervisor through their own words.
    raw = concern_input(
        example_placement(db),
        confidentiality="confidential",
        summary="Priya Testlearner: teaching keeps being cancelled",
        description=(
            "I'm Priya, the FY1 on nights. Teaching was cancelled again.\n"
            "Write to priya.testlearner@example.nhs.uk.\nThanks, P. TESTLEARNER"
        ),
    )
    submitted = submit(db, raw)

    with transaction(db) as session:
        concern = repositories.concern_by_reference(session, submitted.reference)
        assert concern is not None
        assert concern.summary == "[name removed]: teaching keeps being cancelled"
        assert concern.description == (
            "I'm [name removed], the FY1 on nights. Teaching was cancelled again.\n"
            "Write to [name removed].\nThanks, P. [name removed]"
        )
        events = repositories.events_of(session, concern.id or 0)
        [routed] = [event for event in events if event.kind == "routed"]
        assert any("email address were taken out" in r for r in routed.detail["reasons"])
        learner = session.get(Learner, concern.learner_id)
        assert learner is not None and learner.name == "Priya Testlearner"
    for message in outbox(db, submitted.reference):
        if message.recipient_role != "learner":
            assert "priya" not in message.body_text.lower()
            assert "testlearner" not in message.body_text.lower()


def test_a_name_already_on_the_learners_record_is_taken_out_as_well(db: Engine) -> None:
    # The record keeps the first name given for an address (intake.service._learner_row); a
    # later form typed with a shorter name must not leave the recorded one in the text.
    placement = example_placement(db)
    submit(db, concern_input(placement))
    raw = concern_input(
        placement,
        confidentiality="confidential",
        learner={
            "name": "P T",
            "email": "priya.testlearner@example.nhs.uk",
            "group": "foundation",
        },
        description="Ask Dr Testlearner on the rota, she saw it too.",
    )
    reference = submit(db, raw).reference
    with transaction(db) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None
        assert concern.description == "Ask Dr [name removed] on the rota, she saw it too."


def a_record_named_priya(db: Engine) -> dict[str, str]:
    """An earlier concern from Priya's address: her learner record keeps the name 'Priya'.
    Returns the placement it was raised about."""
    placement = example_placement(db)
    first = concern_input(placement)
    first["learner"] = {**first["learner"], "name": "Priya"}
    submit(db, first)
    return placement


def test_what_a_learner_adds_later_loses_the_name_given_with_the_concern(db: Engine) -> None:
    # The record keeps 'Priya' from an earlier concern; this one was raised as 'Priya Patel',
    # and what she adds to it later (status page, Slack, Teams) must lose 'Patel' as well.
    placement = a_record_named_priya(db)
    raw = concern_input(
        placement,
        confidentiality="confidential",
        learner={
            "name": "Priya Patel",
            "email": "priya.testlearner@example.nhs.uk",
            "group": "foundation",
        },
    )
    reference = submit(db, raw).reference
    with transaction(db) as session:
        concern = repositories.concern_by_reference(session, reference)
        assert concern is not None and concern.learner_name == "Priya Patel"
        learner = session.get(Learner, concern.learner_id)
        assert learner is not None and learner.name == "Priya"
        later = learner_words(session, concern, "It happened again. Patel, FY1 (Priya)")
        assert later == "It happened again. [name removed], FY1 ([name removed])"


def test_contacts_of_a_named_concern_see_the_name_given_with_it(db: Engine) -> None:
    # The record keeps 'Priya' from an earlier concern; this one was raised as 'Priya Patel',
    # and that is who the people handling it are told raised it.
    placement = a_record_named_priya(db)
    second = concern_input(placement)
    second["learner"] = {**second["learner"], "name": "Priya Patel"}
    reference = submit(db, second).reference
    told = [m for m in outbox(db, reference) if m.recipient_role != "learner"]
    assert told and all("Priya Patel" in message.body_text for message in told)


def test_a_name_staff_give_with_a_corrected_address_is_redacted_from_later_words(
    db: Engine,
) -> None:
    # Raised as 'Pri' from a mistyped address; staff correct it to one whose record already
    # says 'Priya' and give her name as 'Priya Patel': 'Patel' must not reach contacts later.
    placement = a_record_named_priya(db)
    raw = concern_input(
        placement,
        confidentiality="confidential",
        learner={"name": "Pri", "email": "pri.typo@example.nhs.uk", "group": "foundation"},
    )
    reference = submit(db, raw).reference
    with transaction(db) as session:
        found = repositories.concern_by_reference(session, reference)
        assert found is not None
        concern = repositories.lock_concern(session, found.id or 0)
        assert concern is not None
        assert change_learner_email(
            session=session,
            concern=concern,
            email="priya.testlearner@example.nhs.uk",
            name="Priya Patel",
            by=Actor(kind="staff", channel="web"),
            now=MONDAY_MORNING,
            policy=policy(),
            reason="The learner phoned",
        )
        assert concern.learner_name == "Priya Patel"
        later = learner_words(session, concern, "Patel again")
        assert later == "[name removed] again"


def test_named_and_anonymous_concerns_keep_the_learners_words_as_written(db: Engine) -> None:
    placement = example_placement(db)
    named = concern_input(placement, description="I'm Priya Testlearner, the FY1 on nights.")
    anonymous = concern_input(
        placement,
        confidentiality="anonymous",
        learner={"group": "foundation"},
        description="I'm Priya Testlearner, the FY1 on nights.",
    )
    references = [submit(db, raw).reference for raw in (named, anonymous)]
    with transaction(db) as session:
        for reference in references:
            concern = repositories.concern_by_reference(session, reference)
            assert concern is not None
            assert concern.description == "I'm Priya Testlearner, the FY1 on nights."
            reasons = [
                e.detail["reasons"]
                for e in repositories.events_of(session, concern.id or 0)
                if e.kind == "routed"
            ]
            assert not any("taken out" in r for r in reasons[0])


def test_a_named_concern_tells_contacts_who_raised_it(db: Engine) -> None:
    submitted = submit(db, concern_input(example_placement(db)))
    to_supervisor = [m for m in outbox(db, submitted.reference) if m.recipient_role == "supervisor"]
    assert "Priya Testlearner" in to_supervisor[0].body_text


def test_an_anonymous_concern_stores_no_identity_and_a_hashed_code(db: Engine) -> None:
    raw = concern_input(example_placement(db), confidentiality="anonymous")
    raw["learner"] = {"group": "nursing"}
    submitted = submit(db, raw)

    assert submitted.code is not None
    with transaction(db) as session:
        assert session.exec(select(func.count()).select_from(Learner)).one() == 0
        concern = repositories.concern_by_reference(session, submitted.reference)
        assert concern is not None and concern.learner_id is None
        assert concern.code_hash and submitted.code not in concern.code_hash
        assert PasswordHasher().verify(concern.code_hash, submitted.code)
    assert all(m.recipient_role != "learner" for m in outbox(db, submitted.reference))


def test_a_concern_about_the_supervisor_starts_at_pathway_2_and_no_pathway_1_contact_is_told(
    db: Engine,
) -> None:
    raw = concern_input(example_placement(db), about_pathway1_contact=True)
    submitted = submit(db, raw)

    assert submitted.pathway == 2
    with transaction(db) as session:
        concern = repositories.concern_by_reference(session, submitted.reference)
        assert concern is not None
        roles = {a.role for a, _ in repositories.assignments_of(session, concern.id or 0)}
    assert roles == {"foundation_school", "pathway2_mailbox"}
    told = {m.recipient_role for m in outbox(db, submitted.reference)}
    assert told.isdisjoint({"supervisor", "clinical_tutor", "speak_up_guardian"})


def test_a_high_risk_concern_alerts_the_dean_and_quality_team_at_once_even_at_night(
    db: Engine,
) -> None:
    night = datetime(2026, 11, 21, 23, 30, tzinfo=LONDON)  # a Saturday night
    raw = concern_input(
        example_placement(db),
        summary="Left unsupervised on nights",
        description="I was left unsupervised with no senior cover and a patient was harmed.",
        frequency="often",
        harm="patient_harmed",
    )
    submitted = submit(db, raw, now=night)

    assert submitted.risk_level == "high"
    messages = outbox(db, submitted.reference)
    alerts = {m.recipient_role: m for m in messages if m.kind == "high_risk_alert"}
    assert set(alerts) == {"dean", "quality_team"}
    assert all(m.send_after == night for m in alerts.values())
    routine = [m for m in messages if m.kind == "new_concern"]
    # The supervisor hears on Monday at 09:00, not in the middle of Saturday night.
    assert routine[0].send_after == datetime(2026, 11, 23, 9, 0, tzinfo=LONDON)
    ack = next(m for m in messages if m.kind == "learner_ack")
    assert "incident reporting" in ack.body_text, "the patient-safety signpost"


def test_invalid_input_names_every_bad_field_and_stores_nothing(db: Engine) -> None:
    raw = concern_input(example_placement(db), frequency="sometimes", summary="  ")
    del raw["harm"]
    raw["learner"]["email"] = "not-an-email"
    with pytest.raises(InvalidSubmission) as caught:
        parse_submission(raw)
    assert set(caught.value.errors) == {"frequency", "summary", "harm", "learner.email"}
    with transaction(db) as session:
        assert session.exec(select(func.count()).select_from(Concern)).one() == 0


def test_a_failure_midway_leaves_nothing_half_written(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import escalation.notify

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("renderer down")

    monkeypatch.setattr(escalation.notify, "render_email", broken)
    with pytest.raises(RuntimeError):
        submit(db, concern_input(example_placement(db)))
    with transaction(db) as session:
        for table in (Concern, Event, OutboxMessage, ConcernContact, Learner):
            assert session.exec(select(func.count()).select_from(table)).one() == 0


def test_an_unknown_placement_is_kept_in_the_learners_words_and_routed_to_the_quality_team(
    db: Engine,
) -> None:
    raw = concern_input({"organisation": "St Nowhere Clinic", "department": "Annex"})
    submitted = submit(db, raw)
    with transaction(db) as session:
        concern = repositories.concern_by_reference(session, submitted.reference)
        assert concern is not None
        assert concern.placement_text == "Annex, St Nowhere Clinic"
        roles = {a.role for a, _ in repositories.assignments_of(session, concern.id or 0)}
    assert "quality_team" in roles


def test_other_open_concerns_about_the_department_mark_a_hotspot(db: Engine) -> None:
    placement = example_placement(db)
    first = submit(db, concern_input(placement))
    second = submit(db, concern_input(placement), now=MONDAY_MORNING + timedelta(days=3))
    with transaction(db) as session:
        one = repositories.concern_by_reference(session, first.reference)
        two = repositories.concern_by_reference(session, second.reference)
        assert one is not None and two is not None
        assert not one.hotspot and two.hotspot
        assert two.likelihood == one.likelihood + 1


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("learner", "name"), "Priya\r\nBcc: everyone@example.nhs.uk"),
        (("learner", "email"), "priya@example.nhs.uk\nBcc: x@example.com"),
        (("placement", "organisation"), "Vale\rGeneral"),
        (("summary",), "Teaching\nSubject: injected"),
    ],
)
def test_line_breaks_in_a_one_line_field_are_refused_by_every_channel(
    path: tuple[str, ...], value: str
) -> None:
    raw = concern_input({"organisation": "Vale General Hospitals NHS Trust"})
    target = raw
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(InvalidSubmission) as refused:
        parse_submission(raw)
    assert ".".join(path) in refused.value.errors


@pytest.mark.parametrize("address", ["jöhn@example.nhs.uk", "ﾏﾘｱ@example.ac.uk"])
def test_an_address_our_mail_cannot_be_sent_to_is_refused_not_taken(
    db: Engine, address: str
) -> None:
    """An internationalised local part is a valid address, but our mail goes out as plain
    local@domain (notifications.email.plain_address) and such a row fails at once: taking it
    would leave the learner never hearing back, and their concern closing for their silence."""
    raw = concern_input(example_placement(db))
    raw["learner"]["email"] = address
    with pytest.raises(InvalidSubmission) as caught:
        parse_submission(raw)
    assert set(caught.value.errors) == {"learner.email"}
