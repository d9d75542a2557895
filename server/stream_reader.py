"""One pass over the service-wide event stream, in cursor order: each day's shards merged.

The ``EventStream`` index spreads a day's events over ``STREAM_SHARDS`` partition keys (see
domain.event_cursors); each shard is in cursor order, and the stream is their k-way merge by
cursor, which is exactly the order of the stream before it had shards (a cursor names the event's
time, user and sequence, never its shard). So a cursor is a place in the merged order, and to
resume after it every shard is read after it: a cursor issued before the shards still resumes
where it did.

Each shard keeps what its last Query returned that has not been handed out yet, and is queried
again only once that runs out, so no event is read twice in one pass. An event may be handed out
only when every shard's next event is known to come after it: a shard whose events ran out after
a full page may hold more, so the merge stops there and the next read queries it. A caught-up
pass therefore makes one Query per shard each read (``STREAM_SHARDS``), empty ones included.

What a pass hands out only moves forward in cursor order, as it did with one partition a day: an
event that shows in the index after the pass handed out a later one is not handed out by this pass
(reading shards separately, a pass meets such events where one Query would have started after
them); the stream's second look, the sweep, is what finds those. One difference remains: a shard
is read on from its last event read, which may lie beyond the last handed out (it waits to be
merged), so an event showing late in that gap is also left to the sweep, where one Query from
the last event handed out would have found it.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, date, datetime, time, timedelta

from domain.event_cursors import STREAM_SHARDS, stream_end
from domain.events import RecordedEvent
from domain.ports import EventLog

_ONE_DAY = timedelta(days=1)


class _Shard:
    """One shard of the day being read: where its reading stands, and what waits in it."""

    def __init__(self, index: int, after: str | None) -> None:
        self.index = index
        self.after = after  # the last cursor read from this shard (None: none yet this day)
        self.waiting: deque[RecordedEvent] = deque()
        # Every event of this shard recorded up to this moment has been read (None: unknown).
        self.read_up_to: datetime | None = None


class StreamReader:
    """Reads the stream from just after ``key`` on ``day`` (None: the day's start), page by page,
    day by day; ``passed`` is a cursor every event up to which has been read, in every shard."""

    def __init__(
        self,
        log: EventLog,
        day: date,
        key: str | None,
        page_size: int,
        *,
        shards: int = STREAM_SHARDS,
    ) -> None:
        self._log = log
        self._page_size = page_size
        self._shard_count = shards
        self._day = day
        self._shards = self._start_day(key)
        self.passed = key if key is not None else day.isoformat()
        # The cursor of the last event handed out (or where the pass started): nothing at or
        # before it is handed out again, so what a pass hands out only moves forward.
        self._handed_out = self.passed

    def _start_day(self, key: str | None) -> list[_Shard]:
        return [_Shard(index, key) for index in range(self._shard_count)]

    async def read(self, *, until: datetime) -> tuple[list[RecordedEvent], bool]:
        """The next page of events recorded up to ``until``, and whether more may follow at
        once (a full page, a shard to read further, or a day completed)."""
        for shard in self._shards:
            if not shard.waiting:
                await self._fill(shard, until)
        page: list[RecordedEvent] = []
        while len(page) < self._page_size:
            if any(not s.waiting and s.read_up_to != until for s in self._shards):
                # A shard ran out after a full page: its next event is unknown, it may come
                # before every waiting one. Stop at the last event handed out; read it next time.
                break
            candidates = [s for s in self._shards if s.waiting]
            if not candidates:
                break
            nearest = min(candidates, key=lambda s: s.waiting[0].cursor)
            page.append(nearest.waiting.popleft())
        if page:
            self._handed_out = page[-1].cursor
            self.passed = max(self.passed, self._handed_out)
        caught_up = all(not s.waiting and s.read_up_to == until for s in self._shards)
        if not caught_up:
            return page, True
        if self._day < until.date():
            # Every event of the day was recorded before ``until``: the day is complete.
            self.passed = stream_end(datetime.combine(self._day, time.max, tzinfo=UTC))
            self._handed_out = self.passed
            self._day += _ONE_DAY
            self._shards = self._start_day(None)
            return page, True
        self.passed = max(self.passed, stream_end(until))
        return page, False

    async def _fill(self, shard: _Shard, until: datetime) -> None:
        events = await self._log.stream_events(
            self._day, shard=shard.index, after=shard.after, until=until, limit=self._page_size
        )
        if events:
            shard.after = events[-1].cursor
        # An event before the last one handed out showed in the index only after this pass went
        # by it (its shard was read before, without it): handing it out now would break the
        # stream's order, so it is left, as before the shards, to the sweep (server.late_events).
        shard.waiting.extend(event for event in events if event.cursor > self._handed_out)
        # A short page: the shard holds nothing more up to ``until`` (as the index shows now).
        shard.read_up_to = until if len(events) < self._page_size else None
