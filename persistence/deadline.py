"""The caller's deadline, carried to the DynamoDB client: no request starts after it has passed.

The server sets it per RPC (``deadline_in``); the client's ``before-send`` hook
(``refuse_after_deadline``) checks it before every HTTP request, botocore's own retry attempts
included. A request already sent when the deadline passes is not recalled: DynamoDB may still
apply it (see the README's "Reliability" section).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from domain.errors import DeadlineExceeded

# time.monotonic() after which no request may start; None: no deadline (start-up, health checks,
# work spawned to run after the reply).
_deadline: ContextVar[float | None] = ContextVar("dynamodb_deadline", default=None)


@contextmanager
def deadline_in(seconds: float | None) -> Iterator[None]:
    """Within the block, refuse DynamoDB requests that would start ``seconds`` from now or later."""
    token = _deadline.set(None if seconds is None else time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def clear_deadline() -> None:
    """Drop the deadline of the current context (for work that outlives the request)."""
    _deadline.set(None)


def refuse_after_deadline(event_name: str = "", **_: Any) -> None:
    """botocore ``before-send`` handler: raise DeadlineExceeded once the deadline has passed.

    botocore does not retry this error (it is neither a transport error nor a throttle), so it
    reaches the use case as it is, and the RPC ends with DEADLINE_EXCEEDED.
    """
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() >= deadline:
        operation = event_name.rpartition(".")[2] or "request"
        raise DeadlineExceeded(f"the deadline passed before DynamoDB {operation} could start")
