"""Anonymous learners' one-time codes: Argon2 runs a few at a time, whatever the threads."""

from __future__ import annotations

import threading
import time

import pytest

from intake import follow_up
from intake.follow_up import ARGON2_AT_ONCE, Candidate, hash_code, verify_follow_up


class HeldHasher:
    """Stands in for Argon2: each call holds its turn until released, counting who runs."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()
        self.release = threading.Event()

    def _run(self) -> None:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        self.release.wait(10)
        with self.lock:
            self.running -= 1

    def verify(self, _hash: str, _code: str) -> bool:
        self._run()
        return False

    def hash(self, _code: str) -> str:
        self._run()
        return "$argon2id$held"


def test_at_most_a_few_codes_are_checked_or_hashed_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    held = HeldHasher()
    monkeypatch.setattr(follow_up, "_HASHER", held)
    candidate = Candidate(reference="LC-2026-000001", code_hash="$argon2id$stored")
    work = [
        *(lambda: verify_follow_up(candidate, "ABCD-EFGH-JKLM") for _ in range(6)),
        *(lambda: hash_code("ABCD-EFGH-JKLM") for _ in range(4)),
    ]
    threads = [threading.Thread(target=each) for each in work]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while held.running < ARGON2_AT_ONCE and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # time for any thread past the limit to start its check
    assert held.running == held.most == ARGON2_AT_ONCE
    held.release.set()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)
    assert held.running == 0 and held.most == ARGON2_AT_ONCE
