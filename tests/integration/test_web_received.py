"""The web form takes a submission (committed under its reference before the confirmation) and
raises it just after: once, on both databases, retried when it fails, first when looked up."""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from cryptography.exceptions import InvalidTag
from pydantic import TypeAdapter
from sqlalchemy import event, func, inspect
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from app.bootstrap import build
from app.metrics import Metrics
from app.serve import _ticks
from app.settings import ChatSettings, Settings
from intake.mailbox import Mailbox
from intake.received import (
    Receipt,
    SameForm,
    raise_if_waiting,
    raise_waiting,
    receive_concern,
)
from intake.service import raise_concern, reference_for, submit_concern
from intake.submission import Channel, NewConcern, parse_submission
from notifications.senders import MaildirSender
from storage import migrate, repositories, submissions
from storage.db import create_db_engine, transaction
from storage.tables import Concern, Department, Event, OutboxMessage, ReceivedSubmission, SentForm
from tests.integration.helpers import (
    MONDAY_MORNING,
    concern_input,
    example_placement,
    load_example_directory,
    policy,
)
from tests.integration.test_web_form import REFERENCE, answers, confirmed, drawn_form
from tests.integration.webclient import WebClient, make_app, web_client

CODE = re.compile(r'id="code">([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})<')


def a_concern(engine: Engine, **changes: object) -> NewConcern:
    return parse_submission(concern_input(example_placement(engine), **changes))


def receive(engine: Engine, concern: NewConcern) -> Receipt:
    """Take a submission from the web form, as the form does on Monday morning."""
    return receive_concern(
        engine=engine, concern=concern, channel=Channel.WEB, now=MONDAY_MORNING, policy=policy()
    )


def store(engine: Engine, *, submission: str = "{}", now: datetime = MONDAY_MORNING) -> str:
    """Store a submission directly, as the form's storing step does."""
    return submissions.store_submission(
        engine,
        submission=submission,
        channel="web",
        code_hash=None,
        year=2026,
        reference_for=reference_for,
        now=now,
    ).reference


def all_at_once(work: Callable[[], None], *, threads: int) -> list[BaseException]:
    """Run `work` in several threads at once; what any of them raised."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as error:
            failures.append(error)

    started = [threading.Thread(target=run) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join(timeout=60)
    return failures


def waiting(engine: Engine) -> list[ReceivedSubmission]:
    with transaction(engine) as session:
        return list(session.exec(select(ReceivedSubmission).order_by(col(ReceivedSubmission.id))))


def concerns(engine: Engine) -> list[Concern]:
    with transaction(engine) as session:
        return list(session.exec(select(Concern).order_by(col(Concern.id))))


def test_a_submission_is_stored_under_its_reference_then_raised_once(engine: Engine) -> None:
    load_example_directory(engine)
    receipt = receive(engine, a_concern(engine))
    assert receipt.reference == "LC-2026-000001"
    assert receipt.code is None and receipt.pathway == 1
    [stored] = waiting(engine)
    assert stored.reference == receipt.reference and stored.attempts == 0
    assert "Our weekly teaching has been cancelled" in stored.submission
    assert concerns(engine) == []

    later = MONDAY_MORNING + timedelta(seconds=3)
    report = raise_waiting(engine=engine, policy=policy(), now=later, limit=20)
    assert (report.raised, report.failed) == (1, 0)
    [concern] = concerns(engine)
    assert concern.reference == receipt.reference and concern.channel == "web"
    # Its clocks started when the learner sent it, not when it was raised.
    assert concern.created_at == MONDAY_MORNING
    # Raised whole: its trail and its messages, and the learner's words now in one place only.
    with transaction(engine) as session:
        kinds = [e.kind for e in session.exec(select(Event).where(Event.concern_id == concern.id))]
        messages = session.exec(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.concern_id == concern.id)
        ).one()
    assert kinds[:3] == ["received", "triaged", "routed"]
    assert messages >= 2  # the contact and the learner at least
    assert waiting(engine) == []

    again = raise_waiting(engine=engine, policy=policy(), now=later, limit=20)
    assert (again.raised, again.failed) == (0, 0)
    assert len(concerns(engine)) == 1


def test_stored_and_directly_raised_concerns_share_one_numbering(engine: Engine) -> None:
    load_example_directory(engine)
    direct = submit_concern(
        engine=engine,
        concern=a_concern(engine),
        channel=Channel.CLI,
        now=MONDAY_MORNING,
        policy=policy(),
    )
    receipt = receive(engine, a_concern(engine))
    after = submit_concern(
        engine=engine,
        concern=a_concern(engine),
        channel=Channel.CLI,
        now=MONDAY_MORNING,
        policy=policy(),
    )
    assert [direct.reference, receipt.reference, after.reference] == [
        "LC-2026-000001",
        "LC-2026-000002",
        "LC-2026-000003",
    ]
    raise_waiting(engine=engine, policy=policy(), now=MONDAY_MORNING, limit=20)
    assert sorted(c.reference for c in concerns(engine)) == [
        "LC-2026-000001",
        "LC-2026-000002",
        "LC-2026-000003",
    ]


def test_a_submission_that_fails_while_being_stored_leaves_nothing_behind(engine: Engine) -> None:
    load_example_directory(engine)

    def broken(year: int, number: int) -> str:
        raise RuntimeError("no reference")

    with pytest.raises(RuntimeError):
        submissions.store_submission(
            engine,
            submission="{}",
            channel="web",
            code_hash=None,
            year=2026,
            reference_for=broken,
            now=MONDAY_MORNING,
        )
    assert waiting(engine) == []
    # The number taken was given back with the rest, and the connection is usable again.
    assert receive(engine, a_concern(engine)).reference == "LC-2026-000001"
    [stored] = waiting(engine)
    assert stored.received_at == MONDAY_MORNING


def test_submissions_stored_at_once_from_many_threads_each_get_their_own_number(
    engine: Engine,
) -> None:
    load_example_directory(engine)
    concern = a_concern(engine)
    references: list[str] = []

    def learner() -> None:
        for _ in range(10):
            references.append(receive(engine, concern).reference)

    assert all_at_once(learner, threads=8) == []
    assert sorted(references) == [f"LC-2026-{number:06d}" for number in range(1, 81)]
    assert sorted(row.reference for row in waiting(engine)) == sorted(references)


def test_the_driver_writes_a_moment_as_sqlalchemy_does(sqlite_engine: Engine) -> None:
    """SQLite compares moments as text: one written through the driver must read the same as one
    written through the ORM, or a due query would misorder them."""
    engine = sqlite_engine
    load_example_directory(engine)
    moment = MONDAY_MORNING.replace(microsecond=0)  # the case a plain str() would write short
    store(
        engine, submission=TypeAdapter(NewConcern).dump_json(a_concern(engine)).decode(), now=moment
    )
    raise_waiting(engine=engine, policy=policy(), now=moment, limit=20)
    with engine.connect() as connection:
        by_orm = connection.exec_driver_sql("SELECT created_at FROM concerns").scalar_one()
    store(engine, now=moment)
    with engine.connect() as connection:
        by_driver = connection.exec_driver_sql(
            "SELECT received_at FROM received_submissions"
        ).scalar_one()
    assert by_driver == by_orm


def test_writers_in_one_process_take_turns_without_sqlite_waiting(tmp_path: Path) -> None:
    """With SQLite's busy timeout at 0 a writer finding the database locked fails at once: every
    store succeeding shows the stores took turns on the process's lock instead."""
    engine = create_db_engine(f"sqlite:///{tmp_path / 'turns.db'}")
    migrate.upgrade(engine)

    @event.listens_for(engine, "connect")
    def no_waiting(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=0")

    def learner() -> None:
        for _ in range(20):
            store(engine)

    assert all_at_once(learner, threads=6) == []
    assert len(waiting(engine)) == 120
    engine.dispose()


def test_an_anonymous_submission_keeps_only_the_hash_of_its_code(sqlite_engine: Engine) -> None:
    engine = sqlite_engine
    load_example_directory(engine)
    anonymous = concern_input(example_placement(engine), confidentiality="anonymous")
    del anonymous["learner"]
    receipt = receive(engine, parse_submission(anonymous))
    assert receipt.code is not None
    [stored] = waiting(engine)
    assert stored.code_hash is not None and stored.code_hash.startswith("$argon2")
    assert receipt.code not in stored.submission and receipt.code not in stored.code_hash
    raise_waiting(engine=engine, policy=policy(), now=MONDAY_MORNING, limit=20)
    [concern] = concerns(engine)
    assert concern.code_hash == stored.code_hash and concern.learner_id is None


def test_a_submission_that_cannot_be_raised_waits_for_its_retry(sqlite_engine: Engine) -> None:
    engine = sqlite_engine  # no directory yet: nobody could be told, so raising fails
    receipt = receive(
        engine,
        parse_submission(concern_input({"organisation": "Somewhere", "department": "Ward 1"})),
    )
    report = raise_waiting(engine=engine, policy=policy(), now=MONDAY_MORNING, limit=20)
    assert (report.raised, report.failed) == (0, 1)
    [stored] = waiting(engine)
    assert stored.reference == receipt.reference and stored.attempts == 1
    # The error's type only: its text could quote the learner, and staff see this column.
    assert stored.last_error == "NoDirectory"
    assert stored.next_attempt_at == MONDAY_MORNING + timedelta(seconds=30)
    assert concerns(engine) == []

    load_example_directory(engine)
    early = raise_waiting(
        engine=engine, policy=policy(), now=MONDAY_MORNING + timedelta(seconds=10), limit=20
    )
    assert (early.raised, early.failed) == (0, 0)
    due = raise_waiting(
        engine=engine, policy=policy(), now=MONDAY_MORNING + timedelta(seconds=30), limit=20
    )
    assert (due.raised, due.failed) == (1, 0)
    [concern] = concerns(engine)
    assert concern.reference == receipt.reference and concern.created_at == MONDAY_MORNING
    assert waiting(engine) == []


def test_two_instances_raise_each_submission_once(postgres_url: str) -> None:
    engines = [create_db_engine(postgres_url) for _ in range(2)]
    migrate.upgrade(engines[0])
    load_example_directory(engines[0])
    references = {receive(engines[0], a_concern(engines[0])).reference for _ in range(30)}
    raised = [0, 0]
    start = threading.Barrier(2)

    def instance(index: int) -> None:
        start.wait()
        while True:
            report = raise_waiting(
                engine=engines[index], policy=policy(), now=MONDAY_MORNING, limit=4
            )
            raised[index] += report.raised
            assert report.failed == 0
            if not waiting(engines[index]):
                return

    workers = [threading.Thread(target=instance, args=(index,)) for index in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert sum(raised) == 30
    assert sorted(c.reference for c in concerns(engines[0])) == sorted(references)
    for db in engines:
        db.dispose()


def test_a_look_up_waits_for_an_instance_already_raising_it(postgres_url: str) -> None:
    engines = [create_db_engine(postgres_url) for _ in range(2)]
    migrate.upgrade(engines[0])
    load_example_directory(engines[0])
    concern = a_concern(engines[0])
    reference = receive(engines[0], concern).reference
    holding = threading.Event()

    def other_instance() -> None:
        # Raising it, and slow to commit.
        with transaction(engines[1]) as session:
            [submission_id] = submissions.waiting_ids(session, now=MONDAY_MORNING, limit=5)
            stored = submissions.claim(session, submission_id)
            assert stored is not None
            raise_concern(
                session=session,
                concern=concern,
                channel=Channel.WEB,
                now=stored.received_at,
                policy=policy(),
                numbered=(stored.year, stored.number),
            )
            session.delete(stored)
            session.flush()
            holding.set()
            time.sleep(0.5)

    worker = threading.Thread(target=other_instance)
    worker.start()
    assert holding.wait(30)
    # Not raised by this call: the other instance did.
    assert not raise_if_waiting(
        engine=engines[0], policy=policy(), reference=reference, now=MONDAY_MORNING
    )
    # The look-up came back only once the other instance had committed (it holds its transaction
    # open for half a second): the concern is there to be found.
    assert [c.reference for c in concerns(engines[0])] == [reference]
    worker.join(30)
    for db in engines:
        db.dispose()


def test_a_migration_down_refuses_while_submissions_wait(sqlite_engine: Engine) -> None:
    engine = sqlite_engine
    load_example_directory(engine)
    receive(engine, a_concern(engine))
    config = migrate.alembic_config(engine)
    with pytest.raises(RuntimeError, match="1 web submission"):
        command.downgrade(config, "0007")
    assert len(waiting(engine)) == 1
    # As the message says: start the service (which upgrades the schema again) until they are
    # raised, then go down.
    command.upgrade(config, "head")
    raise_waiting(engine=engine, policy=policy(), now=MONDAY_MORNING, limit=20)
    assert waiting(engine) == []
    command.downgrade(config, "0007")
    assert "received_submissions" not in inspect(engine).get_table_names()
    command.upgrade(config, "head")
    assert migrate.is_current(engine)


# --- the same form sent twice, on any instance -------------------------------------------------


def same_form(name: str = "one form", *, since: datetime | None = None) -> SameForm:
    """A form as intake.web.form names it (there, from its one-time key, CSRF token and answers)."""
    return SameForm(
        key_hash=hashlib.sha256(name.encode()).hexdigest(),
        seal_key=hashlib.sha256(f"seal {name}".encode()).digest(),
        remembered_since=since or MONDAY_MORNING - timedelta(minutes=2),
    )


def an_anonymous_concern(engine: Engine) -> NewConcern:
    anonymous = concern_input(example_placement(engine), confidentiality="anonymous")
    del anonymous["learner"]
    return parse_submission(anonymous)


def receive_form(
    engine: Engine, concern: NewConcern, form: SameForm, *, now: datetime = MONDAY_MORNING
) -> Receipt:
    return receive_concern(
        engine=engine,
        concern=concern,
        channel=Channel.WEB,
        now=now,
        policy=policy(),
        same_form=form,
    )


def sent_forms(engine: Engine) -> list[SentForm]:
    with transaction(engine) as session:
        return list(session.exec(select(SentForm).order_by(col(SentForm.sent_at))))


def test_the_same_form_received_twice_is_stored_once_and_its_code_kept_sealed(
    engine: Engine,
) -> None:
    load_example_directory(engine)
    concern = an_anonymous_concern(engine)
    first = receive_form(engine, concern, same_form())
    again = receive_form(engine, concern, same_form())
    assert first.code is not None and not first.sent_before
    assert again == Receipt(first.reference, first.code, first.pathway, sent_before=True)
    assert [row.reference for row in waiting(engine)] == [first.reference]
    # The number the second sending took was given back with its transaction.
    assert receive(engine, a_concern(engine)).reference == "LC-2026-000002"

    [remembered] = sent_forms(engine)
    assert remembered.reference == first.reference and remembered.sent_at == MONDAY_MORNING
    # The code is there sealed, not as itself, and only the form's own key opens it.
    assert remembered.sealed_code is not None
    assert first.code.encode() not in remembered.sealed_code
    assert same_form().unseal(remembered.sealed_code) == first.code
    stranger = SameForm(remembered.key_hash, bytes(32), MONDAY_MORNING)
    with pytest.raises(InvalidTag):
        stranger.unseal(remembered.sealed_code)


def test_a_named_form_received_twice_is_stored_once_with_no_code(engine: Engine) -> None:
    load_example_directory(engine)
    concern = a_concern(engine)
    first = receive_form(engine, concern, same_form())
    again = receive_form(engine, concern, same_form())
    assert again == Receipt(first.reference, None, first.pathway, sent_before=True)
    assert len(waiting(engine)) == 1
    assert [row.sealed_code for row in sent_forms(engine)] == [None]


def test_a_form_is_remembered_up_to_the_end_of_its_window(engine: Engine) -> None:
    load_example_directory(engine)
    concern = a_concern(engine)
    first = receive_form(engine, concern, same_form())
    at_the_end = MONDAY_MORNING + timedelta(minutes=2)
    again = receive_form(engine, concern, same_form(since=MONDAY_MORNING), now=at_the_end)
    assert again.sent_before and again.reference == first.reference
    assert len(waiting(engine)) == 1


def test_a_form_whose_storing_fails_is_not_remembered(engine: Engine) -> None:
    """Remembered only with the submission: a sending that fails to be stored leaves no
    reference behind for a second sending to be shown."""
    load_example_directory(engine)
    concern = a_concern(engine)
    with transaction(engine) as session:  # the reference the next sending would take
        session.add(
            ReceivedSubmission(
                reference="LC-2026-000001",
                year=2026,
                number=1,
                channel="web",
                received_at=MONDAY_MORNING,
                submission="{}",
            )
        )
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        receive_form(engine, concern, same_form())
    assert sent_forms(engine) == []
    with transaction(engine) as session:
        session.delete(session.exec(select(ReceivedSubmission)).one())
    again = receive_form(engine, concern, same_form())
    assert not again.sent_before and again.reference == "LC-2026-000001"
    assert [row.reference for row in sent_forms(engine)] == ["LC-2026-000001"]


def test_a_form_no_longer_remembered_is_received_as_new(engine: Engine) -> None:
    load_example_directory(engine)
    concern = a_concern(engine)
    first = receive_form(engine, concern, same_form())
    later = MONDAY_MORNING + timedelta(minutes=3)
    again = receive_form(engine, concern, same_form(since=later - timedelta(minutes=2)), now=later)
    assert not again.sent_before and again.reference != first.reference
    assert len(waiting(engine)) == 2
    # Remembered from the later sending now.
    [remembered] = sent_forms(engine)
    assert (remembered.reference, remembered.sent_at) == (again.reference, later)
    # Other forms are other forms.
    other = receive_form(engine, concern, same_form("another form"))
    assert not other.sent_before and len(waiting(engine)) == 3


def test_forms_sent_lately_are_forgotten_after_the_window(engine: Engine) -> None:
    load_example_directory(engine)
    concern = a_concern(engine)
    receive_form(engine, concern, same_form("early"))
    receive_form(engine, concern, same_form("late"), now=MONDAY_MORNING + timedelta(seconds=90))
    cutoff = MONDAY_MORNING + timedelta(seconds=60)
    assert submissions.forget_sent_forms(engine, sent_before=cutoff) == 1
    assert [row.key_hash for row in sent_forms(engine)] == [same_form("late").key_hash]
    # Forgetting is all it does: both submissions still wait to be raised.
    assert len(waiting(engine)) == 2


def test_instances_receiving_the_same_form_at_once_store_it_once(postgres_url: str) -> None:
    """Eight sendings of one form across two instances, all at once: one stored, and every
    sending answered with its reference and the anonymous learner's code. (Storings in one year
    take turns on the year's reference counter, so a later sending finds the first committed;
    this does not tell that apart from waiting on the key itself.)"""
    engines = [create_db_engine(postgres_url) for _ in range(2)]
    migrate.upgrade(engines[0])
    load_example_directory(engines[0])
    concern = an_anonymous_concern(engines[0])
    receipts: list[Receipt] = []
    start = threading.Barrier(8)
    turns = iter(range(8))

    def sending() -> None:
        engine = engines[next(turns) % 2]
        start.wait()
        receipts.append(receive_form(engine, concern, same_form()))

    assert all_at_once(sending, threads=8) == []
    [first] = [receipt for receipt in receipts if not receipt.sent_before]
    assert first.code is not None
    assert {(r.reference, r.code) for r in receipts} == {(first.reference, first.code)}
    assert len(receipts) == 8
    assert [row.reference for row in waiting(engines[0])] == [first.reference]
    for db in engines:
        db.dispose()


def test_the_services_tick_forgets_forms_sent_over_two_minutes_ago(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    with transaction(sqlite_engine) as session:
        for name, age in (("old", 150), ("recent", 60)):
            session.add(
                SentForm(
                    key_hash=same_form(name).key_hash,
                    reference=f"LC-2026-{age:06d}",
                    sealed_code=b"sealed",
                    sent_at=now - timedelta(seconds=age),
                )
            )
    settings = Settings(_env_file=None, outbox_dir=tmp_path / "outbox")  # type: ignore[call-arg]
    product = build(settings, engine=sqlite_engine, chat=ChatSettings(_env_file=None))  # type: ignore[call-arg]

    async def sent_forms_tick() -> None:
        mailbox = Mailbox(address=settings.mailbox_address, store=lambda batch: None)
        ticks = _ticks(
            product,
            sender=MaildirSender(tmp_path / "outbox"),
            metrics=Metrics(),
            mailbox=mailbox,
        )
        await next(tick for tick in ticks if tick.name == "sent_forms").run()

    asyncio.run(sent_forms_tick())
    assert [row.key_hash for row in sent_forms(sqlite_engine)] == [same_form("recent").key_hash]


# --- through the form, as under `concerns serve` ------------------------------------------------


@pytest.fixture
def woken() -> list[int]:
    return []


@pytest.fixture
def client(sqlite_engine: Engine, woken: list[int]) -> Iterator[WebClient]:
    load_example_directory(sqlite_engine)
    app = make_app(sqlite_engine, clock=lambda: MONDAY_MORNING, on_received=lambda: woken.append(1))
    with web_client(app) as client:
        yield client


def send(client: WebClient, **changes: str) -> str:
    token = client.csrf("/concerns/new")
    answer = client.post("/concerns/new", data={"csrf_token": token, **answers(**changes)})
    assert answer.status_code == 303, answer.text
    page = client.get(answer.headers["location"]).text
    found = REFERENCE.search(page)
    assert found, page
    return page


def test_the_form_answers_once_stored_and_wakes_what_raises_it(
    client: WebClient, sqlite_engine: Engine, woken: list[int]
) -> None:
    page = send(client)
    reference = REFERENCE.search(page)
    assert reference and reference.group(1) == "LC-2026-000001"
    assert woken == [1]
    assert [row.reference for row in waiting(sqlite_engine)] == ["LC-2026-000001"]
    assert concerns(sqlite_engine) == []
    metrics = client.get("/metrics").text
    assert "concerns_web_submissions_waiting 1.0" in metrics

    raise_waiting(engine=sqlite_engine, policy=policy(), now=MONDAY_MORNING, limit=20)
    [concern] = concerns(sqlite_engine)
    assert concern.reference == "LC-2026-000001" and concern.channel == "web"
    assert "concerns_web_submissions_waiting 0.0" in client.get("/metrics").text


def test_a_status_look_up_raises_a_waiting_concern_first(
    client: WebClient, sqlite_engine: Engine
) -> None:
    page = send(client, confidentiality="anonymous", name="", email="")
    reference, code = REFERENCE.search(page), CODE.search(page)
    assert reference and code
    assert concerns(sqlite_engine) == []

    token = client.csrf("/concerns/status")
    answer = client.post(
        "/concerns/status",
        data={"csrf_token": token, "reference": reference.group(1), "code": code.group(1)},
    )
    assert answer.status_code == 303
    status = client.get("/concerns/status").text
    assert reference.group(1) in status and "We received your concern" in status
    [concern] = concerns(sqlite_engine)
    assert concern.reference == reference.group(1) and waiting(sqlite_engine) == []
    # Counted as raised from the web, as the intake tick's raising is; once.
    client.post(
        "/concerns/status",
        data={"csrf_token": token, "reference": reference.group(1), "code": code.group(1)},
    )
    assert 'concerns_raised_total{channel="web"} 1.0' in client.get("/metrics").text


def test_a_wrong_code_for_a_waiting_concern_gets_the_usual_answer(
    client: WebClient, sqlite_engine: Engine
) -> None:
    page = send(client, confidentiality="anonymous", name="", email="")
    reference = REFERENCE.search(page)
    assert reference
    token = client.csrf("/concerns/status")
    answer = client.post(
        "/concerns/status",
        data={"csrf_token": token, "reference": reference.group(1), "code": "AAAA-BBBB-CCCC"},
    )
    assert answer.status_code == 400
    assert "The reference or code is not right" in answer.text


def test_a_place_added_after_the_form_was_read_is_accepted_at_once(
    client: WebClient, sqlite_engine: Engine
) -> None:
    client.get("/concerns/new")  # the form's places are now kept
    with transaction(sqlite_engine) as session:
        organisation = repositories.find_organisation(session, "Vale General Hospitals NHS Trust")
        assert organisation is not None and organisation.id is not None
        session.add(Department(organisation_id=organisation.id, key="new-ward", name="New Ward"))
    send(client, department="vale-general/new-ward")
    assert raise_if_waiting(
        engine=sqlite_engine, policy=policy(), reference="LC-2026-000001", now=MONDAY_MORNING
    )
    [concern] = concerns(sqlite_engine)
    assert concern.department_id is not None and concern.placement_text is None


@pytest.mark.parametrize("raising", ["in the background", "before answering"])
def test_the_same_form_sent_to_two_instances_raises_one_concern(
    postgres_url: str, raising: str
) -> None:
    """A second press of Send that a load balancer hands to another instance: answered with the
    first sending's reference and code (which that instance never held), and stored once,
    whether the service raises concerns in the background or before it answers."""
    engines = [create_db_engine(postgres_url) for _ in range(2)]
    migrate.upgrade(engines[0])
    load_example_directory(engines[0])
    woken: list[list[int]] = [[], []]
    apps = [
        make_app(
            engine,
            clock=lambda: MONDAY_MORNING,
            on_received=partial(list.append, told, 1) if raising == "in the background" else None,
        )
        for engine, told in zip(engines, woken, strict=True)
    ]
    anonymous = answers(confidentiality="anonymous", name="", email="")
    with web_client(apps[0]) as first, web_client(apps[1]) as second:
        form = {**drawn_form(first), **anonymous}
        second._client.cookies.update(first._client.cookies)  # the same browser
        page_first = confirmed(first, first.post("/concerns/new", data=form))
        page_second = confirmed(second, second.post("/concerns/new", data=form))
        # A new form from the same browser on the other instance is a new concern.
        another = {**drawn_form(second), **anonymous}
        page_another = confirmed(second, second.post("/concerns/new", data=another))
    assert REFERENCE.findall(page_first) == REFERENCE.findall(page_second)
    assert CODE.findall(page_first) == CODE.findall(page_second) != []
    assert REFERENCE.findall(page_another) != REFERENCE.findall(page_first)
    assert CODE.findall(page_another) != CODE.findall(page_first)
    if raising == "in the background":
        assert len(waiting(engines[0])) == 2
        # Each instance woke its raising for the form it stored, and only for that.
        assert woken == [[1], [1]]
    else:
        assert waiting(engines[0]) == []
        assert sorted(c.reference for c in concerns(engines[0])) == sorted(
            {*REFERENCE.findall(page_first), *REFERENCE.findall(page_another)}
        )
    for db in engines:
        db.dispose()
