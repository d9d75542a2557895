"""Every domain event becomes a UserEvent with its kind's message in the oneof, field for field."""

from __future__ import annotations

import dataclasses
import enum
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from biome.user.v1 import user_service_pb2 as pb

from domain import events as domain_events
from domain.event_cursors import stream_key
from domain.events import EVENT_TYPES, DomainEvent, RecordedEvent
from server.pb_mapping import event_to_pb

OCCURRED = datetime(2026, 11, 26, 12, 0, 0, 250000, tzinfo=UTC)
RECORDED = datetime(2026, 11, 26, 12, 0, 0, 260000, tzinfo=UTC)
LATER = datetime(2026, 11, 26, 13, 0, tzinfo=UTC)
USER = str(uuid.uuid4())
PROTO = Path(__file__).resolve().parents[3] / "protos/biome/user/v1/user_service.proto"
KIND_FIELD = {
    "UserRegistered": "user_registered",
    "ProfileUpdated": "profile_updated",
    "EmailChanged": "email_changed",
    "PasswordChanged": "password_changed",
    "PasswordResetRequested": "password_reset_requested",
    "SessionStarted": "session_started",
    "SessionRevoked": "session_revoked",
    "AccountLocked": "account_locked",
    "UserDisabled": "user_disabled",
    "UserEnabled": "user_enabled",
    "UserDeleted": "user_deleted",
    "SessionsRevoked": "sessions_revoked",
    "EmailVerified": "email_verified",
    "EmailChangeRequested": "email_change_requested",
    "EmailChangeCancelled": "email_change_cancelled",
    "EmailVerificationRequested": "email_verification_requested",
    "SecondFactorAdded": "second_factor_added",
    "SecondFactorRemoved": "second_factor_removed",
    "RecoveryCodeUsed": "recovery_code_used",
    "RecoveryCodesRegenerated": "recovery_codes_regenerated",
    "SecondFactorsReset": "second_factors_reset",
}


def sample(kind: type[DomainEvent], member: int = 0) -> DomainEvent:
    """An event of ``kind`` with a value in every field; enums take their ``member``-th value."""
    values: dict[str, object] = {}
    for field in dataclasses.fields(kind):
        if field.name in ("user_id", "occurred_at"):
            continue
        annotation = str(field.type)
        if annotation == "datetime":
            values[field.name] = LATER
        elif annotation in ("str", "str | None"):
            values[field.name] = f"{field.name}-value"
        elif annotation == "int":
            values[field.name] = 7
        else:
            enum_type = next(
                t for t in _enums() if t.__name__ == annotation
            )  # PasswordChangeReason, SessionEndReason
            values[field.name] = list(enum_type)[member % len(enum_type)]
    return kind(user_id=USER, occurred_at=OCCURRED, **values)


def _enums() -> list[type[enum.Enum]]:
    return [
        v for v in vars(domain_events).values() if isinstance(v, type) and issubclass(v, enum.Enum)
    ]


def recorded(event: DomainEvent, sequence: int = 4) -> RecordedEvent:
    return RecordedEvent(
        event=event,
        sequence=sequence,
        recorded_at=RECORDED,
        cursor=stream_key(RECORDED, event.user_id, sequence),
    )


def test_the_oneof_has_one_field_per_domain_event_type_and_no_other() -> None:
    oneof = pb.UserEvent.DESCRIPTOR.oneofs_by_name["kind"]

    assert {field.name for field in oneof.fields} == set(KIND_FIELD.values())
    assert set(EVENT_TYPES) == set(KIND_FIELD)


@pytest.mark.parametrize("kind", sorted(EVENT_TYPES))
def test_each_event_maps_to_its_kind_with_every_field(kind: str) -> None:
    event = sample(EVENT_TYPES[kind])

    message = event_to_pb(recorded(event))

    assert message.user_id == USER
    assert message.sequence == 4
    assert message.cursor == stream_key(RECORDED, USER, 4)
    assert message.occurred_at.ToDatetime(tzinfo=UTC) == OCCURRED
    assert message.recorded_at.ToDatetime(tzinfo=UTC) == RECORDED
    assert message.WhichOneof("kind") == KIND_FIELD[kind]
    body = getattr(message, KIND_FIELD[kind])
    own = [f for f in dataclasses.fields(event) if f.name not in ("user_id", "occurred_at")]
    assert {f.name for f in body.DESCRIPTOR.fields} == {f.name for f in own}
    for field in own:
        value = getattr(event, field.name)
        sent = getattr(body, field.name)
        if isinstance(value, datetime):
            assert sent.ToDatetime(tzinfo=UTC) == value
        elif isinstance(value, enum.Enum):
            enum_descriptor = body.DESCRIPTOR.fields_by_name[field.name].enum_type
            assert enum_descriptor.values_by_number[sent].name.endswith("_" + value.name)
        else:
            assert sent == value


@pytest.mark.parametrize("enum_type", _enums(), ids=lambda t: t.__name__)
def test_every_reason_has_its_own_enum_value(enum_type: type[enum.Enum]) -> None:
    kind, field = next(
        (k, f.name)
        for k in EVENT_TYPES.values()
        for f in dataclasses.fields(k)
        if str(f.type) == enum_type.__name__
    )
    sent = set()
    for member in range(len(enum_type)):
        message = event_to_pb(recorded(sample(kind, member)))
        sent.add(getattr(getattr(message, KIND_FIELD[kind.__name__]), field))

    assert len(sent) == len(enum_type) and 0 not in sent  # UNSPECIFIED is never sent


@pytest.mark.parametrize("enum_type", _enums(), ids=lambda t: t.__name__)
def test_the_proto_documents_every_reason(enum_type: type[enum.Enum]) -> None:
    lines = PROTO.read_text().splitlines()
    prefix = _snake_case(enum_type.__name__).upper()
    for member in enum_type:
        name = f"{prefix}_{member.name}"
        (at,) = [i for i, line in enumerate(lines) if line.strip().startswith(f"{name} = ")]
        assert lines[at - 1].strip().startswith("//"), f"{name} has no comment in the proto"


def _snake_case(name: str) -> str:
    return "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(name))


def test_no_event_message_has_a_field_for_a_secret() -> None:
    for field in pb.UserEvent.DESCRIPTOR.oneofs_by_name["kind"].fields:
        assert field.message_type is not None
        for inner in field.message_type.fields:
            assert not any(word in inner.name for word in ("password", "token", "hash")), inner.name
