"""WatchEvents' following on an in-memory event log and a fake clock: replay, settle, days, cap."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from domain.event_cursors import STREAM_SHARDS, StreamCursor
from domain.events import RecordedEvent
from server.event_stream import EventStreams
from server.refusals import ServiceShuttingDown, TooManyWatchers
from tests.fake_event_log import FakeTime, Horizon, InMemoryEventLog, registered

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SETTLE = 5.0
POLL = 1.0
RETENTION_DAYS = 30
COMMIT_WINDOW = timedelta(seconds=2)  # the most a commit may lag its events' RecordedAt


@pytest.fixture(autouse=True, params=[1, STREAM_SHARDS], ids=["1 shard", "8 shards"])
def writer_shards(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Every test runs with events written as before the shards (all in shard 0), and with
    them spread over every shard: readers read all shards either way."""
    shards: int = request.param
    monkeypatch.setattr(InMemoryEventLog, "default_stream_shards", shards)
    return shards


def streams(
    log: InMemoryEventLog,
    time: FakeTime,
    *,
    settle: float = SETTLE,
    lookback: float = 0.0,
    **options: int,
) -> EventStreams:
    return EventStreams(
        log,
        time,
        settle_seconds=settle,
        lookback_seconds=lookback,
        poll_interval_seconds=POLL,
        retention_days=options.get("retention_days", RETENTION_DAYS),
        max_watchers=options.get("max_watchers", 4),
        page_size=options.get("page_size", 100),
        sleep=time.sleep,
    )


async def follow_until_horizon(
    stream: AsyncIterator[RecordedEvent], time: FakeTime
) -> list[tuple[RecordedEvent, datetime]]:
    """Every event the stream delivers until the fake time passes its horizon, with the fake
    time of its delivery."""
    delivered: list[tuple[RecordedEvent, datetime]] = []

    async def run() -> None:
        async for event in stream:
            delivered.append((event, time.now))

    with pytest.raises(Horizon):
        await asyncio.wait_for(run(), timeout=20)
    return delivered


def cursors(delivered: list[tuple[RecordedEvent, datetime]]) -> list[str]:
    return [event.cursor for event, _ in delivered]


async def test_replays_every_retained_event_in_stream_order_then_delivers_new_ones() -> None:
    log, time = InMemoryEventLog(), FakeTime(NOW, horizon=timedelta(minutes=2))
    old = [
        log.record(
            registered(NOW - timedelta(days=days, hours=1)),
            recorded_at=NOW - timedelta(days=days, hours=1),
        )
        for days in (29, 3, 0)
    ]
    later = NOW + timedelta(seconds=30)
    new: list[RecordedEvent] = []
    time.at(later, lambda: new.append(log.record(registered(later), recorded_at=later)))

    delivered = await follow_until_horizon(streams(log, time).follow(None), time)

    assert cursors(delivered) == [e.cursor for e in old] + [new[0].cursor]
    assert all(at == NOW for _, at in delivered[:3]), "the replay waits for nothing"
    delivered_at = delivered[3][1]
    assert (
        later + timedelta(seconds=SETTLE)
        <= delivered_at
        <= later + timedelta(seconds=SETTLE + 2 * POLL)
    )


async def test_events_older_than_the_retention_are_not_replayed() -> None:
    log, time = InMemoryEventLog(), FakeTime(NOW, horizon=timedelta(seconds=10))
    aged = NOW - timedelta(days=RETENTION_DAYS + 2)
    log.record(registered(aged), recorded_at=aged)
    kept = log.record(registered(NOW - timedelta(days=1)), recorded_at=NOW - timedelta(days=1))

    delivered = await follow_until_horizon(streams(log, time).follow(None), time)

    assert cursors(delivered) == [kept.cursor]


async def test_an_event_committed_late_within_the_commit_window_is_still_delivered() -> None:
    log, time = InMemoryEventLog(), FakeTime(NOW, horizon=timedelta(seconds=30))
    late_at, prompt_at = NOW + timedelta(seconds=3), NOW + timedelta(seconds=4)
    # The event of 12:00:03 becomes visible only 2 s after its RecordedAt, after the one of
    # 12:00:04 (committed at once): a stream reading up to "now" would pass it over.
    time.at(prompt_at, lambda: log.record(registered(prompt_at), recorded_at=prompt_at))
    time.at(late_at + COMMIT_WINDOW, lambda: log.record(registered(late_at), recorded_at=late_at))

    delivered = await follow_until_horizon(streams(log, time).follow(None), time)

    assert [event.recorded_at for event, _ in delivered] == [late_at, prompt_at]


async def test_without_a_settle_delay_a_late_commit_would_be_skipped() -> None:
    # Why the delay exists: the same scenario with none loses the late event.
    log, time = InMemoryEventLog(), FakeTime(NOW, horizon=timedelta(seconds=30))
    late_at, prompt_at = NOW + timedelta(seconds=3), NOW + timedelta(seconds=4)
    time.at(prompt_at, lambda: log.record(registered(prompt_at), recorded_at=prompt_at))
    time.at(late_at + COMMIT_WINDOW, lambda: log.record(registered(late_at), recorded_at=late_at))

    delivered = await follow_until_horizon(streams(log, time, settle=0).follow(None), time)

    assert [event.recorded_at for event, _ in delivered] == [prompt_at]


async def test_an_event_recorded_just_before_midnight_is_read_from_yesterday_after_midnight() -> (
    None
):
    before_midnight = datetime(2026, 11, 26, 23, 59, 50, tzinfo=UTC)
    log, time = InMemoryEventLog(), FakeTime(before_midnight, horizon=timedelta(seconds=40))
    last_of_day = datetime(2026, 11, 26, 23, 59, 59, 900000, tzinfo=UTC)
    first_of_next = datetime(2026, 11, 27, 0, 0, 0, 500000, tzinfo=UTC)
    time.at(first_of_next, lambda: log.record(registered(first_of_next), recorded_at=first_of_next))
    # Committed 1.6 s late, when today's partition already holds a later event.
    time.at(
        last_of_day + timedelta(seconds=1.6),
        lambda: log.record(registered(last_of_day), recorded_at=last_of_day),
    )

    delivered = await follow_until_horizon(streams(log, time).follow(None), time)

    assert [event.recorded_at for event, _ in delivered] == [last_of_day, first_of_next]


async def test_resuming_from_a_cursor_gives_exactly_the_later_events_across_days() -> None:
    log, time = InMemoryEventLog(), FakeTime(NOW, horizon=timedelta(seconds=10))
    moments = [NOW - timedelta(days=2, minutes=m) for m in (30, 20)] + [
        NOW - timedelta(days=1, minutes=m) for m in (30, 20, 10)
    ]
    events = [log.record(registered(at), recorded_at=at) for at in moments]

    after = StreamCursor.parse(events[1].cursor)
    delivered = await follow_until_horizon(streams(log, time).follow(after), time)

    assert cursors(delivered) == [e.cursor for e in events[2:]]


async def test_a_cursor_older_than_the_retention_starts_at_the_oldest_retained_day() -> None:
    log, time = InMemoryEventLog(), FakeTime(NOW, horizon=timedelta(seconds=5))
    ancient = NOW - timedelta(days=400)
    first = log.record(registered(ancient), recorded_at=ancient)
    kept = log.record(registered(NOW - timedelta(days=2)), recorded_at=NOW - timedelta(days=2))

    delivered = await follow_until_horizon(
        streams(log, time).follow(StreamCursor.parse(first.cursor)), time
    )

    assert cursors(delivered) == [kept.cursor]
    # One read per shard of each retained day (and a few polls), not of each day since the
    # ancient cursor.
    assert log.stream_reads <= (RETENTION_DAYS + 1 + 10) * STREAM_SHARDS


async def test_a_day_of_many_events_is_read_page_by_page_in_order() -> None:
    log, time = InMemoryEventLog(max_limit=10), FakeTime(NOW, horizon=timedelta(seconds=5))
    events = [
        log.record(
            registered(NOW - timedelta(hours=1, seconds=s)),
            recorded_at=NOW - timedelta(hours=1, seconds=s),
        )
        for s in range(35)
    ]

    delivered = await follow_until_horizon(streams(log, time, page_size=10).follow(None), time)

    assert cursors(delivered) == sorted(e.cursor for e in events)


async def test_a_caught_up_stream_reads_once_per_poll_interval() -> None:
    log, time = InMemoryEventLog(), FakeTime(NOW, horizon=timedelta(seconds=60))

    await follow_until_horizon(streams(log, time, retention_days=1).follow(None), time)

    # Two days to replay (yesterday, today), then one Query per shard and poll of 1 s for 60 s.
    assert 55 * STREAM_SHARDS <= log.stream_reads <= 65 * STREAM_SHARDS


async def test_watchers_beyond_the_limit_are_refused_until_one_ends() -> None:
    log = InMemoryEventLog()
    following = EventStreams(
        log,
        lambda: datetime.now(UTC),
        settle_seconds=SETTLE,
        poll_interval_seconds=0.01,
        retention_days=1,
        max_watchers=2,
    )
    first, second = following.follow(None), following.follow(None)
    tasks = [asyncio.ensure_future(anext(stream)) for stream in (first, second)]
    await asyncio.sleep(0.05)
    assert following.open_streams == 2

    with pytest.raises(TooManyWatchers):
        await asyncio.wait_for(anext(following.follow(None)), timeout=5)

    tasks[0].cancel()
    await asyncio.gather(tasks[0], return_exceptions=True)
    await first.aclose()
    assert following.open_streams == 1
    third = following.follow(None)
    task = asyncio.ensure_future(anext(third))
    await asyncio.sleep(0.05)
    assert following.open_streams == 2 and not task.done()
    for pending in (tasks[1], task):
        pending.cancel()
    await asyncio.gather(tasks[1], task, return_exceptions=True)


async def test_closing_ends_waiting_streams_at_once_and_refuses_new_ones() -> None:
    hung = asyncio.Event()

    class HangingLog(InMemoryEventLog):
        async def stream_events(self, *args: object, **kwargs: object) -> list[RecordedEvent]:
            hung.set()
            await asyncio.Event().wait()  # DynamoDB does not answer
            raise AssertionError("unreachable")

    polling = EventStreams(
        InMemoryEventLog(),
        lambda: datetime.now(UTC),
        settle_seconds=SETTLE,
        poll_interval_seconds=60.0,  # asleep between polls for a minute
        retention_days=1,
        max_watchers=4,
    )
    sleeping = asyncio.ensure_future(anext(polling.follow(None)))
    hanging_streams = EventStreams(
        HangingLog(),
        lambda: datetime.now(UTC),
        settle_seconds=SETTLE,
        poll_interval_seconds=1.0,
        retention_days=1,
        max_watchers=4,
    )
    waiting = asyncio.ensure_future(anext(hanging_streams.follow(None)))
    await asyncio.wait_for(hung.wait(), timeout=5)
    await asyncio.sleep(0.05)
    assert polling.open_streams == 1 and hanging_streams.open_streams == 1

    polling.close()
    hanging_streams.close()

    for task in (sleeping, waiting):
        with pytest.raises(ServiceShuttingDown):
            await asyncio.wait_for(task, timeout=2)
    assert await polling.wait_until_ended(1.0)
    assert await hanging_streams.wait_until_ended(1.0)
    with pytest.raises(ServiceShuttingDown):
        await anext(polling.follow(None))


LOOKBACK = 30.0


def by_user(delivered: list[tuple[RecordedEvent, datetime]]) -> dict[str, list[int]]:
    sequences: dict[str, list[int]] = {}
    for event, _ in delivered:
        sequences.setdefault(event.event.user_id, []).append(event.sequence)
    return sequences


def lagging(
    log: InMemoryEventLog, time: FakeTime, user: str, sequence: int, at: datetime, lag: float
) -> None:
    """Plans the user's event ``sequence``, recorded at ``at``, to show ``lag`` seconds later."""
    time.at(
        at + timedelta(seconds=lag),
        lambda: log.record(registered(at, user), recorded_at=at, sequence=sequence),
    )


async def test_an_event_showing_later_than_the_settle_delay_is_delivered_once_in_user_order() -> (
    None
):
    log, time = InMemoryEventLog(), FakeTime(NOW, horizon=timedelta(minutes=2))
    user, other = "6f1c1c2e-0000-4000-8000-000000000001", "6f1c1c2e-0000-4000-8000-000000000002"
    at = [NOW + timedelta(seconds=s) for s in (1, 2, 3, 4)]
    lagging(log, time, user, 1, at[0], 0)
    lagging(log, time, user, 2, at[1], 8)  # the index shows it 8 s late: past the settle delay
    lagging(log, time, other, 1, at[2], 0)
    lagging(log, time, user, 3, at[3], 0)  # shows at once, before its predecessor

    delivered = await follow_until_horizon(streams(log, time, lookback=LOOKBACK).follow(None), time)

    assert by_user(delivered) == {user: [1, 2, 3], other: [1]}
    assert len(delivered) == 4, "each event once"
    second = next(d for e, d in delivered if e.event.user_id == user and e.sequence == 2)
    assert second <= at[1] + timedelta(seconds=SETTLE + LOOKBACK + 2 * POLL)


async def test_without_the_look_back_an_event_showing_late_is_lost() -> None:
    # Why the second look exists: the same kind of lag with none loses the event.
    log, time = InMemoryEventLog(), FakeTime(NOW, horizon=timedelta(minutes=2))
    user = "6f1c1c2e-0000-4000-8000-000000000001"
    first, late, after = (NOW + timedelta(seconds=s) for s in (1, 2, 3))
    lagging(log, time, user, 1, first, 0)
    lagging(log, time, user, 2, late, 8)
    lagging(log, time, user, 3, after, 0)

    delivered = await follow_until_horizon(streams(log, time, lookback=0).follow(None), time)

    assert by_user(delivered) == {user: [1, 3]}


async def test_an_event_later_than_the_look_back_is_lost_and_what_waited_for_it_goes_out() -> None:
    log, time = InMemoryEventLog(), FakeTime(NOW, horizon=timedelta(minutes=3))
    user = "6f1c1c2e-0000-4000-8000-000000000001"
    first, lost, after = (NOW + timedelta(seconds=s) for s in (1, 2, 3))
    lagging(log, time, user, 1, first, 0)
    lagging(log, time, user, 2, lost, SETTLE + LOOKBACK + 20)  # beyond every look
    lagging(log, time, user, 3, after, 0)

    delivered = await follow_until_horizon(streams(log, time, lookback=LOOKBACK).follow(None), time)

    assert by_user(delivered) == {user: [1, 3]}
    held_until = next(d for e, d in delivered if e.sequence == 3)
    # Held back while its predecessor might still show, then sent when the sweep passed it.
    assert (
        after + timedelta(seconds=SETTLE + LOOKBACK)
        <= held_until
        <= after + timedelta(seconds=SETTLE + LOOKBACK + 2 * POLL)
    )


async def test_events_with_random_index_lags_within_the_look_back_all_arrive_once_in_order() -> (
    None
):
    rng = random.Random(14)
    log, time = InMemoryEventLog(), FakeTime(NOW, horizon=timedelta(minutes=4))
    users = [f"6f1c1c2e-0000-4000-8000-{n:012d}" for n in range(12)]
    expected: dict[str, list[int]] = {}
    moment = NOW
    for _ in range(120):
        moment += timedelta(milliseconds=rng.randrange(50, 1500))
        user = rng.choice(users)
        expected.setdefault(user, []).append(len(expected.get(user, [])) + 1)
        sequence = expected[user][-1]
        # A user's first event shows at once (see server.late_events on first events).
        lag = 0.0 if sequence == 1 else rng.choice([0.0, 0.5, 1.0, 6.0, 12.0, 25.0])
        lagging(log, time, user, sequence, moment, lag)

    delivered = await follow_until_horizon(streams(log, time, lookback=LOOKBACK).follow(None), time)

    assert by_user(delivered) == expected
    assert len({(e.event.user_id, e.sequence) for e, _ in delivered}) == len(delivered) == 120


async def test_a_caught_up_stream_with_a_look_back_reads_twice_per_poll_interval() -> None:
    log, time = InMemoryEventLog(), FakeTime(NOW, horizon=timedelta(seconds=60))

    await follow_until_horizon(
        streams(log, time, retention_days=1, lookback=LOOKBACK).follow(None), time
    )

    assert 110 * STREAM_SHARDS <= log.stream_reads <= 130 * STREAM_SHARDS
