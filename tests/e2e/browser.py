"""Headless Chromium (Debian's, driven by Playwright) for the page tests, with axe-core checks.

Every checked page is saved as a full-page screenshot under test-output/browser/ so a person can
look at it, and must have no axe-core violations (WCAG 2.2 A and AA, and axe's best practices)
and no Content-Security-Policy reports in the console.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

PROJECT = Path(__file__).resolve().parents[2]
OUTPUT = Path(os.environ.get("CONCERNS_TEST_OUTPUT", PROJECT / "test-output")) / "browser"
AXE = PROJECT / "node_modules" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
# Chromium as this machine runs it: no sandbox as root, and none of the background connections
# that a closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("Chromium is not installed: `make test` installs it (scripts/ensure-chromium)")
    return found


@dataclass
class Browsing:
    """One browser tab, with what the page said in the console."""

    page: Page
    name: str
    console: list[str] = field(default_factory=list)
    shots: int = 0

    def check(self, label: str) -> None:
        """Screenshot the page, then fail on any axe-core violation or CSP report."""
        self.shots += 1
        OUTPUT.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^a-z0-9]+", "-", f"{self.name}-{self.shots:02d}-{label}".lower())
        self.page.screenshot(path=OUTPUT / f"{slug.strip('-')}.png", full_page=True)
        # Evaluated through the DevTools protocol, which the page's CSP does not govern.
        if not self.page.evaluate("typeof window.axe !== 'undefined'"):
            self.page.evaluate(AXE.read_text())
        result = self.page.evaluate(
            "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS
        )
        violations = [
            {
                "id": violation["id"],
                "help": violation["help"],
                "nodes": [node["html"][:200] for node in violation["nodes"][:5]],
            }
            for violation in result["violations"]
        ]
        assert not violations, f"axe-core on {label}:\n{json.dumps(violations, indent=2)}"
        blocked = [line for line in self.console if "Content Security Policy" in line]
        assert not blocked, f"CSP reports on {label}: {blocked}"


# Module-scoped: Playwright's sync API keeps an event loop running on this thread while it is
# open, and later modules' tests run their own loops.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def browsing(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Browsing]:
    """A fresh browser context (its own cookies) at a phone's size: learners use phones."""
    context = browser.new_context(viewport={"width": 390, "height": 844})
    context.set_default_timeout(10_000)
    page = context.new_page()
    tab = Browsing(page=page, name=request.node.name)
    page.on("console", lambda message: tab.console.append(f"{message.type}: {message.text}"))
    yield tab
    context.close()
