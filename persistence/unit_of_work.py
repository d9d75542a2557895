"""DynamoDB implementation of the UnitOfWork port: staged writes land in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from domain.event_cursors import STREAM_SHARDS
from domain.events import DomainEvent
from domain.policies import SessionPolicy
from domain.ports import UnitOfWork
from persistence.event_outbox import DEFAULT_RETENTION
from persistence.legacy_sessions import LegacySessions
from persistence.schema import TableNames
from persistence.session_repository import DynamoSessionRepository
from persistence.transaction import StagedWrite, apply_writes, utc_now
from persistence.user_repository import DynamoUserRepository

log = logging.getLogger(__name__)

# The session policy's default; the server passes the configured one (ExpireAt of a session).
_DEFAULT_IDLE_LIFETIME = SessionPolicy.idle_lifetime
CommittedListener = Callable[[Sequence[DomainEvent]], None]


class DynamoUnitOfWork(UnitOfWork):
    """One atomic change to the users, email-guard, events and sessions tables; cheap, so make
    one per request.

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
        session_idle_lifetime: timedelta = _DEFAULT_IDLE_LIFETIME,
    ) -> None:
        self._client = client
        self._clock = clock
        self._on_committed = on_committed
        self._staged: list[StagedWrite] = []
        self._legacy = LegacySessions()
        self.users = DynamoUserRepository(
            client,
            tables,
            self._staged,
            events_retention=events_retention,
            events_stream_shards=events_stream_shards,
            legacy_sessions=self._legacy,
        )
        self._sessions = DynamoSessionRepository(
            client, tables, self._staged, self._legacy, idle_lifetime=session_idle_lifetime
        )
        self.sessions = self._sessions

    async def commit(self) -> None:
        await self._move_legacy_sessions()
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

    async def _move_legacy_sessions(self) -> None:
        """Users of schema version 2 written now (or whose embedded sessions a session write
        took) get their remaining sessions put as items in this same transaction."""
        for user, written, alive in self._legacy.to_move():
            if not written:
                await self.users.update(user)
            self._sessions.stage_moved(user, alive)
            moved = partial(self._legacy.moved, user.id.value)
            self._staged.append(StagedWrite(items=[], checks=[], on_success=moved))
