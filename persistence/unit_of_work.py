"""DynamoDB implementation of the UnitOfWork port: staged writes land in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from domain.event_cursors import STREAM_SHARDS
from domain.events import DomainEvent
from domain.ports import UnitOfWork
from persistence.event_outbox import DEFAULT_RETENTION
from persistence.schema import TableNames
from persistence.transaction import StagedWrite, apply_writes, utc_now
from persistence.user_repository import DynamoUserRepository

log = logging.getLogger(__name__)

CommittedListener = Callable[[Sequence[DomainEvent]], None]


class DynamoUnitOfWork(UnitOfWork):
    """One atomic change to the users, email-guard and events tables; cheap, so make one per
    request.

    The domain events of the users written land in the same TransactWriteItems (the outbox):
    their RecordedAt is ``clock()`` at commit, they expire ``events_retention`` later, and each
    day's go to ``events_stream_shards`` shards of the stream index (by user).
    ``on_committed`` hears of the events of every commit that landed, after the fact.
    """

    def __init__(
        self,
        client: Any,
        tables: TableNames,
        *,
        clock: Callable[[], datetime] = utc_now,
        events_retention: timedelta = DEFAULT_RETENTION,
        events_stream_shards: int = STREAM_SHARDS,
        on_committed: CommittedListener | None = None,
    ) -> None:
        self._client = client
        self._clock = clock
        self._on_committed = on_committed
        self._staged: list[StagedWrite] = []
        self.users = DynamoUserRepository(
            client,
            tables,
            self._staged,
            events_retention=events_retention,
            events_stream_shards=events_stream_shards,
        )

    async def commit(self) -> None:
        # On failure the writes stay staged (leaving the context drops them); no version moves,
        # and the users keep their pending events.
        landed = await apply_writes(self._client, self._staged, clock=self._clock)
        self._staged.clear()
        if self._on_committed is not None:
            try:
                self._on_committed(landed)
            except Exception:  # a listener (metrics) must not turn a landed write into an error
                log.exception("the listener of committed events failed")

    async def rollback(self) -> None:
        self._staged.clear()
