"""Conflicting writes are re-applied after a growing, jittered pause; stale versions never are."""

from __future__ import annotations

import pytest

from domain.errors import StaleVersion, VersionConflict
from domain.use_cases.retry import ATTEMPTS, BACKOFF_SECONDS, retry_on_conflict


class Pauses:
    """Records the pauses asked for instead of sleeping."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


async def test_a_conflict_is_retried_after_a_pause_that_may_grow_with_each_attempt() -> None:
    pauses = Pauses()
    calls: list[int] = []

    async def attempt(number: int) -> str:
        calls.append(number)
        if number < 3:
            raise VersionConflict(expected=1)
        return "landed"

    assert await retry_on_conflict(attempt, sleep=pauses) == "landed"
    assert calls == [0, 1, 2, 3]
    assert len(pauses.seconds) == 3
    for number, pause in enumerate(pauses.seconds):
        assert 0 <= pause <= BACKOFF_SECONDS * 2**number


async def test_the_last_conflict_reaches_the_caller_without_a_final_pause() -> None:
    pauses = Pauses()

    async def attempt(number: int) -> None:
        raise VersionConflict(expected=number)

    with pytest.raises(VersionConflict) as conflict:
        await retry_on_conflict(attempt, sleep=pauses)
    assert conflict.value.expected == ATTEMPTS - 1, "the last attempt's conflict"
    assert len(pauses.seconds) == ATTEMPTS - 1


async def test_a_stale_expected_version_is_never_retried() -> None:
    pauses = Pauses()

    async def attempt(number: int) -> None:
        raise StaleVersion(expected=3, actual=4)

    with pytest.raises(StaleVersion):
        await retry_on_conflict(attempt, sleep=pauses)
    assert pauses.seconds == []
