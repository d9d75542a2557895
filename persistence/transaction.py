"""Staged writes of a unit of work, applied as one all-or-nothing TransactWriteItems."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from persistence.errors import WriteCheck, is_transient_cancellation, transaction_error

log = logging.getLogger(__name__)

# Real DynamoDB cancels a transaction that meets another one on the same item (TransactionConflict)
# instead of waiting; such a cancellation, or throttling, is retried a few times before giving up.
CONFLICT_ATTEMPTS = 4
_BACKOFF_SECONDS = 0.025


@dataclass
class StagedWrite:
    """The transaction items of one repository write, their conditions, and what follows success."""

    items: list[dict[str, Any]]
    checks: list[WriteCheck]
    on_success: Callable[[], None] | None = None


def new_request_token() -> str:
    """A fresh ClientRequestToken (DynamoDB allows 1 to 36 characters)."""
    return str(uuid.uuid4())


async def apply_writes(client: Any, staged: Sequence[StagedWrite]) -> None:
    """Apply all staged writes in one TransactWriteItems, or none and raise the domain error."""
    items = [item for write in staged for item in write.items]
    checks = [check for write in staged for check in write.checks]
    if not items:
        return
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        # The idempotency token: botocore re-sends this same body when it retries the call (after
        # a timeout or a lost response), and DynamoDB applies a token's transaction at most once
        # within 10 minutes, so those retries cannot apply it twice nor conflict with themselves.
        # A new attempt here follows a definite cancellation, so it gets a new token.
        # moto ignores the token (it does not deduplicate); the tests check what is sent.
        try:
            await client.transact_write_items(
                TransactItems=items, ClientRequestToken=new_request_token()
            )
            break
        except (ClientError, BotoCoreError) as error:
            if attempt < CONFLICT_ATTEMPTS and is_transient_cancellation(error):
                log.info("transaction collided with another write (attempt %s); retrying", attempt)
                await asyncio.sleep(random.uniform(0, _BACKOFF_SECONDS * 2**attempt))
                continue
            raise transaction_error(error, checks) from error
    for write in staged:
        if write.on_success is not None:
            write.on_success()
