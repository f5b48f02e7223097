"""The service collects once at start, then keeps what lives out of later full collections."""

from __future__ import annotations

import gc
import weakref

from app.serve import settle_heap


class _Cycle:
    itself: _Cycle | None = None


def test_garbage_is_collected_first_and_what_lives_is_frozen() -> None:
    gc.disable()  # no automatic pass before the call may do its work for it
    try:
        garbage = _Cycle()
        garbage.itself = garbage
        gone = weakref.ref(garbage)
        del garbage
        alive = _Cycle()
        settle_heap()
        assert gone() is None, "cyclic garbage made before the start was not collected"
        assert gc.get_freeze_count() > 0
        # What lives is out of the collector's reach: frozen objects are not tracked by it.
        assert not any(tracked is alive for tracked in gc.get_objects())
    finally:
        gc.unfreeze()
        gc.enable()
        # Unfrozen, the whole heap counts as new to the oldest generation, and the collector
        # would soon walk all of it (a second or more here): let that pass happen now, in this
        # test, not in whichever test this process runs next.
        gc.collect()
