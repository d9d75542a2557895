"""Domain errors become the right gRPC status and rich details, via the interceptor on a server."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import grpc
import pytest
import pytest_asyncio
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from domain.errors import (
    AccountDisabled,
    AuthenticationFailed,
    ConcurrentRefresh,
    ConcurrentWrite,
    DeadlineExceeded,
    EmailAlreadyRegistered,
    EmailNotVerified,
    FieldViolation,
    InvalidArgument,
    InvalidEmailChangeToken,
    InvalidRefreshToken,
    InvalidResetToken,
    InvalidSecondFactorCode,
    InvalidSignInChallenge,
    InvalidVerificationCode,
    InvalidVerificationToken,
    SecurityMailLimited,
    StorageError,
    StorageUnavailable,
    UserNotFound,
    VerificationCodeAttemptsExhausted,
    VersionConflict,
)
from persistence.deadline import refuse_after_deadline
from server.interceptors.errors import DomainErrorInterceptor
from server.refusals import (
    CallerNotPermitted,
    CallerUnauthenticated,
    NotTheTokensUser,
    PasswordHashQueueFull,
    TooManyConcurrentCalls,
    UserTokenRejected,
)
from server.status import rpc_status_for

METHOD = "/test.Failing/Fail"
Behaviour = Callable[[grpc.aio.ServicerContext[bytes, bytes]], Awaitable[None]]
Invoke = Callable[..., Awaitable[grpc.aio.AioRpcError]]


@pytest_asyncio.fixture
async def call() -> AsyncIterator[Invoke]:
    """Runs a handler acting as ``behaviour(context)`` behind the interceptor; returns its error."""
    behaviours: list[Behaviour] = []

    async def handler(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        await behaviours[-1](context)
        return b"unreachable"

    server = grpc.aio.server(interceptors=[DomainErrorInterceptor()])
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "test.Failing", {"Fail": grpc.unary_unary_rpc_method_handler(handler)}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")

    async def invoke(behaviour: Behaviour, deadline: float = 10) -> grpc.aio.AioRpcError:
        behaviours.append(behaviour)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await channel.unary_unary(
                METHOD, request_serializer=bytes, response_deserializer=bytes
            )(b"", timeout=deadline)
        return raised.value

    try:
        yield invoke
    finally:
        await channel.close()
        await server.stop(None)


def rich_status(failure: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    # from_call's stub declares no return type: it is the google.rpc.Status, or None.
    status: status_pb2.Status | None = rpc_status.from_call(failure)  # type: ignore[arg-type]  # AioRpcError has the methods it reads
    return status


def raising(error: BaseException) -> Behaviour:
    async def behaviour(context: object) -> None:
        raise error

    return behaviour


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (
            InvalidArgument([FieldViolation("email", "must not be empty")]),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (UserNotFound(), grpc.StatusCode.NOT_FOUND),
        (EmailAlreadyRegistered(), grpc.StatusCode.ALREADY_EXISTS),
        (VersionConflict(expected=1, actual=2), grpc.StatusCode.ABORTED),
        (ConcurrentRefresh(), grpc.StatusCode.ABORTED),
        (ConcurrentWrite(), grpc.StatusCode.ABORTED),
        (AuthenticationFailed(), grpc.StatusCode.UNAUTHENTICATED),
        (InvalidRefreshToken(), grpc.StatusCode.UNAUTHENTICATED),
        (InvalidResetToken(), grpc.StatusCode.UNAUTHENTICATED),
        (InvalidEmailChangeToken(), grpc.StatusCode.UNAUTHENTICATED),
        (SecurityMailLimited(timedelta(seconds=5)), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (AccountDisabled(), grpc.StatusCode.PERMISSION_DENIED),
        (EmailNotVerified(), grpc.StatusCode.FAILED_PRECONDITION),
        (InvalidVerificationToken(), grpc.StatusCode.UNAUTHENTICATED),
        (InvalidVerificationCode(), grpc.StatusCode.UNAUTHENTICATED),
        (InvalidSecondFactorCode(), grpc.StatusCode.UNAUTHENTICATED),
        (InvalidSignInChallenge(), grpc.StatusCode.UNAUTHENTICATED),
        (VerificationCodeAttemptsExhausted(), grpc.StatusCode.UNAUTHENTICATED),
        (DeadlineExceeded(), grpc.StatusCode.DEADLINE_EXCEEDED),
        (CallerUnauthenticated("no authorization metadata"), grpc.StatusCode.UNAUTHENTICATED),
        (CallerNotPermitted("this method needs the role admin"), grpc.StatusCode.PERMISSION_DENIED),
        (UserTokenRejected(expired=True), grpc.StatusCode.UNAUTHENTICATED),
        (NotTheTokensUser("id"), grpc.StatusCode.PERMISSION_DENIED),
        (StorageUnavailable(), grpc.StatusCode.UNAVAILABLE),
        (TooManyConcurrentCalls(256), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (PasswordHashQueueFull(128), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (StorageError("AccessDeniedException on table Users"), grpc.StatusCode.INTERNAL),
        (KeyError("PasswordHash"), grpc.StatusCode.INTERNAL),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else value.name,
)
async def test_each_error_maps_to_its_status_code(
    call: Invoke, error: Exception, code: grpc.StatusCode
) -> None:
    failure = await call(raising(error))

    assert failure.code() == code
    status = rich_status(failure)
    assert status is not None and status.code == code.value[0]


async def test_invalid_argument_carries_a_bad_request_with_every_field_violation(
    call: Invoke,
) -> None:
    error = InvalidArgument(
        [FieldViolation("email", "must not be empty"), FieldViolation("password", "too short")]
    )

    failure = await call(raising(error))

    status = rich_status(failure)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("email", "must not be empty"),
        ("password", "too short"),
    ]


async def test_an_unverified_address_at_sign_in_carries_the_email_not_verified_reason(
    call: Invoke,
) -> None:
    failure = await call(raising(EmailNotVerified()))

    status = rich_status(failure)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain) == ("EMAIL_NOT_VERIFIED", "user.biome")


@pytest.mark.parametrize(
    ("error", "field"),
    [
        (InvalidVerificationToken(), "token"),
        (InvalidVerificationCode(), "code"),
        (InvalidSignInChallenge(), "challenge_token"),
    ],
)
async def test_a_bad_verification_token_or_code_names_its_field(
    call: Invoke, error: Exception, field: str
) -> None:
    failure = await call(raising(error))

    status = rich_status(failure)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert [v.field for v in bad_request.field_violations] == [field]


async def test_storage_unavailable_tells_the_caller_when_to_retry(call: Invoke) -> None:
    failure = await call(raising(StorageUnavailable()))

    status = rich_status(failure)
    assert status is not None
    retry = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(retry)
    assert retry.retry_delay.ToTimedelta().total_seconds() > 0


@pytest.mark.parametrize("error", [TooManyConcurrentCalls(256), PasswordHashQueueFull(128)])
async def test_an_overload_refusal_tells_the_caller_when_to_retry(
    call: Invoke, error: Exception
) -> None:
    failure = await call(raising(error))

    status = rich_status(failure)
    assert status is not None and status.message == str(error)
    retry = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(retry)
    assert retry.retry_delay.ToTimedelta().total_seconds() > 0


async def test_a_bad_email_change_token_is_refused_like_a_bad_reset_token_naming_the_field(
    call: Invoke,
) -> None:
    failure = await call(raising(InvalidEmailChangeToken()))

    status = rich_status(failure)
    assert status is not None and status.code == code_pb2.UNAUTHENTICATED
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert [v.field for v in bad_request.field_violations] == ["token"]


async def test_held_back_security_mail_says_when_more_may_go_in_whole_seconds(
    call: Invoke,
) -> None:
    failure = await call(raising(SecurityMailLimited(timedelta(seconds=41, milliseconds=200))))

    status = rich_status(failure)
    assert status is not None and "retry in 42 seconds" in status.message
    retry = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(retry)
    assert retry.retry_delay.ToTimedelta() == timedelta(seconds=42)


async def test_unexpected_errors_are_logged_with_traceback_and_hidden_from_the_caller(
    call: Invoke, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="server.status"):
        failure = await call(
            raising(RuntimeError("table Users-secret has no attribute PasswordHash"))
        )

    assert failure.code() == grpc.StatusCode.INTERNAL
    assert failure.details() == "internal error"
    assert "secret" not in str(rich_status(failure))
    [record] = caplog.records
    assert record.exc_info is not None and "PasswordHash" in str(record.exc_info[1])
    assert METHOD in record.getMessage()


async def test_a_status_the_handler_chose_itself_passes_through(call: Invoke) -> None:
    async def abort(context: grpc.aio.ServicerContext[bytes, bytes]) -> None:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not yours")

    failure = await call(abort)

    assert (failure.code(), failure.details()) == (grpc.StatusCode.PERMISSION_DENIED, "not yours")


async def test_a_call_the_client_gave_up_on_is_not_reported_as_internal(
    call: Invoke, caplog: pytest.LogCaptureFixture
) -> None:
    cancelled = asyncio.Event()

    async def slow(context: object) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with caplog.at_level(logging.ERROR, logger="server.status"):
        failure = await call(slow, deadline=0.2)
        await asyncio.wait_for(cancelled.wait(), timeout=5)

    assert failure.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert caplog.records == []


async def test_the_callers_deadline_stops_storage_requests_the_handler_would_start_late(
    call: Invoke,
) -> None:
    started: list[str] = []

    async def busy_past_the_deadline(context: object) -> None:
        refuse_after_deadline(event_name="before-send.dynamodb.GetItem")  # in time: allowed
        started.append("GetItem")
        time.sleep(0.5)  # noqa: ASYNC251 (blocks the loop, so gRPC cannot cancel the handler first)
        refuse_after_deadline(event_name="before-send.dynamodb.TransactWriteItems")
        started.append("TransactWriteItems")

    failure = await call(busy_past_the_deadline, deadline=0.3)

    assert failure.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert started == ["GetItem"]


def test_the_mapping_helper_hides_internals_of_storage_errors() -> None:
    status = rpc_status_for(
        StorageError("AccessDeniedException: arn:aws:iam::123456789012:role/x"), "/m"
    )

    assert (status.code, status.message, list(status.details)) == (
        code_pb2.INTERNAL,
        "internal error",
        [],
    )
