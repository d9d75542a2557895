"""serve() freezes what start-up left alive, after collecting start-up's garbage."""

from __future__ import annotations

import gc
import weakref

from server.app import freeze_startup_objects


class _Cycle:
    def __init__(self) -> None:
        self.itself = self


def test_start_up_garbage_is_collected_and_the_living_objects_frozen() -> None:
    garbage, alive = _Cycle(), _Cycle()
    garbage_ref = weakref.ref(garbage)
    del garbage
    try:
        frozen = freeze_startup_objects()

        assert garbage_ref() is None  # collected, not frozen for ever
        assert frozen == gc.get_freeze_count() > 0
        assert not any(obj is alive for obj in gc.get_objects())  # out of the collector's sight
    finally:
        gc.unfreeze()
    assert any(obj is alive for obj in gc.get_objects())
