"""The directory as last read, for Slack's 3-second answers (`DirectoryCache`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.slack_learner_views import Place
from bot.slack_learners import DirectoryCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def place(name: str) -> Place:
    return Place(key=name.lower(), name=name, departments=())


def test_read_once_then_served_from_memory_until_it_is_a_minute_old() -> None:
    clock = Clock()
    reads: list[str] = []
    later: list[Callable[[], None]] = []

    def load() -> list[Place]:
        reads.append("read")
        return [place(f"Trust {len(reads)}")]

    cache = DirectoryCache(load, refresh_in=later.append, fresh_seconds=60, monotonic=clock)
    assert [p.name for p in cache.places()] == ["Trust 1"]
    clock.now += 59
    assert [p.name for p in cache.places()] == ["Trust 1"]
    assert reads == ["read"] and later == []

    # Stale: still answered at once with what was read, and read again in the background, once.
    clock.now += 2
    assert [p.name for p in cache.places()] == ["Trust 1"]
    assert [p.name for p in cache.places()] == ["Trust 1"]
    assert len(later) == 1 and reads == ["read"]
    later.pop()()
    assert [p.name for p in cache.places()] == ["Trust 2"]
    assert later == []


def test_a_failed_reading_keeps_what_was_there_and_is_tried_again() -> None:
    clock = Clock()
    later: list[Callable[[], None]] = []
    answers: list[list[Place] | Exception] = [[place("Trust A")], RuntimeError("locked")]

    def load() -> list[Place]:
        answer = answers.pop(0) if answers else [place("Trust B")]
        if isinstance(answer, Exception):
            raise answer
        return answer

    cache = DirectoryCache(load, refresh_in=later.append, fresh_seconds=60, monotonic=clock)
    cache.places()
    clock.now += 61
    cache.places()
    later.pop()()  # fails, quietly
    assert [p.name for p in cache.places()] == ["Trust A"]
    later.pop()()  # the next use asked again
    assert [p.name for p in cache.places()] == ["Trust B"]


def test_the_first_use_waits_for_the_database_and_says_when_it_fails() -> None:
    def load() -> list[Place]:
        raise RuntimeError("no database")

    cache = DirectoryCache(load, refresh_in=lambda work: None)
    with pytest.raises(RuntimeError):
        cache.places()
