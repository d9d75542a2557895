"""Typed errors: a failed call raises the subclass of UserServiceError for its status code, with
what the server's google.rpc.Status details say (field violations, ErrorInfo, RetryInfo) decoded.

Every one is a grpc.aio.AioRpcError too, so code written against plain grpc keeps working."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

REQUEST_ID_KEY = "x-request-id"


@dataclass(frozen=True)
class FieldViolation:
    """One offending request field (google.rpc.BadRequest): its path and what is wrong with it."""

    field: str
    description: str


class UserServiceError(grpc.aio.AioRpcError):
    """A call the service (or the channel) failed; the subclass names the status code."""

    def __init__(self, error: grpc.aio.AioRpcError) -> None:
        super().__init__(
            error.code(),
            error.initial_metadata(),
            error.trailing_metadata(),
            error.details(),
            error.debug_error_string(),
        )
        self.status: status_pb2.Status | None = _status_of(error)
        violations: list[FieldViolation] = []
        self.reason: str | None = None
        self.domain: str | None = None
        self.retry_after: timedelta | None = None
        for detail in self.status.details if self.status is not None else ():
            bad_request = error_details_pb2.BadRequest()
            info = error_details_pb2.ErrorInfo()
            retry = error_details_pb2.RetryInfo()
            if detail.Unpack(bad_request):
                violations += [
                    FieldViolation(v.field, v.description) for v in bad_request.field_violations
                ]
            elif detail.Unpack(info):
                self.reason, self.domain = info.reason, info.domain
            elif detail.Unpack(retry):
                self.retry_after = retry.retry_delay.ToTimedelta()
        #: The google.rpc.BadRequest violations, in the server's order (any code may carry them:
        #: INVALID_ARGUMENT, and UNAUTHENTICATED naming the token or code that was not good).
        self.field_violations: tuple[FieldViolation, ...] = tuple(violations)

    @property
    def message(self) -> str:
        """The status message."""
        return self.details() or ""

    @property
    def request_id(self) -> str | None:
        """The server's id of the call (x-request-id), to quote when reporting it."""
        for key, value in (*(self.trailing_metadata() or ()), *(self.initial_metadata() or ())):
            if key == REQUEST_ID_KEY:
                return value.decode() if isinstance(value, bytes) else value
        return None

    def violations_by_field(self) -> dict[str, str]:
        """The field violations as field -> description (the last one wins for a repeated field)."""
        return {violation.field: violation.description for violation in self.field_violations}

    def __str__(self) -> str:
        return f"{self.code().name}: {self.message}"


class InvalidArgument(UserServiceError):
    """INVALID_ARGUMENT: the request is malformed; ``field_violations`` says where."""


class NotFound(UserServiceError):
    """NOT_FOUND: no such user, session or passkey."""


class AlreadyExists(UserServiceError):
    """ALREADY_EXISTS: another account has that email."""


class PermissionDenied(UserServiceError):
    """PERMISSION_DENIED: the caller's role does not allow it, or the account is disabled."""


class Unauthenticated(UserServiceError):
    """UNAUTHENTICATED: a wrong password or token, or a caller without a valid API key."""


class FailedPrecondition(UserServiceError):
    """FAILED_PRECONDITION: the account is not in a state for it; ``reason`` (ErrorInfo) says
    which, e.g. EMAIL_NOT_VERIFIED or RECENT_SIGN_IN_REQUIRED."""


class Aborted(UserServiceError):
    """ABORTED: a stale expected_version, or a lost race (read again, then retry)."""


class ResourceExhausted(UserServiceError):
    """RESOURCE_EXHAUSTED: a limit; ``retry_after`` when waiting helps."""


class Unavailable(UserServiceError):
    """UNAVAILABLE: the server or its storage cannot answer now; ``retry_after`` when it said."""


class DeadlineExceeded(UserServiceError):
    """DEADLINE_EXCEEDED: no answer in time (for a write, the outcome is unknown)."""


class Internal(UserServiceError):
    """INTERNAL: a bug in the service (its log has the details; quote ``request_id``)."""


_BY_CODE: dict[grpc.StatusCode, type[UserServiceError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.INTERNAL: Internal,
}


def typed_error(error: grpc.aio.AioRpcError) -> UserServiceError:
    """The typed error for a failed call (the base class for codes without their own)."""
    if isinstance(error, UserServiceError):
        return error
    return _BY_CODE.get(error.code(), UserServiceError)(error)


def _status_of(error: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    """The google.rpc.Status in the call's grpc-status-details-bin, if it sent one that agrees
    with the call's code and message (rpc_status refuses one that does not)."""
    try:
        status: status_pb2.Status | None = rpc_status.from_call(error)  # type: ignore[arg-type, unused-ignore]
    except ValueError:
        return None
    return status
