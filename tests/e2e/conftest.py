"""Fixtures for the end-to-end tests: the browser (see browser.py)."""

from tests.e2e.browser import browser, browsing

__all__ = ["browser", "browsing"]
