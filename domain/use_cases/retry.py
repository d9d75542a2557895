"""Re-running a read-modify-write when another writer changed the user in between."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from domain.errors import StaleVersion, VersionConflict

T = TypeVar("T")

# A write that lost to another one on the same user is re-read and re-applied this many times
# before the conflict reaches the caller as ABORTED. A StaleVersion (the caller's own
# expected_version is out of date) is never retried.
ATTEMPTS = 5
# Before attempt n + 1, a pause drawn from [0, BACKOFF_SECONDS * 2**n]: writers that collided
# spread out instead of colliding again at once (without it, of 6 sign-ins racing on one user,
# 5 ended ABORTED). At most 10 + 20 + 40 + 80 ms in all.
BACKOFF_SECONDS = 0.01

Sleep = Callable[[float], Awaitable[None]]


async def retry_on_conflict(
    attempt: Callable[[int], Awaitable[T]], attempts: int = ATTEMPTS, sleep: Sleep = asyncio.sleep
) -> T:
    """Run ``attempt(0)``, ``attempt(1)``, ... until one commits without a VersionConflict."""
    for number in range(attempts):
        try:
            return await attempt(number)
        except VersionConflict as conflict:
            if isinstance(conflict, StaleVersion) or number == attempts - 1:
                raise
        await sleep(random.uniform(0, BACKOFF_SECONDS * 2**number))
    raise AssertionError("unreachable")
