"""Sending a data-tool write again, after a bounded pause, while a concurrent write refuses it.

On real DynamoDB a write meets the service's own writes: a PutItem on an item with a transaction
in flight fails with TransactionConflictException, and a TransactWriteItems touching such an item
is cancelled with TransactionConflict (throttling may cancel one too). botocore retries none of
these, and nothing was written, so the same request is sent again after a jittered pause that
doubles, up to a cap; only after ATTEMPTS does the command stop, saying to run it again.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from domain.errors import StorageUnavailable
from persistence.errors import is_conflict, is_throttled_cancellation

T = TypeVar("T")

ATTEMPTS = 8
BASE_SECONDS = 0.05
MAX_PAUSE_SECONDS = 2.0  # at most about 7 s of pauses for one item in all

Sleep = Callable[[float], Awaitable[None]]


def pause_before(attempt: int) -> float:
    """The pause before attempt ``attempt + 1``: drawn from [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(MAX_PAUSE_SECONDS, BASE_SECONDS * 2**attempt))


async def retrying_conflicts(
    send: Callable[[], Awaitable[T]], what: str, sleep: Sleep = asyncio.sleep
) -> T:
    """``send()``, again while a concurrent write (or throttling) refuses it; other errors raise."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await send()
        except (ClientError, BotoCoreError) as error:
            if not (is_conflict(error) or is_throttled_cancellation(error)):
                raise
            if attempt == ATTEMPTS:
                raise StorageUnavailable(
                    f"{what} kept meeting concurrent writes ({ATTEMPTS} attempts); run it again"
                ) from error
            await sleep(pause_before(attempt))
    raise AssertionError("unreachable")
