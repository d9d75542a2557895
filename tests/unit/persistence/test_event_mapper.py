"""Event items: every event type survives the round trip; the stream key sorts in stream order."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TypedDict

import pytest

from domain.errors import StorageError
from domain.event_cursors import stream_key
from domain.events import (
    EVENT_TYPES,
    AccountLocked,
    DomainEvent,
    EmailChangeCancelled,
    EmailChanged,
    EmailChangeRequested,
    EmailVerificationRequested,
    EmailVerified,
    PasswordChanged,
    PasswordChangeReason,
    PasswordResetRequested,
    ProfileUpdated,
    RecoveryCodesRegenerated,
    RecoveryCodeUsed,
    SecondFactorAdded,
    SecondFactorKind,
    SecondFactorRemoved,
    SecondFactorsReset,
    SessionEndReason,
    SessionRevoked,
    SessionsRevoked,
    SessionStarted,
    UserDeleted,
    UserDisabled,
    UserEnabled,
    UserRegistered,
)
from persistence.event_mapper import event_to_item, item_to_recorded_event

T0 = datetime(2026, 11, 26, 9, 30, 15, 123456, tzinfo=UTC)
USER = "0b7e7f55-9f3c-4d7a-9d38-1c2b3a4d5e6f"


class EventCommon(TypedDict):
    """The fields every DomainEvent has."""

    user_id: str
    occurred_at: datetime


def one_of_each() -> list[DomainEvent]:
    at: EventCommon = {"user_id": USER, "occurred_at": T0}
    return [
        UserRegistered(**at, email="Ada@Example.com", first_name="Ada", last_name="Lovelace"),
        ProfileUpdated(**at, first_name="Ada", last_name="King"),
        EmailChanged(**at, old_email="a@example.com", new_email="b@example.com"),
        EmailVerified(**at, email="b@example.com"),
        EmailChangeRequested(**at, new_email="c@example.com", expires_at=T0 + timedelta(days=1)),
        EmailChangeCancelled(**at, new_email="c@example.com"),
        EmailVerificationRequested(**at, expires_at=T0 + timedelta(hours=24)),
        PasswordChanged(**at, reason=PasswordChangeReason.RESET),
        PasswordResetRequested(**at, expires_at=T0 + timedelta(hours=1)),
        SessionStarted(**at, session_id="s-1"),
        SessionRevoked(**at, session_id="s-1", reason=SessionEndReason.TOKEN_REUSED),
        SessionsRevoked(**at, reason=SessionEndReason.LOGOUT_ALL, sessions_ended=3),
        SessionsRevoked(
            **at,
            reason=SessionEndReason.PASSWORD_CHANGED,
            sessions_ended=1,
            kept_session_id="s-2",
        ),
        AccountLocked(**at, locked_until=T0 + timedelta(minutes=15)),
        UserDisabled(**at),
        UserEnabled(**at),
        UserDeleted(**at),
        SecondFactorAdded(**at, kind=SecondFactorKind.TOTP, factor_id="totp"),
        SecondFactorAdded(**at, kind=SecondFactorKind.PASSKEY, factor_id="cred-1"),
        SecondFactorRemoved(**at, kind=SecondFactorKind.TOTP, factor_id="totp"),
        RecoveryCodeUsed(**at, remaining=9),
        RecoveryCodesRegenerated(**at, count=10),
        SecondFactorsReset(**at),
    ]


def test_the_examples_cover_every_event_type() -> None:
    assert {type(event).__name__ for event in one_of_each()} == set(EVENT_TYPES)


@pytest.mark.parametrize("event", one_of_each(), ids=lambda event: type(event).__name__)
def test_every_event_type_survives_the_round_trip(event: DomainEvent) -> None:
    recorded_at = T0 + timedelta(seconds=1)
    item = event_to_item(
        event, sequence=7, recorded_at=recorded_at, expires_at=T0 + timedelta(days=30)
    )

    recorded = item_to_recorded_event(item)

    assert recorded.event == event
    assert recorded.sequence == 7
    assert recorded.recorded_at == recorded_at
    assert recorded.cursor == item["StreamKey"]["S"]
    assert item["Type"] == {"S": type(event).__name__}
    assert item["StreamDay"]["S"].startswith("2026-11-26")
    assert item["ExpiresAt"] == {"N": str(int((T0 + timedelta(days=30)).timestamp()))}


def test_the_stream_partition_is_the_day_alone_over_one_shard_and_the_users_shard_over_more() -> (
    None
):
    event = UserEnabled(user_id=USER, occurred_at=T0)  # USER's shard is 7 of 8, 1 of 2

    def partition(shards: int) -> str:
        item = event_to_item(event, sequence=1, recorded_at=T0, expires_at=T0, stream_shards=shards)
        return str(item["StreamDay"]["S"])

    assert partition(1) == "2026-11-26"
    assert partition(2) == "2026-11-26#1"
    assert partition(8) == "2026-11-26#7"


def test_event_data_is_a_json_object_of_the_events_own_fields() -> None:
    event = SessionRevoked(
        user_id=USER, occurred_at=T0, session_id="s-9", reason=SessionEndReason.LOGOUT
    )

    item = event_to_item(event, sequence=1, recorded_at=T0, expires_at=T0)

    assert json.loads(item["Data"]["S"]) == {"session_id": "s-9", "reason": "logout"}


def test_stream_keys_sort_by_time_then_user_then_sequence() -> None:
    keys = [
        stream_key(T0, USER, 10),
        stream_key(T0, USER, 9),
        stream_key(T0 + timedelta(microseconds=1), "0", 1),
        stream_key(T0 - timedelta(days=400), "f", 1),
    ]

    assert sorted(keys) == [keys[3], keys[1], keys[0], keys[2]]


def test_sequence_numbers_start_at_one() -> None:
    with pytest.raises(ValueError):
        event_to_item(
            UserDeleted(user_id=USER, occurred_at=T0), sequence=0, recorded_at=T0, expires_at=T0
        )


@pytest.mark.parametrize(
    "damage",
    [
        lambda item: item.pop("Data"),
        lambda item: item.update(Type={"S": "NoSuchEvent"}),
        lambda item: item.update(Data={"S": "[]"}),
        lambda item: item.update(Data={"S": '{"session_id": 5, "reason": "logout"}'}),
        lambda item: item.update(Data={"S": '{"session_id": "s", "reason": "bored"}'}),
        lambda item: item.update(SchemaVersion={"N": "2"}),
    ],
)
def test_a_malformed_event_item_is_a_storage_error(damage: object) -> None:
    event = SessionRevoked(
        user_id=USER, occurred_at=T0, session_id="s-9", reason=SessionEndReason.LOGOUT
    )
    item = event_to_item(event, sequence=1, recorded_at=T0, expires_at=T0)
    damage(item)  # type: ignore[operator]

    with pytest.raises(StorageError):
        item_to_recorded_event(item)
