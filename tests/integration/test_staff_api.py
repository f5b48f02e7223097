"""The staff JSON API: listing, reading and acting on concerns with a bearer token; its errors
(401, 404 alike for unknown and forbidden, 409 with the reason, 422 for a bad body); and /docs,
Swagger UI served from this service under the app's Content Security Policy."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from tests.integration.staff_world import LEARNER_EMAIL, LEARNER_NAME, StaffWorld, staff_world
from tests.integration.webclient import WebClient

API = "/api/v1"


@pytest.fixture
def world(sqlite_engine: Engine) -> Iterator[StaffWorld]:
    yield from staff_world(sqlite_engine)


def test_a_supervisor_lists_reads_acknowledges_and_gives_feedback(world: StaffWorld) -> None:
    api = world.api("supervisor")
    named = world.concerns["named"]

    listed = api.get(f"{API}/concerns")
    assert listed.status_code == 200
    assert listed.headers["cache-control"] == "no-store"
    assert {row["reference"] for row in listed.json()["concerns"]} == set(world.concerns.values())
    assert api.get(f"{API}/concerns", params={"status": "closed"}).json() == {"concerns": []}

    read = api.get(f"{API}/concerns/{named.lower()}").json()
    assert read["reference"] == named
    assert read["identity"]["name"] == LEARNER_NAME
    assert read["acknowledged_at"] is None
    assert "acknowledge" in read["allowed_actions"]

    acknowledged = api.post(f"{API}/concerns/{named}/acknowledge")
    assert acknowledged.status_code == 200, acknowledged.text
    assert acknowledged.json()["acknowledged_at"] is not None

    answered = api.post(
        f"{API}/concerns/{named}/feedback", json={"text": "The rota is being fixed this week."}
    )
    assert answered.status_code == 200, answered.text
    assert answered.json()["feedback_at"] is not None

    audit = api.get(f"{API}/concerns/{named}/audit").json()
    assert audit["reference"] == named
    kinds = [entry["kind"] for entry in audit["entries"]]
    assert "acknowledged" in kinds and "feedback_given" in kinds
    mine = [entry for entry in audit["entries"] if entry["kind"] == "acknowledged"]
    assert mine[0]["channel"] == "api"


def test_the_dean_closes_reopens_overrides_triage_and_edits_standards(world: StaffWorld) -> None:
    api = world.api("dean")
    at_dean = world.concerns["at_dean"]

    closed = api.post(f"{API}/concerns/{at_dean}/close", json={"reason": "Resolved with the trust"})
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    assert [
        row["reference"] for row in api.get(f"{API}/concerns?status=closed").json()["concerns"]
    ] == [at_dean]

    reopened = api.post(f"{API}/concerns/{at_dean}/reopen", json={"reason": "It happened again"})
    assert reopened.status_code == 200, reopened.text
    assert reopened.json()["status"] == "open"

    triaged = api.post(
        f"{API}/concerns/{at_dean}/triage",
        json={"likelihood": 5, "impact": 4, "reason": "Nights are unsupervised every week"},
    )
    assert triaged.status_code == 200, triaged.text
    risk = triaged.json()["risk"]
    assert (risk["likelihood"], risk["impact"]) == (5, 4)
    assert risk["override_reason"] == "Nights are unsupervised every week"

    edited = api.post(f"{API}/concerns/{at_dean}/standards", json={"standards": ["1.1", "3.1"]})
    assert edited.status_code == 200, edited.text
    assert edited.json()["standards"] == ["1.1", "3.1"]


def test_errors_are_401_404_409_and_422_with_their_reasons(world: StaffWorld) -> None:
    dean = world.api("dean")
    named = world.concerns["named"]

    refused = dean.post(f"{API}/concerns/{named}/reopen", json={"reason": "Why not"})
    assert refused.status_code == 409
    assert refused.json() == {"detail": f"{named} is open: there is nothing to reopen"}

    bad = dean.post(
        f"{API}/concerns/{named}/triage", json={"likelihood": 6, "impact": 2, "reason": "x"}
    )
    assert bad.status_code == 422
    assert [error["loc"] for error in bad.json()["detail"]] == [["body", "likelihood"]]
    assert dean.post(f"{API}/concerns/{named}/feedback", content=b"{").status_code == 422

    for api in (world.api(None), _with_header(world, "Bearer lc_not-a-token")):
        answered = api.get(f"{API}/concerns")
        assert answered.status_code == 401
        assert answered.headers["www-authenticate"] == "Bearer"
        assert api.post(f"{API}/concerns/{named}/acknowledge").status_code == 401

    stranger = world.api("other_supervisor")
    unknown = stranger.get(f"{API}/concerns/NOPE-2025-99999")
    forbidden = stranger.get(f"{API}/concerns/{named}")
    odd = stranger.get(f"{API}/concerns/%25%00')")
    assert unknown.status_code == forbidden.status_code == odd.status_code == 404
    assert unknown.content == forbidden.content == odd.content == b'{"detail":"Not found"}'
    tried = stranger.post(f"{API}/concerns/{named}/acknowledge")
    assert (tried.status_code, tried.content) == (404, unknown.content)
    assert world.api("supervisor").get(f"{API}/concerns/{named}").json()["acknowledged_at"] is None


def test_the_dean_corrects_a_learners_email_address(world: StaffWorld) -> None:
    named = world.concerns["named"]
    path = f"{API}/concerns/{named}/learner-email"
    corrected = "priya.correct@example.nhs.uk"
    asked = {"email": corrected, "reason": "She emailed the quality team from her new address"}

    # The supervisor sees the concern, but where the learner's mail goes is not theirs to say;
    # another region's dean does not see it at all.
    supervisor = world.api("supervisor")
    assert (
        "correct_learner_email"
        not in supervisor.get(f"{API}/concerns/{named}").json()["allowed_actions"]
    )
    refused = supervisor.post(path, json=asked)
    assert refused.status_code == 409
    # Not "only its contacts there can": no contact can.
    assert refused.json() == {
        "detail": f"Only the region's dean and quality team can correct the learner's email "
        f"address or name on {named}"
    }
    assert world.api("other_dean").post(path, json=asked).status_code == 404

    dean = world.api("dean")
    # Nor an address our mail can never be sent to (an internationalised local part).
    for address in ("not an address", "jöhn@example.nhs.uk"):
        bad = dean.post(path, json={"email": address, "reason": "x"})
        assert bad.status_code == 422
        assert [error["loc"] for error in bad.json()["detail"]] == [["body", "email"]]
    no_reason = dean.post(path, json={"email": corrected, "reason": " "})
    assert no_reason.status_code == 409
    assert "Say why" in no_reason.json()["detail"]
    assert dean.get(f"{API}/concerns/{named}").json()["identity"]["email"] == LEARNER_EMAIL

    done = dean.post(path, json=asked)
    assert done.status_code == 200, done.text
    # Her other concerns keep the old record and its name (see test_staff_pages); the new
    # record has none, and this concern shows the name she gave with it.
    assert done.json()["identity"] == {
        "name": "Priya Testlearner",
        "email": corrected,
        "slack_user_id": None,
        "teams_user_id": None,
    }
    again = dean.post(path, json=asked)
    assert again.status_code == 409
    assert again.json() == {"detail": "That is already the learner's email address"}
    # A name given is checked as the form's is, and kept with the corrected address.
    confidential = f"{API}/concerns/{world.concerns['confidential']}/learner-email"
    for name, status in (
        ("Priya\r\nBcc: x@evil.example", 409),
        ("P" * 201, 422),
        ("Priya\u2028Patel", 409),
        ("\u202eletaP ayirP", 409),
        ("Priya\x85Patel", 409),
    ):
        bad_name = dean.post(confidential, json={**asked, "name": name})
        assert bad_name.status_code == status, bad_name.text
    named_again = dean.post(confidential, json={**asked, "name": "Priya T"})
    assert named_again.status_code == 200, named_again.text
    assert named_again.json()["identity"]["name"] == "Priya T"
    # The same address with another name corrects the name alone.
    renamed = dean.post(confidential, json={**asked, "name": "Priya Tee"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["identity"] == named_again.json()["identity"] | {"name": "Priya Tee"}
    for same_name in ("Priya Tee", "  Priya   Tee "):
        same = dean.post(confidential, json={**asked, "name": same_name})
        assert same.json() == {"detail": "That is already the learner's email address and name"}
    anonymous = dean.post(f"{API}/concerns/{world.concerns['anonymous']}/learner-email", json=asked)
    assert anonymous.status_code == 409


def _with_header(world: StaffWorld, value: str) -> WebClient:
    api = world.api(None)
    api._client.headers["Authorization"] = value
    return api


def test_docs_are_served_from_this_service_and_describe_only_the_api(world: StaffWorld) -> None:
    browser = world.api(None)
    page = browser.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, re.S)
    sources = [re.search(r'src="([^"]+)"', attributes) for attributes, _ in scripts]
    assert scripts and all(source is not None for source in sources)
    assert all(body.strip() == "" for _, body in scripts), "no inline script"
    assert "<style" not in page.text and "style=" not in page.text
    styles = re.findall(r'<link rel="stylesheet" href="([^"]+)"', page.text)
    for path in [source.group(1) for source in sources if source] + styles:
        assert path.startswith("/") and not path.startswith("//"), path
        served = browser.get(path)
        assert served.status_code == 200, path
        assert served.headers["content-type"].split(";")[0] in ("text/javascript", "text/css")
    assert browser.get("/docs/package.json").status_code == 404
    assert browser.get("/redoc").status_code == 404

    schema = browser.get("/openapi.json").json()
    paths = set(schema["paths"])
    assert all(path.startswith(f"{API}/") for path in paths), paths
    assert {
        f"{API}/concerns",
        f"{API}/concerns/{{reference}}",
        f"{API}/concerns/{{reference}}/audit",
        *(
            f"{API}/concerns/{{reference}}/{action}"
            for action in (
                "acknowledge",
                "feedback",
                "escalate",
                "close",
                "reopen",
                "triage",
                "standards",
                "redirect",
                "learner-email",
            )
        ),
    } <= paths
    assert schema["components"]["securitySchemes"]["StaffToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A staff API token, as issued by `concerns staff add`.",
    }
    close = schema["paths"][f"{API}/concerns/{{reference}}/close"]["post"]
    assert {"200", "401", "404", "409", "422"} <= set(close["responses"])
