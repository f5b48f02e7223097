"""The access log's time is the time to answer, not the work a response leaves for after."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

import intake.web.security as security
from intake.web.security import AccessLog


class Clock:
    """perf_counter for the middleware, moved on only by the app below."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_logged_time_ends_with_the_answer(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    monkeypatch.setattr(security.time, "perf_counter", clock)
    sent: list[dict[str, Any]] = []

    async def answer_then_work(scope: Any, receive: Any, send: Any) -> None:
        clock.now += 0.003  # answering takes 3 ms
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done", "more_body": False})
        clock.now += 10.0  # then a background task, as Starlette runs them, takes 10 s

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/staff/sign-in", "headers": []}
    with caplog.at_level(logging.INFO, logger="concerns.web"):
        asyncio.run(AccessLog(answer_then_work)(scope, receive, send))

    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
    assert [record.getMessage() for record in caplog.records] == ["POST (no route) 200 3ms"]
