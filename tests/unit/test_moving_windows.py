"""The in-memory moving windows behind the learner pages' rate limits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intake.web.security import MovingWindows, RateLimited, RateLimitRules, RateLimits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_window_refuses_once_full_and_says_how_long_to_wait() -> None:
    clock = Clock()
    windows = MovingWindows(monotonic=clock)
    for _ in range(3):
        assert windows.hit(("submissions", "a"), allowed=3, window=600) is None
        clock.now += 10
    # The oldest attempt was 30 s ago: it leaves the window in 570 s.
    assert windows.hit(("submissions", "a"), allowed=3, window=600) == 570
    clock.now += 569
    assert windows.hit(("submissions", "a"), allowed=3, window=600) is not None
    clock.now += 1
    assert windows.hit(("submissions", "a"), allowed=3, window=600) is None


def test_the_window_moves_rather_than_resetting_on_a_boundary() -> None:
    clock = Clock()
    windows = MovingWindows(monotonic=clock)
    clock.now = 599.0  # just before a fixed ten-minute window would reset
    for _ in range(2):
        assert windows.hit(("k",), allowed=2, window=600) is None
    clock.now = 601.0
    assert windows.hit(("k",), allowed=2, window=600) is not None


def test_a_rule_of_none_allowed_refuses_every_attempt() -> None:
    windows = MovingWindows(monotonic=Clock())
    assert windows.hit(("submissions", "a"), allowed=0, window=600) == 600
    limits = RateLimits("k" * 64, RateLimitRules(submissions="0/10 minutes"), windows=windows)
    with pytest.raises(RateLimited) as refused:
        limits.hit("submissions", "client")
    assert refused.value.retry_after_seconds == 601


def test_keys_count_apart() -> None:
    windows = MovingWindows(monotonic=Clock())
    assert windows.hit(("status_lookups", "a"), allowed=1, window=60) is None
    assert windows.hit(("status_lookups", "b"), allowed=1, window=60) is None
    assert windows.hit(("status_lookups", "a"), allowed=1, window=60) is not None


def test_keys_gone_quiet_are_swept_out() -> None:
    clock = Clock()
    windows = MovingWindows(monotonic=clock, sweep_seconds=60)
    for client in range(100):
        windows.hit(("submissions", str(client)), allowed=5, window=30)
    windows.hit(("sign_ins", "long"), allowed=5, window=900)
    assert windows.keys() == 101
    clock.now += 61
    windows.hit(("submissions", "new"), allowed=5, window=30)
    # The 30-second windows are over; the 15-minute one and the new key stay.
    assert windows.keys() == 2
    assert windows.hit(("sign_ins", "long"), allowed=1, window=900) is not None


def test_reset_forgets_every_window() -> None:
    windows = MovingWindows(monotonic=Clock())
    windows.hit(("k",), allowed=1, window=60)
    windows.reset()
    assert windows.hit(("k",), allowed=1, window=60) is None


def test_rate_limits_use_the_rules_notation_and_give_retry_after() -> None:
    clock = Clock()
    limits = RateLimits(
        "k" * 64,
        RateLimitRules(submissions="2/10 minutes"),
        windows=MovingWindows(monotonic=clock),
    )
    limits.hit("submissions", "client")
    clock.now += 100
    limits.hit("submissions", "client")
    try:
        limits.hit("submissions", "client")
    except RateLimited as refused:
        assert refused.status_code == 429
        assert refused.retry_after_seconds == 501  # 500 s left, rounded up
    else:
        raise AssertionError("the third submission in ten minutes was allowed")


@given(
    attempts=st.lists(
        st.tuples(st.floats(min_value=0, max_value=40), st.sampled_from(["a", "b", "c"])),
        max_size=60,
    ),
    allowed=st.integers(min_value=1, max_value=4),
)
def test_an_attempt_is_allowed_exactly_when_fewer_than_allowed_were_allowed_in_the_window(
    attempts: list[tuple[float, str]], allowed: int
) -> None:
    window = 30.0
    clock = Clock()
    windows = MovingWindows(monotonic=clock, sweep_seconds=45)
    counted: dict[str, list[float]] = {}
    for gap, key in attempts:
        clock.now += gap
        earlier = [at for at in counted.get(key, []) if at > clock.now - window]
        expected_allowed = len(earlier) < allowed
        assert (windows.hit((key,), allowed=allowed, window=window) is None) == expected_allowed
        if expected_allowed:
            counted.setdefault(key, []).append(clock.now)
