"""The metrics' bookkeeping: codes, sign-in outcomes, revoked sessions, one registry each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypedDict

import grpc
import pytest
from pydantic import ValidationError

from domain.events import (
    RecordedEvent,
    SessionEndReason,
    SessionRevoked,
    SessionsRevoked,
    SessionStarted,
)
from server.operations.metrics import AUTHENTICATE, Metrics
from server.settings import Settings, describe_invalid_settings

NOW = datetime(2026, 11, 26, tzinfo=UTC)
GET_USER = "/biome.user.v1.UserService/GetUser"


def value(metrics: Metrics, name: str, **labels: str) -> float:
    sample = metrics.registry.get_sample_value(name, labels)
    return 0.0 if sample is None else sample


def revoked(reason: SessionEndReason) -> SessionRevoked:
    return SessionRevoked(user_id="u", occurred_at=NOW, session_id="s", reason=reason)


def test_a_finished_call_is_counted_by_method_and_code_timed_and_leaves_the_in_flight_gauge() -> (
    None
):
    metrics = Metrics()
    method = metrics.for_method(GET_USER)

    method.in_flight.inc()
    method.in_flight.inc()
    method.finished(grpc.StatusCode.NOT_FOUND, 0.003)

    rpcs = "user_service_rpcs_total"
    assert value(metrics, rpcs, method=GET_USER, code="NOT_FOUND") == 1
    assert value(metrics, rpcs, method=GET_USER, code="OK") == 0
    assert value(metrics, "user_service_rpcs_in_flight", method=GET_USER) == 1
    histogram = "user_service_rpc_duration_seconds"
    assert value(metrics, f"{histogram}_count", method=GET_USER) == 1
    assert value(metrics, f"{histogram}_bucket", method=GET_USER, le="0.0025") == 0
    assert value(metrics, f"{histogram}_bucket", method=GET_USER, le="0.005") == 1
    assert value(metrics, "user_service_logins_total", outcome="failed") == 0  # not a sign-in


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (grpc.StatusCode.OK, "success"),
        (grpc.StatusCode.UNAUTHENTICATED, "failed"),
        (grpc.StatusCode.INVALID_ARGUMENT, "failed"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "overloaded"),
        (grpc.StatusCode.PERMISSION_DENIED, "disabled"),
        (grpc.StatusCode.UNAVAILABLE, "error"),
        (grpc.StatusCode.INTERNAL, "error"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "error"),
    ],
)
def test_an_authenticate_call_counts_as_a_sign_in_by_its_status(
    code: grpc.StatusCode, outcome: str
) -> None:
    metrics = Metrics()
    method = metrics.for_method(AUTHENTICATE)
    method.in_flight.inc()

    method.finished(code, 0.05)

    logins = {
        name: value(metrics, "user_service_logins_total", outcome=name)
        for name in ("success", "failed", "overloaded", "disabled", "error")
    }
    assert logins == {name: (1 if name == outcome else 0) for name in logins}


def test_committed_session_revocations_are_counted_by_reason_other_events_not() -> None:
    metrics = Metrics()

    metrics.record_committed_events(
        [
            revoked(SessionEndReason.LOGOUT),
            revoked(SessionEndReason.PASSWORD_CHANGED),
            RecordedEvent(revoked(SessionEndReason.LOGOUT), 3, NOW, "cursor"),
            SessionStarted(user_id="u", occurred_at=NOW, session_id="s2"),
        ]
    )

    counted = {
        reason.value: value(metrics, "user_service_sessions_revoked_total", reason=reason.value)
        for reason in SessionEndReason
    }
    assert counted == {
        reason.value: {"logout": 2, "password_changed": 1}.get(reason.value, 0)
        for reason in SessionEndReason
    }


def test_an_object_merely_named_like_an_event_is_not_counted() -> None:
    @dataclass(frozen=True)
    class Imitation:
        reason: str = "logout"

    Imitation.__name__ = "SessionRevoked"
    metrics = Metrics()

    metrics.record_committed_events([Imitation()])

    assert value(metrics, "user_service_sessions_revoked_total", reason="logout") == 0


def test_dynamodb_calls_are_counted_by_operation_and_outcome_with_retries_and_throttles() -> None:
    metrics = Metrics()

    metrics.dynamodb_call_finished("GetItem", "ok", 0.002)
    metrics.dynamodb_call_finished("GetItem", "ok", 0.004)
    metrics.dynamodb_call_finished("GetItem", "ProvisionedThroughputExceededException", 0.3)
    metrics.dynamodb_call_retried("GetItem", 2)
    metrics.dynamodb_throttled("GetItem")

    calls = "user_service_dynamodb_calls_total"
    assert value(metrics, calls, operation="GetItem", outcome="ok") == 2
    assert (
        value(metrics, calls, operation="GetItem", outcome="ProvisionedThroughputExceededException")
        == 1
    )
    assert (
        value(metrics, "user_service_dynamodb_call_duration_seconds_count", operation="GetItem")
        == 3
    )
    assert value(metrics, "user_service_dynamodb_retries_total", operation="GetItem") == 2
    assert value(metrics, "user_service_dynamodb_throttles_total", operation="GetItem") == 1


def test_two_instances_keep_their_counts_apart() -> None:
    first, second = Metrics(), Metrics()

    first.dynamodb_throttled("Scan")

    assert value(first, "user_service_dynamodb_throttles_total", operation="Scan") == 1
    assert value(second, "user_service_dynamodb_throttles_total", operation="Scan") == 0


class PortSettings(TypedDict, total=False):
    """The other ports of Settings, one of which a case sets to the metrics port."""

    port: int
    health_port: int


@pytest.mark.parametrize("clash", [{"port": 9100}, {"health_port": 9100}])
def test_the_metrics_port_must_differ_from_the_service_and_health_ports(
    clash: PortSettings,
) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(metrics_port=9100, **clash)

    assert "USER_SERVICE_METRICS_PORT must differ" in describe_invalid_settings(raised.value)


def test_metrics_are_off_by_default_and_listen_on_the_service_host_unless_told() -> None:
    assert Settings().metrics_port is None
    assert Settings(metrics_port=9100).metrics_address == "127.0.0.1"
    assert Settings(profile="production", metrics_port=9100).metrics_address == "0.0.0.0"
    assert Settings(metrics_port=9100, metrics_host="10.0.0.5").metrics_address == "10.0.0.5"


def test_sessions_ended_at_once_are_counted_as_many_by_their_reason() -> None:
    metrics = Metrics()

    metrics.record_committed_events(
        [
            SessionsRevoked("u", NOW, SessionEndReason.LOGOUT_ALL, 7),
            SessionsRevoked("u", NOW, SessionEndReason.PASSWORD_CHANGED, 2, kept_session_id="s"),
            SessionsRevoked("u", NOW, SessionEndReason.USER_DISABLED, 0),
        ]
    )

    assert value(metrics, "user_service_sessions_revoked_total", reason="logout_all") == 7
    assert value(metrics, "user_service_sessions_revoked_total", reason="password_changed") == 2
    assert value(metrics, "user_service_sessions_revoked_total", reason="user_disabled") == 0
