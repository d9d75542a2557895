"""The event store on a real DynamoDB-compatible server: a user's pages, the stream by day and
shard, and the shards merged."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from domain.event_cursors import STREAM_SHARDS, stream_shard
from domain.events import DomainEvent, ProfileUpdated, RecordedEvent, UserRegistered
from domain.values import UserId
from persistence.event_mapper import event_to_item
from persistence.event_store import DynamoEventStore
from persistence.schema import TableNames
from server.stream_reader import StreamReader

DAY = date(2026, 11, 25)
MIDNIGHT = datetime(2026, 11, 26, tzinfo=UTC)
FAR = MIDNIGHT + timedelta(days=30)


async def put(
    client: Any,
    tables: TableNames,
    event: DomainEvent,
    sequence: int,
    recorded_at: datetime,
    *,
    shards: int = 1,
) -> None:
    item = event_to_item(
        event, sequence=sequence, recorded_at=recorded_at, expires_at=FAR, stream_shards=shards
    )
    await client.put_item(TableName=tables.events, Item=item)


def registered(user: str, at: datetime) -> UserRegistered:
    return UserRegistered(user, at, email="ada@example.com", first_name="Ada", last_name="L")


def renamed(user: str, at: datetime, n: int) -> ProfileUpdated:
    return ProfileUpdated(user, at, first_name=f"Ada {n}", last_name="L")


def sequences(events: list[RecordedEvent]) -> list[int]:
    return [e.sequence for e in events]


async def test_a_users_events_come_in_sequence_order_from_where_the_last_page_ended(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    ada, bob = str(uuid.uuid4()), str(uuid.uuid4())
    at = MIDNIGHT - timedelta(hours=1)
    await put(dynamodb_client, dynamodb_tables, registered(ada, at), 1, at)
    for n in range(2, 8):
        moment = at + timedelta(seconds=n)
        await put(dynamodb_client, dynamodb_tables, renamed(ada, moment, n), n, moment)
    await put(dynamodb_client, dynamodb_tables, registered(bob, at), 1, at)
    store = DynamoEventStore(dynamodb_client, dynamodb_tables)

    first = await store.user_events(UserId(ada), after_sequence=0, limit=3)
    rest = await store.user_events(UserId(ada), after_sequence=3, limit=10)
    nobody = await store.user_events(UserId(str(uuid.uuid4())), after_sequence=0, limit=10)

    assert sequences(first) == [1, 2, 3]
    assert sequences(rest) == [4, 5, 6, 7]
    assert all(e.event.user_id == ada for e in first + rest)
    assert isinstance(first[0].event, UserRegistered)
    assert first[1].event == renamed(ada, at + timedelta(seconds=2), 2)
    assert nobody == []


async def test_the_stream_reads_one_day_partition_in_cursor_order_between_its_bounds(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    users = [str(uuid.uuid4()) for _ in range(4)]
    moments = [
        MIDNIGHT - timedelta(hours=5),
        MIDNIGHT - timedelta(seconds=2),
        MIDNIGHT - timedelta(microseconds=100_000),  # 23:59:59.9: yesterday's partition
        MIDNIGHT + timedelta(microseconds=100_000),  # 00:00:00.1: today's
    ]
    # Written out of order: the index orders them.
    for user, at in reversed(list(zip(users, moments, strict=True))):
        await put(dynamodb_client, dynamodb_tables, registered(user, at), 1, at)
    store = DynamoEventStore(dynamodb_client, dynamodb_tables)

    yesterday = await store.stream_events(DAY, shard=0, after=None, until=FAR, limit=10)
    today = await store.stream_events(
        DAY + timedelta(days=1), shard=0, after=None, until=FAR, limit=10
    )

    assert [e.recorded_at for e in yesterday] == moments[:3]
    assert [e.recorded_at for e in today] == moments[3:]
    assert [e.cursor for e in yesterday] == sorted(e.cursor for e in yesterday)

    after_first = await store.stream_events(
        DAY, shard=0, after=yesterday[0].cursor, until=FAR, limit=10
    )
    assert [e.cursor for e in after_first] == [e.cursor for e in yesterday[1:]]

    settled = await store.stream_events(DAY, shard=0, after=None, until=moments[1], limit=10)
    assert [e.recorded_at for e in settled] == moments[:2], "until takes in its own instant"

    page = await store.stream_events(DAY, shard=0, after=None, until=FAR, limit=2)
    following = await store.stream_events(DAY, shard=0, after=page[-1].cursor, until=FAR, limit=2)
    assert [e.cursor for e in page + following] == [e.cursor for e in yesterday]


async def test_a_cursor_past_the_settled_bound_reads_nothing_rather_than_failing(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    at = MIDNIGHT - timedelta(hours=1)
    await put(dynamodb_client, dynamodb_tables, registered(str(uuid.uuid4()), at), 1, at)
    store = DynamoEventStore(dynamodb_client, dynamodb_tables)
    [event] = await store.stream_events(DAY, shard=0, after=None, until=FAR, limit=10)

    assert (
        await store.stream_events(
            DAY, shard=0, after=event.cursor, until=at - timedelta(1), limit=5
        )
        == []
    )
    assert await store.stream_events(DAY, shard=0, after=event.cursor, until=FAR, limit=5) == []


async def test_each_shard_is_its_own_partition_and_the_reader_merges_them_in_cursor_order(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    users = [str(uuid.uuid4()) for _ in range(24)]
    at = MIDNIGHT - timedelta(hours=2)
    written = []
    for n, user in enumerate(users):
        moment = at + timedelta(seconds=n // 3)  # three users at each moment: ties by user id
        await put(dynamodb_client, dynamodb_tables, registered(user, moment), 1, moment, shards=8)
        written.append((moment, user))
    store = DynamoEventStore(dynamodb_client, dynamodb_tables)

    for shard in range(STREAM_SHARDS):
        found = await store.stream_events(DAY, shard=shard, after=None, until=FAR, limit=50)
        assert {e.event.user_id for e in found} == {
            u for u in users if stream_shard(u, STREAM_SHARDS) == shard
        }
    reader = StreamReader(store, DAY, None, page_size=5)
    merged: list[RecordedEvent] = []
    while True:
        page, more = await reader.read(until=MIDNIGHT)
        merged += page
        if not more:
            break

    assert [(e.recorded_at, e.event.user_id) for e in merged] == sorted(written)
