"""The caller's deadline, carried to the DynamoDB client: no request starts after it has passed.

The server sets it per RPC (``deadline_in``); the client's ``before-send`` hook
(``refuse_after_deadline``) checks it before every HTTP request, botocore's own retry attempts
included. A request already sent when the deadline passes is not recalled: DynamoDB may still
apply it (see the README's "Reliability" section).

The same hook enforces the commit window of domain events (``commit_window``): a transaction
that carries events is never sent more than EVENT_COMMIT_WINDOW_SECONDS after the RecordedAt
written into them. WatchEvents (server.event_stream) delivers an event only once its RecordedAt
is older than a settle delay (5 s by default), reading the stream in RecordedAt order; an event
that landed later than that behind its RecordedAt could be passed over by a reader already
beyond it. So the window, plus DynamoDB's time to apply a transaction and the index to catch up,
must stay under the settle delay; a send that would break it is refused (StorageUnavailable,
so UNAVAILABLE: the caller retries, with a fresh RecordedAt).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from domain.errors import DeadlineExceeded, StorageUnavailable

# The longest a TransactWriteItems carrying events may be sent after the RecordedAt of its events.
EVENT_COMMIT_WINDOW_SECONDS = 2.0

# time.monotonic() after which no request may start; None: no deadline (start-up, health checks,
# work spawned to run after the reply).
_deadline: ContextVar[float | None] = ContextVar("dynamodb_deadline", default=None)


@dataclass(frozen=True)
class _CommitWindow:
    # Measured on both clocks: the wall clock is the one RecordedAt and the readers' settle delay
    # use; the monotonic one still counts when the wall clock is stepped back.
    clock: Callable[[], datetime]
    closes_at: datetime
    closes_at_monotonic: float
    seconds: float


_commit_window: ContextVar[_CommitWindow | None] = ContextVar("event_commit_window", default=None)


@contextmanager
def deadline_in(seconds: float | None) -> Iterator[None]:
    """Within the block, refuse DynamoDB requests that would start ``seconds`` from now or later."""
    token = _deadline.set(None if seconds is None else time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


@contextmanager
def commit_window(
    recorded_at: datetime,
    clock: Callable[[], datetime],
    seconds: float = EVENT_COMMIT_WINDOW_SECONDS,
) -> Iterator[None]:
    """Within the block, refuse DynamoDB requests sent ``seconds`` or more after ``recorded_at``
    (by ``clock``, the one that gave ``recorded_at``, or by the monotonic clock from now)."""
    window = _CommitWindow(
        clock, recorded_at + timedelta(seconds=seconds), time.monotonic() + seconds, seconds
    )
    token = _commit_window.set(window)
    try:
        yield
    finally:
        _commit_window.reset(token)


def clear_deadline() -> None:
    """Drop the deadline of the current context (for work that outlives the request)."""
    _deadline.set(None)


def refuse_after_deadline(event_name: str = "", **_: Any) -> None:
    """botocore ``before-send`` handler: raise DeadlineExceeded once the deadline has passed,
    and StorageUnavailable once the commit window of the events being sent has closed.

    botocore does not retry this error (it is neither a transport error nor a throttle), so it
    reaches the use case as it is, and the RPC ends with DEADLINE_EXCEEDED.
    """
    operation = event_name.rpartition(".")[2] or "request"
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() >= deadline:
        raise DeadlineExceeded(f"the deadline passed before DynamoDB {operation} could start")
    window = _commit_window.get()
    if window is not None and (
        time.monotonic() >= window.closes_at_monotonic or window.clock() >= window.closes_at
    ):
        # Not sent: nothing of it can land. The use case's caller may retry at once.
        raise StorageUnavailable(
            f"DynamoDB {operation} could not be sent within {window.seconds:g} s of recording "
            "its events; retry"
        )
