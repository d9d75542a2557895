"""The merge of a day's stream shards: one order across shards, ties, cursors, days, reads."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from domain.event_cursors import STREAM_SHARDS, StreamCursor, stream_end, stream_shard
from domain.events import RecordedEvent
from server.stream_reader import StreamReader
from tests.fake_event_log import InMemoryEventLog, registered

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
DAY = NOW.date()


class CountingLog(InMemoryEventLog):
    """Counts the events each Query returns, to show none is read twice."""

    def __init__(self, **options: int) -> None:
        super().__init__(**options)
        self.events_returned = 0

    async def stream_events(self, *args: object, **kwargs: object) -> list[RecordedEvent]:
        found = await super().stream_events(*args, **kwargs)  # type: ignore[arg-type]
        self.events_returned += len(found)
        return found


def users_on_every_shard(per_shard: int = 2) -> list[str]:
    """User ids, ``per_shard`` of them landing on each of the 8 shards, in a random order."""
    rng = random.Random(14)
    by_shard: dict[int, list[str]] = {shard: [] for shard in range(STREAM_SHARDS)}
    while any(len(users) < per_shard for users in by_shard.values()):
        user = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        by_shard[stream_shard(user, STREAM_SHARDS)].append(user)
    users = [user for users in by_shard.values() for user in users[:per_shard]]
    rng.shuffle(users)
    return users


async def read_all(reader: StreamReader, until: datetime) -> list[RecordedEvent]:
    events: list[RecordedEvent] = []
    while True:
        page, more = await reader.read(until=until)
        events += page
        if not more:
            return events


def record_spread(log: InMemoryEventLog, count: int, *, step_ms: int = 700) -> list[RecordedEvent]:
    users = users_on_every_shard()
    return [
        log.record(registered(at, users[n % len(users)]), recorded_at=at)
        for n in range(count)
        for at in [NOW - timedelta(hours=1) + timedelta(milliseconds=step_ms * n)]
    ]


async def test_events_on_every_shard_come_out_in_one_cursor_order_each_read_once() -> None:
    log = CountingLog(stream_shards=STREAM_SHARDS, max_limit=5)
    events = record_spread(log, 90)
    assert len({log.partition_of(e) for e in events}) == STREAM_SHARDS

    reader = StreamReader(log, DAY, None, page_size=5)
    pages = []
    while True:
        page, more = await reader.read(until=NOW)
        pages.append(page)
        if not more:
            break

    merged = [event for page in pages for event in page]
    assert [e.cursor for e in merged] == sorted(e.cursor for e in events)
    assert all(len(page) <= 5 for page in pages)
    assert log.events_returned == len(events), "no event is read twice"
    assert reader.passed == stream_end(NOW)


async def test_events_recorded_at_the_same_moment_on_different_shards_order_by_user_then_seq() -> (
    None
):
    log = InMemoryEventLog(stream_shards=STREAM_SHARDS)
    users = users_on_every_shard(per_shard=1)
    at = NOW - timedelta(minutes=5)
    tied = [log.record(registered(at, user), recorded_at=at) for user in users]
    tied += [log.record(registered(at, user), recorded_at=at) for user in users[:3]]  # seq 2

    merged = await read_all(StreamReader(log, DAY, None, page_size=3), NOW)

    assert [(e.event.user_id, e.sequence) for e in merged] == sorted(
        (e.event.user_id, e.sequence) for e in tied
    )


async def test_a_cursor_resumes_every_shard_after_it_and_nothing_before_it() -> None:
    log = InMemoryEventLog(stream_shards=STREAM_SHARDS)
    events = sorted(record_spread(log, 40), key=lambda e: e.cursor)
    cursor = StreamCursor.parse(events[17].cursor)

    resumed = await read_all(StreamReader(log, cursor.day, cursor.key, page_size=4), NOW)

    assert [e.cursor for e in resumed] == [e.cursor for e in events[18:]]


async def test_a_cursor_issued_before_the_shards_resumes_into_events_written_over_them() -> None:
    log = InMemoryEventLog(stream_shards=1)  # the layout before shards: every event in the day
    users = users_on_every_shard(per_shard=1)
    before = [
        log.record(registered(at, users[n]), recorded_at=at)
        for n in range(4)
        for at in [NOW - timedelta(minutes=30 - n)]
    ]
    log.stream_shards = STREAM_SHARDS  # then the writers raise the setting, mid-day
    after = [
        log.record(registered(at, users[n % len(users)]), recorded_at=at)
        for n in range(16)
        for at in [NOW - timedelta(minutes=20 - n)]
    ]
    assert {log.partition_of(e) for e in before} == {DAY.isoformat()}
    assert len({log.partition_of(e) for e in after}) == STREAM_SHARDS

    old_cursor = StreamCursor.parse(before[1].cursor)
    resumed = await read_all(StreamReader(log, old_cursor.day, old_cursor.key, page_size=3), NOW)

    assert [e.cursor for e in resumed] == [e.cursor for e in before[2:] + after]
    # A user's events moved from shard 0 to its own shard; its order holds across the move.
    by_user: dict[str, list[int]] = {}
    for event in resumed:
        by_user.setdefault(event.event.user_id, []).append(event.sequence)
    assert all(sequences == sorted(sequences) for sequences in by_user.values())


async def test_days_are_read_in_turn_each_day_merged() -> None:
    log = InMemoryEventLog(stream_shards=STREAM_SHARDS)
    users = users_on_every_shard(per_shard=1)
    events = [
        log.record(registered(at, users[n % len(users)]), recorded_at=at)
        for n in range(24)
        for at in [NOW - timedelta(days=2) + timedelta(hours=3 * n)]
    ]

    merged = await read_all(StreamReader(log, DAY - timedelta(days=2), None, page_size=4), NOW)

    assert [e.cursor for e in merged] == [e.cursor for e in events if e.recorded_at <= NOW]


async def test_a_read_hands_out_nothing_after_until_and_passes_until() -> None:
    log = InMemoryEventLog(stream_shards=STREAM_SHARDS)
    events = sorted(record_spread(log, 20, step_ms=60_000), key=lambda e: e.cursor)
    until = events[9].recorded_at

    reader = StreamReader(log, DAY, None, page_size=100)
    page, more = await reader.read(until=until)

    assert (page, more) == (events[:10], False)
    assert reader.passed == stream_end(until)
    page, more = await reader.read(until=NOW)
    assert (page, more) == (events[10:], False)


async def test_a_full_page_passes_only_up_to_its_last_event() -> None:
    log = InMemoryEventLog(stream_shards=STREAM_SHARDS)
    events = sorted(record_spread(log, 30), key=lambda e: e.cursor)

    reader = StreamReader(log, DAY, None, page_size=4)
    page, more = await reader.read(until=NOW)

    assert (page, more) == (events[:4], True)
    assert reader.passed == events[3].cursor


async def test_an_event_showing_in_a_shard_behind_the_pass_is_left_to_the_sweep() -> None:
    log = InMemoryEventLog(stream_shards=STREAM_SHARDS)
    users = users_on_every_shard(per_shard=1)
    early, later = NOW - timedelta(seconds=20), NOW - timedelta(seconds=10)
    shown = log.record(registered(later, users[0]), recorded_at=later)
    reader = StreamReader(log, DAY, None, page_size=10)
    assert await reader.read(until=NOW) == ([shown], False)

    # An event of another shard, before the one handed out, shows in the index only now.
    log.record(registered(early, users[1]), recorded_at=early)

    assert await reader.read(until=NOW + timedelta(seconds=1)) == ([], False)


async def test_a_caught_up_read_queries_each_shard_once() -> None:
    log = InMemoryEventLog(stream_shards=STREAM_SHARDS)
    reader = StreamReader(log, DAY, None, page_size=10)

    await reader.read(until=NOW)
    await reader.read(until=NOW + timedelta(seconds=1))

    assert log.stream_reads == 2 * STREAM_SHARDS


async def test_reads_as_time_goes_on_hand_out_every_event_once_in_cursor_order() -> None:
    # Events keep coming (each visible at once, none late) while a reader follows with a moving
    # ``until`` and small pages: shards it holds events of from an earlier read must not let it
    # skip what another shard got since, nor hand anything out twice or out of order.
    for seed in range(20):
        rng = random.Random(seed)
        page_size = rng.randint(1, 6)
        log = InMemoryEventLog(stream_shards=rng.choice([1, 2, 5, STREAM_SHARDS]))
        users = users_on_every_shard(per_shard=2)
        reader = StreamReader(log, DAY, None, page_size=page_size)
        moment, until, delivered = NOW - timedelta(hours=1), NOW - timedelta(hours=1), []
        for _ in range(60):
            for _ in range(rng.randint(0, 4)):
                moment += timedelta(milliseconds=rng.choice([0, 1, 300, 2000]))
                moment = max(moment, until + timedelta(microseconds=1))  # not behind a read
                log.record(registered(moment, rng.choice(users)), recorded_at=moment)
            until = max(until, moment - timedelta(seconds=rng.choice([0, 1, 3])))
            page, _ = await reader.read(until=until)
            delivered += page
        delivered += await read_all(reader, moment)

        assert [e.cursor for e in delivered] == sorted(e.cursor for e in log.events), seed


async def test_an_event_showing_late_after_the_last_one_handed_out_is_still_handed_out() -> None:
    # As one Query from the last event handed out would find it, before the shards.
    log = InMemoryEventLog(stream_shards=STREAM_SHARDS)
    users = users_on_every_shard(per_shard=1)
    early, later = NOW - timedelta(seconds=20), NOW - timedelta(seconds=10)
    shown = log.record(registered(early, users[0]), recorded_at=early)
    reader = StreamReader(log, DAY, None, page_size=10)
    assert await reader.read(until=NOW) == ([shown], False)

    late = log.record(registered(later, users[1]), recorded_at=later)

    assert await reader.read(until=NOW + timedelta(seconds=1)) == ([late], False)
    assert reader.passed == stream_end(NOW + timedelta(seconds=1))
