"""An in-memory EventLog answering as the DynamoDB store does, and a fake clock moved by sleep."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta

from domain.event_cursors import stream_key, stream_partition, stream_partition_of
from domain.events import DomainEvent, RecordedEvent, UserRegistered
from domain.values import UserId


class InMemoryEventLog:
    """Recorded events in memory; ``stream_events`` answers as the EventStream index does (by
    day and shard partition, in cursor order), counting its reads and checking their limits."""

    # The shards writers spread each day over (USER_SERVICE_EVENTS_STREAM_SHARDS), unless told.
    default_stream_shards = 1

    def __init__(self, *, max_limit: int = 1000, stream_shards: int | None = None) -> None:
        self.events: list[RecordedEvent] = []
        self.stream_reads = 0  # Queries of the stream index: one per shard of a day read
        self.max_limit = max_limit
        self.stream_shards = stream_shards or self.default_stream_shards
        self._partitions: dict[tuple[str, int], str] = {}

    def record(
        self,
        event: DomainEvent,
        *,
        recorded_at: datetime,
        sequence: int | None = None,
    ) -> RecordedEvent:
        """Stores ``event`` as its user's next one (or as its ``sequence``), written at
        ``recorded_at`` over ``stream_shards`` shards (change it to change the writers'
        setting); visible from now on (record it late to make its index entry lag)."""
        if sequence is None:
            sequence = 1 + sum(1 for e in self.events if e.event.user_id == event.user_id)
        recorded = RecordedEvent(
            event=event,
            sequence=sequence,
            recorded_at=recorded_at,
            cursor=stream_key(recorded_at, event.user_id, sequence),
        )
        partition = stream_partition_of(recorded_at, event.user_id, self.stream_shards)
        self._partitions[event.user_id, sequence] = partition
        self.events.append(recorded)
        return recorded

    def partition_of(self, event: RecordedEvent) -> str:
        """The EventStream partition key ``event`` was written to."""
        return self._partitions[event.event.user_id, event.sequence]

    async def user_events(
        self, user_id: UserId, *, after_sequence: int, limit: int
    ) -> list[RecordedEvent]:
        assert 1 <= limit <= self.max_limit
        mine = [e for e in self.events if e.event.user_id == user_id.value]
        return sorted((e for e in mine if e.sequence > after_sequence), key=lambda e: e.sequence)[
            :limit
        ]

    async def stream_events(
        self, day: date, *, shard: int, after: str | None, until: datetime, limit: int
    ) -> list[RecordedEvent]:
        assert 1 <= limit <= self.max_limit
        self.stream_reads += 1
        await asyncio.sleep(0)
        found = [
            e
            for e in self.events
            if self.partition_of(e) == stream_partition(day, shard)
            and (after is None or e.cursor > after)
            and e.recorded_at <= until
        ]
        return sorted(found, key=lambda e: e.cursor)[:limit]


def registered(at: datetime, user_id: str | None = None) -> UserRegistered:
    """A UserRegistered event of a new (or the given) user, at ``at``."""
    user = user_id or str(uuid.uuid4())
    return UserRegistered(user, at, email=f"{user[:8]}@example.com", first_name="A", last_name="B")


class Horizon(Exception):
    """The fake time passed the end of the test's scenario."""


class FakeTime:
    """A clock that moves only when slept on; actions planned for a moment run as it passes,
    and sleeping past the horizon raises Horizon, which ends any stream waiting on it."""

    def __init__(self, now: datetime, *, horizon: timedelta = timedelta(minutes=10)) -> None:
        self.now = now
        self.horizon = now + horizon
        self._plans: list[tuple[datetime, Callable[[], object]]] = []

    def __call__(self) -> datetime:
        return self.now

    def at(self, moment: datetime, action: Callable[[], object]) -> None:
        self._plans.append((moment, action))

    async def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        due = sorted((p for p in self._plans if p[0] <= self.now), key=lambda p: p[0])
        for plan in due:
            self._plans.remove(plan)
            plan[1]()
        if self.now > self.horizon:
            raise Horizon()
        await asyncio.sleep(0)
