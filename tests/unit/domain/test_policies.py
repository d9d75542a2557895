"""The lock-out policy's growing delays: none before the threshold, then 1 s, 2 s, 4 s, ... up to
the cap."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.policies import LockoutPolicy

POLICY = LockoutPolicy()  # 5 failures, 15 minutes at most


@pytest.mark.parametrize("failures", [0, 1, 4])
def test_fewer_failures_than_the_threshold_delay_nothing(failures: int) -> None:
    assert POLICY.delay_after(failures) is None


@pytest.mark.parametrize(
    ("failures", "seconds"), [(5, 1), (6, 2), (7, 4), (8, 8), (10, 32), (14, 512)]
)
def test_from_the_threshold_on_each_failure_doubles_the_delay(failures: int, seconds: int) -> None:
    assert POLICY.delay_after(failures) == timedelta(seconds=seconds)


@pytest.mark.parametrize("failures", [15, 16, 100, 10**6])
def test_the_delay_stops_growing_at_the_cap(failures: int) -> None:
    assert POLICY.delay_after(failures) == timedelta(minutes=15)


def test_threshold_and_cap_are_the_policy_s_own() -> None:
    policy = LockoutPolicy(max_failures=3, max_delay=timedelta(seconds=5))

    delays = [policy.delay_after(n) for n in range(2, 8)]

    assert delays == [None, *(timedelta(seconds=s) for s in (1, 2, 4, 5, 5))]
