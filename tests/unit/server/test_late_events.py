"""The ledger deciding what a WatchEvents stream hands out from its head and from its sweep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.event_cursors import stream_end, stream_key
from domain.events import RecordedEvent
from server.late_events import DeliveryLedger
from tests.fake_event_log import registered

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
A = "6f1c1c2e-0000-4000-8000-00000000000a"
B = "6f1c1c2e-0000-4000-8000-00000000000b"


def event(user: str, sequence: int, second: int) -> RecordedEvent:
    at = T0 + timedelta(seconds=second)
    return RecordedEvent(
        event=registered(at, user),
        sequence=sequence,
        recorded_at=at,
        cursor=stream_key(at, user, sequence),
    )


def keys(events: object) -> list[tuple[str, int]]:
    return [(e.event.user_id, e.sequence) for e in events]  # type: ignore[attr-defined]


def test_the_head_hands_out_in_order_and_the_sweep_skips_what_the_head_saw() -> None:
    ledger = DeliveryLedger()
    seen = [event(A, 1, 1), event(B, 1, 2), event(A, 2, 3)]

    assert keys(ledger.from_head(seen)) == [(A, 1), (B, 1), (A, 2)]
    assert keys(ledger.from_sweep(seen, passed=stream_end(T0 + timedelta(seconds=3)))) == []


def test_a_gap_in_a_users_sequence_holds_the_later_event_until_the_late_one_shows() -> None:
    ledger = DeliveryLedger()
    late = event(A, 2, 2)

    assert keys(ledger.from_head([event(A, 1, 1), event(A, 3, 3), event(B, 1, 4)])) == [
        (A, 1),
        (B, 1),
    ]
    assert ledger.held_count == 1
    swept = ledger.from_sweep(
        [event(A, 1, 1), late, event(A, 3, 3)], passed=stream_end(T0 + timedelta(seconds=3))
    )
    assert keys(swept) == [(A, 2), (A, 3)]
    assert ledger.held_count == 0


def test_a_held_event_goes_out_when_the_sweep_passes_it_without_its_predecessor() -> None:
    ledger = DeliveryLedger()
    list(ledger.from_head([event(A, 1, 1), event(A, 3, 3), event(A, 4, 4)]))

    assert keys(ledger.from_sweep([], passed=stream_end(T0 + timedelta(seconds=2)))) == []
    assert keys(ledger.from_sweep([], passed=stream_end(T0 + timedelta(seconds=3)))) == [
        (A, 3),
        (A, 4),
    ]
    # Later events of the user flow again, and nothing goes out twice.
    assert keys(ledger.from_head([event(A, 5, 5)])) == [(A, 5)]
    assert keys(ledger.from_sweep([event(A, 4, 4)], passed=stream_end(T0))) == []


def test_what_the_head_saw_is_forgotten_once_the_sweep_passed_it() -> None:
    ledger = DeliveryLedger()
    list(ledger.from_head([event(A, 1, 1), event(B, 1, 2)]))

    list(ledger.from_sweep([], passed=stream_end(T0 + timedelta(seconds=1))))

    assert ledger.tracked_count == 1
    list(ledger.from_sweep([], passed=stream_end(T0 + timedelta(seconds=2))))
    assert ledger.tracked_count == 0


def test_it_remembers_the_sequences_of_a_bounded_number_of_users() -> None:
    ledger = DeliveryLedger(remembered_users=2)
    users = [f"6f1c1c2e-0000-4000-8000-{n:012d}" for n in range(3)]
    list(ledger.from_head([event(user, 1, n) for n, user in enumerate(users)]))

    # The first user was forgotten: a gap in its sequence is no longer seen, nothing is held.
    assert keys(ledger.from_head([event(users[0], 3, 10)])) == [(users[0], 3)]
    # The last one is remembered: its gap holds.
    assert keys(ledger.from_head([event(users[2], 3, 11)])) == []
