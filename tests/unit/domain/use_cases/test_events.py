"""Reading events: ListUserEvents' pages and validation, WatchEvents' cursor, their page tokens."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import InvalidArgument, InvalidValue
from domain.event_cursors import StreamCursor, stream_key
from domain.events import ProfileUpdated
from domain.pagination import EventPageTokenCodec, PageTokenCodec
from domain.use_cases.events import list_user_events, watch_position
from domain.values import UserId
from tests.fake_event_log import InMemoryEventLog, registered

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CODEC = EventPageTokenCodec(b"p" * 32)


def log_with(user_id: str, count: int) -> InMemoryEventLog:
    log = InMemoryEventLog()
    log.record(registered(NOW, user_id), recorded_at=NOW)
    for n in range(1, count):
        at = NOW + timedelta(seconds=n)
        log.record(ProfileUpdated(user_id, at, first_name=f"N{n}", last_name="B"), recorded_at=at)
    return log


def violations(error: pytest.ExceptionInfo[InvalidArgument]) -> dict[str, str]:
    return {v.field: v.description for v in error.value.violations}


async def test_pages_through_a_users_events_in_sequence_order_without_an_empty_last_page() -> None:
    user = str(uuid.uuid4())
    log = log_with(user, 7)
    log.record(registered(NOW), recorded_at=NOW)  # someone else's

    sequences: list[list[int]] = []
    token = ""
    while True:
        page = await list_user_events(log, CODEC, user_id=user, page_size=3, page_token=token)
        sequences.append([e.sequence for e in page.events])
        assert all(e.event.user_id == user for e in page.events)
        token = page.next_page_token
        if not token:
            break

    assert sequences == [[1, 2, 3], [4, 5, 6], [7]]


async def test_a_page_size_of_zero_means_25_and_an_exact_fit_has_no_next_token() -> None:
    user = str(uuid.uuid4())
    page = await list_user_events(
        log_with(user, 25), CODEC, user_id=user, page_size=0, page_token=""
    )

    assert len(page.events) == 25 and page.next_page_token == ""


async def test_an_unknown_user_has_no_events() -> None:
    page = await list_user_events(
        InMemoryEventLog(), CODEC, user_id=str(uuid.uuid4()), page_size=10, page_token=""
    )

    assert page.events == [] and page.next_page_token == ""


async def test_a_user_id_in_another_spelling_lists_the_same_events() -> None:
    user = str(uuid.uuid4())
    page = await list_user_events(
        log_with(user, 2), CODEC, user_id=user.upper(), page_size=10, page_token=""
    )

    assert [e.sequence for e in page.events] == [1, 2]


async def test_every_invalid_field_is_reported_at_once() -> None:
    with pytest.raises(InvalidArgument) as error:
        await list_user_events(
            InMemoryEventLog(), CODEC, user_id="nope", page_size=101, page_token="x"
        )

    assert set(violations(error)) == {"user_id", "page_size"}


@pytest.mark.parametrize("page_size", [-1, 101, 2**31 - 1])
async def test_a_page_size_out_of_range_is_refused(page_size: int) -> None:
    with pytest.raises(InvalidArgument) as error:
        await list_user_events(
            InMemoryEventLog(), CODEC, user_id=str(uuid.uuid4()), page_size=page_size, page_token=""
        )

    assert set(violations(error)) == {"page_size"}


async def test_a_page_token_of_another_users_list_is_refused() -> None:
    mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    log = log_with(theirs, 5)
    page = await list_user_events(log, CODEC, user_id=theirs, page_size=2, page_token="")

    with pytest.raises(InvalidArgument) as error:
        await list_user_events(
            log, CODEC, user_id=mine, page_size=2, page_token=page.next_page_token
        )

    assert set(violations(error)) == {"page_token"}


@pytest.mark.parametrize(
    "token",
    [
        "x",
        "not base64 !",
        "é",
        EventPageTokenCodec(b"another-service-key-0123").encode(UserId(str(uuid.UUID(int=1))), 3),
        PageTokenCodec(b"p" * 32).encode(UserId(str(uuid.UUID(int=1)))),  # a ListUsers token
    ],
)
async def test_a_forged_or_foreign_page_token_is_refused(token: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        await list_user_events(
            InMemoryEventLog(), CODEC, user_id=str(uuid.UUID(int=1)), page_size=2, page_token=token
        )

    assert set(violations(error)) == {"page_token"}


def test_a_page_token_round_trips_and_any_edit_breaks_it() -> None:
    user = UserId(str(uuid.uuid4()))
    token = CODEC.encode(user, 41)

    assert CODEC.decode(token, user) == 41
    for i in range(len(token)):
        edited = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
        with pytest.raises(InvalidValue):
            CODEC.decode(edited, user)


def test_the_stores_stream_keys_are_cursors_that_parse_to_their_day() -> None:
    user = str(uuid.uuid4())
    at = datetime(2026, 11, 26, 23, 59, 59, 999999, tzinfo=UTC)
    key = stream_key(at, user, 7)

    cursor = StreamCursor.parse(key)

    assert cursor.key == key and cursor.recorded_at == at
    assert cursor.day.isoformat() == "2026-11-26"
    assert watch_position(after_cursor=key) == cursor


def test_an_empty_cursor_watches_from_the_oldest_retained_event() -> None:
    assert watch_position(after_cursor="") is None


GOOD = stream_key(NOW, "0b7a3c1e-2f4d-4a5b-8c6d-7e8f9a0b1c2d", 3)


@pytest.mark.parametrize(
    "cursor",
    [
        "x",
        GOOD + "#",
        GOOD + "0",
        GOOD[:-1],
        GOOD.upper(),  # an upper-case user id: not how the service spells it
        GOOD.replace("+00:00", "+01:00"),
        GOOD.replace("+00:00", "Z"),
        GOOD.replace(".000000", ""),
        GOOD.replace("#000000000003", "#000000000000"),  # sequences start at 1
        GOOD.replace("2026-11-26", "2026-13-26"),
        GOOD.replace("-4a5b-", "-4a5bb"),
        GOOD.replace("3c1e-2f4d", "3c1e2-f4d"),  # a hyphen out of place: not the canonical form
        GOOD.replace("#", "|"),
        "\x00" + GOOD,
        GOOD + "\n",
        "٣" * 80,
        "a" * 10_000,
    ],
)
def test_a_malformed_cursor_is_refused_on_after_cursor(cursor: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        watch_position(after_cursor=cursor)

    assert set(violations(error)) == {"after_cursor"}
