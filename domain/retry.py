"""Re-running a read-modify-write when another writer changed the user in between."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from domain.errors import VersionConflict

T = TypeVar("T")

# Writes that carry no caller-supplied version (sign-in bookkeeping, sessions, admin switches)
# are re-read and re-applied this many times before the conflict reaches the caller as ABORTED.
ATTEMPTS = 5


async def retry_on_conflict(attempt: Callable[[int], Awaitable[T]], attempts: int = ATTEMPTS) -> T:
    """Run ``attempt(0)``, ``attempt(1)``, ... until one commits without a VersionConflict."""
    for number in range(attempts):
        try:
            return await attempt(number)
        except VersionConflict:
            if number == attempts - 1:
                raise
    raise AssertionError("unreachable")
