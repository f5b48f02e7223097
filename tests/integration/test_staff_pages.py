"""The staff pages: "My concerns", a concern in full with its action forms, and the audit trail.

A concern the person may not see is 404 on every route; an action they may not take is refused
and changes nothing; a confidential learner's identity reaches the dean's and quality team's
pages only, and each view of it is in the audit trail; learner text is always escaped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from escalation.actions import add_learner_information, retriage
from intake.service import learner_words, submit_concern
from intake.submission import Channel, parse_submission
from storage import repositories
from storage import staff as accounts
from storage.db import transaction
from storage.tables import Concern, Learner, OutboxMessage, id_of
from tests.integration.helpers import MONDAY_MORNING, concern_input, example_placement, policy
from tests.integration.staff_world import LEARNER_EMAIL, LEARNER_NAME, StaffWorld, staff_world
from tests.integration.webclient import WebClient

FEEDBACK = "Senior cover is now on the rota for every night shift."


@pytest.fixture
def world(sqlite_engine: Engine) -> Iterator[StaffWorld]:
    yield from staff_world(sqlite_engine)


def page_of(reference: str) -> str:
    return f"/staff/concerns/{reference}"


def post(browser: WebClient, reference: str, action: str, **data: Any) -> httpx.Response:
    token = browser.csrf(page_of(reference))
    return browser.post(f"{page_of(reference)}/{action}", data={"csrf_token": token, **data})


def concern(world: StaffWorld, name: str) -> Concern:
    with transaction(world.engine) as session:
        found = repositories.concern_by_reference(session, world.concerns[name])
        assert found is not None
        session.expunge(found)
        return found


def event_kinds(world: StaffWorld, name: str) -> list[str]:
    with transaction(world.engine) as session:
        return [
            event.kind for event in repositories.events_of(session, id_of(concern(world, name)))
        ]


def outbox_kinds(world: StaffWorld, name: str) -> list[str]:
    with transaction(world.engine) as session:
        return [
            message.kind for message in repositories.outbox_of(session, id_of(concern(world, name)))
        ]


def identity_views(world: StaffWorld, name: str) -> int:
    with transaction(world.engine) as session:
        return sum(
            record.kind == "identity_viewed"
            for record in accounts.access_records_of(session, world.concerns[name])
        )


def test_the_supervisor_sees_their_concern_acknowledges_it_and_gives_feedback(
    world: StaffWorld,
) -> None:
    browser = world.browser("supervisor")
    reference = world.concerns["named"]
    home = browser.get("/staff")
    assert home.status_code == 200
    assert f'href="/staff/concerns/{reference}"' in home.text
    assert "Teaching cancelled again" in home.text
    # Deadlines in the configured timezone, as people read them.
    assert "Tuesday 24 November 2026 at 10:00" in home.text
    # Told about it at pathway 1, the supervisor still sees it at pathway 3, but acts no more.
    assert world.concerns["at_dean"] in home.text
    later = browser.get(page_of(world.concerns["at_dean"]))
    assert "There is nothing for you to do on this concern now." in later.text

    shown = browser.get(page_of(reference))
    assert shown.status_code == 200
    assert "Teaching cancelled again" in shown.text
    assert 'action="/staff/concerns/' + reference + '/acknowledge"' in shown.text
    # Who is on it, and as what: the level's secondary contact is told only if the
    # acknowledgement is late.
    contacts = re.search(r'<table class="nhsuk-table" id="contacts">.*?</table>', shown.text, re.S)
    assert contacts is not None
    parts = re.findall(r'<td class="nhsuk-table__cell">([^<]*)</td>\s*</tr>', contacts.group())
    assert "acts on it" in parts
    assert "told if the acknowledgement is late; may act on it" in parts
    # At pathway 3 the quality team is told in copy at once: it is not waiting to be told.
    at_dean = world.browser("dean").get(page_of(world.concerns["at_dean"])).text
    assert "told for information; acts on it if the acknowledgement is late" in at_dean
    # The kind of learner in words, not its code.
    assert re.search(r"Kind of learner\s*</dt>\s*<dd[^>]*>\s*Foundation doctor", shown.text)
    assert "/close" not in shown.text and "/override-triage" not in shown.text

    done = post(browser, reference, "acknowledge")
    assert done.status_code == 303 and done.headers["location"] == page_of(reference)
    after = browser.get(page_of(reference))
    assert f"You acknowledged {reference}." in after.text
    assert "Acknowledged at pathway 1" in after.text
    assert "/acknowledge" not in after.text  # done: no form for it any more

    done = post(browser, reference, "feedback", text=FEEDBACK)
    assert done.status_code == 303
    after = browser.get(page_of(reference))
    assert "Feedback given to the learner at pathway 1" in after.text
    assert FEEDBACK in after.text
    assert event_kinds(world, "named")[-2:] == ["acknowledged", "feedback_given"]
    assert "learner_feedback" in outbox_kinds(world, "named")
    # The banner is shown once.
    assert "was recorded" not in browser.get(page_of(reference)).text


def test_feedback_sent_after_the_session_ended_is_shown_back_to_copy(world: StaffWorld) -> None:
    """Called away mid-feedback for longer than the idle limit: nothing is recorded, and what
    the supervisor wrote is on the page to copy before signing in again, not lost in a redirect
    to sign in. A form sent from another site's page only ever gets that redirect."""
    browser = world.browser("supervisor")
    reference = world.concerns["named"]
    token = browser.csrf(page_of(reference))
    before = event_kinds(world, "named")
    world.clock.now += timedelta(hours=2)
    written = {"csrf_token": token, "text": "Cover is on the rota <b>now</b>."}
    ours = browser.post(
        f"{page_of(reference)}/feedback", data=written, headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert ours.status_code == 403
    assert "You were signed out, so nothing was saved" in ours.text
    assert "Cover is on the rota &lt;b&gt;now&lt;/b&gt;." in ours.text
    assert f'href="/staff/sign-in?next=/staff/concerns/{reference}"' in ours.text
    assert ours.headers["cache-control"] == "no-store"
    for browser_says in ({"Sec-Fetch-Site": "cross-site"}, {}):
        elsewhere = browser.post(
            f"{page_of(reference)}/feedback", data=written, headers=browser_says
        )
        assert elsewhere.status_code == 303
        assert elsewhere.headers["location"] == "/staff/sign-in?next=/staff"
    assert event_kinds(world, "named") == before

    # The form correcting a learner's address: what was typed in each of its boxes comes back.
    correcting = browser.post(
        f"{page_of(reference)}/correct-learner-email",
        data={"csrf_token": token, "email": "priya.new@example.nhs.uk", "name": "", "text": "Rang"},
        headers={"Sec-Fetch-Site": "same-origin"},
    )
    assert correcting.status_code == 403
    assert "correct email address: priya.new@example.nhs.uk\n\nRang</textarea>" in correcting.text


def test_a_refused_action_shows_the_error_summary_and_changes_nothing(world: StaffWorld) -> None:
    browser = world.browser("supervisor")
    reference = world.concerns["named"]
    before = event_kinds(world, "named")

    # Not the supervisor's to do at all: the error summary points at the actions.
    refused = post(browser, reference, "close", text="Sorted")
    assert refused.status_code == 409
    assert "There is a problem" in refused.text
    assert refused.text.count(f"You cannot close {reference}") >= 1
    assert "<title>Error: " in refused.text

    # Theirs, but not as written: the field is named and their words are kept.
    refused = post(browser, reference, "feedback", text="   ")
    assert refused.status_code == 400
    assert 'href="#feedback-text"' in refused.text
    assert "Write the feedback for the learner" in refused.text

    long_text = "Longer than the engine takes. " * 700
    refused = post(browser, reference, "feedback", text=long_text)
    assert refused.status_code == 400
    assert "Longer than the engine takes." in refused.text

    # Without the CSRF token: 403, nothing happens.
    forged = browser.post(f"{page_of(reference)}/acknowledge", data={"csrf_token": "forged"})
    assert forged.status_code == 403
    missing = browser.post(f"{page_of(reference)}/acknowledge", data={})
    assert missing.status_code == 403
    assert event_kinds(world, "named") == before
    assert concern(world, "named").acknowledged_at is None


def test_a_concern_someone_may_not_see_is_404_everywhere(world: StaffWorld) -> None:
    browser = world.browser("other_supervisor")
    reference = world.concerns["named"]
    assert reference not in browser.get("/staff").text
    assert "You have no open concerns" in browser.get("/staff").text
    assert browser.get(page_of(reference)).status_code == 404
    assert browser.get(page_of(reference) + "/audit").status_code == 404
    token = browser.csrf("/staff")
    for action in ("acknowledge", "feedback", "close", "no-such-action"):
        answer = browser.post(
            f"{page_of(reference)}/{action}", data={"csrf_token": token, "text": "Mine now"}
        )
        assert answer.status_code == 404, action
    assert browser.get(page_of("LC-2026-999999")).status_code == 404
    assert "acknowledged" not in event_kinds(world, "named")
    # Not signed in: off to sign in, and nothing about the concern.
    anonymous = world.browser()
    answer = anonymous.get(page_of(reference))
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/staff/sign-in")


def test_a_confidential_identity_reaches_the_dean_only_and_each_view_is_audited(
    world: StaffWorld,
) -> None:
    for who, name in (
        ("supervisor", "confidential"),
        ("school_lead", "at_school"),
        ("admin", "confidential"),
        ("admin", "at_school"),
    ):
        browser = world.browser(who)
        reference = world.concerns[name]
        pages = [
            browser.get("/staff"),
            browser.get(page_of(reference)),
            browser.get(page_of(reference) + "/audit"),
        ]
        for shown in pages:
            assert shown.status_code == 200, (who, name)
            assert LEARNER_NAME not in shown.text and LEARNER_EMAIL not in shown.text, (who, name)
        assert "identity known to the dean and quality team only" in pages[1].text
    assert identity_views(world, "confidential") == 0
    # A named concern's learner is known to everyone who sees it.
    assert LEARNER_NAME in world.browser("supervisor").get(page_of(world.concerns["named"])).text
    assert "Anonymous" in world.browser("supervisor").get(page_of(world.concerns["anonymous"])).text

    dean = world.browser("dean")
    reference = world.concerns["confidential"]
    shown = dean.get(page_of(reference))
    assert LEARNER_NAME in shown.text and LEARNER_EMAIL in shown.text
    assert identity_views(world, "confidential") == 1
    audit = dean.get(page_of(reference) + "/audit")
    assert audit.status_code == 200
    assert "The learner&#39;s identity was viewed" in audit.text
    assert world.emails["dean"] in audit.text


def test_learner_text_is_inert(world: StaffWorld) -> None:
    payload = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    with transaction(world.engine) as session:
        found = repositories.concern_by_reference(session, world.concerns["named"])
        assert found is not None
        add_learner_information(
            session=session,
            concern=found,
            text=payload,
            channel="web",
            inbound_id=None,
            now=world.clock(),
            policy=policy(),
        )
    shown = world.browser("supervisor").get(page_of(world.concerns["named"]))
    assert "<script>alert" not in shown.text and "<img src=x" not in shown.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in shown.text
    assert "The learner added information" in shown.text


def test_the_dean_overrides_triage_and_edits_standards(world: StaffWorld) -> None:
    dean = world.browser("dean")
    reference = world.concerns["at_dean"]
    shown = dean.get(page_of(reference))
    for action in ("override-triage", "edit-standards", "escalate", "close", "redirect"):
        assert f'action="/staff/concerns/{reference}/{action}"' in shown.text
    assert "/reopen" not in shown.text

    # Without a reason: refused on the reason's field; the chosen scores are kept.
    refused = post(dean, reference, "override-triage", likelihood="2", impact="1", text="")
    assert refused.status_code == 400
    assert 'href="#override-triage-text"' in refused.text
    assert re.search(r'<option value="2" selected', refused.text)
    refused = post(dean, reference, "override-triage", likelihood="", impact="1", text="Why")
    assert refused.status_code == 400
    assert 'href="#override-triage-likelihood"' in refused.text

    done = post(
        dean, reference, "override-triage", likelihood="2", impact="1", text="Fixed on the day"
    )
    assert done.status_code == 303
    rated = concern(world, "at_dean")
    assert (rated.likelihood, rated.impact) == (2, 1)
    shown = dean.get(page_of(reference))
    assert "Changed by hand: Fixed on the day" in shown.text
    assert "Risk rating changed by hand" in shown.text

    done = post(dean, reference, "edit-standards", standards=["1.2", "3.5"])
    assert done.status_code == 303
    assert concern(world, "at_dean").standards == ["1.2", "3.5"]
    shown = dean.get(page_of(reference))
    assert "3.5 Understand their role" in shown.text
    assert "Quality Framework standards changed" in shown.text

    refused = post(dean, reference, "edit-standards")
    assert refused.status_code == 400
    assert 'href="#edit-standards-standards"' in refused.text
    assert concern(world, "at_dean").standards == ["1.2", "3.5"]


CORRECTED = "priya.correct@example.nhs.uk"


def raised_on_the_form(world: StaffWorld, name: str, **changes: Any) -> str:
    """A concern raised on the web form (the usual answers, with these changes), known to the
    world as `name`: its reference."""
    reference = submit_concern(
        engine=world.engine,
        concern=parse_submission(concern_input(example_placement(world.engine), **changes)),
        channel=Channel.WEB,
        now=MONDAY_MORNING,
        policy=policy(),
    ).reference
    world.concerns[name] = reference
    return reference


def learner_of(world: StaffWorld, name: str) -> tuple[str | None, str | None]:
    """The learner's email and name on the concern now."""
    with transaction(world.engine) as session:
        found = repositories.concern_by_reference(session, world.concerns[name])
        assert found is not None and found.learner_id is not None
        learner = session.get(Learner, found.learner_id)
        assert learner is not None
        return learner.email, learner.name


def learner_mail(world: StaffWorld, name: str) -> list[tuple[str, str]]:
    with transaction(world.engine) as session:
        return [
            (message.kind, message.recipient_address)
            for message in repositories.outbox_of(session, id_of(concern(world, name)))
            if message.recipient_role == "learner"
        ]


def test_the_quality_team_corrects_a_learners_mistyped_email_address(world: StaffWorld) -> None:
    reference = world.concerns["confidential"]
    slug = "correct-learner-email"
    # Only the region's dean and quality team are offered it; a contact who sees the concern
    # is not, and is refused if they try.
    assert f"/{slug}" not in world.browser("supervisor").get(page_of(reference)).text
    refused = post(
        world.browser("supervisor"), reference, slug, email=CORRECTED, text="The learner said so"
    )
    assert refused.status_code == 409
    assert learner_of(world, "confidential") == (LEARNER_EMAIL, LEARNER_NAME)

    browser = world.browser("quality")
    shown = browser.get(page_of(reference)).text
    assert f'action="/staff/concerns/{reference}/{slug}"' in shown
    assert "Correct the learner&#39;s email address" in shown
    before = event_kinds(world, "confidential")

    # Bad input: an error on the field, the values kept, nothing changed.
    for email, text, field, message in (
        ("", "The learner phoned", f"{slug}-email", "Enter the learner&#39;s correct email"),
        ("priya at example", "The learner phoned", f"{slug}-email", "correct format"),
        ("a@b.example\r\nBcc: x@evil.example", "The learner phoned", f"{slug}-email", "one line"),
        (CORRECTED, "  ", f"{slug}-text", "Say why the address or name is being corrected"),
    ):
        answered = post(browser, reference, slug, email=email, text=text)
        assert answered.status_code == 400, (email, answered.text)
        assert f'href="#{field}"' in answered.text
        assert message in answered.text
        assert event_kinds(world, "confidential") == before
        assert learner_of(world, "confidential") == (LEARNER_EMAIL, LEARNER_NAME)
    kept = post(browser, reference, slug, email="priya at example", text="She phoned on Monday")
    assert 'value="priya at example"' in kept.text and "She phoned on Monday" in kept.text

    done = post(browser, reference, slug, email=CORRECTED, text="She phoned: a typo in her address")
    assert done.status_code == 303, done.text
    assert "details on" in browser.get(page_of(reference)).text
    # The concern is the corrected address's; the acknowledgement is sent again there. The old
    # record's name stays behind: Priya's other concerns keep that record, and a record several
    # concerns share may be someone else's (the name given first with the address).
    assert learner_of(world, "confidential") == (CORRECTED, None)
    assert ("learner_ack", CORRECTED) in learner_mail(world, "confidential")
    with transaction(world.engine) as session:
        event = repositories.events_of(session, id_of(concern(world, "confidential")))[-1]
        assert event.kind == "learner_email_changed"
        assert event.actor == f"staff {world.staff_ids['quality']}"
        assert event.detail["reason"] == "She phoned: a typo in her address"
        # Neither address is in the trail every member of staff who sees it reads.
        assert LEARNER_EMAIL not in str(event.detail) and CORRECTED not in str(event.detail)
    audit = browser.get(page_of(reference) + "/audit").text
    assert "The learner&#39;s email address was corrected" in audit
    assert "She phoned: a typo in her address" in audit

    # The same address again changes nothing, and says why.
    again = post(browser, reference, slug, email=CORRECTED.upper(), text="Again")
    assert again.status_code == 400
    assert "already the learner&#39;s email address" in again.text
    assert event_kinds(world, "confidential").count("learner_email_changed") == 1


def test_the_quality_team_corrects_only_a_learners_name(world: StaffWorld) -> None:
    """The same address with another name corrects the name alone: nothing is sent, links keep
    working, and a confidential learner's later words lose the corrected name too."""
    reference = world.concerns["confidential"]
    slug = "correct-learner-email"
    browser = world.browser("quality")
    mail_before = learner_mail(world, "confidential")
    version_before = concern(world, "confidential").link_version
    corrected_name = "Priya Okonkwo-Testlearner"

    done = post(
        browser,
        reference,
        slug,
        email=LEARNER_EMAIL.upper(),
        name=corrected_name,
        text="She phoned: her surname is double-barrelled now",
    )
    assert done.status_code == 303, done.text
    assert "details on" in browser.get(page_of(reference)).text
    after = concern(world, "confidential")
    assert after.learner_name == corrected_name
    assert after.link_version == version_before, "links already sent keep working"
    assert learner_of(world, "confidential") == (LEARNER_EMAIL, LEARNER_NAME)
    assert learner_mail(world, "confidential") == mail_before, "a name alone sends nothing"
    with transaction(world.engine) as session:
        event = repositories.events_of(session, id_of(after))[-1]
        assert event.kind == "learner_name_corrected"
        assert event.actor == f"staff {world.staff_ids['quality']}"
        assert event.detail == {"reason": "She phoned: her surname is double-barrelled now"}
    audit = browser.get(page_of(reference) + "/audit").text
    assert "The learner&#39;s name was corrected" in audit and "double-barrelled" in audit
    # Below the dean, the trail says it happened, never how she told them.
    supervisor_audit = world.browser("supervisor").get(page_of(reference) + "/audit").text
    assert "The learner&#39;s name was corrected" in supervisor_audit
    assert "double-barrelled" not in supervisor_audit
    # What she adds now (on the status page, in chat) is shown to her contacts without either.
    with transaction(world.engine) as session:
        concern_row = repositories.concern_by_reference(session, reference)
        assert concern_row is not None
        shown = learner_words(session, concern_row, "Thanks, Okonkwo-Testlearner")
    assert "Okonkwo" not in shown and "Testlearner" not in shown and shown.startswith("Thanks, ")

    # The same address and name again change nothing, and say so.
    again = post(browser, reference, slug, email=LEARNER_EMAIL, name=corrected_name, text="Again")
    assert again.status_code == 400
    assert "already the learner&#39;s email address and name" in again.text
    assert event_kinds(world, "confidential").count("learner_name_corrected") == 1


def test_a_corrected_name_is_taken_out_of_what_the_concern_says(world: StaffWorld) -> None:
    """The form named 'Pryia Okonkow' (a typo): 'Priya Okonkwo' in her description was left for
    her supervisor to read. Corrected by the quality team, it is taken out of the summary and
    the description too."""
    reference = raised_on_the_form(
        world,
        "typo_name",
        learner={
            "name": "Pryia Okonkow",
            "email": "pok@example.nhs.uk",
            "group": "foundation",
            "programme": "Foundation Programme FY1",
        },
        summary="Okonkwo left alone on nights",
        description="I, Priya Okonkwo, was left alone on the ward at night.",
        confidentiality="confidential",
    )
    # What she adds later, redacted (as every channel does) with the names held then.
    with transaction(world.engine) as session:
        row = repositories.concern_by_reference(session, reference)
        assert row is not None
        said = learner_words(session, row, "Priya Okonkwo here again: it happened again.")
        add_learner_information(
            session=session,
            concern=row,
            text=said,
            # An emailed reply keeps what triage read of it as well.
            triage_text=said,
            channel="email",
            inbound_id=None,
            now=MONDAY_MORNING,
            policy=policy(),
        )
    supervisor = world.browser("supervisor")
    assert "Okonkwo" in supervisor.get(page_of(reference)).text

    done = post(
        world.browser("quality"),
        reference,
        "correct-learner-email",
        email="pok@example.nhs.uk",
        name="Priya Okonkwo",
        text="She phoned: her name was mistyped on the form",
    )
    assert done.status_code == 303, done.text
    after = concern(world, "typo_name")
    assert after.summary == "[name removed] left alone on nights"
    assert after.description == "I, [name removed], was left alone on the ward at night."
    # Nor in what she added before, wherever it is shown below the dean.
    assert "Okonkwo" not in supervisor.get(page_of(reference)).text
    assert "Okonkwo" not in supervisor.get(page_of(reference) + "/audit").text
    supervisor_api = world.api("supervisor")
    assert "Okonkwo" not in supervisor_api.get(f"/api/v1/concerns/{reference}").text
    assert "Okonkwo" not in supervisor_api.get(f"/api/v1/concerns/{reference}/audit").text
    assert "here again" in supervisor.get(page_of(reference)).text
    # The quality team, who know who she is, read what she wrote as it was kept, and are told
    # that others read it without her name; her supervisor is not told there is more.
    quality_page = world.browser("quality").get(page_of(reference)).text
    assert "Okonkwo here again" in quality_page
    assert "I, Priya Okonkwo, was left alone on the ward at night." in quality_page
    assert "Okonkwo left alone on nights" in quality_page
    assert 'id="as-written"' in quality_page
    assert 'id="as-written"' not in supervisor.get(page_of(reference)).text
    quality_api = world.api("quality").get(f"/api/v1/concerns/{reference}").json()
    assert quality_api["description"] == "I, Priya Okonkwo, was left alone on the ward at night."
    assert quality_api["as_written"] is True
    supervisor_api_case = supervisor_api.get(f"/api/v1/concerns/{reference}").json()
    assert supervisor_api_case["as_written"] is False
    assert supervisor_api_case["summary"] == "[name removed] left alone on nights"


def test_a_name_that_is_also_a_word_stays_in_what_triage_and_the_dean_read(
    world: StaffWorld,
) -> None:
    """A confidential learner named Sam Fell: "fell" is taken out of the copy her supervisor
    reads, but not out of what triage reads when it rates the concern again, nor what the quality
    team reads. Before, rating again from the kept copy lost the patient who fell."""
    reference = raised_on_the_form(
        world,
        "sam_fell",
        learner={
            "name": "Sam Fell",
            "email": "sam.fell@example.nhs.uk",
            "group": "foundation",
            "programme": "Foundation Programme FY1",
        },
        summary="Left alone on nights",
        description="A patient fell on the ward at night and nobody senior came.",
        confidentiality="confidential",
    )
    raised = concern(world, "sam_fell")
    assert "fell" not in raised.description.casefold()
    assert raised.description_as_written == (
        "A patient fell on the ward at night and nobody senior came."
    )
    assert raised.patient_safety
    rated = (raised.auto_likelihood, raised.auto_impact, raised.risk_reasons)
    with transaction(world.engine) as session:
        row = repositories.concern_by_reference(session, reference)
        assert row is not None
        retriage(session=session, concern=row, now=MONDAY_MORNING, policy=policy())
    after = concern(world, "sam_fell")
    assert (after.auto_likelihood, after.auto_impact, after.risk_reasons) == rated
    # A correction that takes more out keeps what she wrote for those who may know her.
    done = post(
        world.browser("quality"),
        reference,
        "correct-learner-email",
        email="sam.fell@example.nhs.uk",
        name="Sam Fell-Nights",
        text="She phoned: her surname is double-barrelled",
    )
    assert done.status_code == 303, done.text
    corrected = concern(world, "sam_fell")
    assert "nights" not in corrected.summary.casefold()
    assert corrected.summary_as_written == "Left alone on nights"
    assert "Left alone on nights" in world.browser("quality").get(page_of(reference)).text
    assert "Left alone on nights" not in world.browser("supervisor").get(page_of(reference)).text


def test_a_corrected_address_is_taken_out_of_what_the_concern_says(world: StaffWorld) -> None:
    reference = world.concerns["confidential"]
    with transaction(world.engine) as session:
        row = repositories.concern_by_reference(session, reference)
        assert row is not None
        row.description += " Write to me at priya.home@example.org."
    done = post(
        world.browser("quality"),
        reference,
        "correct-learner-email",
        email="priya.home@example.org",
        text="She phoned: that is her address",
    )
    assert done.status_code == 303, done.text
    assert "priya.home@example.org" not in concern(world, "confidential").description
    assert "priya.home" not in world.browser("supervisor").get(page_of(reference)).text


def test_an_anonymous_or_closed_concerns_email_cannot_be_corrected(world: StaffWorld) -> None:
    slug = "correct-learner-email"
    dean = world.browser("dean")
    anonymous = world.concerns["anonymous"]
    assert f"/{slug}" not in dean.get(page_of(anonymous)).text
    refused = post(dean, anonymous, slug, email=CORRECTED, text="The learner phoned")
    assert refused.status_code == 409
    assert "anonymous: it keeps no email address" in refused.text

    named = world.concerns["named"]
    assert post(dean, named, "close", text="Resolved").status_code == 303
    assert f"/{slug}" not in dean.get(page_of(named)).text
    refused = post(dean, named, slug, email=CORRECTED, text="The learner phoned")
    assert refused.status_code == 409
    assert "is closed" in refused.text
    assert learner_of(world, "named") == (LEARNER_EMAIL, LEARNER_NAME)


def test_how_a_confidential_learner_told_staff_is_not_shown_below_the_dean(
    world: StaffWorld,
) -> None:
    """The reason may name the learner or give their address: for a confidential concern it is
    for those who see the learner's identity, wherever the trail is shown."""
    reference = world.concerns["confidential"]
    told = f"Priya phoned: her address is {CORRECTED}"
    done = post(
        world.browser("quality"), reference, "correct-learner-email", email=CORRECTED, text=told
    )
    assert done.status_code == 303, done.text
    for who in ("supervisor", "admin"):
        browser, api = world.browser(who), world.api(who)
        for answered in (
            browser.get(page_of(reference)),
            browser.get(page_of(reference) + "/audit"),
            api.get(f"/api/v1/concerns/{reference}"),
            api.get(f"/api/v1/concerns/{reference}/audit"),
        ):
            assert answered.status_code == 200, (who, answered.url)
            where = (who, str(answered.url))
            assert "email address was corrected" in answered.text or (
                "learner_email_changed" in answered.text
            ), where
            assert CORRECTED not in answered.text and "Priya" not in answered.text, where
    # The region's dean and quality team read it.
    assert told in world.browser("dean").get(page_of(reference) + "/audit").text
    assert told in world.api("quality").get(f"/api/v1/concerns/{reference}/audit").text


def test_the_owner_of_the_mistyped_address_does_not_give_the_learner_their_name(
    world: StaffWorld,
) -> None:
    """Sam types Priya's address by mistake: his concern is kept on her record (her name stays
    hers). Corrected to his own address, it must not take her name there with it."""
    sams = raised_on_the_form(
        world,
        "sams",
        learner={
            "name": "Sam Otherlearner",
            "email": LEARNER_EMAIL,
            "group": "foundation",
            "programme": "Foundation Programme FY1",
        },
        confidentiality="confidential",
    )
    sam = "sam.otherlearner@example.nhs.uk"
    done = post(
        world.browser("quality"), sams, "correct-learner-email", email=sam, text="He phoned us"
    )
    assert done.status_code == 303, done.text
    assert learner_of(world, "sams") == (sam, None)
    assert learner_of(world, "named") == (LEARNER_EMAIL, LEARNER_NAME)
    # His own name is kept when he next raises a concern from his address.
    raised_on_the_form(
        world,
        "again",
        learner={"name": "Sam Otherlearner", "email": sam, "group": "foundation"},
    )
    assert learner_of(world, "again") == (sam, "Sam Otherlearner")

    # A mistyped address no other concern has: its name is the learner's, and comes along; the
    # mistyped record goes.
    typo = "priya.testlaerner@example.nhs.uk"
    raised_on_the_form(
        world, "typo", learner={"name": LEARNER_NAME, "email": typo, "group": "foundation"}
    )
    typo_id = concern(world, "typo").learner_id
    done = post(
        world.browser("dean"),
        world.concerns["typo"],
        "correct-learner-email",
        email=CORRECTED,
        text="She phoned us",
    )
    assert done.status_code == 303, done.text
    assert learner_of(world, "typo") == (CORRECTED, LEARNER_NAME)
    with transaction(world.engine) as session:
        assert session.get(Learner, typo_id) is None


def feedback_to(world: StaffWorld, name: str, address: str) -> list[OutboxMessage]:
    with transaction(world.engine) as session:
        found = [
            message
            for message in repositories.outbox_of(session, id_of(concern(world, name)))
            if message.kind == "learner_feedback" and message.recipient_address == address
        ]
        for message in found:
            session.expunge(message)
        return found


def correct(world: StaffWorld, name: str, email: str) -> None:
    done = post(
        world.browser("quality"),
        world.concerns[name],
        "correct-learner-email",
        email=email,
        text="The learner phoned: she never had our emails",
    )
    assert done.status_code == 303, done.text


@pytest.mark.parametrize("became", ["sent", "refused", "pending", "being sent"])
def test_feedback_already_sent_to_the_wrong_address_goes_to_the_corrected_one(
    world: StaffWorld, became: str
) -> None:
    """Whatever became of it at the mistyped address (delivered, refused by the relay, still
    waiting, or held by a dispatcher this moment), the feedback reaches the corrected one once,
    and the learner's silence counts from then."""
    reference = world.concerns["named"]
    feedback = "Teaching is back on the rota from Monday."
    assert (
        post(world.browser("supervisor"), reference, "feedback", text=feedback).status_code == 303
    )
    with transaction(world.engine) as session:
        found = concern(world, "named")
        (sent,) = [
            message
            for message in repositories.outbox_of(session, id_of(found))
            if message.kind == "learner_feedback"
        ]
        assert sent.recipient_address == LEARNER_EMAIL
        # As a dispatcher records it.
        row = session.get(type(sent), sent.id)
        assert row is not None
        if became == "sent":
            row.status, row.sent_at = "sent", world.clock()
        elif became == "refused":
            row.status, row.last_error = "failed", "550 5.1.1 No such user"
        elif became == "being sent":
            row.claim_token, row.claimed_until = "held", world.clock() + timedelta(days=30)
        closes_at = found.close_after
    assert closes_at is not None

    # A week later the learner tells the quality team the address was wrong.
    world.clock.now = world.clock() + timedelta(days=7)
    correct(world, "named", CORRECTED)
    (again,) = feedback_to(world, "named", CORRECTED)
    assert again.status == "pending"
    assert feedback in again.body_text
    found = concern(world, "named")
    # The learner's silence counts from when the feedback reaches them.
    assert found.close_after is not None and found.close_after > closes_at
    assert found.next_due_at is not None and found.next_due_at <= found.close_after
    with transaction(world.engine) as session:
        (ack,) = [
            message
            for message in repositories.outbox_of(session, id_of(found))
            if message.kind == "learner_ack" and message.recipient_address == CORRECTED
        ]
        assert "we are sending it to you in a separate email" in " ".join(ack.body_text.split())


def test_feedback_given_before_the_learner_had_an_address_is_sent_when_one_is_added(
    world: StaffWorld,
) -> None:
    """A learner who gave no address hears nothing by email: the address the quality team adds
    gets the feedback the acknowledgement says is on its way."""
    with transaction(world.engine) as session:
        learner = session.get(Learner, concern(world, "named").learner_id)
        assert learner is not None
        learner.email = None
    feedback = "Teaching is back on the rota from Monday."
    reference = world.concerns["named"]
    assert (
        post(world.browser("supervisor"), reference, "feedback", text=feedback).status_code == 303
    )
    closes_at = concern(world, "named").close_after
    assert closes_at is not None
    world.clock.now = world.clock() + timedelta(days=7)
    correct(world, "named", CORRECTED)
    (again,) = feedback_to(world, "named", CORRECTED)
    assert feedback in again.body_text
    found = concern(world, "named")
    assert found.close_after is not None and found.close_after > closes_at


@pytest.mark.parametrize("delivered_to_second", [False, True])
def test_two_corrections_in_a_row_send_the_feedback_once_to_the_last_address(
    world: StaffWorld, delivered_to_second: bool
) -> None:
    reference = world.concerns["named"]
    feedback = "Teaching is back on the rota from Monday."
    assert (
        post(world.browser("supervisor"), reference, "feedback", text=feedback).status_code == 303
    )
    world.clock.now = world.clock() + timedelta(days=1)
    second, third = "priya.second@example.nhs.uk", CORRECTED
    correct(world, "named", second)
    (to_second,) = feedback_to(world, "named", second)
    if delivered_to_second:
        with transaction(world.engine) as session:
            row = session.get(OutboxMessage, to_second.id)
            assert row is not None
            row.status, row.sent_at = "sent", world.clock()
    closes_at = concern(world, "named").close_after
    assert closes_at is not None
    world.clock.now = world.clock() + timedelta(days=2)
    correct(world, "named", third)
    (to_third,) = feedback_to(world, "named", third)
    assert to_third.status == "pending" and feedback in to_third.body_text
    (to_second,) = feedback_to(world, "named", second)
    assert to_second.status == ("sent" if delivered_to_second else "failed")
    found = concern(world, "named")
    assert found.close_after is not None and found.close_after > closes_at


def test_feedback_given_at_an_earlier_level_is_not_sent_again(world: StaffWorld) -> None:
    reference = world.concerns["named"]
    assert (
        post(world.browser("supervisor"), reference, "feedback", text="Old news.").status_code
        == 303
    )
    with transaction(world.engine) as session:
        for message in repositories.outbox_of(session, id_of(concern(world, "named"))):
            message.status = "sent"
    done = post(world.browser("quality"), reference, "escalate", text="The learner asked")
    assert done.status_code == 303, done.text
    assert concern(world, "named").pathway == 2
    correct(world, "named", CORRECTED)
    assert feedback_to(world, "named", CORRECTED) == []


def test_staff_give_the_name_when_the_one_held_cannot_go_with_the_address(
    world: StaffWorld,
) -> None:
    """Priya's record holds her other concerns, so her name is not carried to the corrected
    address by itself: the quality team, who spoke to her, give it."""
    reference = world.concerns["confidential"]
    slug = "correct-learner-email"
    browser = world.browser("quality")
    before = event_kinds(world, "confidential")
    for name, message in (
        ("Priya\r\nBcc: x@evil.example", "Enter this on one line"),
        ("Priya\x07 Testlearner", "Remove the unusual characters"),
        ("P" * 201, "200 characters or fewer"),
    ):
        answered = post(browser, reference, slug, email=CORRECTED, name=name, text="She phoned")
        assert answered.status_code == 400, answered.text
        assert f'href="#{slug}-name"' in answered.text
        assert message in answered.text
        assert event_kinds(world, "confidential") == before
    done = post(
        browser, reference, slug, email=CORRECTED, name=" Priya Testlearner ", text="She phoned"
    )
    assert done.status_code == 303, done.text
    assert learner_of(world, "confidential") == (CORRECTED, LEARNER_NAME)
    assert learner_of(world, "named") == (LEARNER_EMAIL, LEARNER_NAME)


def address_notices(world: StaffWorld, name: str) -> list[tuple[str, str, str]]:
    """The contacts told of a corrected address: (channel, recipient role, text)."""
    with transaction(world.engine) as session:
        return [
            (message.channel, message.recipient_role, message.body_text or "")
            for message in repositories.outbox_of(session, id_of(concern(world, name)))
            if message.kind == "learner_address_corrected"
        ]


def test_contacts_who_were_given_the_wrong_address_are_given_the_corrected_one(
    world: StaffWorld,
) -> None:
    slug = "correct-learner-email"
    quality = world.browser("quality")
    named = world.concerns["named"]
    supervisor = world.emails["supervisor"]
    done = post(quality, named, slug, email=CORRECTED, name="Priya Testlearner", text="Phoned")
    assert done.status_code == 303, done.text
    told = address_notices(world, "named")
    assert told and all(channel == "email" for channel, _, _ in told)
    assert "supervisor" in {role for _, role, _ in told}
    for _, _, text in told:
        assert f"Priya Testlearner <{CORRECTED}>" in text
        assert LEARNER_EMAIL not in text
    with transaction(world.engine) as session:
        addressed = {
            message.recipient_address
            for message in repositories.outbox_of(session, id_of(concern(world, "named")))
            if message.kind == "learner_address_corrected"
        }
    assert supervisor in addressed

    # A confidential learner's identity was never given below the dean and quality team: the
    # contacts there are not told of the change, and nothing in what they are sent names it.
    done = post(quality, world.concerns["confidential"], slug, email=CORRECTED, text="Phoned")
    assert done.status_code == 303, done.text
    with transaction(world.engine) as session:
        assigned = {
            assignment.role
            for assignment, _ in repositories.assignments_of(
                session, id_of(concern(world, "confidential"))
            )
        }
    assert "supervisor" in assigned
    told_roles = {role for _, role, _ in address_notices(world, "confidential")}
    assert told_roles == assigned & {"dean", "quality_team"}, (told_roles, assigned)
    with transaction(world.engine) as session:
        for message in repositories.outbox_of(session, id_of(concern(world, "confidential"))):
            if message.recipient_role not in ("dean", "quality_team", "learner"):
                assert CORRECTED not in (message.body_text or "")

    # The same address again tells nobody anything more.
    before = len(address_notices(world, "named"))
    again = post(quality, named, slug, email=CORRECTED, text="Phoned again")
    assert again.status_code == 400
    assert len(address_notices(world, "named")) == before
