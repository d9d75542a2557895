"""WatchEvents' following of the event stream: replay from a cursor, then poll, settled, capped.

Each open stream polls on its own (there is no shared poller): a watcher replaying last week and
one at the head of the stream need different reads, and a shared poller would have to buffer
for the slowest of them. What bounds DynamoDB's load instead is the cap on open streams: at most
``max_watchers`` streams, each making two passes over the stream index per poll interval once it
has caught up, each pass one Query per shard of the day (``STREAM_SHARDS``, 8: 16 Queries, 8 read
units when empty), and while replaying about one Query per shard per page of events or per empty
day. Each stream holds at most a page of events per shard and pass (server.stream_reader), and
the ledger of what it handed out within one look-back (server.late_events).

An event is sent once it was recorded ``settle_seconds`` ago or more. The transaction that
carries an event is sent at most persistence's commit window after its RecordedAt, and the stream
index (a GSI) shows it a moment later still, usually: reading only up to "now - settle", the
stream's head rarely moves past a place where an event may yet appear. The settle delay must also
cover the clocks of the replicas disagreeing (NTP keeps that to milliseconds).

AWS gives no upper bound on a GSI's lag, though (an index that is throttled lags by minutes), so
each stream also sweeps: it reads the same keys again ``lookback_seconds`` later, and sends what
shows only then, once, holding back a user's later events until the late one has gone out (the
ledger). An event whose index entry shows more than settle + look-back after its RecordedAt is
lost to a stream that was open; a stream resumed from a cursor starts after it, so what showed
late before that cursor is not looked for. The sweep doubles a stream's reads of the index.

The stream is partitioned by UTC day, and each day by shard (by user; the shards are merged in
cursor order on read). A stream stays on a day's partitions until "now - settle" has passed that
day's end: an event recorded at 23:59:59.9 is still read from yesterday's partitions after
midnight, and only then does the stream move on to today's.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from domain.event_cursors import StreamCursor, stream_end
from domain.events import RecordedEvent
from domain.ports import Clock, EventLog
from server.late_events import DeliveryLedger
from server.refusals import ServiceShuttingDown, TooManyWatchers
from server.stream_reader import StreamReader

# Events read per Query: a stream holds at most this many per shard in memory, per reader.
STREAM_PAGE_SIZE = 100

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


class EventStreams:
    """The open WatchEvents streams: at most ``max_watchers``, each following the event log.

    ``close()`` (at shutdown) ends every stream with ServiceShuttingDown, at once, even one
    waiting for DynamoDB, and refuses new ones the same way, so that their callers reconnect to
    another replica with their cursor.
    """

    def __init__(
        self,
        log: EventLog,
        clock: Clock,
        *,
        settle_seconds: float,
        lookback_seconds: float = 0.0,
        poll_interval_seconds: float,
        retention_days: int,
        max_watchers: int,
        page_size: int = STREAM_PAGE_SIZE,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._log = log
        self._clock = clock
        self._settle = timedelta(seconds=settle_seconds)
        self._lookback = timedelta(seconds=lookback_seconds)
        self._poll_interval = poll_interval_seconds
        self._retention = timedelta(days=retention_days)
        self._max_watchers = max_watchers
        self._page_size = page_size
        self._sleep = sleep
        self._closed = asyncio.Event()
        self._open = 0
        self._none_open = asyncio.Event()
        self._none_open.set()

    @property
    def open_streams(self) -> int:
        return self._open

    def close(self) -> None:
        """Ends every open stream, and refuses new ones, with ServiceShuttingDown."""
        self._closed.set()

    async def wait_until_ended(self, seconds: float) -> bool:
        """Waits until no stream is open; False if ``seconds`` pass first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._none_open.wait(), seconds)
        return self._none_open.is_set()

    async def follow(self, after: StreamCursor | None) -> AsyncGenerator[RecordedEvent, None]:
        """Every event after ``after`` (None: the oldest retained), then each new one once it has
        settled; endless, until the caller stops iterating or the streams are closed."""
        if self._closed.is_set():
            raise ServiceShuttingDown()
        if self._open >= self._max_watchers:
            raise TooManyWatchers(self._max_watchers)
        self._open += 1
        self._none_open.clear()
        try:
            async for event in self._follow(after):
                yield event
        finally:
            self._open -= 1
            if not self._open:
                self._none_open.set()

    async def _follow(self, after: StreamCursor | None) -> AsyncIterator[RecordedEvent]:
        now = self._clock()
        oldest = (now - self._retention).date()
        if after is None or after.day < oldest:
            start_day, start_key = oldest, None  # older ones aged out
        else:
            start_day, start_key = after.day, after.key
        head = StreamReader(self._log, start_day, start_key, self._page_size)
        # The sweep needs to look again only where an event may not have shown yet when the
        # head read: from "now - settle - look-back" on (or from the head's start, if later).
        sweep_from = now - self._settle - self._lookback
        sweep = StreamReader(self._log, start_day, start_key, self._page_size)
        if sweep.passed < stream_end(sweep_from):
            sweep = StreamReader(
                self._log, sweep_from.date(), stream_end(sweep_from), self._page_size
            )
        ledger = DeliveryLedger()
        while True:
            settled = self._clock() - self._settle
            page, more = await self._unless_closed(head.read(until=settled))
            for event in ledger.from_head(page) if self._lookback else page:
                yield event
            if more:
                continue
            if self._lookback:
                behind = settled - self._lookback
                while True:
                    page, more = await self._unless_closed(sweep.read(until=behind))
                    for event in ledger.from_sweep(page, passed=sweep.passed):
                        yield event
                    if not more:
                        break
            await self._unless_closed(self._sleep(self._poll_interval))

    async def _unless_closed(self, work: Awaitable[T]) -> T:
        """The result of ``work``; ServiceShuttingDown (and ``work`` cancelled) once closed."""
        if self._closed.is_set():
            if inspect.iscoroutine(work):
                work.close()
            raise ServiceShuttingDown()
        task = asyncio.ensure_future(work)
        closing = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({task, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            if not task.done():
                task.cancel()
        if not task.done():
            raise ServiceShuttingDown()
        return task.result()
