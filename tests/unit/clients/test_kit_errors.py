"""The client kit's typed errors decode exactly what server/status.py sends."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
from grpc_status import rpc_status
from user_service_client import errors

from domain.errors import (
    EmailAlreadyRegistered,
    EmailNotVerified,
    FieldViolation,
    InvalidArgument,
    InvalidVerificationCode,
    SecurityMailLimited,
    StorageUnavailable,
    UserNotFound,
)
from server.status import rpc_status_for


def failed_call(error: Exception, *, request_id: str = "req-1") -> grpc.aio.AioRpcError:
    """The AioRpcError a client sees when the server answers ``error`` as server/status.py does."""
    status = rpc_status.to_status(rpc_status_for(error))
    return grpc.aio.AioRpcError(
        status.code,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(("x-request-id", request_id), *status.trailing_metadata),
        status.details,
    )


def test_invalid_argument_carries_each_field_violation_in_order() -> None:
    sent = InvalidArgument(
        [FieldViolation("email", "is not an email address"), FieldViolation("password", "short")]
    )

    error = errors.typed_error(failed_call(sent))

    assert isinstance(error, errors.InvalidArgument)
    assert isinstance(error, grpc.aio.AioRpcError)
    assert error.field_violations == (
        errors.FieldViolation("email", "is not an email address"),
        errors.FieldViolation("password", "short"),
    )
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.request_id == "req-1"


def test_a_wrong_code_is_unauthenticated_naming_the_field() -> None:
    error = errors.typed_error(failed_call(InvalidVerificationCode()))

    assert isinstance(error, errors.Unauthenticated)
    assert [violation.field for violation in error.field_violations] == ["code"]


def test_failed_precondition_carries_the_error_info_reason() -> None:
    error = errors.typed_error(failed_call(EmailNotVerified()))

    assert isinstance(error, errors.FailedPrecondition)
    assert (error.reason, error.domain) == ("EMAIL_NOT_VERIFIED", "user.biome")


@pytest.mark.parametrize(
    ("sent", "kind", "retry_after"),
    [
        (
            SecurityMailLimited(timedelta(seconds=42)),
            errors.ResourceExhausted,
            timedelta(seconds=42),
        ),
        (StorageUnavailable("throttled"), errors.Unavailable, timedelta(seconds=1)),
    ],
)
def test_retry_info_becomes_retry_after(
    sent: Exception, kind: type[errors.UserServiceError], retry_after: timedelta
) -> None:
    error = errors.typed_error(failed_call(sent))

    assert isinstance(error, kind)
    assert error.retry_after == retry_after


@pytest.mark.parametrize(
    ("sent", "kind"),
    [
        (UserNotFound(), errors.NotFound),
        (EmailAlreadyRegistered(), errors.AlreadyExists),
        (RuntimeError("a bug"), errors.Internal),
    ],
)
def test_each_code_has_its_class(sent: Exception, kind: type[errors.UserServiceError]) -> None:
    error = errors.typed_error(failed_call(sent))

    assert type(error) is kind
    assert error.field_violations == () and error.reason is None and error.retry_after is None


def test_a_code_without_a_class_of_its_own_is_the_base_class_without_details() -> None:
    plain = grpc.aio.AioRpcError(
        grpc.StatusCode.CANCELLED, grpc.aio.Metadata(), grpc.aio.Metadata(), "cancelled"
    )

    error = errors.typed_error(plain)

    assert type(error) is errors.UserServiceError
    assert error.status is None and str(error) == "CANCELLED: cancelled"
