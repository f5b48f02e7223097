"""The service collects once at start, then keeps what lives out of later full collections."""

from __future__ import annotations

import gc
import weakref

from app.serve import settle_heap


class _Cycle:
    itself: _Cycle | None = None


def test_garbage_is_collected_first_and_what_lives_is_frozen() -> None:
    garbage = _Cycle()
    garbage.itself = garbage
    gone = weakref.ref(garbage)
    del garbage
    alive = _Cycle()
    gc.disable()  # no automatic pass between here and the call may do the work for it
    try:
        settle_heap()
        assert gone() is None, "cyclic garbage made before the start was not collected"
        frozen = gc.get_freeze_count()
        assert frozen > 0
        # What lives now is out of reach of the passes that follow.
        gc.collect()
        assert gc.get_freeze_count() == frozen
        assert alive.itself is None
    finally:
        gc.unfreeze()
        gc.enable()
