"""The access log's time is the time to answer, not the work a response leaves for after."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import pytest

from intake.web.security import AccessLog

BACKGROUND_SECONDS = 0.5


async def _answer_then_work(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"done", "more_body": False})
    await asyncio.sleep(BACKGROUND_SECONDS)  # a background task, as Starlette runs them


def test_the_logged_time_ends_with_the_answer(caplog: pytest.LogCaptureFixture) -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/staff/sign-in", "headers": []}
    with caplog.at_level(logging.INFO, logger="concerns.web"):
        asyncio.run(AccessLog(_answer_then_work)(scope, receive, send))

    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
    [line] = [record.getMessage() for record in caplog.records]
    found = re.fullmatch(r"POST \(no route\) 200 (\d+)ms", line)
    assert found, line
    assert int(found.group(1)) < BACKGROUND_SECONDS * 1000 / 2
