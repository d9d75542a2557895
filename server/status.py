"""The one place errors become gRPC statuses: each domain error and refusal has its code here,
with the google.rpc details (field violations, RetryInfo) a caller acts on."""

from __future__ import annotations

import logging
import math
from typing import Any, NoReturn

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from domain.errors import (
    AccountDisabled,
    AuthenticationFailed,
    ConcurrentRefresh,
    DeadlineExceeded,
    EmailAlreadyRegistered,
    EmailNotVerified,
    InvalidArgument,
    InvalidEmailChangeToken,
    InvalidRefreshToken,
    InvalidResetToken,
    InvalidSecondFactorCode,
    InvalidSignInChallenge,
    InvalidVerificationCode,
    InvalidVerificationToken,
    PasskeyCeremonyFailed,
    PasskeyLimitReached,
    PasskeyNotFound,
    SecondFactorPrecondition,
    SecurityMailLimited,
    SessionNotFound,
    StorageUnavailable,
    UserNotFound,
    VersionConflict,
)
from server.refusals import (
    CallerNotPermitted,
    CallerUnauthenticated,
    NotTheTokensUser,
    PasswordHashQueueFull,
    RequestTooLarge,
    ServiceShuttingDown,
    SignInNotRecent,
    TooManyConcurrentCalls,
    TooManyWatchers,
    UndecodableRequest,
    UserTokenRejected,
)

log = logging.getLogger(__name__)

RETRY_DELAY_SECONDS = 1
INTERNAL_MESSAGE = "internal error"
# google.rpc.ErrorInfo: the domain of this service's reasons, and the reasons a caller acts on.
ERROR_DOMAIN = "user.biome"
EMAIL_NOT_VERIFIED = "EMAIL_NOT_VERIFIED"
RECENT_SIGN_IN_REQUIRED = "RECENT_SIGN_IN_REQUIRED"


def rpc_status_for(error: Exception, method: str = "") -> status_pb2.Status:
    """The google.rpc.Status a caller sees for ``error``; unexpected errors are logged, hidden."""
    if isinstance(error, InvalidArgument):
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=violation.field, description=violation.description
                )
                for violation in error.violations
            ]
        )
        return status_with(code_pb2.INVALID_ARGUMENT, str(error), bad_request)
    if isinstance(error, (UserNotFound, SessionNotFound, PasskeyNotFound)):
        return status_with(code_pb2.NOT_FOUND, str(error))
    if isinstance(error, EmailAlreadyRegistered):
        return status_with(code_pb2.ALREADY_EXISTS, str(error))
    if isinstance(error, (VersionConflict, ConcurrentRefresh)):
        return status_with(code_pb2.ABORTED, str(error))
    if isinstance(
        error,
        (AuthenticationFailed, InvalidRefreshToken, InvalidResetToken, InvalidSecondFactorCode),
    ):
        return status_with(code_pb2.UNAUTHENTICATED, str(error))
    if isinstance(error, InvalidEmailChangeToken):
        # As a bad reset token (UNAUTHENTICATED), naming the field the token came in.
        violation = error_details_pb2.BadRequest.FieldViolation(
            field="token", description="is not a valid email-change token"
        )
        bad_request = error_details_pb2.BadRequest(field_violations=[violation])
        return status_with(code_pb2.UNAUTHENTICATED, str(error), bad_request)
    if isinstance(error, SecurityMailLimited):
        retry = error_details_pb2.RetryInfo(
            retry_delay=Duration(seconds=math.ceil(error.retry_after.total_seconds()))
        )
        return status_with(code_pb2.RESOURCE_EXHAUSTED, str(error), retry)
    if isinstance(error, AccountDisabled):
        return status_with(code_pb2.PERMISSION_DENIED, str(error))
    if isinstance(error, EmailNotVerified):
        reason = error_details_pb2.ErrorInfo(reason=EMAIL_NOT_VERIFIED, domain=ERROR_DOMAIN)
        return status_with(code_pb2.FAILED_PRECONDITION, str(error), reason)
    if isinstance(error, SecondFactorPrecondition):
        reason = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN)
        return status_with(code_pb2.FAILED_PRECONDITION, str(error), reason)
    # As a bad reset token, and naming the field that was not good: the link or the code.
    if isinstance(error, InvalidVerificationToken):
        return status_with(code_pb2.UNAUTHENTICATED, str(error), _bad_field("token", error))
    if isinstance(error, InvalidSignInChallenge):
        return status_with(
            code_pb2.UNAUTHENTICATED, str(error), _bad_field("challenge_token", error)
        )
    if isinstance(error, InvalidVerificationCode):
        return status_with(code_pb2.UNAUTHENTICATED, str(error), _bad_field("code", error))
    # A passkey response that does not verify: as a wrong code, naming the field it came in.
    if isinstance(error, PasskeyCeremonyFailed):
        return status_with(
            code_pb2.UNAUTHENTICATED, str(error), _bad_field("credential_json", error)
        )
    if isinstance(error, PasskeyLimitReached):
        return status_with(code_pb2.FAILED_PRECONDITION, str(error))
    if isinstance(error, UndecodableRequest):
        violation = error_details_pb2.BadRequest.FieldViolation(
            field="", description=UndecodableRequest.DESCRIPTION
        )
        bad_request = error_details_pb2.BadRequest(field_violations=[violation])
        return status_with(code_pb2.INVALID_ARGUMENT, str(error), bad_request)
    if isinstance(error, StorageUnavailable):
        log.warning("%s: storage unavailable: %s", method, error)
        return status_with(code_pb2.UNAVAILABLE, str(error), _retry_soon())
    if isinstance(error, ServiceShuttingDown):
        return status_with(code_pb2.UNAVAILABLE, str(error), _retry_soon())
    if isinstance(error, RequestTooLarge):  # as gRPC answers beyond its own limit; no retry helps
        return status_with(code_pb2.RESOURCE_EXHAUSTED, str(error))
    if isinstance(error, (TooManyWatchers, TooManyConcurrentCalls, PasswordHashQueueFull)):
        return status_with(code_pb2.RESOURCE_EXHAUSTED, str(error), _retry_soon())
    if isinstance(error, DeadlineExceeded):
        return status_with(code_pb2.DEADLINE_EXCEEDED, str(error))
    if isinstance(error, CallerUnauthenticated):
        return status_with(code_pb2.UNAUTHENTICATED, str(error))
    if isinstance(error, UserTokenRejected):
        return status_with(code_pb2.UNAUTHENTICATED, str(error))
    if isinstance(error, (CallerNotPermitted, NotTheTokensUser)):
        return status_with(code_pb2.PERMISSION_DENIED, str(error))
    if isinstance(error, SignInNotRecent):
        reason = error_details_pb2.ErrorInfo(reason=RECENT_SIGN_IN_REQUIRED, domain=ERROR_DOMAIN)
        return status_with(code_pb2.FAILED_PRECONDITION, str(error), reason)
    # StorageError and anything unforeseen: the details stay in the log, never in the reply.
    log.error("%s failed", method, exc_info=error)
    return status_with(code_pb2.INTERNAL, INTERNAL_MESSAGE)


async def abort_with(
    context: grpc.aio.ServicerContext[Any, Any], status: status_pb2.Status
) -> NoReturn:
    """Ends the call with ``status`` (and its details), keeping the trailing metadata already set.

    ``context.abort_with_status`` would replace that metadata (the request id, for one) with the
    status's own ``grpc-status-details-bin``.
    """
    details = rpc_status.to_status(status)
    kept = tuple(
        (key, value)
        for key, value in context.trailing_metadata() or ()
        if key != _STATUS_DETAILS_KEY  # an earlier status's details: replaced by this one's
    )
    await context.abort(details.code, details.details, kept + tuple(details.trailing_metadata))


_STATUS_DETAILS_KEY = "grpc-status-details-bin"


def _bad_field(field: str, error: Exception) -> error_details_pb2.BadRequest:
    violation = error_details_pb2.BadRequest.FieldViolation(field=field, description=str(error))
    return error_details_pb2.BadRequest(field_violations=[violation])


def _retry_soon() -> error_details_pb2.RetryInfo:
    return error_details_pb2.RetryInfo(retry_delay=Duration(seconds=RETRY_DELAY_SECONDS))


def status_with(code: int, message: str, *details: Message) -> status_pb2.Status:
    status = status_pb2.Status(code=code, message=message)
    for detail in details:
        status.details.add().Pack(detail)
    return status
