"""The learner's pages in headless Chromium against a real `concerns serve` process."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.browser import Browsing
from tests.e2e.test_serve import CONCERNS, Server, free_port, server_env, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(Path(tmp_path_factory.mktemp("learner-web")))
    yield running
    running.stop()


def test_the_start_page_is_accessible_and_works_under_the_csp(
    server: Server, browsing: Browsing
) -> None:
    page = browsing.page
    page.goto(server.url + "/")
    assert page.title().startswith("Raise a concern about your training placement")
    # The external script ran (the strict CSP allows no inline script): the frontend is live.
    assert "nhsuk-frontend-supported" in page.evaluate("document.body.className")
    browsing.check("start")
    page.get_by_role("link", name="Raise a concern", exact=True).first.click()
    assert page.url.endswith("/concerns/new")


def test_serve_says_what_to_do_when_the_frontend_is_not_installed(tmp_path: Path) -> None:
    env = server_env(tmp_path, database=tmp_path / "c.db", http_port=free_port(), smtp_port=0)
    env["CONCERNS_FRONTEND_DIR"] = str(tmp_path / "nowhere")
    done = subprocess.run(
        [str(CONCERNS), "serve"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "the NHS.UK frontend is not installed" in done.stderr
    assert "make install" in done.stderr
    assert "Traceback" not in done.stderr
