"""A synchronous client for the learner pages, in process (httpx over ASGI), with cookies kept."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from app.bootstrap import build
from app.metrics import Metrics
from app.settings import Settings
from app.web import create_app
from intake.web.security import RateLimitRules

T = TypeVar("T")

CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_app(
    engine: Engine,
    *,
    clock: Callable[[], datetime],
    rate_limits: RateLimitRules | None = None,
    on_received: Callable[[], None] | None = None,
    **settings: Any,
) -> FastAPI:
    """The app on `engine`. With `on_received`, the form only stores a submission and calls it
    (as under `concerns serve`); without, the form raises the submission before answering."""
    product = build(Settings(_env_file=None, **settings), engine=engine)  # type: ignore[call-arg]
    return create_app(
        product,
        metrics=Metrics(engine=engine),
        clock=clock,
        rate_limits=rate_limits,
        on_received=on_received,
    )


class WebClient:
    """One browser's requests: cookies persist between calls; redirects are not followed.
    With `raise_app_exceptions=False`, an exception the app lets out is met as a browser meets
    it (whatever the server then sends) instead of raised in the test."""

    def __init__(
        self,
        app: FastAPI,
        base_url: str = "http://testserver",
        *,
        raise_app_exceptions: bool = True,
    ) -> None:
        self._runner = asyncio.Runner()
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions),
            base_url=base_url,
            follow_redirects=False,
        )

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._runner.run(self._client.get(url, **kwargs))

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._runner.run(self._client.post(url, **kwargs))

    async def post_async(self, url: str, **kwargs: Any) -> httpx.Response:
        """A POST to await inside `run`, alongside others (requests made at once)."""
        return await self._client.post(url, **kwargs)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self._runner.run(self._client.request(method, url, **kwargs))

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on this client's event loop (the app's own, as in a request)."""
        return self._runner.run(work)

    def csrf(self, url: str) -> str:
        """Open a page with a form and return its CSRF token."""
        page = self.get(url)
        found = CSRF_INPUT.search(page.text)
        assert found, f"no CSRF token on {url}"
        return found.group(1)

    def cookie_header(self) -> str:
        """The Cookie header this browser would send now."""
        return "; ".join(f"{name}={value}" for name, value in self._client.cookies.items())

    def set_cookie(self, name: str, value: str) -> None:
        self._client.cookies.set(name, value)

    def clear_cookies(self) -> None:
        """Lose every cookie, as a phone closing the browser loses its session cookie."""
        self._client.cookies.clear()

    def close(self) -> None:
        self._runner.run(self._client.aclose())
        self._runner.close()


@contextmanager
def web_client(
    app: FastAPI, base_url: str = "http://testserver", *, raise_app_exceptions: bool = True
) -> Iterator[WebClient]:
    client = WebClient(app, base_url, raise_app_exceptions=raise_app_exceptions)
    try:
        yield client
    finally:
        client.close()
