"""WatchEvents' following of the event stream: replay from a cursor, then poll, settled, capped.

Each open stream polls on its own (there is no shared poller): a watcher replaying last week and
one at the head of the stream need different reads, and a shared poller would have to buffer
for the slowest of them. What bounds DynamoDB's load instead is the cap on open streams: at most
``max_watchers`` streams, each making one Query per poll interval once it has caught up (and
while replaying, one per page of events or per empty day). Each stream holds at most one page of
events at a time, so its memory is bounded too.

An event is sent only once it was recorded ``settle_seconds`` ago or more. The transaction that
carries an event is sent at most persistence's commit window after its RecordedAt, and the stream
index (a GSI) shows it a moment later still: reading only up to "now - settle", a stream never
moves past a place where an event may yet appear. The settle delay must also cover the clocks of
the replicas disagreeing (NTP keeps that to milliseconds).

The stream is partitioned by UTC day. A stream stays on a day's partition until "now - settle"
has passed that day's end: an event recorded at 23:59:59.9 is still read from yesterday's
partition after midnight, and only then does the stream move on to today's.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from datetime import date, timedelta
from typing import TypeVar

from domain.event_cursors import StreamCursor
from domain.events import RecordedEvent
from domain.ports import Clock, EventLog
from server.refusals import ServiceShuttingDown, TooManyWatchers

# Events read per Query: a stream holds at most this many in memory.
STREAM_PAGE_SIZE = 100
_ONE_DAY = timedelta(days=1)

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
        poll_interval_seconds: float,
        retention_days: int,
        max_watchers: int,
        page_size: int = STREAM_PAGE_SIZE,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._log = log
        self._clock = clock
        self._settle = timedelta(seconds=settle_seconds)
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
        oldest = (self._clock() - self._retention).date()
        day: date
        key: str | None
        if after is None or after.day < oldest:
            day, key = oldest, None  # what is older has aged out (or soon will)
        else:
            day, key = after.day, after.key
        while True:
            settled = self._clock() - self._settle
            page = await self._unless_closed(
                self._log.stream_events(day, after=key, until=settled, limit=self._page_size)
            )
            for event in page:
                yield event
                key = event.cursor
            if len(page) >= self._page_size:
                continue  # more may follow at once
            if day < settled.date():
                # Every event of ``day`` was recorded before ``settled``: the day is complete.
                day, key = day + _ONE_DAY, None
                continue
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
