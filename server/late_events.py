"""What one WatchEvents stream has handed out, so that a second look at the stream can deliver
an event that showed late in the index, once, without breaking any user's order.

A stream reads the `EventStream` index twice: its head reads up to "now - settle", and a sweep
reads the same keys again a look-back later, up to "now - settle - look-back". DynamoDB gives no
upper bound on how long a global secondary index lags behind the table; an event that shows
after the head passed its place is found by the sweep. This ledger decides what each read hands
out:

- the head hands out each event unless an earlier event of the same user is known to be missing
  (the user's last delivered sequence is below the event's minus one): then the event is held;
- the sweep hands out what the head never saw (the late events), skips what it did;
- a held event goes out as soon as the events before it of its user have (in sequence order), or
  when the sweep passes its place: whatever is still missing before it showed later than the
  look-back and is lost to this stream.

Per-user order is kept for every user whose previous event this stream delivered (the ledger
remembers the last sequence of up to ``remembered_users`` users, least recently seen forgotten
first). A user's first event on this stream has no known predecessor: if an earlier event of that
user showed late, it is handed out after the later one. Consumers order by (user_id, sequence),
as the README says, which repairs that case.

Memory is bounded: the events seen by the head stay listed only until the sweep passes them (one
look-back of events), held ones the same, and at most ``remembered_users`` sequences.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator

from domain.events import RecordedEvent

# Enough for every user active within a look-back at a high event rate; about 100 bytes each.
REMEMBERED_USERS = 100_000


def _key(event: RecordedEvent) -> tuple[str, int]:
    return event.event.user_id, event.sequence


class DeliveryLedger:
    """The events one stream handed out or holds, by (user id, sequence)."""

    def __init__(self, *, remembered_users: int = REMEMBERED_USERS) -> None:
        self._remembered_users = remembered_users
        # Seen by the head (delivered or held), in the head's cursor order: the sweep skips them.
        self._seen_by_head: OrderedDict[tuple[str, int], str] = OrderedDict()
        # The last sequence delivered of each recently seen user, least recently seen first.
        self._last_sequence: OrderedDict[str, int] = OrderedDict()
        # Events the head read while an earlier one of the same user is missing, by sequence.
        self._held: dict[str, list[RecordedEvent]] = {}

    @property
    def tracked_count(self) -> int:
        """The events the head read that the sweep has not passed yet."""
        return len(self._seen_by_head)

    @property
    def held_count(self) -> int:
        return sum(len(events) for events in self._held.values())

    def from_head(self, events: Iterable[RecordedEvent]) -> Iterator[RecordedEvent]:
        """What to hand out of ``events``, read in cursor order by the head."""
        for event in events:
            self._seen_by_head[_key(event)] = event.cursor
            user = event.event.user_id
            if user in self._held:
                self._hold(event)
                continue
            last = self._last_sequence.get(user)
            if last is not None and event.sequence > last + 1:
                self._hold(event)  # an earlier event of this user has not shown yet
                continue
            yield from self._deliver(event)

    def from_sweep(
        self, events: Iterable[RecordedEvent], *, passed: str
    ) -> Iterator[RecordedEvent]:
        """What to hand out of ``events``, read again by the sweep, which has now passed every
        cursor up to ``passed``: the late events, and what was held for them."""
        for event in events:
            if _key(event) in self._seen_by_head:
                continue
            last = self._last_sequence.get(event.event.user_id)
            if last is not None and event.sequence <= last:
                continue  # already handed out (a user forgotten and met again cannot get here)
            yield from self._deliver(event)
        yield from self._release_passed(passed)
        while self._seen_by_head:
            cursor = next(iter(self._seen_by_head.values()))
            if cursor > passed:
                break
            self._seen_by_head.popitem(last=False)

    def _hold(self, event: RecordedEvent) -> None:
        held = self._held.setdefault(event.event.user_id, [])
        held.append(event)
        held.sort(key=lambda e: e.sequence)

    def _deliver(self, event: RecordedEvent) -> Iterator[RecordedEvent]:
        """``event``, then the user's held events that now follow on without a gap."""
        user = event.event.user_id
        yield event
        self._remember(user, event.sequence)
        held = self._held.get(user)
        while held and held[0].sequence <= event.sequence + 1:
            event = held.pop(0)
            if event.sequence > self._last_sequence[user]:
                yield event
                self._remember(user, event.sequence)
        if held is not None and not held:
            del self._held[user]

    def _release_passed(self, passed: str) -> Iterator[RecordedEvent]:
        """The held events the sweep has passed: what they waited for is lost to this stream."""
        for user in list(self._held):
            held = self._held[user]
            while held and held[0].cursor <= passed:
                event = held.pop(0)
                yield event
                self._remember(user, event.sequence)
                while held and held[0].sequence == event.sequence + 1:
                    event = held.pop(0)
                    yield event
                    self._remember(user, event.sequence)
            if not held:
                del self._held[user]

    def _remember(self, user: str, sequence: int) -> None:
        self._last_sequence[user] = sequence
        self._last_sequence.move_to_end(user)
        while len(self._last_sequence) > self._remembered_users:
            self._last_sequence.popitem(last=False)
