"""Staged writes of a unit of work, applied as one all-or-nothing TransactWriteItems, or as one
conditional PutItem when that is all they are (persistence.single_write)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from domain.errors import StorageError
from domain.events import DomainEvent
from persistence.deadline import commit_window
from persistence.errors import WriteCheck, is_throttled_cancellation, transaction_error
from persistence.event_outbox import PendingEvents
from persistence.single_write import put_alone

log = logging.getLogger(__name__)

# A transaction cancelled by throttling alone is sent again as is, a few times, before giving up.
# One cancelled by a concurrent write (TransactionConflict) is not: it becomes a ConcurrentWrite
# at once, and the use case re-reads the user and re-applies its change (retry.py), the one
# layer that retries conflicts, so attempts do not multiply (4 here times 5 there).
THROTTLED_ATTEMPTS = 4
_BACKOFF_SECONDS = 0.025
# DynamoDB's limit on the items of one TransactWriteItems. The largest write the service makes
# ends every session of a user (at most 50, the highest max_sessions_per_user) with one event
# each, besides the user item, its guards and one or two other events: about 55 items.
MAX_TRANSACTION_ITEMS = 100


@dataclass
class StagedWrite:
    """The transaction items of one repository write, their conditions, and what follows success.

    ``events``: the domain events recorded with the write; their items are made at commit,
    when their RecordedAt is known, and follow ``items`` in the transaction.
    """

    items: list[dict[str, Any]]
    checks: list[WriteCheck]
    on_success: Callable[[], None] | None = None
    events: PendingEvents | None = None


def new_request_token() -> str:
    """A fresh ClientRequestToken (DynamoDB allows 1 to 36 characters)."""
    return str(uuid.uuid4())


def utc_now() -> datetime:
    return datetime.now(UTC)


async def apply_writes(
    client: Any, staged: Sequence[StagedWrite], *, clock: Callable[[], datetime] = utc_now
) -> list[DomainEvent]:
    """Apply all staged writes in one TransactWriteItems, or none and raise the domain error.

    Returns the domain events that landed with them, in order. Their RecordedAt is ``clock()``
    at each attempt, and the attempt is never sent later than the commit window after it
    (persistence.deadline), botocore's own retries included.
    """
    events = [event for write in staged if write.events for event in write.events.events]
    if not any(write.items or write.events for write in staged):
        return events
    single = _single_put(staged)
    if single is not None:
        await put_alone(client, *single)
        _landed(staged)
        return events
    for attempt in range(1, THROTTLED_ATTEMPTS + 1):
        recorded_at = clock()
        items, checks = _transaction(staged, recorded_at)
        # The idempotency token: botocore re-sends this same body when it retries the call (after
        # a timeout or a lost response), and DynamoDB applies a token's transaction at most once
        # within 10 minutes, so those retries cannot apply it twice nor conflict with themselves.
        # A new attempt here follows a definite cancellation, so it gets a new token (and a new
        # RecordedAt, with a new commit window).
        # moto ignores the token (it does not deduplicate); the tests check what is sent.
        window = commit_window(recorded_at, clock) if events else contextlib.nullcontext()
        try:
            with window:
                await client.transact_write_items(
                    TransactItems=items, ClientRequestToken=new_request_token()
                )
            break
        except (ClientError, BotoCoreError) as error:
            if attempt < THROTTLED_ATTEMPTS and is_throttled_cancellation(error):
                log.info("transaction cancelled by throttling (attempt %s); retrying", attempt)
                await asyncio.sleep(random.uniform(0, _BACKOFF_SECONDS * 2**attempt))
                continue
            raise transaction_error(error, checks) from error
    _landed(staged)
    return events


def _landed(staged: Sequence[StagedWrite]) -> None:
    for write in staged:
        if write.on_success is not None:
            write.on_success()


def _single_put(staged: Sequence[StagedWrite]) -> tuple[dict[str, Any], WriteCheck] | None:
    """The one conditional Put of a commit that records no event and writes one item, if so."""
    if any(write.events for write in staged):
        return None
    items = [
        (item, check)
        for write in staged
        for item, check in zip(write.items, write.checks, strict=True)
    ]
    if len(items) != 1 or "Put" not in items[0][0]:
        return None
    return items[0][0]["Put"], items[0][1]


def _transaction(
    staged: Sequence[StagedWrite], recorded_at: datetime
) -> tuple[list[dict[str, Any]], list[WriteCheck]]:
    items: list[dict[str, Any]] = []
    checks: list[WriteCheck] = []
    for write in staged:
        items += write.items
        checks += write.checks
        if write.events is not None:
            items += write.events.items(recorded_at)
            checks += write.events.checks()
    if len(items) > MAX_TRANSACTION_ITEMS:
        raise StorageError(
            f"a write of {len(items)} items exceeds DynamoDB's {MAX_TRANSACTION_ITEMS} per "
            "transaction; nothing was written"
        )
    return items, checks
