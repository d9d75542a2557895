"""BatchGetItem with DynamoDB's unprocessed keys asked for again: all the items, or an error."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from domain.errors import StorageUnavailable
from persistence.errors import translated

# BatchGetItem takes at most 100 keys a request.
BATCH_GET_MAX_KEYS = 100
# Keys DynamoDB leaves unprocessed (throttling, or a reply over 16 MB) are asked for again, after
# pauses growing from 50 ms to at most 1 s, each a random part of that; after this many requests
# in all, the read fails (StorageUnavailable) rather than answer for fewer ids.
BATCH_GET_ATTEMPTS = 6
BATCH_GET_FIRST_DELAY = 0.05
BATCH_GET_MAX_DELAY = 1.0

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


async def batch_get_items(
    client: Any,
    table: str,
    keys: list[dict[str, Any]],
    *,
    attempts: int = BATCH_GET_ATTEMPTS,
    sleep: Sleep = asyncio.sleep,
    jitter: Callable[[], float] = random.random,
) -> list[dict[str, Any]]:
    """The items of ``table`` with these keys (at most 100, distinct), read strongly consistent.

    Keys the store leaves unprocessed are asked for again after an exponential backoff with full
    jitter; when some are still unprocessed after ``attempts`` requests, StorageUnavailable.
    """
    request: dict[str, Any] = {table: {"Keys": keys, "ConsistentRead": True}}
    items: list[dict[str, Any]] = []
    for attempt in range(attempts):
        if attempt:
            ceiling = min(BATCH_GET_MAX_DELAY, BATCH_GET_FIRST_DELAY * 2 ** (attempt - 1))
            await sleep(ceiling * jitter())
        with translated("BatchGetItem"):
            response = await client.batch_get_item(RequestItems=request)
        items.extend(response.get("Responses", {}).get(table, []))
        # UnprocessedKeys comes back as a RequestItems map (ConsistentRead kept): ask it again.
        request = response.get("UnprocessedKeys") or {}
        if not request:
            return items
        left = len(request.get(table, {}).get("Keys", []))
        log.warning("DynamoDB BatchGetItem left %d of %d keys unprocessed", left, len(keys))
    raise StorageUnavailable(
        f"DynamoDB BatchGetItem left keys unprocessed after {attempts} attempts; retry later"
    )
