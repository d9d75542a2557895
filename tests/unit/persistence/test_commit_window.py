"""The before-send hook refuses a request sent after its events' commit window, on either clock."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from domain.errors import DeadlineExceeded, StorageUnavailable
from persistence.deadline import (
    EVENT_COMMIT_WINDOW_SECONDS,
    commit_window,
    deadline_in,
    refuse_after_deadline,
)
from tests.builders import T0
from tests.fakes import FixedClock

SEND = "before-send.dynamodb.TransactWriteItems"


def test_a_send_within_the_window_goes_ahead() -> None:
    clock = FixedClock(T0)
    with commit_window(T0, clock):
        clock.now = T0 + timedelta(seconds=1.9)
        refuse_after_deadline(SEND)


def test_a_send_once_the_wall_clock_passed_the_window_is_refused() -> None:
    clock = FixedClock(T0)
    with commit_window(T0, clock):
        clock.now = T0 + timedelta(seconds=EVENT_COMMIT_WINDOW_SECONDS)
        with pytest.raises(StorageUnavailable, match="TransactWriteItems could not be sent within"):
            refuse_after_deadline(SEND)


def test_a_send_after_the_window_in_real_time_is_refused_though_the_clock_stood_still() -> None:
    clock = FixedClock(T0)  # a wall clock stepped back would look like this
    with commit_window(T0, clock, seconds=0.05):
        time.sleep(0.2)
        with pytest.raises(StorageUnavailable):
            refuse_after_deadline(SEND)


def test_outside_the_window_block_nothing_is_refused() -> None:
    clock = FixedClock(T0)
    with commit_window(T0, clock):
        pass
    clock.now = T0 + timedelta(days=1)
    refuse_after_deadline(SEND)


def test_the_callers_deadline_still_applies_inside_a_window() -> None:
    clock = FixedClock(T0)
    with deadline_in(0.0), commit_window(T0, clock), pytest.raises(DeadlineExceeded):
        refuse_after_deadline(SEND)
